"""ModelScope's parts built in code with random weights (the tiny preset, tests, benchmarks)."""

from __future__ import annotations

import torch
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from ...tiny import MAX_TOKENS

# ------------------------------------------------------------------ ModelScope text-to-video (3D UNet)
# `ms17` is the real damo-vilab (now ali-vilab) text-to-video-ms-1.7b architecture: its
# unet/config.json (UNet3DConditionModel), text_encoder/config.json (OpenCLIP ViT-H text tower as
# a CLIPTextModel: hidden 1024, 23 layers, 16 heads, gelu) and SD's VAE (`build_vae("sd15")`).
# Its scheduler/scheduler_config.json is a DDIMScheduler with SD 1.5's numbers, so
# `build_scheduler()` serves it too.

UNET3D_ARCHS = ("tiny", "ms17")

_UNET3D = {
    # Two blocks, 16/32 channels: runs a few frames on CPU in well under a second per step.
    "tiny": dict(
        block_out_channels=(16, 32),
        layers_per_block=1,
        sample_size=8,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=32,  # the tiny text encoder's hidden size
        attention_head_dim=4,  # UNet3DConditionModel reads this as the number of heads
        norm_num_groups=8,
    ),
    # text-to-video-ms-1.7b unet/config.json (UNet3DConditionModel's defaults are these, spelled out).
    "ms17": dict(
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        sample_size=32,  # 256 px: the model's training size
        down_block_types=("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=1024,
        attention_head_dim=64,
        norm_num_groups=32,
        norm_eps=1e-5,
        act_fn="silu",
    ),
}

# text-to-video-ms-1.7b text_encoder/config.json.
MS17_TEXT = dict(
    hidden_size=1024,
    intermediate_size=4096,
    num_hidden_layers=23,
    num_attention_heads=16,
    projection_dim=512,
    hidden_act="gelu",
)


def build_unet3d(arch: str = "tiny", seed: int = 0):
    """A UNet3DConditionModel with random weights: "tiny" (cross-attention 32, as the tiny text
    encoder) or "ms17" (the real ModelScope 1.7B UNet, 1.4 G parameters).

    The temporal convolutions start as identities in diffusers (zeroed last layer); random ones
    make the frames actually interact through them, which is what a test of the video path needs.
    """
    from diffusers import UNet3DConditionModel

    if arch not in UNET3D_ARCHS:
        raise ValueError(f"Unknown 3D UNet architecture {arch!r}; choose one of {', '.join(UNET3D_ARCHS)}.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet3DConditionModel(in_channels=4, out_channels=4, **_UNET3D[arch])
        for name, module in unet.named_modules():
            if name.endswith("conv4"):  # TemporalConvLayer's last conv
                torch.nn.init.normal_(module[-1].weight, std=0.02)
    return unet.eval()


def build_text_encoder_ms17(tokenizer: CLIPTokenizer, seed: int = 0) -> CLIPTextModel:
    """The real ModelScope text encoder's architecture (OpenCLIP ViT-H text tower), random weights."""
    config = CLIPTextConfig(
        vocab_size=49408,
        max_position_embeddings=MAX_TOKENS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **MS17_TEXT,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CLIPTextModel(config).eval()


