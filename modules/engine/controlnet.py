"""ControlNet-conditioned video (paper sect. 3.4): one control map per frame, one initial latent.

Every frame starts from the same noise, and both the UNet and the ControlNet use cross-frame
attention on the anchor frame, so appearance stays fixed while the control maps drive the
motion. Long clips run in anchor-led chunks (`chunk_frame_ids`). Noise is drawn per frame
(`frame_generator`): the anchor's stream gives the shared starting latent, and each frame's
stream its own step noise (for a stochastic scheduler). Every chunk draws its frames' streams
afresh, so the anchor is re-made identically in each chunk and no frame depends on the chunk size.
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers import ControlNetModel

from .attention import cross_frame_attention
from .common import (
    Components,
    StepCallback,
    StepCounter,
    decode_latents,
    denoise,
    guidance_embeds,
    frame_generators,
    noise,
)
from .schedule import chunk_frame_ids, new_frames


def control_tensor(c: Components, control: np.ndarray) -> torch.Tensor:
    """uint8 maps (F, H, W, 3) -> (F, 3, H, W) in [0, 1], as ControlNet pipelines feed them."""
    tensor = torch.from_numpy(np.ascontiguousarray(control)).permute(0, 3, 1, 2).float() / 255.0
    return tensor.to(device=c.device, dtype=c.dtype)


@torch.no_grad()
def generate_control_video(
    c: Components,
    controlnet: ControlNetModel,
    *,
    control: np.ndarray,
    prompt: str,
    negative_prompt: str = "",
    steps: int = 20,
    guidance_scale: float = 9.0,
    conditioning_scale: float = 1.0,
    seed: int = 42,
    chunk_size: int = 8,
    on_step: StepCallback | None = None,
) -> np.ndarray:
    """Frames (F, H, W, 3) float32 in [0, 1] following `control` (F, H, W, 3) uint8 maps."""
    num_frames, height, width, _ = control.shape
    scale = c.vae_scale_factor
    if height % scale or width % scale:
        raise ValueError(f"control maps must be a multiple of {scale} pixels, got {width}x{height}")
    chunks = chunk_frame_ids(num_frames, chunk_size)
    embeds = guidance_embeds(c, prompt, negative_prompt, guidance_scale)
    scheduler = c.scheduler
    latent_shape = (1, c.unet.config.in_channels, height // scale, width // scale)
    count_step = StepCounter(steps * len(chunks), on_step, steps, num_frames)

    videos = []
    with cross_frame_attention(c.unet, controlnet, groups=embeds.shape[0]):
        for index, ids in enumerate(chunks):
            count_step.start_pass(1, ids[new_frames(ids, index)] if len(chunks) > 1 else None)
            scheduler.set_timesteps(steps, device=c.device)
            generators = frame_generators(seed, ids)
            latent = noise(latent_shape, generators[:1], c)  # the anchor's stream: shared by all frames
            latents = latent.repeat(len(ids), 1, 1, 1) * scheduler.init_noise_sigma
            latents = denoise(
                c,
                scheduler,
                latents,
                scheduler.timesteps,
                embeds,
                guidance_scale,
                count_step,
                generators,
                controlnet=controlnet,
                control=control_tensor(c, control[ids]),
                conditioning_scale=conditioning_scale,
            )
            videos.append(decode_latents(c, latents)[new_frames(ids, index)])
    return np.concatenate(videos)
