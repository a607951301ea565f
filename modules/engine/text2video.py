"""Zero-shot text-to-video sampling (Khachatryan et al. 2023, sect. 3.3) on Stable Diffusion 1.5 components.

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

Fast mode runs the same steps with LCMScheduler (and the LCM-LoRA active on the UNet). Nothing
else changes, for these reasons: t0 and t1 count steps from the end of *this* schedule, and
LCM's timesteps are a subset of the 1000 training timesteps (4 steps: 999, 759, 499, 259), so
`timesteps[-t1 - 1]` and `timesteps[-t0 - 1]` are real timesteps with their own alphas; an LCM
step predicts the clean latent and re-noises it to the next timestep with the DDPM marginal
(sqrt(a_t) x0 + sqrt(1 - a_t) eps, from the frame's noise stream), so after a step the latent is
at that timestep's noise level in the variance-preserving space, exactly as DDIM's is, and the
DDPM forward of step 3 (a product of alphas between the two timesteps) is the right re-noising;
LCM keeps a step index, so the anchor continues from t1 and each chunk from a copy made at t1,
and only the schedule's last step returns the clean latent. With the default 4 steps, t0/t1 are
2/3: the anchor takes one step alone (999 -> 759), its latent is warped and re-noised back to
999, then all frames take the 4 steps. Samplers whose latents are scaled by sigma (Euler,
Euler ancestral: `init_noise_sigma` > 1) are refused: the DDPM forward is wrong in their space.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch

from ..job_control import FIRST_FRAME
from .attention import cross_frame_attention
from .common import (
    Components,
    StepCallback,
    StepCounter,
    decode_latents,
    denoise,
    encode_images,
    guidance_embeds,
    storyboard_embeds,
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
    prompt: str | dict[int, str],
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
    first_frame: np.ndarray | None = None,
    on_step: StepCallback | None = None,
) -> np.ndarray:
    """Frames (num_frames, height, width, 3), float32 in [0, 1].

    `frame_ids` (one chunk, led by the anchor 0) overrides the frames' ids for callers that
    chunk themselves; otherwise frames 0..num_frames-1 run in chunks of `chunk_size`.
    `prompt` may be a storyboard {frame: text} starting at 0: each frame's text embedding is
    interpolated between key frames, the anchor keeps frame 0's. `first_frame` (height, width, 3)
    uint8 becomes the anchor: encoded, noised to t1 (the anchor's own first steps are skipped),
    so the clip starts from that picture; a lower t1 keeps more of it.
    """
    t0, t1 = resolve_t0_t1(steps, t0, t1)
    if frame_ids is not None:
        chunks = [list(frame_ids)]
    else:
        chunks = chunk_frame_ids(num_frames, chunk_size or num_frames)
    scale = c.vae_scale_factor
    board = prompt if isinstance(prompt, dict) and len(prompt) > 1 else None
    if isinstance(prompt, dict) and board is None:
        prompt = prompt[0]
    embeds = guidance_embeds(c, board[0] if board else prompt, negative_prompt, guidance_scale)
    if first_frame is not None and tuple(first_frame.shape) != (height, width, 3):
        raise ValueError(f"The first frame must be {height}x{width} RGB, got shape {tuple(first_frame.shape)}.")

    scheduler = c.scheduler
    scheduler.set_timesteps(steps, device=c.device)
    if float(scheduler.init_noise_sigma) != 1.0 or not hasattr(scheduler, "alphas"):
        raise ValueError(
            f"Text-to-video needs a variance-preserving sampler (ddim, lcm, dpm++_2m), not {type(scheduler).__name__}: "
            "its re-noising from t0 to t1 is a DDPM forward."
        )
    timesteps = scheduler.timesteps
    anchor = [frame_generator(seed, 0)]
    latents = noise((1, c.unet.config.in_channels, height // scale, width // scale), anchor, c)
    latents = latents * scheduler.init_noise_sigma

    anchor_steps = 0 if first_frame is not None else steps - 1 - t1
    clip_frames = num_frames if frame_ids is None else len(frame_ids)
    count_step = StepCounter(anchor_steps + (t1 - t0) + len(chunks) * (t1 + 1), on_step, steps, clip_frames)
    # The anchor's own steps: from the schedule's start (or t1, from a given first frame) to t0.
    count_step.start_pass(steps - t1 - anchor_steps, part=FIRST_FRAME)
    t_at_t0, t_at_t1 = int(timesteps[-t0 - 1]), int(timesteps[-t1 - 1])
    videos = []
    with cross_frame_attention(c.unet, groups=embeds.shape[0]):
        if first_frame is not None:
            image = encode_images(c, first_frame[None]) * c.vae.config.scaling_factor
            anchor_t1 = scheduler.add_noise(image, noise(image.shape, anchor, c), timesteps[-t1 - 1].reshape(1))
        else:
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
            # Every pass takes the schedule's steps from t1 on; its frames are named when there are several passes.
            count_step.start_pass(steps - t1, ids[new_frames(ids, index)] if len(chunks) > 1 else None)
            generators = [copy_generator(anchor_at_t1), *frame_generators(seed, ids[1:])]
            others = warp_latents(anchor_t0.repeat(len(ids) - 1, 1, 1, 1), ids[1:], motion_x, motion_y)
            others = renoise(c, scheduler, others, t_at_t0, t_at_t1, generators[1:])
            chunk = torch.cat([anchor_t1, others])
            chunk_embeds = storyboard_embeds(c, board, negative_prompt, guidance_scale, ids) if board else embeds
            chunk = denoise(
                c,
                copy.deepcopy(scheduler_at_t1),
                chunk,
                timesteps[-t1 - 1 :],
                chunk_embeds,
                guidance_scale,
                count_step,
                generators,
            )
            videos.append(decode_latents(c, chunk)[new_frames(ids, index)])
    return np.concatenate(videos)
