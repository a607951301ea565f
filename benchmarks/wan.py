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


def anyflow_benchmark(args, device: torch.device, dtype: torch.dtype, log, engine) -> dict:
    """`--mode wan --fast`: AnyFlow (`engine.fast`: 4 flow-map steps, guidance 1 folded into the weights, one
    transformer call a step) against Wan 2.1's default (`engine.defaults.steps` UniPC steps, 50; guidance 5: two
    calls a step) on the same text encoder and VAE. The default is timed at --steps steps with the end of every
    step stamped, and scaled: the time outside the steps (text encoder, VAE) as measured plus the default step
    count times the median step."""
    import statistics
    import time

    from modules.engines.base import FrameRule, ModelComponents
    from modules.engines.wan import tiny as wan_tiny
    from modules.engines.wan.fast import generate_wan_fast
    from modules.engines.wan.sampling import generate_wan

    from .harness import CallCounter, run_once, run_sides

    started = time.perf_counter()
    arch = "tiny" if args.arch == "tiny" else "wan13"
    built = wan_tiny.build_components(seed=1, arch=arch, text_layers=TEXT_LAYERS)
    fast_transformer = wan_tiny.build_anyflow_transformer(seed=2, arch=arch).to(device=device, dtype=dtype)
    for role in ("text_encoder", "transformer"):
        built[role] = built[role].to(device=device, dtype=dtype)
    built["vae"] = built["vae"].to(device=device, dtype=torch.float32)
    log(f"built {args.arch} parts on {device} ({args.dtype}) in {time.perf_counter() - started:.1f} s")
    counter = CallCounter(built["transformer"], fast_transformer)
    recipe = engine.fast.for_tab("text2video")
    frames_of = FrameRule(4, 1).nearest
    common = dict(prompt=PROMPT, negative_prompt=NEGATIVE, height=args.size, width=args.size, seed=args.seed)

    def fast(frames: int) -> np.ndarray:
        parts = ModelComponents({**built, "transformer": fast_transformer,
                                 "scheduler": wan_tiny.build_anyflow_scheduler()}, device, dtype)
        return generate_wan_fast(parts, num_frames=frames_of(frames), steps=recipe["steps"],
                                 guidance_scale=recipe["guidance_scale"], **common)

    stamps: list[float] = []

    def default(frames: int) -> np.ndarray:
        parts = ModelComponents({**built, "scheduler": wan_tiny.build_scheduler()}, device, dtype)
        return generate_wan(parts, num_frames=frames_of(frames), steps=args.steps, guidance_scale=WAN_GUIDANCE,
                            on_step=lambda *_: stamps.append(time.perf_counter()), **common)

    with torch.no_grad():
        runs = run_sides({"fast": fast}, args.frames, device, counter, warmup=args.warmup, repeats=args.repeats,
                         log=log)
        stamps.clear()
        before = time.perf_counter()
        run = run_once(default, args.frames, device, counter)
    run.pop("video")
    step_seconds = [b - a for a, b in zip([before, *stamps], stamps)][1:]  # steps 2.. (the first holds the text encoder)
    step = statistics.median(step_seconds) if step_seconds else run["seconds"] / args.steps
    default_steps = engine.defaults.steps
    scaled = run["seconds"] - step * args.steps + step * default_steps
    log(f"default at {args.steps} steps: {run['seconds']:.2f} s ({run['calls']} transformer calls, {step:.2f} s a "
        f"step) -> {scaled:.1f} s scaled to {default_steps} steps")
    counter.remove()
    fast_runs = runs.timed["fast"]
    seconds_fast = runs.seconds("fast")
    return dict(
        mode="wan", arch=args.arch, device=args.device, dtype=args.dtype, size=args.size,
        frames=frames_of(args.frames), fast=True, repeats=args.repeats, warmup=args.warmup,
        steps_fast=recipe["steps"], steps_default=default_steps, measured_default_steps=args.steps,
        scheduler_fast="flowmap_euler", scheduler_default="unipc", guidance_fast=recipe["guidance_scale"],
        guidance_default=WAN_GUIDANCE, seconds_fast=seconds_fast, all_seconds_fast=[r["seconds"] for r in fast_runs],
        peak_mem_mb_fast=max(r["peak"] for r in fast_runs), transformer_calls_fast=fast_runs[0]["calls"],
        seconds_default=scaled, seconds_default_scaled=True, seconds_default_measured=run["seconds"],
        seconds_per_default_step=step, transformer_calls_default=default_steps * 2,
        transformer_calls_default_measured=run["calls"], speedup_fast=scaled / seconds_fast,
        other_cpu_share=max((r["others"] for r in [*fast_runs, run] if r["others"] is not None), default=None),
    )  # fmt: skip


def anyflow_table(r: dict) -> str:
    return "\n".join([
        f"mode wan, {r['arch']}, {r['device']} ({r.get('device_name', r['device'])}), {r['dtype']}, "
        f"{r['frames']} frames {r['size']}x{r['size']}",
        f"fast     (AnyFlow {r['steps_fast']} flow-map steps, guidance {r['guidance_fast']:g}): "
        f"{r['seconds_fast']:8.2f} s  ({r['transformer_calls_fast']} transformer calls, median of {r['repeats']})",
        f"default  ({r['steps_default']} UniPC steps, guidance {r['guidance_default']:g}): {r['seconds_default']:8.2f} s"
        f"  (scaled from {r['seconds_default_measured']:.2f} s at {r['measured_default_steps']} steps)",
        f"speed-up fast vs default: {r['speedup_fast']:.1f}x",
    ])
