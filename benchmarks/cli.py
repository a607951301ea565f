"""`python -m benchmarks`: our engine against diffusers' reference pipelines, same weights.

Prints a table, then as its last line one JSON object with the results.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import time
import warnings

DTYPES = ("float32", "float16", "bfloat16")
DEFAULT_SIZE = {"tiny": 64, "sd15": 128}


def parse_args(argv=None) -> argparse.Namespace:
    from .cases import ENGINE_MODES, MODES

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time our Text2Video-Zero engine against diffusers' reference pipelines on identical "
        "random-weight components (tiny or the real SD 1.5 architecture), and check they make the same frames.",
    )
    parser.add_argument("--mode", choices=(*MODES, *ENGINE_MODES, "switching"), default="text2video",
                        help="pose/edge/depth: ControlNet video on random control maps (no annotator); "
                        "animatediff / modelscope: those engines against diffusers' AnimateDiffPipeline / "
                        "TextToVideoSDPipeline (with --frames-sweep 16,32,64: FreeNoise's memory); "
                        "switching: text2video -> edge -> depth -> pose -> edit -> text2video, ours vs a full "
                        "reload per switch")
    parser.add_argument("--arch", choices=("tiny", "sd15"), default="tiny")
    parser.add_argument("--size", type=int, default=None,
                        help="square frame size in pixels (default 64 tiny, 128 sd15)")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--dtype", choices=DTYPES, default=None, help="default float32 on CPU, float16 on CUDA")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per side (default 3; 2 for sd15 on CPU)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per side first")
    parser.add_argument("--chunk-size", type=int, default=None, help="our engine's chunk size (default = frames)")
    parser.add_argument("--frames-sweep", default=None, metavar="N,N,...",
                        help="also run our engine alone at these frame counts with --chunk-size, reporting "
                        "peak memory per count (chunking should keep it flat)")
    parser.add_argument("--breakdown", action="store_true",
                        help="also report seconds inside the text encoder, UNet, ControlNet and VAE per side "
                        "(hooks; on CUDA they synchronize, which adds a little time)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile our side's UNet and ControlNet (inductor; with freezing on CPU); "
                        "the warm-up pays the compile, so keep --warmup >= 1")
    parser.add_argument("--fast", action="store_true",
                        help="fast mode (LCM-LoRA + LCMScheduler at 4 steps + TAESD; with --mode animatediff "
                        "AnimateDiff-Lightning's 4-step adapter; random weights in the real files' formats) against the default mode (e.g. 50 DDIM steps, guidance, the full VAE) and "
                        "diffusers' reference at their default step count, scaled from one run at --steps steps")
    parser.add_argument("--default-steps", type=int, default=None,
                        help="with --fast: the default mode's step count the scaled figures are for "
                        "(default 50; 20 for pose/edge/depth)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json-only", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    if args.frames < 2:
        parser.error("--frames must be at least 2 (the anchor frame and one more)")
    if args.steps < 2:
        parser.error("--steps must be at least 2")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")
    if args.chunk_size is not None and args.chunk_size < 2:
        parser.error("--chunk-size must be at least 2")
    if args.size is not None and (args.size < 8 or args.size % 8):
        parser.error("--size must be a positive multiple of 8")
    if args.fast and (args.mode == "switching" or args.frames_sweep or args.compile or args.breakdown):
        parser.error("--fast runs alone: not with --mode switching, --frames-sweep, --compile or --breakdown")
    if args.mode in ENGINE_MODES and (args.compile or args.chunk_size or (args.fast and args.mode == "modelscope")):
        parser.error(f"--mode {args.mode} runs without --compile and --chunk-size (modelscope: and --fast)")
    if args.mode == "animatediff" and args.fast and args.frames_sweep:
        parser.error("--fast runs alone: not with --frames-sweep")
    if args.default_steps is not None and args.default_steps < 2:
        parser.error("--default-steps must be at least 2")
    if args.frames_sweep:
        try:
            args.frames_sweep = [int(n) for n in args.frames_sweep.split(",") if n.strip()]
        except ValueError:
            parser.error("--frames-sweep takes comma-separated integers, e.g. 8,32,64")
        if not args.frames_sweep or min(args.frames_sweep) < 2:
            parser.error("--frames-sweep counts must be at least 2")
    return args


def resolve(args: argparse.Namespace):
    """Fill in the defaults that depend on the device and architecture."""
    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda asked for, but torch sees no CUDA device")
    args.dtype = args.dtype or ("float16" if args.device == "cuda" else "float32")
    args.size = args.size or DEFAULT_SIZE[args.arch]
    if args.repeats is None:
        args.repeats = 2 if (args.arch == "sd15" and args.device == "cpu") else 3
    args.chunk_size = args.chunk_size or args.frames
    return torch.device(args.device), getattr(torch, args.dtype)


class CallCounter:
    """Counts forward calls of modules through forward pre-hooks (our AnimateDiff motion UNet fires
    the base UNet's pre-hooks, not its forward)."""

    def __init__(self, *modules):
        self.count = 0
        self._handles = [module.register_forward_pre_hook(self._hook) for module in modules]

    def _hook(self, *_):
        self.count += 1

    def take(self) -> int:
        count, self.count = self.count, 0
        return count

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def run_once(fn, frames, device, counter) -> dict:
    """One video. Keys: video, seconds, calls (UNet), peak / total (MB above start / absolute),
    cpu (process CPU seconds), others (other processes' share of the CPU, or None)."""
    import torch

    from .memory import timed

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    counter.take()
    cpu_start = time.process_time()
    with torch.no_grad():
        video, seconds, peak, total, others = timed(device, lambda: fn(frames))
    return dict(
        video=video, seconds=seconds, calls=counter.take(), peak=peak, total=total,
        cpu=time.process_time() - cpu_start, others=others,
    )  # fmt: skip


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def log(args, *parts) -> None:
    if not args.json_only:
        print(*parts, file=sys.stderr, flush=True)


def benchmark(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    from .cases import build_case

    device, dtype = resolve(args)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    started = time.perf_counter()
    case = build_case(
        args.mode, arch=args.arch, size=args.size, steps=args.steps, chunk_size=args.chunk_size,
        device=device, dtype=dtype, seed=args.seed, compile=args.compile,
    )  # fmt: skip
    build_s = time.perf_counter() - started
    log(args, f"built {args.arch} components on {device} ({args.dtype}) in {build_s:.1f} s")
    counter = CallCounter(*(case.counted or [case.unet]))
    breakdown = None
    if args.breakdown:
        from .breakdown import Breakdown

        breakdown = Breakdown(case.parts, device)
    sides = {"ours": case.ours, "reference": case.reference}

    warmup_seconds = {name: [] for name in sides}
    for i in range(args.warmup):
        for name, fn in sides.items():
            seconds = run_once(fn, args.frames, device, counter)["seconds"]
            warmup_seconds[name].append(seconds)
            if breakdown:
                breakdown.take(seconds)
            log(args, f"warm-up {i + 1}/{args.warmup} {name}: {seconds:.2f} s")

    runs = {name: [] for name in sides}
    other_shares = []
    first = {}
    for i in range(args.repeats):  # alternate sides so drift (thermal, caches) hits both alike
        for name, fn in sides.items():
            run = run_once(fn, args.frames, device, counter)
            video = run.pop("video")
            first.setdefault(name, video)
            run["parts"] = breakdown.take(run["seconds"]) if breakdown else None
            runs[name].append(run)
            if run["others"] is not None:
                other_shares.append(run["others"])
            log(args, f"run {i + 1}/{args.repeats} {name}: {run['seconds']:.2f} s, {run['calls']} UNet calls, "
                f"peak +{run['peak']:.0f} MB")

    ours_video, ref_video = first["ours"], first["reference"]
    if ours_video.shape != ref_video.shape:
        raise RuntimeError(f"ours made {ours_video.shape}, the reference {ref_video.shape}")
    max_diff = float(np.abs(ours_video.astype(np.float64) - ref_video.astype(np.float64)).max())

    result = dict(
        mode=args.mode, arch=args.arch, device=args.device, dtype=args.dtype, size=args.size,
        frames=args.frames, steps=args.steps, chunk_size=args.chunk_size, repeats=args.repeats,
        warmup=args.warmup, compile=args.compile,
    )  # fmt: skip
    for name, side in runs.items():
        seconds = statistics.median(r["seconds"] for r in side)
        calls = side[0]["calls"]
        result[f"seconds_{name}"] = seconds
        result[f"unet_calls_{name}"] = calls
        result[f"unet_steps_per_s_{name}"] = calls / seconds
        result[f"peak_mem_mb_{name}"] = max(r["peak"] for r in side)
        result[f"peak_mem_total_mb_{name}"] = max(r["total"] for r in side)
        result[f"all_seconds_{name}"] = [r["seconds"] for r in side]
        result[f"warmup_seconds_{name}"] = warmup_seconds[name]  # with --compile: includes compiling
        # Process CPU seconds (all threads): less sensitive than wall time to a busy machine.
        result[f"cpu_seconds_{name}"] = statistics.median(r["cpu"] for r in side)
        if breakdown:
            result[f"breakdown_{name}"] = {
                part: statistics.median(r["parts"][part] for r in side) for part in side[0]["parts"]
            }
    if case.weights_mb:
        result.update({f"weights_mb_{name}": mb for name, mb in case.weights_mb.items()})
    result["speedup"] = result["seconds_reference"] / result["seconds_ours"]
    result["max_abs_diff"] = max_diff
    result["comparable"] = args.chunk_size >= args.frames or case.chunked_matches_reference
    # Largest share of the machine's CPU that other processes took during a timed run.
    result["other_cpu_share"] = max(other_shares) if other_shares else None
    result["peak_mem_kind"] = (
        "cuda max_memory_allocated above the run's start" if device.type == "cuda"
        else "peak RSS above the run's start (sampled every 5 ms)"
    )  # fmt: skip

    if args.frames_sweep:
        sweep = []
        for frames in args.frames_sweep:
            run = run_once(case.ours, frames, device, counter)
            if breakdown:
                breakdown.take(run["seconds"])
            sweep.append(dict(
                frames=frames, seconds=run["seconds"], unet_calls=run["calls"], peak_mem_mb=run["peak"],
                peak_mem_total_mb=run["total"],
            ))  # fmt: skip
            log(args, f"sweep {frames} frames (chunks of {args.chunk_size}): {run['seconds']:.2f} s, "
                f"peak +{run['peak']:.0f} MB")
        result["frames_sweep"] = sweep
    counter.remove()
    if breakdown:
        breakdown.remove()

    result.update(environment(device))
    result["build_seconds"] = build_s
    result["loadavg"] = [load_before, os.getloadavg()[0] if hasattr(os, "getloadavg") else None]  # 1 min, before/after
    return result


def environment(device) -> dict:
    import diffusers
    import torch

    return dict(
        torch=torch.__version__,
        diffusers=diffusers.__version__,
        python=platform.python_version(),
        num_threads=torch.get_num_threads(),
        cpu_count=os.cpu_count(),
        device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )


def table(r: dict) -> str:
    rows = [
        ("mode", r["mode"]),
        ("arch", r["arch"]),
        ("device", f"{r['device']} ({r['device_name']}), {r['num_threads']} torch threads"),
        ("dtype", r["dtype"] + (", ours torch.compile'd" if r.get("compile") else "")),
        ("size", f"{r['size']}x{r['size']}"),
        ("frames", f"{r['frames']} (chunks of {r['chunk_size']})"),
        ("steps", r["steps"]),
        ("repeats", f"{r['repeats']} timed + {r['warmup']} warm-up per side, median"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    lines.append("")
    header = f"{'':<16}{'ours':>12}{'reference':>12}"
    lines.append(header)
    lines.append("-" * len(header))
    lines.append(f"{'s/video':<16}{r['seconds_ours']:>12.3f}{r['seconds_reference']:>12.3f}")
    lines.append(f"{'UNet calls':<16}{r['unet_calls_ours']:>12d}{r['unet_calls_reference']:>12d}")
    lines.append(f"{'UNet steps/s':<16}{r['unet_steps_per_s_ours']:>12.3f}{r['unet_steps_per_s_reference']:>12.3f}")
    lines.append(f"{'peak MB':<16}{r['peak_mem_mb_ours']:>12.1f}{r['peak_mem_mb_reference']:>12.1f}")
    lines.append(f"{'CPU s/video':<16}{r['cpu_seconds_ours']:>12.3f}{r['cpu_seconds_reference']:>12.3f}")
    if "weights_mb_ours" in r:
        lines.append(f"{'weights MB':<16}{r['weights_mb_ours']:>12.1f}{r['weights_mb_reference']:>12.1f}")
    if "breakdown_ours" in r:
        for part in r["breakdown_ours"]:
            label = f"  s {part}"
            lines.append(f"{label:<16}{r['breakdown_ours'][part]:>12.3f}{r['breakdown_reference'][part]:>12.3f}")
    lines.append("")
    lines.append(f"speedup (reference s / ours s): {r['speedup']:.3f}x")
    note = "" if r["comparable"] else "  (chunked run: frames differ from the reference by design)"
    lines.append(f"max |ours - reference|: {r['max_abs_diff']:.3g}{note}")
    lines.append(f"peak MB = {r['peak_mem_kind']}")
    share = r.get("other_cpu_share")
    if share is not None and share > 0.1:
        lines.append(f"warning: other processes used up to {share:.0%} of the CPU during a timed run: noisy timings")
    if "frames_sweep" in r:
        lines.append("")
        lines.append(f"ours alone, chunks of {r['chunk_size']}:")
        lines.append(f"{'frames':>8}{'s/video':>12}{'UNet calls':>12}{'peak MB':>12}")
        for s in r["frames_sweep"]:
            lines.append(f"{s['frames']:>8d}{s['seconds']:>12.3f}{s['unet_calls']:>12d}{s['peak_mem_mb']:>12.1f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="Default grid_sample")
    warnings.filterwarnings("ignore", message="torch.meshgrid")
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    if args.mode == "switching":
        from . import switching

        device, dtype = resolve(args)
        result = switching.run_switching(args.arch, device, dtype)
        result.update(
            mode="switching", arch=args.arch, device=device.type, dtype=args.dtype,
            date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        )
        if not args.json_only:
            print(switching.table(result), flush=True)
        print(json.dumps(result), flush=True)
        return 0
    if args.fast:
        from . import engines, fast

        device, dtype = resolve(args)
        load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        bench, table_of = ((engines.lightning_benchmark, engines.lightning_table) if args.mode == "animatediff"
                           else (fast.fast_benchmark, fast.table))
        result = bench(args, device, dtype, lambda *parts: log(args, *parts))
        result.update(environment(device))
        result["loadavg"] = [load_before, os.getloadavg()[0] if hasattr(os, "getloadavg") else None]
        if not args.json_only:
            print(table_of(result), flush=True)
        print(json.dumps(result), flush=True)
        return 0
    result = benchmark(args)
    if not args.json_only:
        print(table(result), flush=True)
    print(json.dumps(result), flush=True)
    return 0
