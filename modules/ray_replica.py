"""The Ray backend's replica side: a job pickled to travel (its JobControl and Studio stay behind), the `StudioWorker`
deployment whose replicas run jobs and stream their progress back, and its Serve options."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import pickle
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from .job_control import JobControl
from .settings import Settings

log = logging.getLogger(__name__)

APP_NAME = "t2vz"
DEPLOYMENT = "StudioWorker"
UPSCALE_DELAY_S, DOWNSCALE_DELAY_S = 5.0, 600.0  # autoscaling: up soon, down only after 10 idle minutes
DEFAULT_CPU_REPLICAS = 2  # a CPU-only cluster without T2VZ_RAY_REPLICAS

# ---------------------------------------------------------------------------- pickling a job
class JobPickler:
    """cloudpickle with the caller's control and Studio left behind as names (`persistent_id`)."""

    @staticmethod
    def dumps(obj: Any, control: JobControl) -> bytes:
        from ray import cloudpickle  # Ray's own copy

        from .video_io import VideoClip

        class Pickler(cloudpickle.CloudPickler):
            def persistent_id(self, value):
                if value is control:
                    return "control"
                if type(value).__name__ == "Studio" and type(value).__module__ == "modules.studio":
                    return "studio"
                return None

            def reducer_override(self, value):
                if type(value) is VideoClip:  # a tuple of two that carries a third field: pickle all three
                    return VideoClip, (value[0], value[1], value.used)
                return super().reducer_override(value)

        buffer = io.BytesIO()
        Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
        return buffer.getvalue()

    @staticmethod
    def loads(data: bytes, control: JobControl, studio: Callable[[], Any]) -> Any:
        unpickler = pickle.Unpickler(io.BytesIO(data))

        def persistent_load(name):
            if name == "control":
                return control
            if name == "studio":
                return studio()
            raise pickle.UnpicklingError(f"unknown persistent id {name!r}")

        unpickler.persistent_load = persistent_load
        return unpickler.load()


def closure_lists(*functions) -> list[list]:
    """The lists the functions' closures hold (each once, in order): a job's records of what it did."""
    found: list[list] = []
    for function in functions:
        for cell in getattr(function, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            if isinstance(value, list) and not any(value is seen for seen in found):
                found.append(value)
    return found


# ---------------------------------------------------------------------------- the replica
class StudioWorkerReplica:
    """One Serve replica: one worker, its own model manager, one job at a time."""

    def __init__(self, settings: Settings):
        from .worker import Worker

        self.settings = replace(settings, backend="local")  # this replica is one local worker
        self.worker = Worker(self.settings)
        self.host = socket.gethostname()
        try:
            from ray import serve

            self.replica = serve.get_replica_context().replica_id.unique_id
        except Exception:  # noqa: BLE001 - outside Serve (a unit test): the process id names it
            self.replica = f"pid-{os.getpid()}"
        self._studio = None
        self._studio_lock = threading.Lock()
        self.last_cancel: dict = {}  # the step the last cancelled job was at when cancelled, and when it stopped

    def _get_studio(self):
        """A Studio of this replica's own, for jobs whose steps are Studio methods (control maps)."""
        with self._studio_lock:
            if self._studio is None:
                from .studio import Studio
                from .worker import WorkerPool

                self._studio = Studio(self.settings, pool=WorkerPool(self.settings))
            return self._studio

    def info(self) -> dict:
        manager = self.worker.loaded_manager
        return {
            "host": self.host,
            "replica": self.replica,
            "pid": os.getpid(),
            "device": str(manager.device) if manager is not None else "",
            "dtype": str(getattr(manager, "dtype", "")) if manager is not None else "",
            "resident": manager.resident() if manager is not None else {},
            "last_cancel": dict(self.last_cancel),
        }

    async def run(self, payload: bytes):
        """Stream ("started", info), ("progress", ...)*, then ("done", value, lists, info) or ("error", ...)."""
        from .zerogpu import portable_error

        loop = asyncio.get_running_loop()
        messages: asyncio.Queue = asyncio.Queue()
        control = JobControl()

        def progress(fraction: float, text: str) -> None:
            message = control.report_message(fraction, text)
            loop.call_soon_threadsafe(messages.put_nowait, message)

        control.progress = progress
        try:
            job, fallback, options = JobPickler.loads(payload, control, self._get_studio)
        except Exception as error:  # noqa: BLE001 - e.g. a module this replica's code lacks
            yield ("error", portable_error(error), self.info())
            return
        yield ("started", self.info())

        def work():
            started = time.monotonic()
            try:
                value = self.worker.run(job, control, fallback=fallback, **options)
                ran = {**self.info(), **control.ran_on, "job_s": time.monotonic() - started}
                return ("done", value, closure_lists(job, fallback), ran)
            except BaseException as error:  # noqa: BLE001 - every error goes back as a value
                return ("error", portable_error(error), {**self.info(), **control.ran_on})

        future = loop.run_in_executor(None, work)
        try:
            while True:
                getter = asyncio.ensure_future(messages.get())
                done, _ = await asyncio.wait({getter, future}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield getter.result()
                    continue
                getter.cancel()
                while not messages.empty():
                    yield messages.get_nowait()
                yield future.result()
                return
        except asyncio.CancelledError:
            at_cancel = _step(control)
            control.cancel()  # the worker thread stops at its next step
            await asyncio.shield(future)  # free within one step: the next job waits for this one
            self.last_cancel = {"step_at_cancel": at_cancel, "step_at_stop": _step(control)}
            raise


def _step(control: JobControl) -> int:
    return control.last_step.step if control.last_step is not None else 0


def deployment(settings: Settings, replicas: int, gpus_each: float):
    """The workers' deployment: `replicas` of them, or with T2VZ_RAY_MAX_REPLICAS above that, autoscaled.

    Autoscaling: one job per replica is the target (a replica runs one at a time); scale up after a
    few seconds of jobs waiting, down only after 10 minutes idle, since a new replica loads its
    weights again before its first job.
    """
    from ray import serve

    scaling = dict(num_replicas=replicas)
    if settings.ray_max_replicas > replicas:
        scaling = dict(autoscaling_config={
            "min_replicas": replicas, "initial_replicas": replicas, "max_replicas": settings.ray_max_replicas,
            "target_ongoing_requests": 1, "upscale_delay_s": UPSCALE_DELAY_S, "downscale_delay_s": DOWNSCALE_DELAY_S,
        })
    return serve.deployment(
        StudioWorkerReplica,
        name=DEPLOYMENT,
        **scaling,
        max_ongoing_requests=1,
        max_queued_requests=-1,
        ray_actor_options={"num_gpus": gpus_each, "num_cpus": 0 if gpus_each else 1},
        health_check_period_s=2,
        health_check_timeout_s=30,
        graceful_shutdown_timeout_s=5,
    ).bind(settings)
