"""The benchmarks' shared harness; it imports no other module of this package.

- argument defaults (`DEFAULTS`, `DEFAULT_SIZE`, `DTYPES`, ...) and `resolve`, which fills in
  those that depend on the device and architecture, and `placer` (device/dtype placement);
- peak memory (`PeakMemory`: CUDA's allocator counters, or the process's RSS sampled on the CPU)
  and other processes' share of the CPU (`OtherLoad`), around one timed call (`timed`);
- UNet calls counted by hooks (`CallCounter`), one video (`run_once`), and the one runner of
  warm-up and timed runs, sides alternating (`run_sides`);
- `Case`: one benchmark case, our engine's runner and diffusers' reference on the same weights,
  and `compare`, which times a case's two sides and makes the result dict;
- the environment of a result (`environment`, `finish`), the tables, and printing (`emit`).
"""

from __future__ import annotations

import datetime
import gc
import json
import os
import platform
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

    import numpy as np
    import torch

# ---------------------------------------------------------------------------------------------- argument defaults
DTYPES = ("float32", "float16", "bfloat16")
ARCHS = ("tiny", "sd15")
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_SIZE = {"tiny": 64, "sd15": 128}
DEFAULTS = dict(arch="tiny", size=None, frames=8, steps=4, dtype=None, device="auto", repeats=None, warmup=1,
                chunk_size=None, seed=0)  # fmt: skip

# What every case renders (the cases' own settings are theirs).
PROMPT = "a horse galloping on a street"
NEGATIVE = "blurry, low quality"


def default_repeats(arch: str, device: str) -> int:
    """Timed runs per side: 2 for the real architecture on a CPU (minutes a run), else 3."""
    return 2 if (arch == "sd15" and device == "cpu") else 3


def resolve(args: argparse.Namespace):
    """Fill in the defaults that depend on the device and architecture; (torch.device, torch.dtype).
    Idempotent: a second call changes nothing."""
    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda asked for, but torch sees no CUDA device")
    args.dtype = args.dtype or ("float16" if args.device == "cuda" else "float32")
    args.size = args.size or DEFAULT_SIZE[args.arch]
    if args.repeats is None:
        args.repeats = default_repeats(args.arch, args.device)
    args.chunk_size = args.chunk_size or args.frames
    return torch.device(args.device), getattr(torch, args.dtype)


def placer(device: torch.device, dtype: torch.dtype) -> Callable:
    """`place(model)`: the model on the benchmark's device, in its dtype."""

    def place(model):
        return model.to(device=device, dtype=dtype)

    return place


def loadavg() -> float | None:
    """The 1-minute load average, where the OS has one."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def logger(json_only: bool) -> Callable[..., None]:
    """`log(*parts)`: progress on stderr, silent with --json-only."""

    def log(*parts) -> None:
        if not json_only:
            print(*parts, file=sys.stderr, flush=True)

    return log


# ---------------------------------------------------------------------------------------------- memory
MB = 1024 * 1024
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """Resident set size of this process now, from /proc/self/statm (Linux), else psutil."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        try:
            import psutil
        except ImportError:  # last resort: the lifetime peak, which can't be reset
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return psutil.Process().memory_info().rss


