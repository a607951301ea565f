"""Video Instruct-Pix2Pix: edit every frame of a clip by an instruction, consistently.

Instruct-Pix2Pix guides three ways at once (text, input image, neither), so a UNet call's batch
is three groups of frames: [text, image, unconditional]. Cross-frame attention is grouped by
three so that each frame attends to the anchor of its own group. Long clips run in
anchor-led chunks. Noise is drawn per frame (`frame_generator`): frame k's stream gives its
initial latent, then its noise for every stochastic step (Euler ancestral, DDIM with eta > 0),
so the anchor is re-made identically in every chunk and no frame depends on the chunk size.
"""

from __future__ import annotations

import numpy as np
import torch

from .attention import cross_frame_attention
from .common import (
    Components,
    StepCallback,
    StepCounter,
    decode_latents,
    encode_images,
    encode_prompt,
    frame_generators,
    noise,
    step_kwargs,
)
from .schedule import chunk_frame_ids, new_frames

GROUPS = 3  # text, image, unconditional


def branch_weights(guidance_scale: float, image_guidance_scale: float) -> dict[str, float]:
    """Each branch's weight in uncond + g*(text - image) + ig*(image - uncond)."""
    return {"text": guidance_scale, "image": image_guidance_scale - guidance_scale, "uncond": 1 - image_guidance_scale}


def guidance_branches(guidance_scale: float, image_guidance_scale: float, skip_unused: bool) -> tuple[str, ...]:
    """The UNet branches a step needs, in batch order: all three, or (`skip_unused`) only those
    with a non-zero weight in uncond + g*(text - image) + ig*(image - uncond)
    = g*text + (ig - g)*image + (1 - ig)*uncond.

    With image guidance 1 (fast mode's recipe) the unconditional branch cancels exactly, and with
    g == ig the image branch does: 2 groups instead of 3 is 1.5x fewer UNet FLOPs per step.
    """
    if not skip_unused:
        return ("text", "image", "uncond")
    weights = branch_weights(guidance_scale, image_guidance_scale)
    return tuple(name for name in ("text", "image", "uncond") if weights[name] != 0) or ("text",)


def edit_chunk(
    c: Components,
    frames: np.ndarray,
    frame_ids: list[int],
    embeds: torch.Tensor,
    *,
    steps: int,
    guidance_scale: float,
    image_guidance_scale: float,
    seed: int,
    count_step: StepCounter,
    branches: tuple[str, ...] = ("text", "image", "uncond"),
) -> torch.Tensor:
    """Latents of one chunk of edited frames (ids `frame_ids`).

    `embeds` is (3, tokens, dim): text, neg, neg. `branches` (see `guidance_branches`) are the
    UNet groups to run; all three is diffusers' three-way guidance, computed as it does.
    """
    scheduler = c.scheduler
    scheduler.set_timesteps(steps, device=c.device)
    generators = frame_generators(seed, frame_ids)
    image = encode_images(c, frames)
    count = frames.shape[0]
    index = {"text": 0, "image": 1, "uncond": 2}
    cond_latents = {"text": image, "image": image, "uncond": torch.zeros_like(image)}
    image_latents = torch.cat([cond_latents[b] for b in branches])
    embeds = embeds[[index[b] for b in branches]]
    latents = noise((count, c.vae.config.latent_channels, *image.shape[-2:]), generators, c)
    latents = latents * scheduler.init_noise_sigma
    frame_embeds = embeds.repeat_interleave(count, dim=0)
    extra = step_kwargs(scheduler, generators)
    three_way = branches == ("text", "image", "uncond")
    weights = branch_weights(guidance_scale, image_guidance_scale)
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(torch.cat([latents] * len(branches)), t)
        model_input = torch.cat([model_input, image_latents], dim=1)
        noise_pred = c.unet(model_input, t, encoder_hidden_states=frame_embeds, return_dict=False)[0]
        if three_way:
            text, image_pred, uncond = noise_pred.chunk(GROUPS)
            noise_pred = uncond + guidance_scale * (text - image_pred) + image_guidance_scale * (image_pred - uncond)
        else:
            parts = noise_pred.chunk(len(branches))
            noise_pred = sum(weights[b] * part for b, part in zip(branches, parts))
        latents = scheduler.step(noise_pred, t, latents, **extra, return_dict=False)[0]
        count_step()
    return latents


@torch.no_grad()
def generate_edit_video(
    c: Components,
    *,
    frames: np.ndarray,
    prompt: str,
    negative_prompt: str = "",
    steps: int = 50,
    guidance_scale: float = 7.5,
    image_guidance_scale: float = 1.0,
    seed: int = 0,
    chunk_size: int = 8,
    on_step: StepCallback | None = None,
    skip_unused_guidance: bool = False,
) -> np.ndarray:
    """Edited frames (F, H, W, 3) float32 in [0, 1] from uint8 `frames` (F, H, W, 3).

    Unlike diffusers' pipeline, which silently turns guidance off when image guidance is
    below 1, the three-way guidance always applies: image guidance < 1 is how a user lets the
    edit drift further from the input.

    `skip_unused_guidance` (fast mode) leaves out the UNet branches whose guidance weight is 0
    (`guidance_branches`): the same prediction in exact arithmetic, but not bit for bit, so the
    normal mode keeps it off and its frames stay as they were.
    """
    num_frames, height, width, _ = frames.shape
    scale = c.vae_scale_factor
    if height % scale or width % scale:
        raise ValueError(f"frames must be a multiple of {scale} pixels, got {width}x{height}")
    chunks = chunk_frame_ids(num_frames, chunk_size)
    negative = encode_prompt(c, negative_prompt or "")
    embeds = torch.cat([encode_prompt(c, prompt), negative, negative])
    count_step = StepCounter(steps * len(chunks), on_step, steps, num_frames)
    branches = guidance_branches(guidance_scale, image_guidance_scale, skip_unused_guidance)
    videos = []
    with cross_frame_attention(c.unet, groups=len(branches)):
        for index, ids in enumerate(chunks):
            count_step.start_pass(1, ids[new_frames(ids, index)] if len(chunks) > 1 else None)
            latents = edit_chunk(
                c,
                frames[ids],
                ids,
                embeds,
                steps=steps,
                guidance_scale=guidance_scale,
                image_guidance_scale=image_guidance_scale,
                seed=seed,
                count_step=count_step,
                branches=branches,
            )
            videos.append(decode_latents(c, latents)[new_frames(ids, index)])
    return np.concatenate(videos)
