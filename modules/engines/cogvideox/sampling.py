"""CogVideoX text-to-video: diffusers' maintained `CogVideoXPipeline` on the manager's components.

The pipeline denoises; this module adds what the app needs around it:

- Progress and Stop: `callback_on_step_end` calls `on_step(i + 1, total, "")` after every
  transformer call (one per step, both guidance branches batched into it). `on_step` raises to
  stop (JobControl.step raises `Cancelled`), and the exception leaves the pipeline at once, so
  no VAE decode follows a Stop. (Setting the pipeline's `_interrupt` instead would skip the
  remaining steps but still decode the half-denoised latents.)
- Seed: the starting noise is drawn from a CPU generator seeded with `seed`, so a seed gives
  the same video on any device (diffusers draws on the generator's device, then moves it).
- Decoding: the pipeline returns latents (`output_type="latent"`) and `decode` decodes them
  as the pipeline's own `decode_latents` + `postprocess_video` do, in the VAE's dtype (the
  VAE may be kept in float32 while the transformer runs in half precision); a half-precision
  VAE that overflows is decoded again in float32. Tiling is on, as the model card runs it: clips
  wider than 360 or taller than 240 pixels decode in overlapping tiles (blended), which bounds
  the decoder's memory; smaller ones (the tiny preset's) decode whole.
- Device: with CPU offload the modules wait on the CPU; the pipeline runs where `device` says.

Sizes: the VAE scales 8x and the transformer takes 2x2 latent patches, so sides must be multiples
of 16 (others fail inside the transformer). Frames: the VAE compresses time 4x and decodes its
latent frames in pairs after a first odd one, so only 8k+1 frames (1, 9, 17, ..., 49) come back
as asked; other counts come back with a different length (45 -> 48).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from diffusers import CogVideoXPipeline

from ...engine.common import OnDevice, StepCallback, make_generator, run_on, step_end_callback

ROLES = ("tokenizer", "text_encoder", "transformer", "vae", "scheduler")
DEFAULT_NUM_FRAMES = 49
DEFAULT_HEIGHT = 480
DEFAULT_WIDTH = 720
DEFAULT_STEPS = 50
DEFAULT_GUIDANCE = 6.0
FRAME_MULTIPLE = 8  # frames 8k+1


class _Pipeline(OnDevice, CogVideoXPipeline):
    """diffusers' CogVideoXPipeline, running where it is told."""


def size_multiple(parts: Mapping[str, object]) -> int:
    """The multiple both sides must be: the VAE's spatial factor times the transformer's patch size."""
    vae, transformer = parts["vae"], parts["transformer"]
    return 2 ** (len(vae.config.block_out_channels) - 1) * transformer.config.patch_size


def check_shape(parts: Mapping[str, object], num_frames: int, height: int, width: int) -> None:
    multiple = size_multiple(parts)
    if height % multiple or width % multiple or height < multiple or width < multiple:
        raise ValueError(f"CogVideoX needs width and height that are multiples of {multiple}; got {width}x{height}")
    if num_frames < 1 or (num_frames - 1) % FRAME_MULTIPLE:
        raise ValueError(f"CogVideoX makes {FRAME_MULTIPLE}k+1 frames (1, 9, 17, ..., 49); got {num_frames}")


def make_pipeline(parts: Mapping[str, object], device: torch.device | None = None) -> CogVideoXPipeline:
    """A `CogVideoXPipeline` on `parts` ({role: object}), with a fresh scheduler of `parts`' kind."""
    scheduler = parts["scheduler"]
    modules = {role: parts[role] for role in ROLES if role != "scheduler"}
    pipe = _Pipeline(**modules, scheduler=type(scheduler).from_config(scheduler.config))
    return run_on(pipe, device)


def decode(vae, latents: torch.Tensor) -> np.ndarray:
    """Frames (F, H, W, 3) float32 in [0, 1] of the pipeline's latents (1, F, C, h, w)."""
    vae.enable_tiling()
    latents = latents.permute(0, 2, 1, 3, 4).to(vae.dtype)  # (1, C, F, h, w), as the VAE takes them
    latents = 1 / vae.config.scaling_factor * latents
    video = vae.decode(latents).sample
    if vae.dtype != torch.float32 and not torch.isfinite(video).all():
        video = _decode_in_float32(vae, latents)
    video = (video[0] / 2 + 0.5).clamp(0, 1)  # (3, F, H, W)
    return video.permute(1, 2, 3, 0).float().cpu().numpy()


def _decode_in_float32(vae, latents: torch.Tensor) -> torch.Tensor:
    """Decode once in float32; the VAE (shared by every job) gets its dtype back even if this raises."""
    dtype = vae.dtype
    try:
        return vae.float().decode(latents.float()).sample
    finally:
        vae.to(dtype)


@torch.no_grad()
def generate_cogvideox(
    parts: Mapping[str, object],
    *,
    prompt: str,
    negative_prompt: str = "",
    num_frames: int = DEFAULT_NUM_FRAMES,
    height: int = DEFAULT_HEIGHT,
    width: int = DEFAULT_WIDTH,
    steps: int = DEFAULT_STEPS,
    guidance_scale: float = DEFAULT_GUIDANCE,
    seed: int = 0,
    on_step: StepCallback | None = None,
    device: torch.device | None = None,
) -> np.ndarray:
    """Frames (num_frames, height, width, 3), float32 in [0, 1].

    `parts`: {role: object} for `ROLES` (a ModelComponents serves). Defaults are the published
    ones: 49 frames of 720x480, 50 steps, guidance 6. `on_step(done, total, "")` follows every
    step and may raise to stop (nothing is decoded then).
    """
    num_frames, height, width = int(num_frames), int(height), int(width)
    check_shape(parts, num_frames, height, width)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    pipe = make_pipeline(parts, device)


    latents = pipe(
        prompt=prompt,
        negative_prompt=negative_prompt,
        num_frames=num_frames,
        height=height,
        width=width,
        num_inference_steps=int(steps),
        guidance_scale=float(guidance_scale),
        generator=make_generator(seed),
        output_type="latent",
        callback_on_step_end=step_end_callback(on_step),
        max_sequence_length=parts["transformer"].config.max_text_seq_length,
    ).frames
    return decode(parts["vae"], latents)
