"""The Ray backend (`--backend ray`): the GPU workers as Ray Serve replicas behind the same page and API.

- Each replica of the `StudioWorker` deployment is one `Worker` with its own `ModelManager` (its
  weights stay loaded between jobs), `max_ongoing_requests=1`, one GPU each (a logical one on a
  CPU-only test cluster). Serve's router is the shared queue: a job goes to a free replica.
- The Gradio process is a plain Ray driver (Ray's own GradioServer/GradioIngress are broken with
  Gradio 6): `RayWorkerPool` has `WorkerPool`'s interface (`run`, `workers`, `len`, `manager`), so
  Studio, the runner and the page do not know which backend runs their jobs.
- A job (the runner's load-then-sample closure) travels pickled with cloudpickle. The caller's
  `JobControl` does not travel: the replica gets its own (`persistent_id`), whose progress comes
  back as the stream's items (`handle.options(stream=True)` on an async generator) and is
  published on the caller's control, as the ZeroGPU bridge does from its child. The Studio the
  closures name is the replica's own (made there on first use). Lists in the job's closure (what
  it recorded, e.g. the chunk size each attempt ran with) come back with the result.
- Stop: a relay thread watches the caller's control and calls the response's `cancel()`; the
  replica's generator then sees `CancelledError` at its next await, sets its control's cancel
  flag (the worker thread stops at its next step) and waits for the thread, so the replica is free
  within one step.
- The result (frames, control maps, timings) comes back to this process, which writes the outputs
  into its per-request folders as locally; `control.ran_on` adds the replica's host and id, so
  params.json records them.
- A replica that dies mid-job gives that job `REPLICA_STOPPED`; Serve starts a replacement, queued
  jobs go to the live replicas. A cluster that can't be reached is a `BackendUnavailable` sentence.

The replica side is modules/ray_replica.py, connecting to (or starting) the cluster modules/ray_cluster.py. Ray is
imported in these three modules only, and only when this backend is chosen.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from .errors import UserError
from .job_control import Cancelled, JobControl
from .ray_cluster import connect, start_serving
from .ray_replica import APP_NAME, JobPickler, closure_lists
from .settings import Settings
from .worker import BUSY_LOG_KEPT

log = logging.getLogger(__name__)
T = TypeVar("T")

REPLICA_STOPPED = "The worker running your job stopped; please retry."
CANCEL_POLL_S = 0.05


# ---------------------------------------------------------------------------- the pool (driver side)
class _Device:
    """A replica's device as the status line reads it (`str`, `.type`), without torch here."""

    def __init__(self, name: str):
        self.name = name
        self.type = (name or "cpu").split(":")[0]

    def __str__(self) -> str:
        return self.name or "a Ray replica (no job yet)"


class RemoteManager:
    """What the page reads of a model manager, as the replicas last reported it."""

    def __init__(self, pool: RayWorkerPool, worker: RemoteWorker | None = None):
        self._pool, self._worker = pool, worker

    def _info(self) -> dict:
        return (self._worker.info if self._worker is not None else self._pool.last_info) or {}

    @property
    def device(self) -> _Device:
        return _Device(self._info().get("device", ""))

    @property
    def dtype(self) -> str:
        return self._info().get("dtype", "") or "?"

    @property
    def dtype_reason(self) -> str:
        return f"{self.dtype}, on {len(self._pool)} Ray Serve replicas at {self._pool.address}"

    loading = None

    def resident(self) -> dict:
        return self._info().get("resident", {})


@dataclass
class RemoteWorker:
    """One replica as the page sees it: its jobs' spans, and what it last reported."""

    pool: RayWorkerPool
    busy_log: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=BUSY_LOG_KEPT))
    info: dict = field(default_factory=dict)

    @property
    def loaded_manager(self) -> RemoteManager | None:
        return RemoteManager(self.pool, self) if self.info else None

    @property
    def manager(self) -> RemoteManager:
        return RemoteManager(self.pool, self)


