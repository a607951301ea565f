"""Stable Diffusion components with random weights, built in code: no file, no network.

Two architectures share one code path with the real models:
- `tiny`: a few-channel UNet / VAE / CLIP text encoder that runs every tab on CPU in seconds
  (tests, CI, `--preset tiny`);
- `sd15`: the real SD 1.5 (and SD 1.5 ControlNet / Instruct-Pix2Pix) architectures, so a
  benchmark has the real model's FLOPs and memory without a download.
The tokenizer is a byte-level CLIP BPE tokenizer with no merges, built in memory.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

ARCHS = ("tiny", "sd15")
MAX_TOKENS = 77

# SD 1.5's scheduler config (scheduler/scheduler_config.json of the Hub repo).
SD15_SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    prediction_type="epsilon",
)

_UNET = {
    "tiny": dict(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=32,
    ),
    # UNet2DConditionModel's defaults are SD 1.5's, except these.
    "sd15": dict(sample_size=64, cross_attention_dim=768, attention_head_dim=8),
}
_VAE = {
    "tiny": dict(
        block_out_channels=(32, 32, 64, 64),  # 4 blocks: 8x down-scaling as SD's VAE
        layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=64,
    ),
    "sd15": dict(
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        sample_size=512,
        scaling_factor=0.18215,
    ),
}
_TEXT = {
    "tiny": dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, projection_dim=32),
    "sd15": dict(
        hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, projection_dim=768
    ),
}


def _check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise ValueError(f"Unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}.")


def unet_config(arch: str) -> dict:
    """The UNet2DConditionModel arguments of `arch` (what an adapter for that UNet is shaped by)."""
    _check_arch(arch)
    return dict(_UNET[arch])


def build_tokenizer() -> CLIPTokenizer:
    """CLIP's byte-level BPE with an empty merge list: every byte is a token."""
    vocab: dict[str, int] = {}
    symbols = list(bytes_to_unicode().values())
    for symbol in symbols:
        vocab[symbol] = len(vocab)
    for symbol in symbols:
        vocab[symbol + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=MAX_TOKENS)


def build_text_encoder(tokenizer: CLIPTokenizer, arch: str = "tiny", seed: int = 0) -> CLIPTextModel:
    _check_arch(arch)
    config = CLIPTextConfig(
        vocab_size=len(tokenizer) if arch == "tiny" else 49408,
        max_position_embeddings=MAX_TOKENS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_act="quick_gelu",
        **_TEXT[arch],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CLIPTextModel(config).eval()


def build_unet(arch: str = "tiny", in_channels: int = 4, seed: int = 0) -> UNet2DConditionModel:
    """in_channels=8 gives the Instruct-Pix2Pix UNet (noisy latent + image latent)."""
    _check_arch(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(in_channels=in_channels, out_channels=4, **_UNET[arch])
    return unet.eval()


def build_vae(arch: str = "tiny", seed: int = 0) -> AutoencoderKL:
    _check_arch(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoencoderKL(**_VAE[arch]).eval()


def build_controlnet(unet: UNet2DConditionModel, seed: int = 0) -> ControlNetModel:
    """A ControlNet shaped like `unet`'s encoder (as the SD 1.5 ControlNets are), random weights.

    ControlNets start with zero convolutions; random ones make the control actually matter,
    which is what a test of the conditioning path needs.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        controlnet = ControlNetModel.from_unet(unet, load_weights_from_unet=False)
        for block in list(controlnet.controlnet_down_blocks) + [controlnet.controlnet_mid_block]:
            torch.nn.init.normal_(block.weight, std=1.0)
        torch.nn.init.normal_(controlnet.controlnet_cond_embedding.conv_out.weight, std=1.0)
    return controlnet.eval()


def build_scheduler() -> DDIMScheduler:
    return DDIMScheduler(**SD15_SCHEDULER_CONFIG)


# ---------------------------------------------------------------------------------------------
# Fast mode (modules/engine/fast.py): LCM-LoRA and TAESD, with random weights.


def build_lcm_lora(unet: UNet2DConditionModel, seed: int = 0, rank: int = 4) -> dict[str, torch.Tensor]:
    """A random LoRA for `unet` in the key format of latent-consistency/lcm-lora-sdv1-5's
    `pytorch_lora_weights.safetensors`: kohya/A1111 keys on diffusers module names,
    `lora_unet_<module path with "_" for ".">.lora_down.weight`, `.lora_up.weight` and `.alpha`
    (a 0-d tensor), on the modules the LCM-LoRA trains (`engine.fast.LCM_LORA_TARGETS`: attention
    projections, feed-forwards, resnet convs, time projections, down/up-sampler convs; not
    conv_in, so the same dict fits the 8-channel Instruct-Pix2Pix UNet). Linear layers get
    (rank, in) / (out, rank) matrices, convolutions (rank, in, kh, kw) / (out, rank, 1, 1), as
    kohya's LoRA convs. alpha = rank (scale 1); the update's entries have half the standard
    deviation of the layer's own weights, so the frames clearly change.
    """
    from .engine.fast import LCM_LORA_TARGETS

    state: dict[str, torch.Tensor] = {}
    generator = torch.Generator().manual_seed(seed)
    for name, module in unet.named_modules():
        if not any(name == t or name.endswith("." + t) for t in LCM_LORA_TARGETS):
            continue
        if isinstance(module, torch.nn.Conv2d):
            down_shape, up_shape = (rank, module.in_channels, *module.kernel_size), (module.out_channels, rank, 1, 1)
        elif isinstance(module, torch.nn.Linear):
            down_shape, up_shape = (rank, module.in_features), (module.out_features, rank)
        else:
            continue
        std = 0.5 * float(module.weight.detach().float().std()) / rank**0.5
        key = "lora_unet_" + name.replace(".", "_")
        state[f"{key}.lora_down.weight"] = torch.randn(down_shape, generator=generator)
        state[f"{key}.lora_up.weight"] = torch.randn(up_shape, generator=generator) * std
        state[f"{key}.alpha"] = torch.tensor(float(rank))
    return state


def build_taesd(seed: int = 0):
    """TAESD (diffusers' `AutoencoderTiny`) with madebyollin/taesd's config (diffusers' defaults:
    64 channels, 4 blocks, x8, 4 latent channels, scaling_factor 1.0), random weights. It decodes
    SD 1.5's scaled latents; at 64x64 it takes a few milliseconds per frame on a CPU, so the
    tiny preset uses the real architecture too."""
    from diffusers import AutoencoderTiny

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoencoderTiny().eval()
