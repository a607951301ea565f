"""Fast mode: few-step sampling on the already loaded models, and a fast decoder.

- **LCM-LoRA** (`latent-consistency/lcm-lora-sdv1-5`): a LoRA that turns an SD 1.5 UNet into a
  latent consistency model (2-8 steps with `LCMScheduler`, guidance distilled in). It goes on
  the SHARED base UNet through diffusers' own LoRA support (PEFT layers): `attach_lora` once,
  then `lora_active(unet)` around each fast job. Outside that block the adapter is disabled, and
  a disabled PEFT layer calls the original layer and nothing else, so a normal job gives exactly
  the frames it gave before any fast job (tests/test_engine_fast.py checks this bit for bit).
  `detach_lora` removes the adapter and puts the original layer objects back.
- **TAESD** (`madebyollin/taesd`, diffusers' `AutoencoderTiny`): set `Components.decoder` and
  `decode_latents` uses it instead of the VAE.

What the LCM-LoRA covers: diffusers' LCM-LoRA training script targets to_q, to_k, to_v,
to_out.0, proj_in, proj_out, ff.net.0.proj, ff.net.2, conv1, conv2, conv_shortcut,
downsamplers.0.conv, upsamplers.0.conv and time_emb_proj (`LCM_LORA_TARGETS`): not conv_in,
conv_out or the time embedding. So the same file applies unchanged to the Instruct-Pix2Pix
UNet (8 input channels: only conv_in differs from SD 1.5), as the LCM authors' published
InstructPix2Pix recipe does; on a ControlNet job it goes on the UNet only (the ControlNet is
not an SD 1.5 UNet and has no LCM-LoRA), as diffusers' `load_lora_weights` does too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch

from .recipes import (  # noqa: F401 - re-exported: the numbers live where the UI can read them without torch
    FAST_DEFAULTS,
    FAST_STEPS,
    LCM_ADAPTER,
    LCM_LORA_FILE,
    LCM_LORA_REPO,
    LCM_MAX_STEPS,
    LCM_MIN_STEPS,
    TAESD_REPO,
)

# Module names (suffixes) the LCM-LoRA trains: diffusers' examples/consistency_distillation/
# train_lcm_distill_lora_sd_wds.py default `lora_target_modules`.
LCM_LORA_TARGETS = (
    "to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
    "conv1", "conv2", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj",
)  # fmt: skip

# The real file's rank: rank 64 on these modules of SD 1.5's UNet is 67.25 M parameters (278
# layers), the card's "67.5 M"; what the benchmark's random stand-in uses, so it costs the same.
LCM_LORA_RANK = 64

def _tuner_layers(unet: torch.nn.Module):
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in unet.modules() if isinstance(m, BaseTunerLayer)]


def has_lora(unet: torch.nn.Module, name: str = LCM_ADAPTER) -> bool:
    return name in (getattr(unet, "peft_config", None) or {})


def _diffusers_lora(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict, dict | None, str | None]:
    """(state dict, network alphas, prefix) as `load_lora_adapter` takes them, from any format
    diffusers reads: kohya / A1111 (`lora_unet_...lora_down.weight` + `.alpha`), diffusers'
    (`unet.<module>.lora.down.weight`) or PEFT's (`<module>.lora_A.weight`)."""
    from diffusers.loaders.lora_pipeline import StableDiffusionLoraLoaderMixin

    converted, alphas = StableDiffusionLoraLoaderMixin.lora_state_dict(dict(state_dict))
    if any(k.startswith("text_encoder.") for k in converted):
        converted = {k: v for k, v in converted.items() if not k.startswith("text_encoder.")}
    prefix = "unet" if any(k.startswith("unet.") for k in converted) else None
    if alphas and prefix is None:
        alphas = None
    return converted, alphas, prefix


