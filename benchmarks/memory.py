"""Peak memory of one run: CUDA's allocator counters, or the process's RSS sampled on the CPU."""

from __future__ import annotations

import os
import resource
import threading
import time

import torch

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


class PeakMemory:
    """`with PeakMemory(device) as m: ...` then `m.peak_mb`: peak above the start, in MB.

    CUDA: torch.cuda.max_memory_allocated (reset on entry) minus what was allocated on entry;
    `m.total_mb` is the absolute peak (weights included).
    CPU: RSS sampled every `interval` s in a background thread (torch kernels release the GIL,
    so sampling continues during long ops), peak minus the RSS at entry; `m.total_mb` is the
    peak RSS of the process.
    """

    def __init__(self, device: torch.device, interval: float = 0.005):
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


def synchronize(device: torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, fn):
    """(result, seconds, peak MB above start, absolute peak MB, other processes' CPU share)."""
    with PeakMemory(device) as memory, OtherLoad() as load:
        synchronize(device)
        start = time.perf_counter()
        result = fn()
        synchronize(device)
        seconds = time.perf_counter() - start
    return result, seconds, memory.peak_mb, memory.total_mb, load.share
