"""Fast mode for Wan 2.1: NVIDIA's AnyFlow (nvidia/AnyFlow-Wan2.1-T2V-1.3B-Diffusers), Wan 2.1 T2V 1.3B
distilled into a flow map, sampled by diffusers' maintained `AnyFlowPipeline` on the manager's parts.

AnyFlow's transformer is Wan's with a second timestep embedding: each call predicts the mean velocity
from noise level t to a target r, and `FlowMapEulerDiscreteScheduler` steps straight there, so one
checkpoint samples in any number of steps (the card's recipe: 4). Classifier-free guidance is folded
into the weights (guidance 1: one transformer call a step). The text encoder, tokenizer and VAE are
the T2V model's (the repo carries copies; the ModelSpec shares the T2V model's instead).

Progress and Stop as `generate_wan`: `callback_on_step_end` reports every step and a raising
`on_step` leaves the pipeline before anything more is denoised or decoded.
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers import AnyFlowPipeline

from ...engine.common import OnDevice, StepCallback, make_generator, run_on, step_end_callback
from ..base import ModelComponents
from .sampling import check_clip, check_steps


class _AnyFlowPipeline(OnDevice, AnyFlowPipeline):
    """diffusers' AnyFlowPipeline, running where the manager's components run."""


def anyflow_pipeline(c: ModelComponents) -> AnyFlowPipeline:
    pipe = _AnyFlowPipeline(tokenizer=c["tokenizer"], text_encoder=c["text_encoder"], transformer=c["transformer"],
                            vae=c["vae"], scheduler=c["scheduler"])
    return run_on(pipe, c.device)


@torch.no_grad()
def generate_wan_fast(
    c: ModelComponents,
    *,
    prompt: str,
    negative_prompt: str = "",
    num_frames: int = 81,
    height: int = 480,
    width: int = 832,
    steps: int = 4,
    guidance_scale: float = 1.0,
    seed: int = 0,
    on_step: StepCallback | None = None,
) -> np.ndarray:
    """Frames (num_frames, height, width, 3), float32 in [0, 1], in `steps` flow-map steps. The same shape
    rules as `generate_wan`; the negative prompt only counts with guidance above 1 (not the recipe)."""
    check_clip(num_frames, height, width)
    check_steps(steps)
    frames = anyflow_pipeline(c)(
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