def synchronize(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


class PeakMemory:
    """`with PeakMemory(device) as m: ...` then `m.peak_mb`: peak above the start, in MB.

    CUDA: torch.cuda.max_memory_allocated (reset on entry) minus what was allocated on entry;
    `m.total_mb` is the absolute peak (weights included).
    CPU: RSS sampled every `interval` s in a background thread (torch kernels release the GIL,
    so sampling continues during long ops), peak minus the RSS at entry; `m.total_mb` is the
    peak RSS of the process.
    """

    def __init__(self, device, interval: float = 0.005):
        import torch

        self.device = torch.device(device)
        self.interval = interval
        self.peak_mb = 0.0
        self.total_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = 0
        self._peak = 0

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        else:
            self._start = self._peak = rss_bytes()
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._peak = max(self._peak, rss_bytes())
            self._stop.set()
            self._thread.join()
            peak = self._peak
        self.total_mb = peak / MB
        self.peak_mb = max(0, peak - self._start) / MB


def _busy_ticks() -> tuple[int, int] | None:
    """(clock ticks all CPUs spent busy, ticks this process spent), from /proc; None elsewhere."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        with open("/proc/self/stat") as f:
            own = f.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy, int(own[11]) + int(own[12])  # utime + stime of this process


class OtherLoad:
    """Share of the machine's CPU time that other processes used while the block ran (0..1)."""

    def __enter__(self) -> OtherLoad:
        self.share = None
        self._start = (_busy_ticks(), time.perf_counter())
        return self

    def __exit__(self, *exc) -> None:
        ticks, start = self._start
        end = _busy_ticks()
        wall = time.perf_counter() - start
        if ticks is None or end is None or wall <= 0:
            return
        hz = os.sysconf("SC_CLK_TCK")
        others = (end[0] - ticks[0]) - (end[1] - ticks[1])
        self.share = max(0.0, others / hz / (wall * (os.cpu_count() or 1)))


def timed(device, fn):
    """(result, seconds, peak MB above start, absolute peak MB, other processes' CPU share)."""
    with PeakMemory(device) as memory, OtherLoad() as load:
        synchronize(device)
        start = time.perf_counter()
        result = fn()
        synchronize(device)
        seconds = time.perf_counter() - start
    return result, seconds, memory.peak_mb, memory.total_mb, load.share


# ---------------------------------------------------------------------------------------------- runs
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


@dataclass
class Runs:
    """What `run_sides` measured: per side, the warm-up seconds, the timed runs (`run_once`'s dicts
    without the video; "parts" holds the breakdown, or None) and the first timed run's video."""

    warmup_seconds: dict[str, list[float]]
    timed: dict[str, list[dict]]
    videos: dict[str, Any]

    def seconds(self, side: str) -> float:
        return statistics.median(r["seconds"] for r in self.timed[side])

    def other_cpu_share(self) -> float | None:
        """Largest share of the machine's CPU that other processes took during a timed run."""
        shares = [r["others"] for side in self.timed.values() for r in side if r["others"] is not None]
        return max(shares) if shares else None


def run_sides(
    sides: dict[str, Callable[[int], Any]],
    frames: int,
    device,
    counter: CallCounter,
    *,
    warmup: int,
    repeats: int,
    log: Callable[..., None],
    breakdown=None,
) -> Runs:
    """The one runner: `warmup` untimed rounds, then `repeats` timed rounds; each round runs every
    side once, alternately, so drift (thermal, caches, other load) hits all sides alike.
    `breakdown` (optional): an object whose `take(seconds)` returns the run's seconds per part."""
    warm = {name: [] for name in sides}
    for i in range(warmup):
        for name, fn in sides.items():
            seconds = run_once(fn, frames, device, counter)["seconds"]
            warm[name].append(seconds)
            if breakdown:
                breakdown.take(seconds)
            log(f"warm-up {i + 1}/{warmup} {name}: {seconds:.2f} s")
    timed_runs = {name: [] for name in sides}
    videos = {}
    for i in range(repeats):
        for name, fn in sides.items():
            run = run_once(fn, frames, device, counter)
            video = run.pop("video")
            videos.setdefault(name, video)
            run["parts"] = breakdown.take(run["seconds"]) if breakdown else None
            timed_runs[name].append(run)
            log(f"run {i + 1}/{repeats} {name}: {run['seconds']:.2f} s, {run['calls']} UNet calls, "
                f"peak +{run['peak']:.0f} MB")
    return Runs(warm, timed_runs, videos)


# ---------------------------------------------------------------------------------------------- cases
@dataclass
class Case:
    """`ours(frames)` / `reference(frames)` each make one video and return (F, H, W, 3) floats."""

    mode: str
    unet: torch.nn.Module  # the UNet both sides call (its forward calls are counted)
    ours: Callable[[int], np.ndarray]
    reference: Callable[[int], np.ndarray]
    chunked_matches_reference: bool  # whether chunking leaves the frames equal to the reference's
    parts: dict[str, torch.nn.Module] = field(default_factory=dict)  # named components, for --breakdown
    # What both sides run on (tokenizer, text_encoder, vae, unet, controlnet, scheduler_config),
    # for runners built on the same weights (`--fast`).
    components: dict = field(default_factory=dict)
    counted: list = field(default_factory=list)  # modules whose calls are the UNet calls (default: `unet`)
    weights_mb: dict = field(default_factory=dict)  # side -> MB of weights it holds, where they differ


def compare(
    args: argparse.Namespace,
    build: Callable[[Any, Any], Case],
    log: Callable[..., None],
    breakdown: Callable[[dict, Any], Any] | None = None,
) -> dict:
    """Ours against the reference: `build(device, dtype)` makes the case once; warm-up and timed
    runs alternate the sides (`run_sides`); then `--frames-sweep` runs ours alone. `breakdown`
    (optional): `(parts, device) -> ` an object timing the case's parts (benchmarks/breakdown.py)."""
    import numpy as np

    device, dtype = resolve(args)
    load_before = loadavg()
    started = time.perf_counter()
    case = build(device, dtype)
    build_s = time.perf_counter() - started
    log(f"built {args.arch} components on {device} ({args.dtype}) in {build_s:.1f} s")
    counter = CallCounter(*(case.counted or [case.unet]))
    timer = breakdown(case.parts, device) if breakdown else None
    runs = run_sides(
        {"ours": case.ours, "reference": case.reference}, args.frames, device, counter, warmup=args.warmup,
        repeats=args.repeats, log=log, breakdown=timer,
    )  # fmt: skip

    ours_video, ref_video = runs.videos["ours"], runs.videos["reference"]
    if ours_video.shape != ref_video.shape:
        raise RuntimeError(f"ours made {ours_video.shape}, the reference {ref_video.shape}")
    max_diff = float(np.abs(ours_video.astype(np.float64) - ref_video.astype(np.float64)).max())

    result = dict(
        mode=args.mode, arch=args.arch, device=args.device, dtype=args.dtype, size=args.size,
        frames=args.frames, steps=args.steps, chunk_size=args.chunk_size, repeats=args.repeats,
        warmup=args.warmup, compile=args.compile,
    )  # fmt: skip
    for name, side in runs.timed.items():
        seconds = runs.seconds(name)
        calls = side[0]["calls"]
        result[f"seconds_{name}"] = seconds
        result[f"unet_calls_{name}"] = calls
        result[f"unet_steps_per_s_{name}"] = calls / seconds
        result[f"peak_mem_mb_{name}"] = max(r["peak"] for r in side)
        result[f"peak_mem_total_mb_{name}"] = max(r["total"] for r in side)
        result[f"all_seconds_{name}"] = [r["seconds"] for r in side]
        result[f"warmup_seconds_{name}"] = runs.warmup_seconds[name]  # with --compile: includes compiling
        # Process CPU seconds (all threads): less sensitive than wall time to a busy machine.
        result[f"cpu_seconds_{name}"] = statistics.median(r["cpu"] for r in side)
        if timer:
            result[f"breakdown_{name}"] = {
                part: statistics.median(r["parts"][part] for r in side) for part in side[0]["parts"]
            }
    if case.weights_mb:
        result.update({f"weights_mb_{name}": mb for name, mb in case.weights_mb.items()})
    result["speedup"] = result["seconds_reference"] / result["seconds_ours"]
    result["max_abs_diff"] = max_diff
    result["comparable"] = args.chunk_size >= args.frames or case.chunked_matches_reference
    result["other_cpu_share"] = runs.other_cpu_share()
    result["peak_mem_kind"] = (
        "cuda max_memory_allocated above the run's start" if device.type == "cuda"
        else "peak RSS above the run's start (sampled every 5 ms)"
    )  # fmt: skip

    if args.frames_sweep:
        sweep = []
        for frames in args.frames_sweep:
            run = run_once(case.ours, frames, device, counter)
            if timer:
                timer.take(run["seconds"])
            sweep.append(dict(
                frames=frames, seconds=run["seconds"], unet_calls=run["calls"], peak_mem_mb=run["peak"],
                peak_mem_total_mb=run["total"],
            ))  # fmt: skip
            log(f"sweep {frames} frames (chunks of {args.chunk_size}): {run['seconds']:.2f} s, "
                f"peak +{run['peak']:.0f} MB")
        result["frames_sweep"] = sweep
    counter.remove()
    if timer:
        timer.remove()
    return finish(result, device, load_before, build_seconds=build_s)


# ---------------------------------------------------------------------------------------------- results
def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
        date=now(),
    )


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def finish(result: dict, device, load_before: float | None, **extra) -> dict:
    """The result with the environment (versions, threads, device name, date), `extra`, and the
    1-minute load average before and after the run."""
    result.update(environment(device))
    result.update(extra)
    result["loadavg"] = [load_before, loadavg()]  # 1 min, before/after
    return result


