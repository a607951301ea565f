"""The CogVideoX case: our engine (`generate_cogvideox`: diffusers' CogVideoXPipeline on the manager's
parts, with our progress, Stop and seeding) against a plain `CogVideoXPipeline` on the same weights.

`--arch tiny`: the engine's tiny parts. `--arch sd15` (the benchmarks' name for the real architectures):
CogVideoX-2b's real transformer (1.69B parameters, 30 layers of 1920) and 3D VAE, and a T5 v1.1 XXL
text encoder with random weights: all 24 layers where `--dtype` is bfloat16 or float16 (9.3 GB; the
whole model then holds 13.6 GB, the real one's 13.8 GB less T5's vocabulary table), cut to 2 of the 24
in float32 (the whole
encoder would be 18.6 GB there, more than a small machine holds beside the rest; it runs once per
video, for the prompt and the negative prompt, so the steps are unchanged). The text encoder and
transformer are made directly in `--dtype`; the VAE runs in float32 whatever `--dtype` says, as the
engine runs it. Frames are fitted to the nearest 8k+1 (8 become 9), sizes must be multiples of 16.
Counted calls are the transformer's: one per step (guidance is batched). `--breakdown` times the text
encoder, the transformer and the VAE's decoder apart: the encoder's seconds (and, with
`T2VZ_CPU_OFFLOAD=1` in the app, its time on the device) come once per video, before the steps.
"""

from __future__ import annotations

import numpy as np
import torch

from .harness import NEGATIVE, PROMPT, Case

COGVIDEOX_GUIDANCE = 6.0
FLOAT32_TEXT_LAYERS = 2  # of T5-XXL's 24, at --arch sd15 --dtype float32


def build_cogvideox_case(mode="cogvideox", *, arch, size, steps, device, dtype, seed=0) -> Case:
    from diffusers import CogVideoXPipeline

    from modules.engines.base import FrameRule, ModelComponents
    from modules.engines.cogvideox import tiny as cog_tiny
    from modules.engines.cogvideox.sampling import decode, generate_cogvideox
    from modules.residency import unique_bytes

    if mode != "cogvideox":
        raise ValueError(f"this builder makes the cogvideox case, not {mode!r}")
    real = arch != "tiny"
    text_layers = FLOAT32_TEXT_LAYERS if real and dtype == torch.float32 else 24
    built = cog_tiny.build_components(seed=1, arch="cogvideox2b" if real else "tiny", text_layers=text_layers,
                                      dtype=dtype if real else None)
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
