"""The CogVideoX case: our engine (`generate_cogvideox`: diffusers' CogVideoXPipeline on the manager's
parts, with our progress, Stop and seeding) against a plain `CogVideoXPipeline` on the same weights.

`--arch tiny` only for now: the real 2B architecture (a 1.7B-parameter transformer and T5-XXL)
with random weights is a later step. The VAE runs in float32 whatever `--dtype` says, as the
engine runs it. Frames are fitted to the nearest 8k+1 (8 become 9), sizes must be multiples of 16.
Counted calls are the transformer's: one per step (guidance is batched).
"""

from __future__ import annotations

import numpy as np
import torch

from .harness import NEGATIVE, PROMPT, Case

COGVIDEOX_GUIDANCE = 6.0


def build_cogvideox_case(mode="cogvideox", *, arch, size, steps, device, dtype, seed=0) -> Case:
    from diffusers import CogVideoXPipeline

    from modules.engines.base import FrameRule, ModelComponents
    from modules.engines.cogvideox import tiny as cog_tiny
    from modules.engines.cogvideox.sampling import decode, generate_cogvideox
    from modules.residency import unique_bytes

    if mode != "cogvideox":
        raise ValueError(f"this builder makes the cogvideox case, not {mode!r}")
    if arch != "tiny":
        raise SystemExit("--mode cogvideox runs --arch tiny only so far (the real 2B architecture is not built yet).")
    built = cog_tiny.build_components(seed=1)
    for role in ("text_encoder", "transformer"):
        built[role] = built[role].to(device=device, dtype=dtype)
    built["vae"] = built["vae"].to(device=device, dtype=torch.float32)
    frames_of = FrameRule(8, 1).closest

    settings = dict(prompt=PROMPT, negative_prompt=NEGATIVE, height=size, width=size, guidance_scale=COGVIDEOX_GUIDANCE)

    def ours(frames: int) -> np.ndarray:
        parts = ModelComponents({**built, "scheduler": cog_tiny.build_scheduler()}, device, dtype)
        return generate_cogvideox(parts, num_frames=frames_of(frames), steps=steps, seed=seed, **settings)

    pipe = CogVideoXPipeline(**{**built, "scheduler": cog_tiny.build_scheduler()})
    pipe.set_progress_bar_config(disable=True)

    def reference(frames: int) -> np.ndarray:
        pipe.scheduler = cog_tiny.build_scheduler()
        latents = pipe(num_frames=frames_of(frames), num_inference_steps=steps, output_type="latent",
                       generator=torch.Generator("cpu").manual_seed(seed),
                       max_sequence_length=built["transformer"].config.max_text_seq_length, **settings).frames
        return decode(built["vae"], latents)

    modules = [built["text_encoder"], built["transformer"], built["vae"]]
    weights = {side: unique_bytes(modules) / 2**20 for side in ("ours", "reference")}
    parts = dict(text_encoder=built["text_encoder"], unet=built["transformer"], vae_decoder=built["vae"].decoder)
    return Case("cogvideox", built["transformer"], ours, reference, True, parts, counted=[built["transformer"]],
                weights_mb=weights)
