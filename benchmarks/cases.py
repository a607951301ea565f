"""The zero-shot engine's cases (text2video-zero: text2video, pose, edge, depth, edit): our loops
and diffusers' reference pipelines on the same weights.

The components are built once (random weights from `modules.tiny`, "tiny" or the real SD 1.5
architecture "sd15") and shared by both sides, so the two runs differ only in the sampling code.
The reference pipelines are the ones `tests/test_engine_reference.py` checks us against:
- text2video: diffusers' deprecated TextToVideoZeroPipeline (it installs its own cross-frame
  attention processor for the call and restores the previous one after);
- pose / edge / depth: StableDiffusionControlNetPipeline with the deprecated
  CrossFrameAttnProcessor2_0(batch_size=2) on the UNet and the ControlNet, every frame starting
  from the same latent, as Text2Video-Zero's ControlNet mode does;
- edit: StableDiffusionInstructPix2PixPipeline with CrossFrameAttnProcessor2_0(batch_size=3).
"""

from __future__ import annotations

import warnings

import numpy as np
import PIL.Image
import torch

from modules.request_types import CONTROL_KINDS

from .harness import NEGATIVE, PROMPT, Case, placer

MODES = ("text2video", *CONTROL_KINDS, "edit")

__all__ = ["MODES", "NEGATIVE", "PROMPT", "Case", "build_case", "control_maps", "input_video"]

EDIT_PROMPT = "make it snowy"
GUIDANCE = 7.5
CONTROL_GUIDANCE = 9.0
CONTROL_SCALE = 1.0
IMAGE_GUIDANCE = 1.5  # >= 1: diffusers' pipeline keeps three-way guidance on, as we always do
MOTION = 12.0


