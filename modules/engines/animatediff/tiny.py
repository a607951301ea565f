"""This engine's parts built in code with random weights (the tiny preset, tests, benchmarks)."""

from __future__ import annotations

import torch

from ...tiny import unet_config

# ---------------------------------------------------------------------------------------------
# AnimateDiff motion adapter (sampling.py)

# guoyww/animatediff-motion-adapter-v1-5-3's config: 8 heads, 32 positions (FreeNoise windows of
# 16 frames reach any clip length), no mid-block motion module.
MOTION_ADAPTER_CONFIG = dict(
    motion_num_attention_heads=8,
    motion_norm_num_groups=32,
    motion_max_seq_length=32,
    use_motion_mid_block=False,
)


def build_motion_adapter(arch: str = "tiny", seed: int = 0, mid_block: bool = False):
    """A `MotionAdapter` shaped for `build_unet(arch)` (its channels, 2 layers per block), random weights.

    AnimateDiff zero-initialises each motion module's output projection (a new adapter leaves the
    base model's frames as they are); random ones make the motion modules matter, which is what a
    test of the motion path needs. `mid_block=True` adds the mid-block module (as v1-5-2 has).
    """
    from diffusers import MotionAdapter
    from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D

    unet = unet_config(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        adapter = MotionAdapter(
            block_out_channels=unet.get("block_out_channels", (320, 640, 1280, 1280)),
            motion_layers_per_block=unet.get("layers_per_block", 2),
            **{**MOTION_ADAPTER_CONFIG, "use_motion_mid_block": mid_block},
        )
        for module in adapter.modules():
            if isinstance(module, AnimateDiffTransformer3D):
                torch.nn.init.normal_(module.proj_out.weight, std=module.proj_out.in_features**-0.5)
    return adapter.eval()




def build_lightning_adapter_state(adapter) -> dict[str, torch.Tensor]:
    """`adapter`'s weights as an AnimateDiff-Lightning diffusers file holds them.

    ByteDance/AnimateDiff-Lightning's `animatediff_lightning_{1,2,4,8}step_diffusers.safetensors`
    are plain `MotionAdapter` state dicts: the model card loads them with
    `MotionAdapter().load_state_dict(load_file(...))` (strict), i.e. MotionAdapter's default
    config, which has the mid-block motion module; build `adapter` with
    `build_motion_adapter(arch, mid_block=True)` to mirror the real file. No config.json comes
    with those files: a loader builds the adapter from its config and loads this dict into it.
    """
    return {key: value.detach().clone().contiguous() for key, value in adapter.state_dict().items()}
