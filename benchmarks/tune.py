"""`--mode tune`: Tune-A-Video's one-shot training steps (modules/engines/tune_a_video) on this machine.

    python -m benchmarks --mode tune --arch sd15 --size 128 --frames 8 --steps 5 --dtype bfloat16

Runs `modules.engines.tune_a_video.train.tune` on a random clip with the components the other benchmarks build
(`modules.tiny`: "tiny", or "sd15", the real SD 1.5 UNet, VAE and CLIP text encoder with random
weights, so the real model's FLOPs and memory), placed in `--dtype` as the app holds them, with
gradient checkpointing on, as the app tunes. Reported:

- seconds per training step: the median over the steps after the first `--warmup` (the first
  step also pays for encoding the prompt and the clip and attaching the video layers);
- peak memory above the start of the run and the process's peak (the harness's `PeakMemory`:
  CUDA's allocator counters, or RSS sampled every 5 ms on the CPU);
- the number of trained parameters and the size of the safetensors file `weights.save_tuned`
  writes for them (into a temporary folder, removed after);
- a scaling, not a measurement: 300 steps at the published 8 frames x 512x512, the measured
  seconds per step times (512 * 512 * 8) / (size * size * frames) times 300. It is linear in
  pixels x frames; the spatial attention grows faster than that (frame i's queries read 2 x
  the tokens of a frame), so at 512x512 the real time is likely longer still;
- next to it, the published GPU figures (Tune-A-Video's Space and paper), as a reference.

The benchmark of the Tune-A-Video engine where the registry has one (benchmarks/modes.py lists it in
BENCHMARKS, with its own table: no reference side); without it, a mode tied to no engine, like "switching".
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from .harness import PROMPT, OtherLoad, device_text, finish, header, load_warning, loadavg, placer, resolve, timed

PUBLISHED_STEPS = 300
PUBLISHED_FRAMES = 8
PUBLISHED_SIZE = 512
# Published GPU figures (arXiv 2212.11565 and the Tune-A-Video training Space), for the reference rows.
PUBLISHED = (
    dict(source="Tune-A-Video Space", hardware="A100", frames=8, size=512, steps="300", minutes="≈ 4",
         seconds_per_step=4 * 60 / 300),
    dict(source="Tune-A-Video Space", hardware="T4", frames=8, size=512, steps="300", minutes="≈ 20",
         seconds_per_step=20 * 60 / 300),
    dict(source="Tune-A-Video paper", hardware="A100", frames=24, size=512, steps="300-500", minutes="≈ 10-15",
         seconds_per_step=None),
)  # fmt: skip
QUIET_SHARE = 0.1  # a step is "quiet" when other processes took less than this share of the CPU
SCALING_NOTE = "a scaling, not a measurement: s/step x pixels x frames ratio x 300 steps"


def random_clip(frames: int, size: int, seed: int) -> np.ndarray:
    """A random uint8 clip (F, size, size, 3): the compute does not depend on the content."""
    return (np.random.default_rng(seed).random((frames, size, size, 3)) * 255).astype(np.uint8)


def scale_factor(size: int, frames: int) -> float:
    """(512 x 512 x 8) / (size x size x frames): the published clip's pixels x frames over ours."""
    return (PUBLISHED_SIZE * PUBLISHED_SIZE * PUBLISHED_FRAMES) / (size * size * frames)


