"""Tune-A-Video's one-shot tuning: DDPM noise prediction on one clip and its prompt.

Trained: the query projections of the spatial attentions (`attn1.to_q`, `attn2.to_q`) and the
temporal layers; everything else is frozen. AdamW (0.9, 0.999, weight decay 1e-2), constant
learning rate, gradient clipping at 1.0, batch 1, gradient checkpointing, optional mixed
precision (autocast in `dtype`, float32 master weights). The paper tunes 300-500 steps at
3e-5; the Hugging Face Space defaults to 300 steps at 3.5e-5.

The UNet is the app's shared base: the trained parameters are float32 copies swapped in for the
run, and everything about the UNet (weights, `requires_grad` flags, gradient checkpointing,
processors) is as it was when `tune` returns or raises.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler

from ...tiny import SD15_SCHEDULER_CONFIG
from .attention import add_video_layers
from .encoding import check_frames, encode_frames, encode_prompt

DEFAULT_STEPS = 300
DEFAULT_LEARNING_RATE = 3.5e-5
ADAM_BETAS = (0.9, 0.999)
ADAM_EPSILON = 1e-8
WEIGHT_DECAY = 1e-2
MAX_GRAD_NORM = 1.0


def tune(
    unet,
    vae,
    text_encoder,
    tokenizer,
    frames: np.ndarray,
    prompt: str,
    *,
    steps: int = DEFAULT_STEPS,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    seed: int = 0,
    on_step: Callable[[int, int, float], None] | None = None,
    dtype: torch.dtype = torch.float32,
    gradient_checkpointing: bool = True,
    on_checkpoint: Callable[[int, dict[str, torch.Tensor]], None] | None = None,
    checkpoint_every: int = 0,
    scheduler_config: dict | None = None,
    device: torch.device | None = None,
) -> dict[str, torch.Tensor]:
    """Tune `unet` on `frames` (F, H, W, 3; uint8, or float in [0, 1]) described by `prompt`.

    Returns only the trained parameters (CPU float32, Tune-A-Video's key names; see
    `attention`). `on_step(step, steps, loss)` runs after each completed step; raising from it
    stops the run at once and the exception propagates. `on_checkpoint(step, parameters)` gets
    a copy every `checkpoint_every` steps and, when `on_step` stopped the run, once more with
    the last completed step, so a stopped run can still be saved. `dtype` bfloat16/float16 runs
    the forward under autocast (float16 with loss scaling); a half-precision UNet needs its own
    dtype here. The same seed gives the same result on the same device. `device` is where the
    job runs (default: the UNet's; with CPU offload the UNet rests elsewhere between calls).
    """
    if steps < 1:
        raise ValueError("steps must be at least 1")
    if not learning_rate > 0:
        raise ValueError("the learning rate must be positive")
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"dtype must be float32, bfloat16 or float16, not {dtype}")
    unet_dtype = next(unet.parameters()).dtype
    if unet_dtype != torch.float32 and dtype != unet_dtype:
        raise ValueError(f"a {unet_dtype} UNet tunes under autocast in its own dtype: pass dtype={unet_dtype}")
    check_frames(frames, vae, unet)

    device = torch.device(device) if device is not None else next(unet.parameters()).device
    text_embeddings = encode_prompt(text_encoder, tokenizer, prompt, device).to(device, unet_dtype)
    latent_mean, latent_std = encode_frames(vae, frames, device)
    scaling_factor = vae.config.scaling_factor
    noise_scheduler = DDPMScheduler.from_config(scheduler_config or SD15_SCHEDULER_CONFIG)
    generator = torch.Generator().manual_seed(seed)

    requires_grad = {name: p.requires_grad for name, p in unet.named_parameters()}
    was_checkpointing = unet.is_gradient_checkpointing
    layers = None
    completed, last_checkpoint, stopped = 0, 0, False
    try:
        unet.requires_grad_(False)  # no gradients for the frozen base (nor .grad left on it)
        if gradient_checkpointing and getattr(unet, "_supports_gradient_checkpointing", False):
            unet.enable_gradient_checkpointing()
        layers = add_video_layers(unet, seed=seed, device=device)
        trainable = layers.make_trainable()
        optimizer = torch.optim.AdamW(
            trainable, lr=learning_rate, betas=ADAM_BETAS, eps=ADAM_EPSILON, weight_decay=WEIGHT_DECAY
        )
        scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
        autocast = dtype != torch.float32

        for step in range(1, steps + 1):
            sample = latent_mean + latent_std * torch.randn(latent_mean.shape, generator=generator)
            latents = (sample * scaling_factor).to(device)
            noise = torch.randn(latents.shape, generator=generator).to(device)
            timestep = torch.randint(0, noise_scheduler.config.num_train_timesteps, (1,), generator=generator)
            timestep = timestep.to(device)
            noisy_latents = noise_scheduler.add_noise(latents, noise, timestep)
            if noise_scheduler.config.prediction_type == "v_prediction":
                target = noise_scheduler.get_velocity(latents, noise, timestep)
            else:
                target = noise

            with torch.enable_grad():
                with torch.autocast(device.type, dtype=dtype, enabled=autocast):
                    prediction = layers(noisy_latents.to(unet_dtype), timestep, text_embeddings)
                loss = F.mse_loss(prediction.float(), target.float())
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)
            scaler.step(optimizer)
            scaler.update()
            completed = step

            if on_checkpoint is not None and checkpoint_every and step % checkpoint_every == 0:
                on_checkpoint(step, layers.state_dict())
                last_checkpoint = step
            if on_step is not None:
                try:
                    on_step(step, steps, loss.item())
                except BaseException:
                    stopped = True
                    raise
        return layers.state_dict()
    except BaseException:
        if stopped and on_checkpoint is not None and completed != last_checkpoint:
            on_checkpoint(completed, layers.state_dict())
        raise
    finally:
        if layers is not None:
            layers.remove()
        if not was_checkpointing and unet.is_gradient_checkpointing:
            unet.disable_gradient_checkpointing()
        for name, p in unet.named_parameters():
            p.requires_grad_(requires_grad[name])
