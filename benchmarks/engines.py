"""Benchmark cases for the trained engines: ours against diffusers' own pipelines, same weights.

- animatediff: `generate_animatediff` (the motion UNet built on the base UNet's own layers,
  FreeNoise with split inference past 16 frames) against `AnimateDiffPipeline` built as diffusers
  documents it: `AnimateDiffPipeline(unet=<the SD 1.5 UNet>, motion_adapter=...)`, which copies
  the base UNet into a `UNetMotionModel` (`enable_free_noise()` past 16 frames, as its docs do).
  The adapter has guoyww/animatediff-motion-adapter-v1-5-3's shape at `--arch sd15`.
- modelscope: `generate_modelscope` on `UNet3DConditionModel` against the deprecated
  `TextToVideoSDPipeline`, started from our initial latents (`latents=`), as the reference test.
  `--arch sd15` builds ModelScope 1.7B's real architecture: its 3D UNet, its OpenCLIP-H text
  tower, SD's VAE.

`weights_mb` says what each side holds in memory for the engine: the AnimateDiff reference
holds a second copy of the UNet's 2D weights beside the base the app keeps loaded anyway.
"""

from __future__ import annotations

import numpy as np
import torch

from .cases import NEGATIVE, PROMPT, Case

ANIMATEDIFF_GUIDANCE = 7.5
MODELSCOPE_GUIDANCE = 9.0
FREE_NOISE_FROM = 17  # frames: the engine turns FreeNoise on past one 16-frame window


def _mb(modules) -> float:
    from modules.residency import unique_bytes

    return unique_bytes(modules) / 2**20


def build_animatediff_case(*, arch, size, steps, device, dtype, seed=0) -> Case:
    from diffusers import AnimateDiffPipeline

    from modules import tiny
    from modules.engine import Components
    from modules.engine.animatediff import FREE_NOISE_DEFAULTS, animatediff_scheduler, generate_animatediff

    def place(model):
        return model.to(device=device, dtype=dtype)

    tokenizer = tiny.build_tokenizer()
    text_encoder = place(tiny.build_text_encoder(tokenizer, arch))
    vae = place(tiny.build_vae(arch))
    unet = place(tiny.build_unet(arch, seed=1))
    adapter = place(tiny.build_motion_adapter(arch, seed=4))
    scheduler = tiny.build_scheduler()

    pipe = AnimateDiffPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                               motion_adapter=adapter, scheduler=animatediff_scheduler(scheduler))
    pipe.unet.to(device=device, dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    settings = dict(prompt=PROMPT, negative_prompt=NEGATIVE, height=size, width=size, guidance_scale=ANIMATEDIFF_GUIDANCE)

    def ours(frames: int) -> np.ndarray:
        c = Components(tokenizer, text_encoder, unet, vae, tiny.build_scheduler(), execution_device=device)
        return generate_animatediff(c, adapter, num_frames=frames, steps=steps, seed=seed, **settings)

    def reference(frames: int) -> np.ndarray:
        pipe.scheduler = animatediff_scheduler(scheduler)
        if frames >= FREE_NOISE_FROM:
            pipe.enable_free_noise(**FREE_NOISE_DEFAULTS)
        elif pipe.free_noise_enabled:
            pipe.disable_free_noise()
        out = pipe(num_frames=frames, num_inference_steps=steps, generator=torch.Generator("cpu").manual_seed(seed),
                   output_type="np", **settings)
        return np.asarray(out.frames[0], dtype=np.float32)

    # Calls are counted by a pre-hook on the base UNet (our motion UNet fires it) and on the copy.
    base_only = [text_encoder, vae, unet]
    weights = {"ours": _mb([*base_only, adapter]), "reference": _mb([*base_only, adapter, pipe.unet])}
    parts = dict(text_encoder=text_encoder, vae_decoder=vae.decoder)
    return Case("animatediff", unet, ours, reference, True, parts, counted=[unet, pipe.unet], weights_mb=weights)


def build_modelscope_case(*, arch, size, steps, device, dtype, seed=0) -> Case:
    from modules import tiny
    from modules.engine import Components
    from modules.engine.modelscope import generate_modelscope, initial_latents, reference_pipeline

    def place(model):
        return model.to(device=device, dtype=dtype)

    tokenizer = tiny.build_tokenizer()
    if arch == "sd15":  # ModelScope 1.7B: its own UNet and text tower, SD's VAE
        text_encoder, unet = tiny.build_text_encoder_ms17(tokenizer), tiny.build_unet3d("ms17", seed=1)
        vae = tiny.build_vae("sd15")
    else:
        text_encoder, unet, vae = tiny.build_text_encoder(tokenizer), tiny.build_unet3d("tiny", seed=1), tiny.build_vae()
    text_encoder, unet, vae = place(text_encoder), place(unet), place(vae)

    def components() -> Components:
        return Components(tokenizer, text_encoder, unet, vae, tiny.build_scheduler(), execution_device=device)

    pipe = reference_pipeline(components())
    settings = dict(prompt=PROMPT, negative_prompt=NEGATIVE, height=size, width=size, guidance_scale=MODELSCOPE_GUIDANCE)

    def ours(frames: int) -> np.ndarray:
        return generate_modelscope(components(), num_frames=frames, steps=steps, seed=seed, **settings)

    def reference(frames: int) -> np.ndarray:
        c = components()
        pipe.scheduler = c.scheduler
        latents = initial_latents(c, seed, frames, size, size)
        out = pipe(num_frames=frames, num_inference_steps=steps, latents=latents, output_type="np", **settings)
        return np.asarray(out.frames[0], dtype=np.float32)

    weights = {side: _mb([text_encoder, vae, unet]) for side in ("ours", "reference")}
    parts = dict(text_encoder=text_encoder, unet=unet, vae_decoder=vae.decoder)
    return Case("modelscope", unet, ours, reference, True, parts, counted=[unet], weights_mb=weights)
