"""Text2Video-Zero sampling (paper sect. 3.3) on Stable Diffusion 1.5 components.

1. Denoise the anchor frame alone with DDIM from T to t1, then on to t0.
2. Copy its t0 latent to every other frame and translate frame k by k*(dx, dy).
3. Re-noise those frames from t0 back to t1 (DDPM forward).
4. Denoise all frames together from t1 to 0 with cross-frame attention on the anchor.

Long clips run in chunks that each start with the anchor frame (see `chunk_frame_ids`). Steps
1-2's anchor latents are made once and reused by every chunk. Noise is drawn per frame
(`frame_generator`): the anchor's stream gives the initial latent (and the anchor's step noise,
for a stochastic scheduler); frame k's stream gives its re-noising in step 3, then its step
noise. Each chunk restarts the anchor's stream where it stood at t1, so the anchor is re-made
identically in every chunk, and no frame depends on the chunk size.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch

from .attention import cross_frame_attention
from .common import (
    Components,
    StepCallback,
    StepCounter,
    decode_latents,
    denoise,
    guidance_embeds,
    copy_generator,
    frame_generator,
    frame_generators,
    noise,
)
from .motion import warp_latents
from .schedule import chunk_frame_ids, new_frames, resolve_t0_t1


def renoise(c: Components, scheduler, latents: torch.Tensor, t_from: int, t_to: int, generators) -> torch.Tensor:
    """DDPM forward from timestep t_from to t_to, with the paper code's product of alphas.

    Frame i's noise comes from generators[i].
    """
    eps = noise(latents.shape, generators, c)
    alpha = torch.prod(scheduler.alphas[t_from:t_to]).to(device=latents.device, dtype=latents.dtype)
    return alpha.sqrt() * latents + (1 - alpha).sqrt() * eps


@torch.no_grad()
def generate_text2video(
    c: Components,
    *,
    prompt: str,
    negative_prompt: str = "",
    num_frames: int = 8,
    height: int = 512,
    width: int = 512,
    steps: int = 50,
    guidance_scale: float = 7.5,
    motion_x: float = 12.0,
    motion_y: float = 12.0,
    t0: int | None = None,
    t1: int | None = None,
    seed: int = 0,
    chunk_size: int | None = None,
    frame_ids: Sequence[int] | None = None,
    on_step: StepCallback | None = None,
) -> np.ndarray:
    """Frames (num_frames, height, width, 3), float32 in [0, 1].

    `frame_ids` (one chunk, led by the anchor 0) overrides the frames' ids for callers that
    chunk themselves; otherwise frames 0..num_frames-1 run in chunks of `chunk_size`.
    """
    t0, t1 = resolve_t0_t1(steps, t0, t1)
    if frame_ids is not None:
        chunks = [list(frame_ids)]
    else:
        chunks = chunk_frame_ids(num_frames, chunk_size or num_frames)
    scale = c.vae_scale_factor
    embeds = guidance_embeds(c, prompt, negative_prompt, guidance_scale)

    scheduler = c.scheduler
    scheduler.set_timesteps(steps, device=c.device)
    timesteps = scheduler.timesteps
    anchor = [frame_generator(seed, 0)]
    latents = noise((1, c.unet.config.in_channels, height // scale, width // scale), anchor, c)
    latents = latents * scheduler.init_noise_sigma

    count_step = StepCounter((steps - 1 - t1) + (t1 - t0) + len(chunks) * (t1 + 1), on_step)
    t_at_t0, t_at_t1 = int(timesteps[-t0 - 1]), int(timesteps[-t1 - 1])
    videos = []
    with cross_frame_attention(c.unet, groups=embeds.shape[0]):
        anchor_t1 = denoise(c, scheduler, latents, timesteps[: -t1 - 1], embeds, guidance_scale, count_step, anchor)
        scheduler_at_t1 = copy.deepcopy(scheduler)
        anchor_at_t1 = anchor[0]
        anchor_t0 = denoise(
            c,
            scheduler,
            anchor_t1,
            timesteps[-t1 - 1 : -t0 - 1],
            embeds,
            guidance_scale,
            count_step,
            [copy_generator(anchor_at_t1)],
        )
        for index, ids in enumerate(chunks):
            count_step.start_chunk(index, len(chunks))
            generators = [copy_generator(anchor_at_t1), *frame_generators(seed, ids[1:])]
            others = warp_latents(anchor_t0.repeat(len(ids) - 1, 1, 1, 1), ids[1:], motion_x, motion_y)
            others = renoise(c, scheduler, others, t_at_t0, t_at_t1, generators[1:])
            chunk = torch.cat([anchor_t1, others])
            chunk = denoise(
                c,
                copy.deepcopy(scheduler_at_t1),
                chunk,
                timesteps[-t1 - 1 :],
                embeds,
                guidance_scale,
                count_step,
                generators,
            )
            videos.append(decode_latents(c, chunk)[new_frames(ids, index)])
    return np.concatenate(videos)
