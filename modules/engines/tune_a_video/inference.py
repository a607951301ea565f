"""Sampling a tuned model: DDIM inversion of the source clip, then DDIM with a new prompt.

Tune-A-Video starts sampling from the source clip's latents inverted by DDIM with the empty
prompt (the paper and the reference code: 50 steps), which keeps the source's layout and
motion; with inversion off it starts from seeded noise (the Space's "Run" tab). Guidance 12.5
is the paper's (the Space uses 7.5).

Inversion and sampling use diffusers' `DDIMInverseScheduler` and `DDIMScheduler` on one config
and the same number of steps, so each inversion step is the exact algebraic inverse of a
sampling step given the same noise prediction; the only error is that inversion predicts the
noise at the less noisy latent.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler

from ...tiny import SD15_SCHEDULER_CONFIG
from .attention import VideoLayers
from .encoding import check_frame_size, check_frames, decode_latents, encode_frames, encode_prompt, vae_scale_factor

DEFAULT_STEPS = 50
DEFAULT_GUIDANCE_SCALE = 12.5

# predict_noise(latents (B, C, F, h, w), timestep, text embeddings (B, L, D)) -> noise like latents
NoisePredictor = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def ddim_invert(
    predict_noise: NoisePredictor,
    latents: torch.Tensor,
    text_embeddings: torch.Tensor,
    *,
    steps: int = DEFAULT_STEPS,
    scheduler_config: dict | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Clean (scaled) latents -> the noisy latents from which `steps` DDIM steps lead back."""
    scheduler = DDIMInverseScheduler.from_config(scheduler_config or SD15_SCHEDULER_CONFIG)
    scheduler.set_timesteps(steps)
    for i, t in enumerate(scheduler.timesteps):
        noise = predict_noise(latents, t, text_embeddings)
        latents = scheduler.step(noise, t, latents).prev_sample
        if on_step is not None:
            on_step(i + 1, steps)
    return latents


@torch.no_grad()
def ddim_sample(
    predict_noise: NoisePredictor,
    latents: torch.Tensor,
    text_embeddings: torch.Tensor,
    negative_embeddings: torch.Tensor | None = None,
    *,
    steps: int = DEFAULT_STEPS,
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
    scheduler_config: dict | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Deterministic DDIM (eta 0) from `latents`; classifier-free guidance when
    `guidance_scale` > 1 (`negative_embeddings` is then the unconditional prompt's)."""
    scheduler = DDIMScheduler.from_config(scheduler_config or SD15_SCHEDULER_CONFIG)
    scheduler.set_timesteps(steps)
    guided = guidance_scale > 1.0
    if guided and negative_embeddings is None:
        raise ValueError("guidance needs the unconditional (negative) prompt's embeddings")
    latents = latents * scheduler.init_noise_sigma
    for i, t in enumerate(scheduler.timesteps):
        if guided:
            both = predict_noise(
                torch.cat([latents, latents]), t, torch.cat([negative_embeddings, text_embeddings])
            )
            unconditional, conditional = both.chunk(2)
            noise = unconditional + guidance_scale * (conditional - unconditional)
        else:
            noise = predict_noise(latents, t, text_embeddings)
        latents = scheduler.step(noise, t, latents, eta=0.0).prev_sample
        if on_step is not None:
            on_step(i + 1, steps)
    return latents


def noise_predictor(layers: VideoLayers) -> NoisePredictor:
    """The video UNet as a float32-in, float32-out noise predictor on the job's device (the
    latents stay float32 through the scheduler math whatever the UNet's dtype)."""
    dtype = next(layers.unet.parameters()).dtype
    device = layers.device

    def predict_noise(latents, t, text_embeddings):
        return layers(latents.to(device, dtype), t, text_embeddings.to(device, dtype)).float()

    return predict_noise


@torch.no_grad()
def generate(
    layers: VideoLayers,
    vae,
    text_encoder,
    tokenizer,
    prompt: str,
    *,
    source_frames: np.ndarray | None = None,
    inversion: bool = True,
    num_frames: int | None = None,
    height: int | None = None,
    width: int | None = None,
    steps: int = DEFAULT_STEPS,
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
    negative_prompt: str = "",
    seed: int = 0,
    on_step: Callable[[int, int], None] | None = None,
    scheduler_config: dict | None = None,
) -> np.ndarray:
    """A clip for `prompt` from the tuned video UNet `layers` (see `weights.applied_to`).

    With `source_frames` and `inversion` the start is the source's DDIM-inverted latents (the
    empty prompt, `steps` steps); otherwise seeded noise shaped like `source_frames`, or like
    `num_frames` x `height` x `width` when there is no source. `on_step(done, total)` runs
    after each UNet step of inversion and sampling together; raising from it cancels (the
    exception propagates, nothing is decoded). Every input goes to the device `layers` were made
    for (the job's). Returns (F, H, W, 3) float32 frames in [0, 1].
    """
    if steps < 1:
        raise ValueError("steps must be at least 1")
    unet = layers.unet
    if source_frames is not None:
        check_frames(source_frames, vae, unet)
        num_frames, height, width = np.asarray(source_frames).shape[:3]
    elif inversion:
        raise ValueError("inversion needs the source clip (source_frames)")
    elif not (num_frames and height and width):
        raise ValueError("without a source clip, give num_frames, height and width")
    else:
        check_frame_size(height, width, vae, unet)

    predict_noise = noise_predictor(layers)
    device = layers.device
    text_embeddings = encode_prompt(text_encoder, tokenizer, prompt, device).to(device, torch.float32)
    negative_embeddings = encode_prompt(text_encoder, tokenizer, negative_prompt, device).to(device, torch.float32)
    inverting = source_frames is not None and inversion
    total = steps * (2 if inverting else 1)

    def report(offset: int):
        if on_step is None:
            return None
        return lambda done, _: on_step(offset + done, total)

    if inverting:
        mean, _ = encode_frames(vae, source_frames, device)
        clean = (mean * vae.config.scaling_factor).to(device)
        empty = encode_prompt(text_encoder, tokenizer, "", device).to(device, torch.float32)
        latents = ddim_invert(
            predict_noise, clean, empty, steps=steps, scheduler_config=scheduler_config, on_step=report(0)
        )
    else:
        scale = vae_scale_factor(vae)
        shape = (1, unet.config.in_channels, num_frames, height // scale, width // scale)
        latents = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(device)
    latents = ddim_sample(
        predict_noise,
        latents,
        text_embeddings,
        negative_embeddings,
        steps=steps,
        guidance_scale=guidance_scale,
        scheduler_config=scheduler_config,
        on_step=report(total - steps),
    )
    return decode_latents(vae, latents, device)
