"""Pick float32 or bfloat16 for CPU inference by timing both on this CPU, once.

bfloat16 halves the memory traffic of SD 1.5's convolutions and matmuls, but whether it is
faster depends on the CPU and on PyTorch's kernels for it: measured on this project's machines,
an AMD EPYC ran a video in 12.9 s in bfloat16 vs 26.0 s in float32, while an Intel Xeon with
avx512_bf16 took 27.0 s vs 20.3 s, and an AVX2-only AMD EPYC runs bfloat16 convolutions in
PyTorch's `_slow_conv2d_forward` (this probe: bfloat16 0.07x as fast; an SD 1.5 VAE decode at
64x64 took 83 s). So no CPU flag decides it; a short probe does.

`pick_cpu_dtype()` times work shaped like SD 1.5's UNet (a 3x3 convolution 320 -> 320 and a
linear layer 768 -> 3072 over 1024 tokens, i.e. a 32x32 latent) in both dtypes, a few
repetitions each after a warm-up (under a second on 2 cores; a small pilot first stops early
where bfloat16 is many times slower), and picks bfloat16 only when it is at least `MARGIN` times
faster. The result is cached in a small JSON file keyed by the CPU model (with its
bfloat16-relevant ISA flags), the torch version and the thread count (which changes the ratio),
so later starts read it.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

MARGIN = 1.2  # bfloat16 must be this many times faster than float32 to be picked
REPEATS = 3
# The pilot (milliseconds of work) is noisy: on one Xeon a single pilot run put bfloat16 anywhere
# from 0.03x to 4.7x as fast as float32 while the full probe said 3.1x. Best of REPEATS, and only a
# gap no noise makes (CPUs without bfloat16 kernels measured 15-200x slower) skips the full probe.
PILOT_SKIP = 8.0
CACHE_ENV = "T2VZ_DTYPE_PROBE_CACHE"

_lock = threading.Lock()
_memo: dict[tuple[str, str], tuple[torch.dtype, str]] = {}


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


# ISA flags that decide PyTorch's bfloat16 kernels (oneDNN has bfloat16 convolutions only from
# AVX-512 on; AVX512-BF16 and AMX add native ones). Part of the cache key: virtual machines often
# report a bare model name ("AMD EPYC") for hosts of different generations.
_BF16_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx_vnni")


def cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    present = set(line.split(":", 1)[1].split())
                    return ",".join(flag for flag in _BF16_FLAGS if flag in present) or "-"
    except OSError:
        pass
    return "?"


def default_cache_path() -> Path:
    """$T2VZ_DTYPE_PROBE_CACHE, else <XDG cache>/text2video-zero-studio/cpu_dtype_probe.json."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "text2video-zero-studio" / "cpu_dtype_probe.json"


def cache_key() -> str:
    return f"{cpu_model()} [{cpu_flags()}] | torch {torch.__version__} | {torch.get_num_threads()} threads"


def _workload(dtype: torch.dtype, side: int = 32, tokens: int = 1024) -> Callable[[], None]:
    """One SD 1.5-shaped slice of UNet work in `dtype`: a 320-channel 3x3 conv on a side x side
    latent and an attention feed-forward linear 768 -> 3072 over `tokens` tokens (at the
    defaults, a 32x32 latent: about 1.9 + 4.8 GFLOP)."""
    generator = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(320, 320, 3, padding=1).to(dtype)
    linear = torch.nn.Linear(768, 3072).to(dtype)
    x = torch.randn(1, 320, side, side, generator=generator).to(dtype)
    h = torch.randn(1, tokens, 768, generator=generator).to(dtype)

    def run() -> None:
        with torch.no_grad():
            conv(x)
            linear(h)

    return run


def _seconds(run: Callable[[], None], repeats: int) -> float:
    run()  # warm-up: first-call kernel selection and allocation
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def measure(repeats: int = REPEATS) -> dict:
    """Seconds per workload in float32 and bfloat16 (best of `repeats`), and their ratio.

    A pilot on an 8x8 latent runs first: where bfloat16 has no fast kernels (e.g. an AVX2-only
    CPU, where a bfloat16 convolution here ran 200x slower than float32) it already shows
    bfloat16 several times slower, and the full-size probe (which would then take seconds) is
    skipped. Otherwise the full probe takes well under a second on 2 cores.
    """
    try:
        pilot32 = _seconds(_workload(torch.float32, side=8, tokens=64), repeats)
        pilot16 = _seconds(_workload(torch.bfloat16, side=8, tokens=64), repeats)
    except (RuntimeError, NotImplementedError) as exc:  # no bfloat16 kernels on this build
        return dict(float32_s=None, bfloat16_s=None, speedup=0.0, error=f"{type(exc).__name__}: {exc}"[:200])
    if pilot16 > PILOT_SKIP * pilot32:
        return dict(float32_s=pilot32, bfloat16_s=pilot16, speedup=pilot32 / pilot16, pilot_only=True)
    fp32 = _seconds(_workload(torch.float32), repeats)
    bf16 = _seconds(_workload(torch.bfloat16), repeats)
    return dict(float32_s=fp32, bfloat16_s=bf16, speedup=fp32 / bf16 if bf16 > 0 else 0.0)


def decide(result: dict, margin: float = MARGIN) -> tuple[torch.dtype, str]:
    speedup = result.get("speedup") or 0.0
    if result.get("bfloat16_s") is None:
        return torch.float32, "float32: bfloat16 does not run on this CPU"
    if speedup >= margin:
        return torch.bfloat16, f"bfloat16: {speedup:.1f}× faster than float32 on this CPU"
    if speedup >= 1.0:
        return torch.float32, f"float32: bfloat16 only {speedup:.2f}× as fast on this CPU (needs {margin:.1f}×)"
    return torch.float32, f"float32: bfloat16 is slower on this CPU ({speedup:.2f}× as fast)"


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write(path: Path, data: dict) -> None:
    """Atomic replace; a cache that can't be written only means probing again next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".cpu_dtype_probe.", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass


def pick_cpu_dtype(
    cache_path: str | os.PathLike | None = None,
    *,
    margin: float = MARGIN,
    probe: Callable[[], dict] | None = None,
) -> tuple[torch.dtype, str]:
    """(torch.float32 or torch.bfloat16, reason for the status line), e.g.
    (torch.bfloat16, "bfloat16: 1.9× faster than float32 on this CPU (probe, cached)").

    The first call on a machine runs the probe (`probe`, default `measure`, under ~1 s) and
    stores the result in `cache_path` (default `default_cache_path()`), keyed by CPU model and
    ISA flags, torch version and thread count; later calls, in this process or the next, read it. Never
    raises: an unreadable or unwritable cache just means probing.
    """
    path = Path(cache_path) if cache_path is not None else default_cache_path()
    key = cache_key()
    with _lock:
        if (str(path), key) in _memo:
            return _memo[(str(path), key)]
        data = _read(path)
        entry = data.get(key)
        if isinstance(entry, dict) and "speedup" in entry and "bfloat16_s" in entry:
            dtype, reason = decide(entry, margin)
            reason += " (probe, cached)"
        else:
            entry = (probe or measure)()
            entry["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            data[key] = entry
            _write(path, data)
            dtype, reason = decide(entry, margin)
            reason += " (probe)"
        _memo[(str(path), key)] = (dtype, reason)
        return dtype, reason