def control_maps(frames: int, size: int, mode: str, seed: int = 0) -> np.ndarray:
    """Random uint8 control maps (F, size, size, 3), shaped roughly like each annotator's output.

    The compute doesn't depend on the content; the shapes just keep the maps plausible.
    """
    rng = np.random.default_rng(seed)
    if mode == "depth":  # smooth grey ramps that shift from frame to frame
        y, x = np.mgrid[0:size, 0:size] / max(size - 1, 1)
        maps = [(0.5 + 0.5 * np.sin(3 * x + 2 * y + 0.3 * k + rng.random())) for k in range(frames)]
        grey = (np.stack(maps) * 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    density = 0.9 if mode == "edge" else 0.97  # sparse white edges / sparser pose dots
    binary = (rng.random((frames, size, size)) > density) * 255
    if mode == "edge":
        return np.repeat(binary[..., None], 3, axis=-1).astype(np.uint8)
    colours = rng.integers(0, 256, (frames, size, size, 3))
    return (colours * (binary[..., None] > 0)).astype(np.uint8)


def input_video(frames: int, size: int, seed: int = 1) -> np.ndarray:
    """A random uint8 clip (F, size, size, 3) to edit."""
    return (np.random.default_rng(seed).random((frames, size, size, 3)) * 255).astype(np.uint8)


def _swap_processors(models, processor):
    saved = [m.attn_processors for m in models]
    for m in models:
        m.set_attn_processor(processor)
    return saved


def _restore_processors(models, saved):
    for m, processors in zip(models, saved):
        m.set_attn_processor(processors)


def compiled(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`torch.compile` for our side only (an experiment: the app does not compile, see README).

    On CPU inductor is only faster with freezing (weights folded in as constants); the reference
    side keeps calling the eager module, which freezing leaves alone.
    """
    if device.type == "cpu":
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
    return torch.compile(model, dynamic=False)  # one static graph per shape (freezing fails on dynamic ones)


def build_case(
    mode: str,
    *,
    arch: str,
    size: int,
    steps: int,
    chunk_size: int | None,
    device: torch.device,
    dtype: torch.dtype,
    seed: int = 0,
    compile: bool = False,
) -> Case:
    """Build the components once (weights identical for both sides) and the two runners."""
    from diffusers import (
        StableDiffusionControlNetPipeline,
        StableDiffusionInstructPix2PixPipeline,
    )
    from diffusers.pipelines.deprecated.text_to_video_synthesis.pipeline_text_to_video_zero import (
        CrossFrameAttnProcessor2_0,
    )
    from diffusers.utils.torch_utils import randn_tensor

    from modules import tiny
    from modules.engine import (
        Components,
        default_t0_t1,
        frame_generator,
        frame_generators,
        generate_control_video,
        generate_edit_video,
        generate_text2video,
        make_scheduler,
    )

    from .references import FramewiseTextToVideoZero

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r} for the zero-shot cases; choose one of {', '.join(MODES)}")
    place = placer(device, dtype)

    def for_ours(model):
        return compiled(model, device) if compile else model

    tokenizer = tiny.build_tokenizer()
    text_encoder = place(tiny.build_text_encoder(tokenizer, arch))
    vae = place(tiny.build_vae(arch))
    parts = dict(text_encoder=text_encoder, vae_encoder=vae.encoder, vae_decoder=vae.decoder)
    shared = dict(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler_config=tiny.build_scheduler().config,
        place=place,
    )  # fmt: skip
    common = dict(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, safety_checker=None,
        feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip

    if mode == "text2video":
        unet = place(tiny.build_unet(arch, seed=1))
        t0, t1 = default_t0_t1(steps)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipe = FramewiseTextToVideoZero(unet=unet, scheduler=tiny.build_scheduler(), **common)
        pipe.set_progress_bar_config(disable=True)
        settings = dict(height=size, width=size, guidance_scale=GUIDANCE, t0=t0, t1=t1)
        our_unet = for_ours(unet)

        def ours(frames: int) -> np.ndarray:
            c = Components(tokenizer, text_encoder, our_unet, vae, tiny.build_scheduler())
            return generate_text2video(
                c, prompt=PROMPT, negative_prompt=NEGATIVE, num_frames=frames, steps=steps, motion_x=MOTION,
                motion_y=MOTION, seed=seed, chunk_size=chunk_size, **settings,
            )  # fmt: skip

        def reference(frames: int) -> np.ndarray:
            pipe.scheduler = tiny.build_scheduler()
            pipe.renoise_generators = frame_generators(seed, range(1, frames))
            return pipe(
                prompt=PROMPT, negative_prompt=NEGATIVE, video_length=frames, num_inference_steps=steps,
                motion_field_strength_x=MOTION, motion_field_strength_y=MOTION,
                generator=frame_generator(seed, 0), output_type="np", **settings,
            ).images  # fmt: skip

        # Noise is drawn per frame: a chunked clip is the reference's.
        return Case(mode, unet, ours, reference, True, dict(parts, unet=unet), dict(shared, unet=unet))

    if mode in CONTROL_KINDS:
        unet = place(tiny.build_unet(arch, seed=1))
        controlnet = place(tiny.build_controlnet(unet, seed=2))
        pipe = StableDiffusionControlNetPipeline(
            unet=unet, controlnet=controlnet, scheduler=tiny.build_scheduler(), **common
        )
        pipe.set_progress_bar_config(disable=True)
        our_unet, our_controlnet = for_ours(unet), for_ours(controlnet)

        def ours(frames: int) -> np.ndarray:
            c = Components(tokenizer, text_encoder, our_unet, vae, tiny.build_scheduler())
            return generate_control_video(
                c, our_controlnet, control=control_maps(frames, size, mode), prompt=PROMPT, negative_prompt=NEGATIVE,
                steps=steps, guidance_scale=CONTROL_GUIDANCE, conditioning_scale=CONTROL_SCALE, seed=seed,
                chunk_size=chunk_size or frames,
            )  # fmt: skip

        def reference(frames: int) -> np.ndarray:
            pipe.scheduler = tiny.build_scheduler()
            scale = pipe.vae_scale_factor
            latent = randn_tensor(
                (1, unet.config.in_channels, size // scale, size // scale),
                generator=torch.Generator("cpu").manual_seed(seed), device=device, dtype=dtype,
            )  # fmt: skip
            images = [PIL.Image.fromarray(x) for x in control_maps(frames, size, mode)]
            models = (unet, controlnet)
            saved = _swap_processors(models, CrossFrameAttnProcessor2_0(batch_size=2))
            try:
                return pipe(
                    prompt=[PROMPT] * frames, negative_prompt=[NEGATIVE] * frames, image=images, height=size,
                    width=size, latents=latent.repeat(frames, 1, 1, 1), num_inference_steps=steps,
                    guidance_scale=CONTROL_GUIDANCE, controlnet_conditioning_scale=CONTROL_SCALE, output_type="np",
                ).images  # fmt: skip
            finally:
                _restore_processors(models, saved)

        # Every chunk starts from the same latent and re-makes the same anchor: chunking is exact.
        return Case(
            mode, unet, ours, reference, True, dict(parts, unet=unet, controlnet=controlnet),
            dict(shared, unet=unet, controlnet=controlnet),
        )  # fmt: skip

    # edit
    unet = place(tiny.build_unet(arch, in_channels=8, seed=3))
    sched_config = tiny.build_scheduler().config
    pipe = StableDiffusionInstructPix2PixPipeline(
        unet=unet, scheduler=make_scheduler("euler_ancestral", sched_config), **common
    )
    pipe.set_progress_bar_config(disable=True)
    our_unet = for_ours(unet)

    def ours(frames: int) -> np.ndarray:
        c = Components(tokenizer, text_encoder, our_unet, vae, make_scheduler("euler_ancestral", sched_config))
        return generate_edit_video(
            c, frames=input_video(frames, size), prompt=EDIT_PROMPT, negative_prompt=NEGATIVE, steps=steps,
            guidance_scale=GUIDANCE, image_guidance_scale=IMAGE_GUIDANCE, seed=seed, chunk_size=chunk_size or frames,
        )  # fmt: skip

    def reference(frames: int) -> np.ndarray:
        pipe.scheduler = make_scheduler("euler_ancestral", sched_config)
        images = [PIL.Image.fromarray(x) for x in input_video(frames, size)]
        saved = _swap_processors((unet,), CrossFrameAttnProcessor2_0(batch_size=3))
        try:
            return pipe(
                prompt=[EDIT_PROMPT] * frames, negative_prompt=[NEGATIVE] * frames, image=images,
                num_inference_steps=steps, guidance_scale=GUIDANCE, image_guidance_scale=IMAGE_GUIDANCE,
                generator=frame_generators(seed, range(frames)), output_type="np",
            ).images  # fmt: skip
        finally:
            _restore_processors((unet,), saved)

    # Each frame draws its own noise (initial latent, ancestral steps): a chunked clip is the reference's.
    return Case(mode, unet, ours, reference, True, dict(parts, unet=unet), dict(shared, unet=unet))
