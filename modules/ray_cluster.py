"""The Ray backend's cluster: connect to the address given (or start a local cluster), with the replicas' runtime
environment (the app's code and settings, never a token) and a sentence for every way it can fail."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from .errors import UserError
from .settings import Settings

from .ray_replica import APP_NAME, DEFAULT_CPU_REPLICAS, deployment

log = logging.getLogger(__name__)

class BackendUnavailable(UserError, RuntimeError):
    """The Ray cluster can't be reached or can't host the workers; the message says what to do."""

CONNECT_TIMEOUT_S = 5.0  # the reachability check of a named cluster address
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


# ---------------------------------------------------------------------------- connecting
def connect(settings: Settings) -> tuple[str, int, float]:
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


def start_serving(settings: Settings, replicas: int, gpus_each: float):
    from ray import serve

    try:
        serve.start(proxy_location="Disabled")  # no HTTP: the Gradio process is the only caller
        return serve.run(deployment(settings, replicas, gpus_each), name=APP_NAME, route_prefix=None)
    except Exception as error:  # noqa: BLE001 - Serve's own failure, as a sentence
        raise BackendUnavailable(
            f"Could not start {replicas} Ray Serve worker replicas ({type(error).__name__}: {error})."
        ) from error
