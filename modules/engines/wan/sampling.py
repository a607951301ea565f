"""Wan 2.1 text-to-video through diffusers' maintained `WanPipeline`, on the manager's components.

The pipeline is built per job around the loaded parts (no weight is copied) and run as diffusers
runs it: UMT5 prompt encoding (512 tokens), the flow-matching UniPC schedule of the repo (shift
3.0), classifier-free guidance as two transformer calls per step, then the causal 3D VAE decodes
the whole clip at once (in float32: the VAE is pinned there). What this module adds:

- Progress and Stop: `callback_on_step_end` calls `on_step(done, total, "")` after every step;
  when that raises (JobControl.step raises `Cancelled`), the exception leaves the pipeline at
  once, so nothing more is denoised and nothing is decoded. (Setting the pipeline's
  `_interrupt` would skip the remaining steps but still decode.)
- The device: with CPU offload the parts wait on the CPU; the pipeline is told where they run.
- The seed: a CPU `torch.Generator`, so a seed gives the same video on any device.
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers import WanPipeline

from ...engine.common import OnDevice, StepCallback, make_generator, run_on, step_end_callback
from ..base import ModelComponents

FRAME_MULTIPLE = 4  # the VAE's temporal scale: frames 4k+1
SIZE_MULTIPLE = 16  # the VAE's 8x times the transformer's 2x2 patches


class _WanPipeline(OnDevice, WanPipeline):
    """diffusers' WanPipeline, running where the manager's components run."""


def wan_pipeline(c: ModelComponents) -> WanPipeline:
    """A WanPipeline on `c`'s loaded parts (the scheduler is `c`'s fresh one: it carries state)."""
    pipe = _WanPipeline(tokenizer=c["tokenizer"], text_encoder=c["text_encoder"], transformer=c["transformer"],
                        vae=c["vae"], scheduler=c["scheduler"])
    return run_on(pipe, c.device)


@torch.no_grad()
def check_clip(num_frames: int, height: int, width: int) -> None:
    """Wan's shape rules (request validation says so first; the pipeline would round them with a warning)."""
    if num_frames < 1 or (num_frames - 1) % FRAME_MULTIPLE:
        raise ValueError(f"num_frames must be 4k+1 (1, 5, 9, ...), got {num_frames}")
    if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
        raise ValueError(f"height and width must be multiples of {SIZE_MULTIPLE}, got {width}x{height}")


def check_steps(steps: int) -> None:
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")


def generate_wan(
    c: ModelComponents,
    *,
    prompt: str,
    negative_prompt: str = "",
    num_frames: int = 81,
    height: int = 480,
    width: int = 832,
    steps: int = 50,
    guidance_scale: float = 5.0,
    seed: int = 0,
    on_step: StepCallback | None = None,
) -> np.ndarray:
    """Frames (num_frames, height, width, 3), float32 in [0, 1].

    Frames must be 4k+1 and sides multiples of 16 (request validation says so first; the pipeline
    would round them with a log warning). `on_step(done, total, "")` follows every step (`total`
    steps); it may raise to stop the generation before the next step, without decoding.
    """
    check_clip(num_frames, height, width)
    check_steps(steps)


    frames = wan_pipeline(c)(
        prompt=prompt,
        negative_prompt=negative_prompt or None,
        num_frames=num_frames,
        height=height,
        width=width,
        num_inference_steps=steps,
        guidance_scale=guidance_scale,
        generator=make_generator(seed),
        output_type="np",
        callback_on_step_end=step_end_callback(on_step),
    ).frames
    return np.asarray(frames[0], dtype=np.float32)