class RayWorkerPool:
    """`WorkerPool`'s interface over a Ray Serve deployment: one worker per replica."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.address, replicas, gpus_each = connect(settings)
        self.handle = start_serving(settings, replicas, gpus_each)
        # One page worker per replica there may be: the page lets that many jobs through at once.
        self.workers = [RemoteWorker(self) for _ in range(max(replicas, settings.ray_max_replicas))]
        self.last_info: dict = {}
        self.running: dict[int, dict] = {}  # id(control) -> the replica's info, while a job runs there
        self._slots: dict[str, RemoteWorker] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.workers)

    @property
    def manager(self) -> RemoteManager:
        return RemoteManager(self)

    def _slot(self, replica: str) -> RemoteWorker:
        """The page's worker for a replica id (a replacement takes the slot of one not seen lately)."""
        with self._lock:
            slot = self._slots.get(replica)
            if slot is None:
                taken = {id(s) for s in self._slots.values()}
                free = [w for w in self.workers if id(w) not in taken]
                slot = free[0] if free else min(self.workers, key=lambda w: w.busy_log[-1][1] if w.busy_log else 0)
                self._slots = {k: v for k, v in self._slots.items() if v is not slot}
                self._slots[replica] = slot
            return slot

    def run(self, job, control: JobControl, *, fallback=None, **options) -> T:
        """Run `job` (and `fallback` after an OOM) on a free replica; same options as `Worker.run`."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # Gradio's worker threads, a script: no event loop in this thread
            return self._run(job, control, fallback=fallback, **options)
        # Serve's response can't be read synchronously in a thread whose event loop runs (a notebook, a
        # caller inside async code): read it in a thread of its own.
        with ThreadPoolExecutor(1, thread_name_prefix="ray-job") as reader:
            return reader.submit(self._run, job, control, fallback=fallback, **options).result()

    def _run(self, job, control: JobControl, *, fallback=None, **options) -> T:
        from ray.exceptions import RayError, RayTaskError
        from ray.serve.exceptions import RequestCancelledError

        control.check()
        payload = JobPickler.dumps((job, fallback, options), control)
        response = self.handle.options(stream=True).run.remote(payload)
        relay = _CancelRelay(control, response)
        relay.start()
        start, slot, info = None, None, {}
        try:
            for message in response:
                kind = message[0]
                if kind == "started":
                    info = message[1]
                    slot = self._slot(info["replica"])
                    slot.info = self.last_info = info
                    self.running[id(control)] = info
                    start = time.monotonic()
                    control.running = control.reached_worker = True
                elif kind == "progress":
                    try:
                        control.publish(*message[1:])
                    except Exception:  # noqa: BLE001 - progress is best effort
                        log.exception("progress callback failed")
                elif kind == "done":
                    _, value, lists, info = message
                    for mine, theirs in zip(closure_lists(job, fallback), lists):
                        mine[:] = theirs
                    control.ran_on = _ran_on(info)
                    return value
                elif kind == "error":
                    _, error, info = message
                    control.ran_on = _ran_on(info)
                    raise error
            raise RuntimeError("The Ray replica ended the job without a result.")
        except (RequestCancelledError, asyncio.CancelledError) as error:
            raise Cancelled() from error
        except RayTaskError as error:  # the replica's code raised outside the job: not a dead replica
            if relay.cancelled:
                raise Cancelled() from error
            raise RuntimeError(f"the Ray replica failed: {error}") from None
        except RayError as error:
            if relay.cancelled:
                raise Cancelled() from error
            log.warning("replica %s stopped during a job: %s", info.get("replica", "?"), error)
            raise _replica_stopped(error) from None
        finally:
            relay.stop()
            control.running = False
            self.running.pop(id(control), None)
            if slot is not None and start is not None:
                slot.busy_log.append((start, time.monotonic()))
            if slot is not None and info:
                slot.info = {**slot.info, **info}
                self.last_info = slot.info

    def close(self) -> None:
        """Delete the deployment (the cluster, if this process started it, ends with the process)."""
        try:
            from ray import serve

            serve.delete(APP_NAME)
        except Exception:  # noqa: BLE001 - closing is best effort
            log.exception("could not delete the Ray Serve app")


def _replica_stopped(error: BaseException) -> UserError:
    from .worker import WorkerError

    stopped = WorkerError(REPLICA_STOPPED)
    stopped.add_note(f"[Ray] {type(error).__name__}: {error}")
    return stopped


def _ran_on(info: dict) -> dict[str, str]:
    """params.json's record of where the job ran (device, dtype, host and replica) and with what (the loaded
    scheduler's config, `VideoJob.ran_with`)."""
    ran_on = {key: str(info[key]) for key in ("device", "dtype", "host", "replica") if info.get(key) not in (None, "")}
    if isinstance(info.get("scheduler_config"), dict):
        ran_on["scheduler_config"] = info["scheduler_config"]
    return ran_on


class _CancelRelay:
    """While a job runs remotely: a Stop on the caller's control becomes the response's `cancel()`."""

    def __init__(self, control: JobControl, response):
        self.control, self.response = control, response
        self.cancelled = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ray-cancel-relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._done.wait(CANCEL_POLL_S):
            try:
                stop = self.control.cancel_event.is_set() or self.control.should_stop()
            except Exception:  # noqa: BLE001 - a broken probe must not end the relay
                log.exception("should_stop failed")
                continue
            if stop:
                self.control.cancel_event.set()
                self.cancelled = True
                self.response.cancel()
                return