def benchmark(args, log) -> dict:
    """`--mode tune`: `--steps` training steps on `--arch`'s components; the result dict."""
    import torch

    from modules import tiny
    from modules.engines.tune_a_video.encoding import check_frame_size
    from modules.engines.tune_a_video.train import DEFAULT_LEARNING_RATE, tune
    from modules.engines.tune_a_video.weights import WEIGHTS_NAME, save_tuned

    device, dtype = resolve(args)
    if args.warmup >= args.steps:
        raise SystemExit(f"--mode tune times the steps after --warmup {args.warmup}: give --steps > {args.warmup}")
    load_before = loadavg()
    place = placer(device, dtype)
    started = time.perf_counter()
    tokenizer = tiny.build_tokenizer()
    vae = place(tiny.build_vae(args.arch))
    unet = place(tiny.build_unet(args.arch, seed=1))
    try:
        check_frame_size(args.size, args.size, vae, unet)
    except ValueError as error:
        raise SystemExit(f"--size {args.size}: {error}") from None
    text_encoder = place(tiny.build_text_encoder(tokenizer, args.arch))
    build_s = time.perf_counter() - started
    log(f"built {args.arch} components on {device} ({args.dtype}) in {build_s:.1f} s")
    frames = random_clip(args.frames, args.size, args.seed)

    stamps: list[float] = []
    losses: list[float] = []
    cpu_stamps: list[float] = []
    other_shares: list[float | None] = []
    step_load = OtherLoad()

    def on_step(step: int, steps: int, loss: float) -> None:
        stamps.append(time.perf_counter())
        cpu_stamps.append(time.process_time())
        step_load.__exit__(None, None, None)
        other_shares.append(step_load.share)
        step_load.__enter__()
        losses.append(loss)
        seconds = stamps[-1] - (stamps[-2] if len(stamps) > 1 else start)
        others = "" if other_shares[-1] is None else f", other processes {other_shares[-1]:.0%} of the CPU"
        log(f"step {step}/{steps}: {seconds:.2f} s, loss {loss:.4f}{others}"
            + (" (warm-up)" if step <= args.warmup else ""))

    start, cpu_start = time.perf_counter(), time.process_time()
    step_load.__enter__()
    parameters, seconds, peak, total, others = timed(device, lambda: tune(
        unet, vae, text_encoder, tokenizer, frames, PROMPT, steps=args.steps, learning_rate=DEFAULT_LEARNING_RATE,
        seed=args.seed, on_step=on_step, dtype=dtype, gradient_checkpointing=True,
    ))  # fmt: skip
    step_seconds = [b - a for a, b in zip([start, *stamps[:-1]], stamps)]
    step_cpu_seconds = [b - a for a, b in zip([cpu_start, *cpu_stamps[:-1]], cpu_stamps)]
    per_step = statistics.median(step_seconds[args.warmup :])
    # The timed steps during which other processes took under a tenth of the CPU (a shared machine).
    quiet = [t for t, share in zip(step_seconds[args.warmup :], other_shares[args.warmup :])
             if share is not None and share < QUIET_SHARE]  # fmt: skip

    trained = sum(t.numel() for t in parameters.values())
    with tempfile.TemporaryDirectory(prefix="t2vz-tune-bench-") as tmp:
        saving = time.perf_counter()
        folder = save_tuned(Path(tmp) / "tuned", parameters, base_model=f"random-weights {args.arch}",
                            training_prompt=PROMPT, steps=args.steps, learning_rate=DEFAULT_LEARNING_RATE)
        save_s = time.perf_counter() - saving
        file_bytes = (folder / WEIGHTS_NAME).stat().st_size

    factor = scale_factor(args.size, args.frames)
    result = dict(
        mode="tune", arch=args.arch, device=device.type, dtype=args.dtype, size=args.size, frames=args.frames,
        steps=args.steps, warmup=args.warmup, gradient_checkpointing=True, learning_rate=DEFAULT_LEARNING_RATE,
        precision=("float32 weights, no autocast" if dtype == torch.float32 else
                   f"{args.dtype} weights and autocast, float32 trained copies (AdamW master weights)"),
        seconds_per_step=per_step, step_seconds=step_seconds, seconds_total=seconds, losses=losses,
        fastest_step_seconds=min(step_seconds[args.warmup :]), step_cpu_seconds=step_cpu_seconds,
        step_other_cpu_share=other_shares, quiet_steps=len(quiet),
        seconds_per_step_quiet=statistics.median(quiet) if quiet else None,
        peak_mem_mb=peak, peak_mem_total_mb=total,
        peak_mem_kind=("cuda max_memory_allocated above the run's start" if device.type == "cuda"
                       else "peak RSS above the run's start (sampled every 5 ms)"),
        trained_parameters=trained, weights_file_bytes=file_bytes, weights_file_mb=file_bytes / 2**20,
        weights_file=WEIGHTS_NAME, save_seconds=save_s, other_cpu_share=others,
        scaled_to=dict(frames=PUBLISHED_FRAMES, size=PUBLISHED_SIZE, steps=PUBLISHED_STEPS),
        scale_factor=factor, scaled_seconds_per_step=per_step * factor,
        scaled_seconds_300_steps=per_step * factor * PUBLISHED_STEPS, scaled=factor != 1, scaling_note=SCALING_NOTE,
        published=[dict(p) for p in PUBLISHED],
    )  # fmt: skip
    return finish(result, device, load_before, build_seconds=build_s)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def table(r: dict) -> str:
    lines = header([
        ("mode", "tune (Tune-A-Video one-shot training steps, modules.engines.tune_a_video.train.tune)"),
        ("arch", r["arch"]),
        ("device", device_text(r)),
        ("precision", f"{r['precision']}; gradient checkpointing on"),
        ("clip", f"{r['frames']} frames x {r['size']}x{r['size']}"),
        ("steps", f"{r['steps']} ({r['warmup']} warm-up, median of the other {r['steps'] - r['warmup']}): "
                  + ", ".join(f"{t:.2f}" for t in r["step_seconds"]) + " s"),
    ])  # fmt: skip
    lines.append("")
    scaled_to = r["scaled_to"]
    rows = [
        (f"measured here: {r['arch']} {r['dtype']}, {r['frames']} frames x {r['size']}x{r['size']}",
         f"{r['seconds_per_step']:.3f}", _duration(PUBLISHED_STEPS * r["seconds_per_step"])),
        ("  (its fastest timed step)", f"{r['fastest_step_seconds']:.3f}",
         _duration(PUBLISHED_STEPS * r["fastest_step_seconds"])),
    ]  # fmt: skip
    if r["seconds_per_step_quiet"] is not None and r["quiet_steps"] < r["steps"] - r["warmup"]:
        rows.append((f"  (median of its {r['quiet_steps']} steps with others < {QUIET_SHARE:.0%} of the CPU)",
                     f"{r['seconds_per_step_quiet']:.3f}", _duration(PUBLISHED_STEPS * r["seconds_per_step_quiet"])))
    if r["scaled"]:  # at the published size the measured row is the figure itself
        rows.append((f"SCALED to {scaled_to['frames']} frames x {scaled_to['size']}x{scaled_to['size']} "
                     f"(x{r['scale_factor']:g}; not measured)",
                     f"{r['scaled_seconds_per_step']:.1f}", _duration(r["scaled_seconds_300_steps"])))
    for p in r["published"]:
        label = f"published: {p['source']}, {p['hardware']}, {p['frames']} frames x {p['size']}x{p['size']}"
        per = "" if p["seconds_per_step"] is None else f"≈ {p['seconds_per_step']:.1f}"
        total = f"{p['minutes']} min" + ("" if p["steps"] == str(PUBLISHED_STEPS) else f" ({p['steps']} steps)")
        rows.append((label, per, total))
    first = max(len(label) for label, _, _ in rows) + 2
    last = max(len(total) for _, _, total in rows) + 2
    head = f"{'':<{first}}{'s/step':>10}{f'{PUBLISHED_STEPS} steps':>{last}}"
    lines.append(head)
    lines.append("-" * len(head))
    lines.extend(f"{label:<{first}}{per:>10}{total:>{last}}" for label, per, total in rows)
    lines.append("")
    lines.append(f"peak memory: +{r['peak_mem_mb']:.0f} MB above the start, {r['peak_mem_total_mb']:.0f} MB in all "
                 f"({r['peak_mem_kind']})")
    lines.append(f"trained parameters: {r['trained_parameters']:,} "
                 f"(query projections + temporal attention layers)")
    lines.append(f"saved {r['weights_file']}: {r['weights_file_bytes']:,} bytes ({r['weights_file_mb']:.1f} MB)")
    if r["scaled"]:
        lines.append(f"scaled row: {r['scaling_note']}; the spatial attention grows faster than the pixels, "
                     "so the real time at 512x512 is likely longer")
    lines.extend(load_warning(r))
    return "\n".join(lines)
