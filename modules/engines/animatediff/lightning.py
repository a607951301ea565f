"""AnimateDiff-Lightning (`ByteDance/AnimateDiff-Lightning`): this engine's fast recipe.

Distilled motion adapters for 1, 2, 4 and 8 steps, published as bare `MotionAdapter` state dicts
(no config.json), run with Euler on trailing timesteps, linear betas and guidance 1 (the card).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from . import LIGHTNING_REPO, LIGHTNING_STEPS, lightning_file  # noqa: F401 - re-exported


def lightning_scheduler(config):
    """AnimateDiff-Lightning's published recipe: EulerDiscreteScheduler on the base model's
    config with timestep_spacing "trailing" and beta_schedule "linear" (and guidance 1.0, steps =
    the file's step count: the engine's fast recipe)."""
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler.from_config(config, timestep_spacing="trailing", beta_schedule="linear")


def lightning_adapter_config(state: Mapping[str, torch.Tensor]) -> dict:
    """`MotionAdapter` arguments for an AnimateDiff-Lightning state dict, read from its shapes.

    The Lightning files come without a config.json: the model card builds `MotionAdapter()` with
    its defaults (SD 1.5 channels, mid-block module, 32 positions) and loads the file strictly.
    Reading the channels, layer counts and positions from the tensors gives exactly those
    defaults for the real files, and the right adapter for any other base (the tiny preset's).
    Heads and norm groups leave no trace in the shapes; they are MotionAdapter's defaults (8, 32).
    """

    def count(prefix: str) -> int:
        return len({key[len(prefix):].split(".", 1)[0] for key in state if key.startswith(prefix)})

    channels = []
    while f"down_blocks.{len(channels)}.motion_modules.0.proj_in.weight" in state:
        channels.append(int(state[f"down_blocks.{len(channels)}.motion_modules.0.proj_in.weight"].shape[0]))
    if not channels:
        raise ValueError("not an AnimateDiff motion adapter state dict (no down_blocks.*.motion_modules)")
    positions = next(v for k, v in state.items() if k.endswith("pos_embed.pe"))
    mid = count("mid_block.motion_modules.")
    config = dict(
        block_out_channels=tuple(channels),
        motion_layers_per_block=count("down_blocks.0.motion_modules."),
        motion_transformer_layers_per_block=count("down_blocks.0.motion_modules.0.transformer_blocks."),
        motion_max_seq_length=int(positions.shape[1]),
        use_motion_mid_block=mid > 0,
    )
    if mid:
        config.update(
            motion_mid_block_layers_per_block=mid,
            motion_transformer_layers_per_mid_block=count("mid_block.motion_modules.0.transformer_blocks."),
        )
    return config


def lightning_adapter(state: Mapping[str, torch.Tensor]):
    """An AnimateDiff-Lightning file as a `MotionAdapter` (strict load; the tensors are adopted, not copied)."""
    from diffusers import MotionAdapter

    with torch.device("meta"):
        adapter = MotionAdapter(**lightning_adapter_config(state))
    adapter.load_state_dict(dict(state), strict=True, assign=True)
    return adapter.eval()
