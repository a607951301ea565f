"""The GPU worker: runs one job at a time per device, stops when asked, survives failures.

- A job is a function of a `ModelManager`; the worker runs it under the device's process-wide
  lock, so two generations never overlap on one device, whatever thread started them.
- Stopping: Gradio's cancel frees the queue slot but cannot stop a running thread, so every
  denoising step calls `JobControl.step`, which raises `Cancelled` once the job is cancelled.
- Out of memory: memory is freed, extras evicted, and the job retried once with its
  `fallback` (e.g. a smaller chunk); otherwise a clear `WorkerError` says what to lower.
- Any other exception becomes a `WorkerError`; the worker stays ready for the next job.
- Several devices: `WorkerPool` holds one worker (and one manager) per device and hands each
  job to a free one.
- ZeroGPU: when the `spaces` package is importable, the job runs under `spaces.GPU`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, TypeVar

from .errors import UserError
from .settings import Settings

if TYPE_CHECKING:
    from .models import ModelManager

log = logging.getLogger(__name__)
T = TypeVar("T")
POLL_S = 0.1  # how often a waiting job looks for a cancel
MAX_ZEROGPU_S = 300


class Cancelled(Exception):
    """The user stopped the job."""


class WorkerError(UserError, RuntimeError):
    """A job failed; the message is for the user."""


def is_out_of_memory(error: BaseException) -> bool:
    import torch

    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


@dataclass
class JobControl:
    """The link between one job and whoever waits for it: progress out, cancel in."""

    should_stop: Callable[[], bool] = lambda: False
    progress: Callable[[float, str], None] | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        self.cancel_event.set()

    def check(self) -> None:
        if self.cancel_event.is_set() or self.should_stop():
            self.cancel_event.set()
            raise Cancelled()

    def report(self, fraction: float, text: str) -> None:
        if self.progress is not None:
            self.progress(fraction, text)

    def step(self, done: int, total: int, phase: str = "") -> None:
        """The engine's per-step callback: stop here if cancelled, else report progress."""
        self.check()
        label = f"{phase} · step {done}/{total}" if phase else f"step {done}/{total}"
        self.report(done / max(total, 1), label)


def run_on_gpu(fn: Callable[[], T], duration_s: float) -> T:
    """Run under ZeroGPU's `spaces.GPU` where that package exists, else just call `fn`."""
    try:
        import spaces  # noqa: PLC0415 - only present on Hugging Face ZeroGPU hardware
    except ImportError:
        return fn()
    duration = int(min(max(duration_s, 1), MAX_ZEROGPU_S))
    return spaces.GPU(duration=duration)(fn)()


class Worker:
    def __init__(self, settings: Settings, device: str | None = None):
        self.settings = settings
        self.device = device
        self.busy_log: list[tuple[float, float]] = []  # (start, end) of each job, for tests and stats

    @cached_property
    def manager(self) -> ModelManager:
        """Made on first use: torch is imported then, not while the first page is served."""
        from .models import ModelManager

        return ModelManager(self.settings, self.device)

    def run(
        self,
        job: Callable[[ModelManager], T],
        control: JobControl,
        *,
        fallback: Callable[[ModelManager], T] | None = None,
        estimate_s: float = 60.0,
        lower_hint: str = "lower the resolution, the number of frames or the chunk size",
    ) -> T:
        self._acquire(control)
        start = time.monotonic()
        try:
            control.check()
            try:
                return run_on_gpu(lambda: job(self.manager), estimate_s)
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                log.warning("out of memory on %s: %s", self.manager.device, error)
                self.manager.evict("all-extras")  # frees memory too
                if fallback is None:
                    raise WorkerError(f"Out of GPU memory. Please {lower_hint} and try again.") from error
                control.report(0.0, "out of memory: retrying with smaller chunks")
                try:
                    return run_on_gpu(lambda: fallback(self.manager), estimate_s)
                except Exception as retry_error:
                    if is_out_of_memory(retry_error):
                        self.manager.evict("all-extras")
                        raise WorkerError(
                            f"Out of GPU memory, even with smaller chunks. Please {lower_hint} and try again."
                        ) from retry_error
                    raise
        except BaseException:
            from .models import free_memory

            free_memory()  # whatever went wrong, leave the device clean for the next job
            raise
        finally:
            if self.settings.cpu_offload:
                self.manager.release_device()
            self.busy_log.append((start, time.monotonic()))
            self.manager.lock.release()

    def _acquire(self, control: JobControl) -> None:
        """Wait for the device, leaving at once if the job is cancelled while it waits."""
        while not self.manager.lock.acquire(timeout=POLL_S):
            control.check()


class WorkerPool:
    """One worker per device; a job takes whichever is free (FIFO among waiters)."""

    def __init__(self, settings: Settings):
        devices = settings.devices or (settings.device,)
        self.workers = [Worker(settings, device) for device in devices]
        self._free: queue.Queue[Worker] = queue.Queue()
        for worker in self.workers:
            self._free.put(worker)

    def __len__(self) -> int:
        return len(self.workers)

    @property
    def manager(self) -> ModelManager:
        """The first device's manager (the only one on a single-device server)."""
        return self.workers[0].manager

    def run(self, job: Callable[[ModelManager], T], control: JobControl, **options) -> T:
        worker = self._take(control)
        try:
            return worker.run(job, control, **options)
        finally:
            self._free.put(worker)

    def _take(self, control: JobControl) -> Worker:
        while True:
            control.check()
            try:
                return self._free.get(timeout=POLL_S)
            except queue.Empty:
                continue