def header(rows: list[tuple[str, Any]]) -> list[str]:
    """Aligned "key  value" lines."""
    width = max(len(k) for k, _ in rows)
    return [f"{k:<{width}}  {v}" for k, v in rows]


def device_text(r: dict) -> str:
    return f"{r['device']} ({r['device_name']}), {r['num_threads']} torch threads"


def load_warning(r: dict) -> list[str]:
    share = r.get("other_cpu_share")
    if share is not None and share > 0.1:
        return [f"warning: other processes used up to {share:.0%} of the CPU during a timed run: noisy timings"]
    return []


def table(r: dict) -> str:
    """`compare`'s result: the run's settings, then ours and the reference side by side."""
    lines = header([
        ("mode", r["mode"]),
        ("arch", r["arch"]),
        ("device", device_text(r)),
        ("dtype", r["dtype"] + (", ours torch.compile'd" if r.get("compile") else "")),
        ("size", f"{r['size']}x{r['size']}"),
        ("frames", f"{r['frames']} (chunks of {r['chunk_size']})"),
        ("steps", r["steps"]),
        ("repeats", f"{r['repeats']} timed + {r['warmup']} warm-up per side, median"),
    ])  # fmt: skip
    lines.append("")
    head = f"{'':<16}{'ours':>12}{'reference':>12}"
    lines.append(head)
    lines.append("-" * len(head))
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
    lines.extend(load_warning(r))
    if "frames_sweep" in r:
        lines.append("")
        lines.append(f"ours alone, chunks of {r['chunk_size']}:")
        lines.append(f"{'frames':>8}{'s/video':>12}{'UNet calls':>12}{'peak MB':>12}")
        for s in r["frames_sweep"]:
            lines.append(f"{s['frames']:>8d}{s['seconds']:>12.3f}{s['unet_calls']:>12d}{s['peak_mem_mb']:>12.1f}")
    return "\n".join(lines)


def emit(result: dict, table_of: Callable[[dict], str], json_only: bool) -> None:
    """The table (unless --json-only), then the result as one JSON line: always the last line."""
    if not json_only:
        print(table_of(result), flush=True)
    print(json.dumps(result), flush=True)
