"""Frames <-> SD latents and prompt -> CLIP embeddings, as Tune-A-Video's training and sampling use them.

Inputs go to the `device` the job runs on, never to a module's own `.device`: with CPU offload the modules
rest on the CPU and move to the GPU only when they run (their forward hooks), so their `.device` is where
they wait, not where they compute. Without a `device` a module's own is used (no offload: the same).
"""

from __future__ import annotations

import numpy as np
import torch

# Frames go through the VAE this many at a time: SD's VAE at 512x512 needs about 1 GB per frame.
VAE_FRAMES_PER_CALL = 4


@torch.no_grad()
def encode_prompt(text_encoder, tokenizer, prompt: str, device: torch.device | None = None) -> torch.Tensor:
    """(1, 77, D) CLIP hidden states, padded to the tokenizer's length as SD was trained."""
    ids = tokenizer(
        prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids
    return text_encoder(ids.to(device or text_encoder.device))[0]


def frames_to_pixels(frames: np.ndarray) -> torch.Tensor:
    """(F, H, W, 3) uint8 in [0, 255] or float in [0, 1] -> (F, 3, H, W) float32 in [-1, 1]."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (frames, height, width, 3), got shape {frames.shape}")
    if frames.shape[0] < 1:
        raise ValueError("the clip has no frames")
    if frames.dtype == np.uint8:
        pixels = torch.from_numpy(frames.astype(np.float32) / 255.0)
    elif np.issubdtype(frames.dtype, np.floating):
        pixels = torch.from_numpy(np.clip(frames, 0.0, 1.0).astype(np.float32))
    else:
        raise ValueError(f"frames must be uint8 or float, got {frames.dtype}")
    return pixels.permute(0, 3, 1, 2) * 2.0 - 1.0


def check_frames(frames: np.ndarray, vae, unet) -> None:
    """(F, H, W, 3) with sides that survive the VAE's and the UNet's down-sampling exactly
    (multiples of 64 for SD 1.5)."""
    frames_to_pixels(np.asarray(frames)[:1])  # shape and dtype checks, on one frame
    height, width = np.asarray(frames).shape[1:3]
    check_frame_size(height, width, vae, unet)


def check_frame_size(height: int, width: int, vae, unet) -> None:
    multiple = vae_scale_factor(vae) * 2 ** (len(unet.config.block_out_channels) - 1)
    if height % multiple or width % multiple:
        raise ValueError(f"frame size {width}x{height}: both sides must be multiples of {multiple}")


def vae_scale_factor(vae) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


@torch.no_grad()
def encode_frames(vae, frames: np.ndarray, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The VAE posterior of each frame: (mean, std), each (1, C, F, h, w) float32, unscaled.

    Training draws a fresh latent from it every step (as Tune-A-Video does by encoding each
    step), without running the encoder again.
    """
    pixels = frames_to_pixels(frames)
    means, stds = [], []
    for start in range(0, pixels.shape[0], VAE_FRAMES_PER_CALL):
        chunk = pixels[start : start + VAE_FRAMES_PER_CALL].to(device or vae.device, vae.dtype)
        posterior = vae.encode(chunk).latent_dist
        means.append(posterior.mean.float())
        stds.append(posterior.std.float())
    mean = torch.cat(means).permute(1, 0, 2, 3).unsqueeze(0)
    std = torch.cat(stds).permute(1, 0, 2, 3).unsqueeze(0)
    return mean, std


@torch.no_grad()
def decode_latents(vae, latents: torch.Tensor, device: torch.device | None = None) -> np.ndarray:
    """(1, C, F, h, w) scaled latents -> (F, H, W, 3) float32 frames in [0, 1]."""
    per_frame = latents[0].permute(1, 0, 2, 3) / vae.config.scaling_factor
    frames = []
    for start in range(0, per_frame.shape[0], VAE_FRAMES_PER_CALL):
        chunk = per_frame[start : start + VAE_FRAMES_PER_CALL].to(device or vae.device, vae.dtype)
        frames.append(vae.decode(chunk).sample.float())
    pixels = (torch.cat(frames) / 2 + 0.5).clamp(0, 1)
    return pixels.permute(0, 2, 3, 1).cpu().numpy()
