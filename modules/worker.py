"""The GPU worker: runs one job at a time per device, stops when asked, survives failures.

- A job is a function of a `ModelManager` that loads what it needs (it may download) and
  returns `sample`, a function of no arguments that only samples and returns the result (numpy
  arrays or tuples of them). The worker runs `sample = job(manager)` and then `sample()`, both
  under the device's process-wide lock, so two generations never overlap on one device.
- Stopping: Gradio's cancel frees the queue slot but cannot stop a running thread, so every
  denoising step calls `JobControl.step` (modules/job_control.py), which raises `Cancelled`
  once the job is cancelled.
- Out of memory: once the failed attempt is gone (its frames and tensors freed), the manager
  makes room (evicting least-recently-used extras) and the job is retried once with its
  `fallback` (e.g. a smaller chunk: `retry_chunk_size`); otherwise a clear `WorkerError` says
  what to lower.
- Any other exception propagates (a `UserError` keeps its message); the worker stays ready.
- Several devices: `WorkerPool` holds one worker (and one manager) per device and hands each
  job to a free one; the job's `JobControl.ran_on` says which device and dtype it got.
- ZeroGPU (modules/zerogpu.py): only `sample()` runs under `spaces.GPU`, in a forked process;
  loading stays outside, so a download never counts against the GPU duration, and cancel and
  progress cross the process boundary. A job that does no GPU work (`needs_gpu=False`: edge
  maps, drawn skeletons) samples in this process and never waits for a ZeroGPU slot.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from .errors import UserError
from .job_control import Cancelled, JobControl, is_out_of_memory
from .settings import Settings
from .zerogpu import run_on_gpu

if TYPE_CHECKING:
    from .models import ModelManager

# Cancelled, JobControl and is_out_of_memory live in job_control; re-exported for older imports.
__all__ = ["Cancelled", "Job", "JobControl", "Sample", "Worker", "WorkerError", "WorkerPool", "is_out_of_memory",
           "retry_chunk_size"]

log = logging.getLogger(__name__)
T = TypeVar("T")
POLL_S = 0.1  # how often a waiting job looks for a cancel
BUSY_LOG_KEPT = 100  # job spans kept per worker (the queue's estimate reads the last few)

Sample = Callable[[], T]  # sampling only: runs on the GPU (on ZeroGPU, in a forked process)
Job = Callable[["ModelManager"], Sample[T]]  # loading: returns the sample function


class WorkerError(UserError, RuntimeError):
    """A job failed; the message is for the user."""


def retry_chunk_size(chunk_size: int | None, num_frames: int, min_chunk: int = 2) -> int | None:
    """The chunk size to retry with after running out of memory, or None when none would help.

    A pass runs min(chunk_size, num_frames) frames, so halving a chunk larger than the clip
    would repeat the same job: the retry halves what a pass really runs. None when the job has
    no chunks, or the half is below `min_chunk` (the anchor frame and one more).
    """
    if chunk_size is None:
        return None
    per_pass = min(chunk_size, num_frames)
    smaller = per_pass // 2
    if smaller < min_chunk or smaller >= per_pass:
        return None
    return smaller


class Worker:
    def __init__(self, settings: Settings, device: str | None = None):
        self.settings = settings
        self.device = device
        # (start, end) of the last jobs, for the queue's wait estimate and the benchmarks: bounded, a server runs for months
        self.busy_log: deque[tuple[float, float]] = deque(maxlen=BUSY_LOG_KEPT)
        self._manager: ModelManager | None = None
        self._manager_lock = threading.Lock()

    @property
    def loaded_manager(self) -> ModelManager | None:
        """The manager if it was made already (None: it would import torch and pick the device now)."""
        return self._manager

    @property
    def manager(self) -> ModelManager:
        """Made on first use: torch is imported then, not while the first page is served.

        Made once: the first page view (status line) and the first job may ask at the same time,
        and two managers would load the weights twice (cached_property has no lock since 3.12).
        """
        manager = self._manager
        if manager is None:
            with self._manager_lock:
                if self._manager is None:
                    from .models import ModelManager

                    self._manager = ModelManager(self.settings, self.device)
                manager = self._manager
        return manager

    def run(
        self,
        job: Job[T],
        control: JobControl,
        *,
        fallback: Job[T] | None = None,
        estimate_s: float = 60.0,
        lower_hint: str = "lower the resolution, the number of frames or the chunk size",
        needs_gpu: bool = True,
        too_long_hint: str = "",
    ) -> T:
        """Run `job(manager)` (loading) then its sample (on the GPU); once more with `fallback` on OOM.

        `estimate_s` is the sampling time only (what ZeroGPU is asked for): loading is outside.
        `needs_gpu=False` (CPU work such as edge maps or drawn skeletons) samples here, without a
        ZeroGPU slot, still under the device lock. `control.ran_on` gets this worker's device and
        dtype once the job has the device. `too_long_hint` (how to ask for less): on ZeroGPU a job estimated past
        one call's limit is refused with it, before it waits or loads (a training job: else killed there).
        """
        from .models import free_memory
        from .zerogpu import check_gpu_time

        if too_long_hint and needs_gpu:
            check_gpu_time(estimate_s, too_long_hint)
        self._acquire(control)
        start = time.monotonic()
        control.running = control.reached_worker = True
        try:
            control.ran_on = self._ran_on()
            control.check()
            try:
                return self._attempt(job, control, estimate_s, needs_gpu)
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                # str(error), not the error: a log record kept by a handler would keep its frames
                log.warning("out of memory on %s: %s", self.manager.device, str(error))
                if fallback is None:
                    raise WorkerError(f"Out of GPU memory. Please {lower_hint} and try again.") from error
            # Out of memory, with a fallback. The retry starts here, after the except block: the
            # failed attempt's traceback, and the frames and tensors it held, are gone now.
            free_memory()
            self._make_room()
            control.report(0.0, "out of memory: retrying with smaller chunks")
            control.check()
            try:
                return self._attempt(fallback, control, estimate_s, needs_gpu)
            except Exception as retry_error:
                if is_out_of_memory(retry_error):
                    raise WorkerError(
                        f"Out of GPU memory, even with smaller chunks. Please {lower_hint} and try again."
                    ) from retry_error
                raise
        except BaseException as error:
            _release_frames(error)  # what the failed frames held is freed now, by reference counting
            if self._on_accelerator():
                # Whatever went wrong, leave the device clean for the next job: cycles collected, the allocator's
                # cache handed back. Not on a CPU: a full collection takes about 0.5 s of a core with the ML
                # libraries loaded (after every refused input or Stop), and Python's own GC finds the rest.
                free_memory()
            raise
        finally:
            control.running = False
            try:
                if self.settings.cpu_offload:
                    self.manager.release_device()
            finally:  # a failing release must not keep the device: every later job would wait for it forever
                self.busy_log.append((start, time.monotonic()))
                self.manager.lock.release()

    def _attempt(self, job: Job[T], control: JobControl, estimate_s: float, needs_gpu: bool) -> T:
        reporting = getattr(self.manager, "reporting", None)  # downloads report to the job's progress bar
        with reporting(control.report) if reporting else contextlib.nullcontext():
            sample = job(self.manager)  # loading: may download; under the device lock, not under spaces.GPU
        control.check()  # loading can take minutes: don't start sampling a cancelled job
        if not needs_gpu:
            return sample()  # CPU work: a ZeroGPU slot would only cost queue time and quota
        return run_on_gpu(sample, control, estimate_s)

    def _ran_on(self) -> dict[str, str]:
        """This worker's device and dtype, as params.json records them."""
        manager = self.manager
        return {"device": str(manager.device), "dtype": str(getattr(manager, "dtype", ""))}

    def _on_accelerator(self) -> bool:
        manager = self._manager
        return manager is not None and manager.device.type != "cpu"

    def _make_room(self) -> None:
        """Evict least-recently-used extras the job doesn't need (older managers: every extra)."""
        make_room = getattr(self.manager, "make_room", None)
        if make_room is not None:
            make_room()
        else:
            self.manager.evict("all-extras")

    def _acquire(self, control: JobControl) -> None:
        """Wait for the device, leaving at once if the job is cancelled while it waits."""
        while not self.manager.lock.acquire(timeout=POLL_S):
            control.check()


class WorkerPool:
    """One worker per device; a job takes whichever is free (FIFO among waiters).

    With `settings.backend == "ray"`, `WorkerPool(settings)` is a `RayWorkerPool`
    (modules/ray_backend.py: one worker per Ray Serve replica, the same interface); Ray is
    imported only then.
    """

    def __new__(cls, settings: Settings):
        if cls is WorkerPool and getattr(settings, "backend", "local") == "ray":
            from .ray_backend import RayWorkerPool

            return RayWorkerPool(settings)
        return super().__new__(cls)

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
        """The first device's manager (the only one on a single-device server).

        Not necessarily the one that ran a job: that worker's device and dtype are the job's
        `control.ran_on`.
        """
        return self.workers[0].manager

    def run(self, job: Job[T], control: JobControl, **options) -> T:
        """`Worker.run` on a free worker (same options: fallback, estimate_s, lower_hint, needs_gpu)."""
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


def _release_frames(error: BaseException) -> None:
    """Drop the locals (tensors, activations) of the finished frames in `error`'s tracebacks.

    The traceback text stays for logs; what the frames held can be freed before the next job.
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)
        error = error.__cause__ or error.__context__
