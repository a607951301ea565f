"""The Wan 2.1 case: our engine (`generate_wan`: diffusers' WanPipeline on the manager's parts,
with our progress, Stop and seeding) against a plain `WanPipeline` built on the same weights.

`--arch tiny`: the engine's tiny parts. `--arch sd15` (the benchmarks' name for the real
architectures): Wan 2.1 T2V 1.3B's real transformer and VAE, and a UMT5-XXL-wide text encoder cut
to 2 of its 24 layers (the full one is 22.7 GB in float32, more than a small machine holds; it
runs once per video, for the prompt and the negative prompt). The VAE runs in float32 whatever
`--dtype` says, as the engine runs it. Frames are fitted to 4k+1 (8 become 5), sizes must be
multiples of 16. Counted calls are the transformer's: two per step with guidance.
"""

from __future__ import annotations

import numpy as np
import torch

from .harness import NEGATIVE, PROMPT, Case

WAN_GUIDANCE = 5.0
TEXT_LAYERS = 2  # of UMT5-XXL's 24, at --arch sd15


def build_wan_case(mode="wan", *, arch, size, steps, device, dtype, seed=0) -> Case:
    from diffusers import WanPipeline

    from modules.engines.base import FrameRule, ModelComponents
    from modules.engines.wan import tiny as wan_tiny
    from modules.engines.wan.sampling import generate_wan
    from modules.residency import unique_bytes

    if mode != "wan":
        raise ValueError(f"this builder makes the wan case, not {mode!r}")
    built = wan_tiny.build_components(seed=1, arch="tiny" if arch == "tiny" else "wan13", text_layers=TEXT_LAYERS)
    for role in ("text_encoder", "transformer"):
        built[role] = built[role].to(device=device, dtype=dtype)
    built["vae"] = built["vae"].to(device=device, dtype=torch.float32)
    frames_of = FrameRule(4, 1).nearest
    settings = dict(prompt=PROMPT, negative_prompt=NEGATIVE, height=size, width=size, guidance_scale=WAN_GUIDANCE)

    def ours(frames: int) -> np.ndarray:
        parts = ModelComponents({**built, "scheduler": wan_tiny.build_scheduler()}, device, dtype)
        return generate_wan(parts, num_frames=frames_of(frames), steps=steps, seed=seed, **settings)

    pipe = WanPipeline(**{**built, "scheduler": wan_tiny.build_scheduler()})
    pipe.set_progress_bar_config(disable=True)

    def reference(frames: int) -> np.ndarray:
        pipe.scheduler = wan_tiny.build_scheduler()
        out = pipe(num_frames=frames_of(frames), num_inference_steps=steps, output_type="np",
                   generator=torch.Generator("cpu").manual_seed(seed), **settings)
        return np.asarray(out.frames[0], dtype=np.float32)

    modules = [built["text_encoder"], built["transformer"], built["vae"]]
    weights = {side: unique_bytes(modules) / 2**20 for side in ("ours", "reference")}
    parts = dict(text_encoder=built["text_encoder"], unet=built["transformer"], vae_decoder=built["vae"].decoder)
    return Case("wan", built["transformer"], ours, reference, True, parts, counted=[built["transformer"]],
                weights_mb=weights)
