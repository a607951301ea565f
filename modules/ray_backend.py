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

Ray is imported here only, and only when this backend is chosen.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import pickle
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from .errors import UserError
from .job_control import Cancelled, JobControl
from .settings import Settings
from .worker import BUSY_LOG_KEPT

log = logging.getLogger(__name__)
T = TypeVar("T")

APP_NAME = "t2vz"
DEPLOYMENT = "StudioWorker"
REPLICA_STOPPED = "The worker running your job stopped; please retry."
CANCEL_POLL_S = 0.05
UPSCALE_DELAY_S, DOWNSCALE_DELAY_S = 5.0, 600.0  # autoscaling: up soon, down only after 10 idle minutes
CONNECT_TIMEOUT_S = 5.0  # the reachability check of a named cluster address
DEFAULT_CPU_REPLICAS = 2  # a CPU-only cluster without T2VZ_RAY_REPLICAS
ROOT = Path(__file__).resolve().parent.parent
# What a remote cluster's replicas need of this folder (a `working_dir` upload), and what not.
UPLOAD_EXCLUDES = [".venv", ".git", ".ci", "tests", "benchmarks", "assets", "**/__pycache__"]
ENV_PREFIXES = ("T2VZ_", "HF_", "OMP_NUM_THREADS", "GRADIO_ANALYTICS_ENABLED")
# Never in the replicas' runtime environment, which the cluster stores and its dashboard shows: tokens and the
# like. The replicas need none (Hub repos a visitor reads are fetched by this process with the visitor's token);
# a cluster that must read gated base models sets HF_TOKEN in its own hosts' environment.
SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "KEY")


def replica_env(environ=os.environ) -> dict[str, str]:
    """The variables the replicas get: this process's T2VZ_*, HF_* (endpoint, cache, offline...) and thread
    settings, without any secret (`SECRET_WORDS`)."""
    return {k: v for k, v in environ.items()
            if k.startswith(ENV_PREFIXES) and not any(word in k.upper() for word in SECRET_WORDS)}


class BackendUnavailable(UserError, RuntimeError):
    """The Ray cluster can't be reached or can't host the workers; the message says what to do."""


# ---------------------------------------------------------------------------- pickling a job
class _JobPickler:
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


def _closure_lists(*functions) -> list[list]:
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
            job, fallback, options = _JobPickler.loads(payload, control, self._get_studio)
        except Exception as error:  # noqa: BLE001 - e.g. a module this replica's code lacks
            yield ("error", portable_error(error), self.info())
            return
        yield ("started", self.info())

        def work():
            started = time.monotonic()
            try:
                value = self.worker.run(job, control, fallback=fallback, **options)
                ran = {**self.info(), **control.ran_on, "job_s": time.monotonic() - started}
                return ("done", value, _closure_lists(job, fallback), ran)
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


def _deployment(settings: Settings, replicas: int, gpus_each: float):
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
        self.address, replicas, gpus_each = _connect(settings)
        self.handle = _start(settings, replicas, gpus_each)
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
        payload = _JobPickler.dumps((job, fallback, options), control)
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
                    for mine, theirs in zip(_closure_lists(job, fallback), lists):
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


# ---------------------------------------------------------------------------- connecting
def _connect(settings: Settings) -> tuple[str, int, float]:
    """Join (or start) the cluster: (its address, how many replicas, GPUs per replica)."""
    try:
        import ray
    except ImportError as error:
        raise BackendUnavailable(
            "The Ray backend needs Ray: pip install -r requirements-ray.txt, or use --backend local."
        ) from error
    address = settings.ray_address or None
    if not ray.is_initialized():
        problem = _unreachable(address)
        if problem:  # Ray itself would retry for minutes
            raise BackendUnavailable(problem)
        env_vars = replica_env()
        if address is None:  # a local cluster: the replicas import this folder from where it is
            runtime_env = {"env_vars": {**env_vars, "PYTHONPATH": os.pathsep.join(
                filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}}
        else:  # a cluster elsewhere: the code travels
            runtime_env = {"working_dir": str(ROOT), "excludes": UPLOAD_EXCLUDES, "env_vars": env_vars}
        try:
            ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
                     log_to_driver=False, runtime_env=runtime_env)
        except Exception as error:  # noqa: BLE001 - ConnectionError, TimeoutError, RuntimeError...
            where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
            if "AuthToken" in str(error) or "Authentication" in type(error).__name__ or _auth_error(error):
                raise BackendUnavailable(
                    f"{where[0].upper()}{where[1:]} asks for its token: set RAY_AUTH_MODE=token, and the cluster's "
                    "token in RAY_AUTH_TOKEN or ~/.ray/auth_token, as on its hosts."
                ) from error
            raise BackendUnavailable(
                f"Could not reach {where} ({type(error).__name__}): start it with `ray start --head`, check "
                "--ray-address / T2VZ_RAY_ADDRESS, or use --backend local."
            ) from error
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    replicas = settings.ray_replicas or gpus or DEFAULT_CPU_REPLICAS
    gpus_each = 1 if gpus else 0
    if not gpus and replicas > resources.get("CPU", 0):
        raise BackendUnavailable(
            f"T2VZ_RAY_REPLICAS asks for {replicas} CPU replicas of one core each, but the Ray cluster has "
            f"{resources.get('CPU', 0):g} CPUs.")
    if settings.ray_max_replicas and settings.ray_max_replicas < replicas:
        raise BackendUnavailable(f"T2VZ_RAY_MAX_REPLICAS ({settings.ray_max_replicas}) is below the replicas to start "
                                 f"with ({replicas}).")
    if gpus and replicas > gpus:
        raise BackendUnavailable(
            f"T2VZ_RAY_REPLICAS asks for {replicas} replicas of one GPU each, but the Ray cluster has {gpus} GPUs."
        )
    context = ray.get_runtime_context()
    where = getattr(context, "gcs_address", None) or address or "local"
    return str(where), replicas, gpus_each


def _auth_error(error: BaseException) -> bool:
    """Whether `error` or what caused it is Ray's token authentication refusing this process."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if "InvalidAuthToken" in str(error) or type(error).__name__ == "AuthenticationError":
            return True
        error = error.__cause__ or error.__context__
    return False


def _unreachable(address: str | None) -> str | None:
    """Why the cluster at `address` can't be reached, as a sentence; None when its port answers (or none is named).

    `auto` and a local start are Ray's own quick checks; a host:port (or ray://host:port) is tried here
    with a short timeout.
    """
    if not address or address in ("auto", "local"):
        return None
    target = address.split("://", 1)[-1].rstrip("/")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return None
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            return None
    except OSError as error:
        why = error.strerror or type(error).__name__
        return (f"Could not reach the Ray cluster at {address} ({why}): start it with `ray start --head` there, "
                "check --ray-address / T2VZ_RAY_ADDRESS, or use --backend local.")


def _start(settings: Settings, replicas: int, gpus_each: float):
    from ray import serve

    try:
        serve.start(proxy_location="Disabled")  # no HTTP: the Gradio process is the only caller
        return serve.run(_deployment(settings, replicas, gpus_each), name=APP_NAME, route_prefix=None)
    except Exception as error:  # noqa: BLE001 - Serve's own failure, as a sentence
        raise BackendUnavailable(
            f"Could not start {replicas} Ray Serve worker replicas ({type(error).__name__}: {error})."
        ) from error
