"""Wan 2.1 VACE (Wan-AI/Wan2.1-VACE-1.3B-diffusers): control maps and a first frame, through diffusers'
maintained `WanVACEPipeline` on the manager's components.

VACE conditions the Wan transformer on a `video` and a `mask` (1: generate, 0: keep) through extra
"VACE" blocks. What the app gives it:

- Control (Pose, Edge, Depth): the annotators' maps as `video` with an all-ones mask (VACE was trained
  on pose, depth and edge videos as its control inputs). The window's frames and size are fitted to
  Wan's rules here: the first 4k+1 maps, each resized to sides that are multiples of 16 (`fit_maps`).
- A first frame (Text to video with an image): frame 0 of `video` is the picture with mask 0 there, the
  other frames grey (VACE's "empty" value) with mask 1: image-to-video as VACE's own examples do it.

Progress and Stop as in `generate_wan` (a raising `callback_on_step_end`: nothing more is denoised and
nothing is decoded). The prompt is encoded by WanPipeline's `_get_t5_prompt_embeds`: in diffusers 0.42.1
the VACE pipeline's own copy calls `ftfy.fix_text` without checking that ftfy is installed (it is not a
dependency here); WanPipeline's checks it, and is otherwise the same code.
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers import WanPipeline, WanVACEPipeline
from PIL import Image

from ...engine.common import OnDevice, make_generator, run_on, step_end_callback
from ..base import ModelComponents
from .sampling import FRAME_MULTIPLE, SIZE_MULTIPLE, StepCallback, check_clip, check_steps

GREY = 128  # the "nothing here" value of VACE's frames to generate (0 after the VAE's [-1, 1] scaling)


class _WanVACEPipeline(OnDevice, WanVACEPipeline):
    """diffusers' WanVACEPipeline, on the manager's device, with WanPipeline's prompt cleaning (no ftfy needed)."""

    _get_t5_prompt_embeds = WanPipeline._get_t5_prompt_embeds


def vace_pipeline(c: ModelComponents) -> WanVACEPipeline:
    pipe = _WanVACEPipeline(tokenizer=c["tokenizer"], text_encoder=c["text_encoder"], transformer=c["transformer"],
                            vae=c["vae"], scheduler=c["scheduler"])
    return run_on(pipe, c.device)


def _uint8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(np.round(image.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    return image


def fitted_shape(frames: int, height: int, width: int) -> tuple[int, int, int]:
    """(frames, height, width) that Wan takes for a window of this shape: the most 4k+1 frames at most
    `frames`, sides rounded down to multiples of 16 (at least 16)."""
    fitted = max(1, frames - (frames - 1) % FRAME_MULTIPLE)
    return fitted, max(SIZE_MULTIPLE, height - height % SIZE_MULTIPLE), max(SIZE_MULTIPLE, width - width % SIZE_MULTIPLE)


def fit_maps(maps: np.ndarray) -> list[Image.Image]:
    """The control maps as Wan takes them (see `fitted_shape`): PIL images, the first 4k+1, resized."""
    frames, height, width = fitted_shape(len(maps), maps.shape[1], maps.shape[2])
    images = [Image.fromarray(_uint8(m)) for m in maps[:frames]]
    if (height, width) != maps.shape[1:3]:
        images = [m.resize((width, height), Image.BICUBIC) for m in images]
    return images


def first_frame_inputs(image: np.ndarray, num_frames: int) -> tuple[list[Image.Image], list[Image.Image]]:
    """(video, mask) for image-to-video: the picture kept as frame 0, the rest generated."""
    picture = Image.fromarray(_uint8(image))
    size = picture.size
    video = [picture] + [Image.new("RGB", size, (GREY,) * 3)] * (num_frames - 1)
    mask = [Image.new("L", size, 0)] + [Image.new("L", size, 255)] * (num_frames - 1)
    return video, mask


@torch.no_grad()
def generate_wan_vace(
    c: ModelComponents,
    *,
    prompt: str,
    negative_prompt: str = "",
    maps: np.ndarray | None = None,
    first_frame: np.ndarray | None = None,
    num_frames: int = 81,
    height: int = 480,
    width: int = 832,
    steps: int = 50,
    guidance_scale: float = 5.0,
    conditioning_scale: float = 1.0,
    seed: int = 0,
    on_step: StepCallback | None = None,
) -> np.ndarray:
    """Frames (F, H, W, 3) float32 in [0, 1]: from control `maps` (F, H, W, 3) (their frames and size, fitted
    by `fit_maps`), or `num_frames` x `height` x `width` from a `first_frame` (H, W, 3). `on_step` may raise
    to stop before the next step, without decoding."""
    if (maps is None) == (first_frame is None):
        raise ValueError("give control maps or a first frame")
    if maps is not None:
        video, mask = fit_maps(maps), None
        width, height = video[0].size
        num_frames = len(video)
    else:
        check_clip(num_frames, height, width)
        if first_frame.shape[:2] != (height, width):
            first_frame = np.asarray(Image.fromarray(_uint8(first_frame)).resize((width, height), Image.BICUBIC))
        video, mask = first_frame_inputs(first_frame, num_frames)
    check_steps(steps)


    frames = vace_pipeline(c)(
        prompt=prompt,
        negative_prompt=negative_prompt or None,
        video=video,
        mask=mask,
        conditioning_scale=conditioning_scale,
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