def attach_lora(unet: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], name: str = LCM_ADAPTER) -> bool:
    """Load a LoRA into `unet` as adapter `name`, left attached but INACTIVE. Idempotent: if the
    adapter is already there nothing happens (returns False; True when it was attached now).

    The LoRA weights take the UNet's dtype and device (PEFT would keep them in float32 on a
    half-precision UNet), so moving or casting the UNet later moves them along. Raises
    ValueError when no layer of `unet` matches the file (e.g. an SDXL LoRA on SD 1.5).
    """
    if has_lora(unet, name):
        return False
    converted, alphas, prefix = _diffusers_lora(state_dict)
    if not converted:
        raise ValueError(f"LoRA {name!r} has no UNet weights")
    unet.load_lora_adapter(converted, prefix=prefix, network_alphas=alphas, adapter_name=name)
    layers = [m for m in _tuner_layers(unet) if name in getattr(m, "lora_A", {})]
    if not layers:
        detach_lora(unet, name)
        raise ValueError(f"LoRA {name!r} matched no layer of the UNet")
    base = next(p for n, p in unet.named_parameters() if ".lora_" not in n)
    for layer in layers:
        for container in (layer.lora_A, layer.lora_B):
            container[name].to(device=base.device, dtype=base.dtype)
    unet.disable_lora()  # every adapter off: the UNet computes exactly what it did before
    return True


def detach_lora(unet: torch.nn.Module, name: str = LCM_ADAPTER) -> None:
    """Remove adapter `name`; when it was the last one, put the original layers back (the PEFT
    wrappers go, the very same `Linear`/`Conv2d` objects return), so code that walks the UNet's
    layer types (e.g. a motion adapter's weight sharing) sees the plain model again."""
    if has_lora(unet, name):
        unet.delete_adapters(name)
    if not (getattr(unet, "peft_config", None) or {}) and _tuner_layers(unet):
        unet.unload_lora()


@contextmanager
def lora_active(unet: torch.nn.Module, name: str = LCM_ADAPTER, *, fuse: bool = False) -> Iterator[None]:
    """Adapter `name` on (alone, weight 1) for the block; always off again after, exceptions
    included. Jobs on the UNet are serialised by the device lock, so one block at a time.

    `fuse=True` folds the LoRA into the weights for the block instead of running it beside each
    layer: each targeted layer's weight becomes a NEW tensor W + scale * B @ A, and after the
    block the layer gets its original tensor back (never written to, so normal jobs stay bit
    for bit the same). It saves the LoRA's per-call cost (on a CPU, rank 64 adds about 2 x 64 /
    320 = 40 % to SD 1.5's 320-wide attention projections) at the price of a second copy of the
    targeted weights (nearly the whole UNet) while the block runs, plus computing them once
    per block: milliseconds on a GPU, but on 2 CPU cores about as long as the LoRA's cost over a
    4-step SD 1.5 video (8-11 s measured for rank 64), so it pays on a GPU, not on a CPU.
    """
    if not has_lora(unet, name):
        raise KeyError(f"LoRA adapter {name!r} is not attached to this UNet (call attach_lora first)")
    saved = []
    try:
        if not fuse:
            unet.set_adapters([name], weights=[1.0])
            unet.enable_lora()
        else:
            unet.disable_lora()  # the LoRA branch stays off: its update is in the weights
            with torch.no_grad():
                for layer in _tuner_layers(unet):
                    if name not in getattr(layer, "lora_A", {}):
                        continue
                    base = layer.get_base_layer()
                    original = base.weight.data
                    saved.append((base, original))
                    base.weight.data = original + layer.get_delta_weight(name).to(original.dtype)
        yield
    finally:
        for base, original in saved:
            current = base.weight.data  # CPU offload may have moved the layer meanwhile
            base.weight.data = original if original.device == current.device else original.to(current.device)
        unet.disable_lora()


def lora_enabled(unet: torch.nn.Module) -> bool:
    """Whether any LoRA layer of `unet` is on now (for tests and status)."""
    return any(not m.disable_adapters for m in _tuner_layers(unet))


def lcm_scheduler(config):
    """LCMScheduler on a model's noise schedule (the LCM-LoRA card: `LCMScheduler.from_config`)."""
    from .common import make_scheduler

    return make_scheduler("lcm", config)
