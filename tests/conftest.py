"""Test-wide setup: offline, no analytics, tiny components built once per session."""

import atexit
import gc
import importlib.util
import os
import shutil
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("OMP_NUM_THREADS", "2")
# Every gradio_client call opens an httpx client, and httpx's default SSL context reads certifi's whole CA bundle
# (40 ms of a core each time: 13 % of the suite's CPU, measured with py-spy). No test speaks HTTPS; with the system's
# hashed CA folder OpenSSL reads a certificate only when a handshake needs it.
if not (os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR")) and os.path.isdir("/etc/ssl/certs"):
    os.environ["SSL_CERT_DIR"] = "/etc/ssl/certs"
# A test run reads nothing an earlier run, or this machine's own use, left behind: each test process
# (each xdist worker) gets fresh, empty folders, removed at exit, for the Hugging Face cache (the
# real preset's tests fetch from the Hub stand-in into their own tmp_path caches) and for the cache
# of the CPU dtype probe that T2VZ_DTYPE=auto runs once (modules/dtype_probe.py; else ~/.cache).
_SCRATCH = tempfile.mkdtemp(prefix="t2vz-tests-")


@atexit.register
def _remove_scratch(owner: int = os.getpid()) -> None:
    if os.getpid() == owner:  # not in a forked child that exits through atexit
        shutil.rmtree(_SCRATCH, ignore_errors=True)


# gradio_client downloads every file through a new folder in the temp dir and leaves it there, empty (one per
# downloaded result: thousands in /tmp after a day of runs): this process's temp files go under the scratch.
# (Ray keeps /tmp/ray: on Linux it reads TMPDIR or uses /tmp, not tempfile's setting.)
tempfile.tempdir = os.path.join(_SCRATCH, "tmp")
os.makedirs(tempfile.tempdir)

os.environ["HF_HOME"] = os.path.join(_SCRATCH, "hf-home")
for _name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_ASSETS_CACHE", "HF_XET_CACHE", "TRANSFORMERS_CACHE"):
    os.environ.pop(_name, None)  # all follow HF_HOME
os.environ["T2VZ_DTYPE_PROBE_CACHE"] = os.path.join(_SCRATCH, "cpu_dtype_probe.json")
os.environ["T2VZ_TUNED_DIR"] = os.path.join(_SCRATCH, "tuned")  # Tune-A-Video models tuned by tests
# Gradio's uploads and result copies: one folder per test process, since an app that closes (or sweeps after
# its TTL) deletes the files it keeps there, which another process's app may hold under the same content hash.
os.environ["GRADIO_TEMP_DIR"] = os.path.join(_SCRATCH, "gradio")
# While this file exists, a Ray replica of the test cluster slows every step (tests/ray_faults.py).
os.environ["T2VZ_TEST_SLOW_STEPS_FLAG"] = os.path.join(_SCRATCH, "slow-steps")

import pytest  # noqa: E402

# Tests using these fixtures are `slow` wherever they are (`-m "not slow"` is the inner loop): the
# ZeroGPU scenario runs the app's ZeroGPU path through the real `spaces` package in a subprocess.
SLOW_FIXTURES = {"zerogpu_results"}
# Tests of the launched app (gradio_client, Chromium) are `app` tests. The gradio_client tests of
# BOTH_BACKENDS run twice, [local] and [ray] (the app on 2 Ray Serve replicas of a local cluster, one
# cluster for the run: the Ray tests share one xdist worker, `pytest_xdist_make_scheduler`); the others use the
# T2VZ_TEST_BACKEND app (local by default; ray moves the browser, docs and load tests there too).
# `local_backend` tests read the in-process worker or patch the engine here: they take the local app.
APP_FIXTURES = {"served", "client_factory", "app", "local_app", "ray_app"}
BOTH_BACKENDS = {"test_app_answers", "test_app_client", "test_app_engines", "test_app_tune", "test_app_uploads",
                 "test_app_video_endpoints"}
TEST_BACKEND = os.environ.get("T2VZ_TEST_BACKEND", "local")
if TEST_BACKEND not in ("local", "ray"):
    raise SystemExit(f"T2VZ_TEST_BACKEND={TEST_BACKEND!r}: use local or ray")
RAY_INSTALLED = importlib.util.find_spec("ray") is not None


def pytest_generate_tests(metafunc):
    if "backend" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("local_backend"):
        metafunc.parametrize("backend", ["local"])
    elif metafunc.module.__name__.rpartition(".")[2] in BOTH_BACKENDS and RAY_INSTALLED:
        metafunc.parametrize("backend", ["local", "ray"])


def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup` as xdist means it: tests that share an expensive set-up on one worker. xdist 3.8 marks a
    group by editing `item._nodeid`, which pytest 9 no longer reads (every test ran where it fell), so the
    groups are read here from the test ids: the Ray app's tests (`[ray]` in their ids), the ZeroGPU scenario's
    module, the public Space's module; any other test is a unit of its own, as with `--dist load`."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _xdist_group(nodeid) or nodeid

    return GroupScheduling(config, log)


def _xdist_group(nodeid: str) -> str | None:
    if "[ray]" in nodeid or "[ray-" in nodeid:
        return "ray"
    if nodeid.startswith("tests/test_zerogpu.py::"):
        return "zerogpu"
    if nodeid.startswith("tests/test_public_space.py::"):  # one launched public app; the last test reads the others'
        return "public"
    return None


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(config, items):
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if SLOW_FIXTURES & fixtures:
            item.add_marker(pytest.mark.slow)
        if APP_FIXTURES & fixtures:
            item.add_marker(pytest.mark.app)
    # The Ray tests first and together (in one process too): one cluster, up for as long as they run, and
    # under xdist the group (minutes of work) starts at once rather than last, while the other worker goes on.
    items[:] = sorted(items, key=lambda item: not _in_ray_group(item))


def pytest_collection_finish(session):
    """What collection imported (torch, diffusers, transformers, Gradio, Ray: about 700k objects) is kept out of
    the garbage collector's full passes: each one walked all of it, 0.6 s of a core, about 60 times per worker
    in a run. (The tests' own objects, models included, are collected as before.)"""
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session")
def tiny_parts():
    """One set of tiny SD parts (tokenizer, text encoder, UNet, VAE, ControlNet, IP2P UNet)."""
    from modules import tiny

    tokenizer = tiny.build_tokenizer()
    unet = tiny.build_unet(seed=1)
    return {
        "tokenizer": tokenizer,
        "text_encoder": tiny.build_text_encoder(tokenizer),
        "unet": unet,
        "vae": tiny.build_vae(),
        "controlnet": tiny.build_controlnet(unet, seed=2),
        "pix2pix_unet": tiny.build_unet(in_channels=8, seed=3),
    }


@pytest.fixture
def components(tiny_parts):
    """Components with a fresh DDIM scheduler."""
    from modules import tiny
    from modules.engine import Components

    p = tiny_parts
    return Components(p["tokenizer"], p["text_encoder"], p["unet"], p["vae"], tiny.build_scheduler())


@pytest.fixture(scope="session", autouse=True)
def one_thread_per_xdist_worker():
    """With several xdist workers (`-n 2` on this 2-core machine) each takes one core: more torch threads than
    cores make every op hand work to threads that wait for a core. (Subprocesses keep OMP_NUM_THREADS.)"""
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1 and len(os.sched_getaffinity(0)) <= 2:
        import torch

        torch.set_num_threads(1)
    yield


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module of tiny-model tests: their ops are too small to share, and with
    2 threads on 2 busy cores thread hand-offs cost 5-10x the work itself."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sliding_box_clip(folder, frames: int, height: int, width: int, step: int) -> str:
    """An mp4 of an orange box sliding right by `step` px a frame on black, at 8 fps: a clip with one clear motion."""
    import numpy as np

    from modules import video_io

    clip = np.zeros((frames, height, width, 3), np.uint8)
    for i in range(frames):
        clip[i, height // 4: 3 * height // 4, 4 + step * i: 28 + step * i] = (230, 120, 30)
    return str(video_io.write_mp4(clip, os.path.join(folder, "slide.mp4"), 8))


def launch_app(outputs_dir, **overrides):
    """The app with the tiny preset, launched on a free local port: (studio, demo, url)."""
    from app import create_app, launch_options
    from modules.settings import Settings

    overrides.setdefault("tuned_dir", tempfile.mkdtemp(prefix="tuned-", dir=_SCRATCH))  # each app its own models
    settings = Settings.from_env(preset="tiny", outputs_dir=str(outputs_dir), host="127.0.0.1", port=free_port(),
                                 **overrides)
    studio, demo = create_app(settings)
    demo.launch(**launch_options(settings, studio), prevent_thread_lock=True, quiet=True)
    return studio, demo, f"http://{settings.host}:{settings.port}/"


def start_local_ray() -> bool:
    """A local Ray cluster of 2 CPUs and 2 logical GPUs (2 replicas), unless one runs here already: whether this
    call started it. Its workers import this folder and run tests/ray_faults.py's hook at start."""
    import ray

    if ray.is_initialized():
        return False
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": root,
                                       "T2VZ_TUNED_DIR": os.environ["T2VZ_TUNED_DIR"],
                                       "T2VZ_TEST_SLOW_STEPS_FLAG": os.environ["T2VZ_TEST_SLOW_STEPS_FLAG"]},
                          "worker_process_setup_hook": "tests.ray_faults.install"})
    return True


def stop_local_ray() -> None:
    import ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="session")
def local_app(tmp_path_factory):
    """The app with the tiny preset and the local backend, launched once on a free port: (studio, demo, url)."""
    studio, demo, url = launch_app(tmp_path_factory.mktemp("outputs"), backend="local")
    yield studio, demo, url
    demo.close()


_ray_app: dict = {}  # the run's Ray-backed app while it is up: studio, demo, url, started (the cluster)


@pytest.fixture
def ray_app(tmp_path_factory):
    """The app with the tiny preset on the Ray backend: 2 Serve replicas on a local cluster, started for the
    first Ray test and stopped after the last one of the run's (contiguous) Ray group, since an idle cluster
    takes about a tenth of a core (`pytest_runtest_teardown`)."""
    pytest.importorskip("ray")
    if not _ray_app:
        started = start_local_ray()
        studio, demo, url = launch_app(tmp_path_factory.mktemp("outputs"), backend="ray")
        _ray_app.update(studio=studio, demo=demo, url=url, started=started)
    return _ray_app["studio"], _ray_app["demo"], _ray_app["url"]


def _stop_ray_app() -> None:
    if _ray_app:
        _ray_app["demo"].close()
        _ray_app["studio"].pool.close()
        if _ray_app["started"]:
            stop_local_ray()
        _ray_app.clear()


def _in_ray_group(item) -> bool:
    return _xdist_group(item.nodeid) == "ray"


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    if _ray_app and TEST_BACKEND != "ray" and (nextitem is None or not _in_ray_group(nextitem)):
        _stop_ray_app()


def pytest_sessionfinish(session):
    _stop_ray_app()


@pytest.fixture
def served(request):
    """The T2VZ_TEST_BACKEND app (local by default): (studio, demo, url)."""
    return request.getfixturevalue(f"{TEST_BACKEND}_app")


@pytest.fixture
def backend():
    """The backend of the app a test calls: [local] and [ray] for BOTH_BACKENDS, else T2VZ_TEST_BACKEND."""
    return TEST_BACKEND


@pytest.fixture
def app(request, backend):
    """(studio, demo, url) of the launched app on `backend`."""
    return request.getfixturevalue(f"{backend}_app")


@pytest.fixture
def client_factory(app, tmp_path):
    """New gradio_client Clients of `app` (one per job that may be cancelled: cancel is per session)."""
    from gradio_client import Client

    def make():
        return Client(app[2], analytics_enabled=False, verbose=False, download_files=str(tmp_path))

    return make


@pytest.fixture(scope="session")
def sample_videos(tmp_path_factory):
    """Uploads of odd sizes and rates, made with our own writer."""
    import numpy as np

    from modules import video_io

    folder = tmp_path_factory.mktemp("uploads")
    rng = np.random.default_rng(0)

    def clip(name, frames, height, width, fps, writer):
        x = np.linspace(0, 1, width)[None, None, :, None]
        t = np.arange(frames)[:, None, None, None] / frames
        base = ((np.sin(6 * x + 4 * t) * 0.5 + 0.5) * 255).astype(np.uint8)
        video = np.broadcast_to(base, (frames, height, width, 3)).copy()
        video[:, height // 3 : height // 2, width // 4 : width // 2] = rng.integers(0, 255, 3, dtype=np.uint8)
        return writer(video, folder / name, fps)

    return {
        "mp4": clip("odd.mp4", 30, 90, 150, 15, video_io.write_mp4),  # 2 s, 150x90, 15 fps
        "gif": clip("odd.gif", 12, 70, 100, 6, video_io.write_gif),  # 2 s, 100x70, 6 fps
    }


@pytest.fixture(scope="module")
def app_factory(tmp_path_factory):
    """Launch more tiny-preset apps with other settings (a small queue, a short TTL): (studio, demo, url).

    Each gets its own port, outputs folder and worker; all are closed after the module.
    """
    launched = []

    def launch(**overrides):
        studio, demo, url = launch_app(overrides.pop("outputs_dir", None) or tmp_path_factory.mktemp("outputs"),
                                       **overrides)
        launched.append(demo)
        return studio, demo, url

    yield launch
    for demo in launched:
        demo.close()
