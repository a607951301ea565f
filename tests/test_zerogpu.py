"""ZeroGPU with the real `spaces` package (0.51.3) in ZeroGPU mode: each sample runs in a forked child.

The scenarios run in a subprocess (this file run as a script), because importing `spaces` with
SPACES_ZERO_GPU=true patches torch for the whole process. There, `spaces` runs its real code
path (`spaces/zero/wrappers.py::regular_function_wrapper`: schedule, fork a `Worker` with
multiprocessing's "fork" context, pickle arguments in and `OkResult` out, reuse an idle worker,
release) against a stub of the ZeroGPU device API served on 127.0.0.1 (`/schedule`, `/allow`,
`/release`, `/startup-report`; see `spaces/zero/api.py::APIClient`). Only the two steps of the
child's `worker_init` that need a real GPU are stubbed: `spaces.zero.torch.init` (sets
CUDA_VISIBLE_DEVICES and touches CUDA) and `spaces.zero.torch.move` (copies the registered
weights to the GPU). The stub answers `idle: true`, so `spaces` would reuse a worker if one
were left alive.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCENARIO_TIMEOUT_S = 300


# ------------------------------------------------------------------------------ pytest side
@pytest.fixture(scope="module")
def zerogpu_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("zerogpu") / "results.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    env.setdefault("OMP_NUM_THREADS", "2")
    proc = subprocess.run(
        [sys.executable, __file__, str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SCENARIO_TIMEOUT_S,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-6000:]}"
    results = json.loads(out.read_text())
    failed = {name: r["crashed"] for name, r in results.items() if isinstance(r, dict) and "crashed" in r}
    assert not failed, failed
    return results


def test_zerogpu_decorates_its_gpu_function_at_import(zerogpu_results):
    assert zerogpu_results["setup"]["on_zerogpu"] is True
    assert zerogpu_results["setup"]["entry_decorated_before_launch"] is True


def test_zerogpu_sampling_result_comes_back_from_a_forked_child(zerogpu_results):
    r = zerogpu_results["result"]
    assert r["sampled_in"] != r["parent"]  # sampled in a child process...
    assert r["max_abs_diff"] == 0.0  # ...with the model the parent built: same output
    assert r["shape"] == [1, 4, 8, 8] and r["dtype"] == "float32"


def test_zerogpu_loading_runs_in_the_parent(zerogpu_results):
    r = zerogpu_results["result"]
    assert r["loaded_in"] == r["parent"]


def test_zerogpu_cache_filled_in_the_child_is_lost_in_the_parent(zerogpu_results):
    r = zerogpu_results["result"]
    assert r["child_cache_keys_in_child"] == ["embedding"]
    assert r["child_cache_keys_in_parent"] == []  # the fork model: the child's memory is its own


def test_zerogpu_every_call_forks_a_fresh_child_that_sees_new_parent_state(zerogpu_results):
    r = zerogpu_results["fresh"]
    assert len(set(r["children"])) == 2 and r["parent"] not in r["children"]
    assert r["first_child_alive_after_call"] is False  # ended: spaces can't reuse it
    assert r["second_saw"] == "loaded after the first call"
    # worker_init's /allow came from those very children
    assert r["allowed_pids"][-10:] == r["children"] + r["back_to_back"]
    # Calls in a row never reach a worker that is ending ("GPU task aborted"): each forks anew.
    assert len(set(r["back_to_back"])) == 8 and not set(r["back_to_back"]) & {*r["children"], r["parent"]}


def test_zerogpu_a_reused_worker_that_never_saw_the_call_is_replaced(zerogpu_results):
    r = zerogpu_results["stale"]
    assert r["lingering_alive_before"] is True
    assert r["fresh"] not in (r["lingering"], r["parent"])
    assert r["lingering_alive_after"] is False
    assert r["seconds"] < 10


def test_zerogpu_cancel_from_the_parent_stops_the_child_within_one_step(zerogpu_results):
    r = zerogpu_results["cancel"]
    assert r["outcome"] == "Cancelled"
    assert r["steps_reported_at_cancel"] >= 3
    assert r["last_step_reported"] <= r["steps_reported_at_cancel"] + 1
    assert r["seconds_to_stop"] < 3.0  # a step is 0.1 s; the rest is the child's exit and release
    assert r["child_alive_after"] is False


def test_zerogpu_should_stop_turning_true_cancels_and_runs_only_in_the_parent(zerogpu_results):
    r = zerogpu_results["should_stop"]
    assert r["outcome"] == "Cancelled"
    assert r["last_step_reported"] <= r["steps_reported_at_stop"] + 1
    assert r["cancel_event_set_in_parent"] is True
    assert r["should_stop_called_in"] == [r["parent"]]  # never in the child


def test_zerogpu_progress_from_the_child_reaches_the_parent_callback(zerogpu_results):
    r = zerogpu_results["cancel"]
    first = r["progress"][0]
    assert first["text"] == "step 1 of 200" and abs(first["fraction"] - 1 / 200) < 1e-9
    assert set(r["progress_received_in"]) == {r["parent"]}
    # The parent's control knows where the child stopped: Stop's message names the step.
    assert r["stopped_message"] == f"Stopped after step {r['last_step_reported']} of 200."


def test_zerogpu_user_error_in_the_child_reaches_the_parent_with_its_message(zerogpu_results):
    r = zerogpu_results["errors"]
    assert r["user_error"] == {"type": "VideoError", "message": "The clip is unreadable: try another file."}
    assert r["user_error_note_names_child"] is True
    # An exception that can't be unpickled (custom __init__) arrives as a stand-in with its text.
    assert r["unpicklable"] == {"type": "RuntimeError", "message": "NeedsTwo: left right"}


def test_zerogpu_out_of_memory_in_the_child_retries_with_the_fallback(zerogpu_results):
    r = zerogpu_results["oom"]
    assert r["result"] == "smaller chunks"
    assert "out of memory: retrying with smaller chunks" in r["progress"]
    assert r["schedules"] == 2


def test_zerogpu_a_job_that_needs_no_gpu_samples_in_the_parent_without_a_slot(zerogpu_results):
    r = zerogpu_results["cpu_only"]
    assert r["cpu_sampled_in"] == r["parent"] and r["cpu_schedules"] == 0  # no ZeroGPU slot asked for
    assert r["cpu_progress"] == ["step 1 of 2", "step 2 of 2", "decoding the frames"] and r["cpu_ran_on"] == "cpu"
    assert r["gpu_sampled_in"] != r["parent"] and r["gpu_schedules"] == 1  # the default still forks


def test_zerogpu_duration_covers_sampling_only(zerogpu_results):
    r = zerogpu_results["duration"]
    assert r["durations"] == [43, 300]  # estimate rounded up; capped at 300
    # A job that says how to ask for less (training) is refused past the limit instead, before loading.
    assert r["refused"] == ("UserError: This job needs about 17 min of GPU time, more than the 5 min one job may "
                            "have on this Space (ZeroGPU): ask for fewer training steps or frames."), r["refused"]
    assert not r["refused_loaded"] and r["refused_schedules"] == 0
    assert r["loading_seconds"] >= 1.0  # the slow "download" ran before /schedule was called
    assert r["load_ended_before_schedule"] is True


def test_zerogpu_our_exceptions_survive_pickling():
    import torch

    from modules.annotators import AnnotatorError
    from modules.engine.schedule import ScheduleError
    from modules.errors import UserError
    from modules.job_control import Cancelled
    from modules.models import ModelLoadError
    from modules.request_types import RequestError
    from modules.video_io import VideoError
    from modules.worker import WorkerError
    from modules.zerogpu import portable_error

    kinds = [Cancelled, WorkerError, UserError, RequestError, VideoError, AnnotatorError, ModelLoadError]
    kinds += [ScheduleError, torch.OutOfMemoryError]
    for kind in kinds:
        error = portable_error(kind("what to change"))
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is kind and str(back) == "what to change"
        assert "ZeroGPU worker process" in back.__notes__[0]


def test_zerogpu_unpicklable_exceptions_become_stand_ins_with_their_message():
    from modules.errors import UserError
    from modules.zerogpu import portable_error

    class NeedsTwo(UserError):
        def __init__(self, a, b):
            super().__init__(f"{a} and {b}")

    class Holds(RuntimeError):
        def __init__(self, message):
            super().__init__(message)
            self.lock = threading.Lock()  # can't be pickled

    back = pickle.loads(pickle.dumps(portable_error(NeedsTwo("this", "that"))))
    assert type(back) is UserError and str(back) == "this and that"
    back = pickle.loads(pickle.dumps(portable_error(Holds("CUDA out of memory"))))
    assert type(back) is RuntimeError and "out of memory" in str(back)


def test_zerogpu_off_zerogpu_the_real_spaces_package_runs_in_process():
    """Here (no SPACES_ZERO_GPU) spaces.GPU returns the function itself: nothing forks."""
    spaces = pytest.importorskip("spaces")
    from modules.job_control import JobControl
    from modules.zerogpu import run_on_gpu, zerogpu_spaces

    assert spaces.GPU(duration=10)(len) is len
    assert zerogpu_spaces() is None
    cache = {}
    assert run_on_gpu(lambda: cache.setdefault("pid", os.getpid()), JobControl(), 10) == os.getpid()
    assert cache == {"pid": os.getpid()}  # in-process, the cache stays


# ---------------------------------------------------------------------- the subprocess side
class StubDeviceAPI:
    """The ZeroGPU device API as `spaces/zero/api.py::APIClient` calls it, answering at once."""

    def __init__(self):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlparse

        self.schedules, self.allowed_pids, self.releases = [], [], []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                url = urlparse(self.path)
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                body = b""
                if url.path == "/schedule":
                    stub.schedules.append({"time": time.monotonic(), **params})
                    token = f"token-{len(stub.schedules)}"
                    body = json.dumps({"idle": True, "nvidiaIndex": 0, "nvidiaUUID": "GPU-stub", "allowToken": token})
                    body = body.encode()
                elif url.path == "/allow":
                    stub.allowed_pids.append(int(params["pid"]))
                elif url.path == "/release":
                    stub.releases.append(params)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def alive(pid: int) -> bool:
    from modules.zerogpu import _alive

    return _alive(pid)


def run_in_thread(fn):
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as error:  # noqa: BLE001
            box["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    return thread, box


def outcome_of(box) -> str:
    return type(box["error"]).__name__ if "error" in box else f"returned {box.get('value')!r}"


CHILD_CACHE: dict = {}  # what a sampler might cache (e.g. prompt embeddings)
PARENT_STATE: dict = {}


def scenario_result(worker, parent):
    import numpy as np
    import torch

    from modules.job_control import JobControl

    made = {}

    def job(manager):
        made["loaded_in"] = os.getpid()
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.SiLU()).eval()
        x = torch.randn(1, 3, 8, 8)
        with torch.no_grad():
            made["expected"] = model(x).numpy()  # the parent runs torch before the fork too

        def sample():
            with torch.no_grad():
                frames = model(x).numpy()
            CHILD_CACHE["embedding"] = frames
            return {"frames": frames, "sampled_in": os.getpid(), "cache": sorted(CHILD_CACHE)}

        return sample

    got = worker.run(job, JobControl(), estimate_s=5)
    return {
        "parent": parent,
        "loaded_in": made["loaded_in"],
        "sampled_in": got["sampled_in"],
        "max_abs_diff": float(np.abs(got["frames"] - made["expected"]).max()),
        "shape": list(got["frames"].shape),
        "dtype": str(got["frames"].dtype),
        "child_cache_keys_in_child": got["cache"],
        "child_cache_keys_in_parent": sorted(CHILD_CACHE),
    }


def scenario_fresh(worker, parent, stub):
    from modules.job_control import JobControl

    def job(manager):
        return lambda: (os.getpid(), PARENT_STATE.get("model", "nothing"))

    first, _ = worker.run(job, JobControl(), estimate_s=5)
    first_alive = alive(first)
    PARENT_STATE["model"] = "loaded after the first call"
    second, saw = worker.run(job, JobControl(), estimate_s=5)
    back_to_back = [worker.run(job, JobControl(), estimate_s=5)[0] for _ in range(8)]
    return {
        "back_to_back": back_to_back,
        "parent": parent,
        "children": [first, second],
        "first_child_alive_after_call": first_alive,
        "second_saw": saw,
        "allowed_pids": list(stub.allowed_pids),
    }


def scenario_stale(worker, parent):
    """A worker left alive (as `spaces` alone would leave it) is reused for a call it never saw:
    it answers `stale`, is ended (killed, as it lingers), and the call runs in a fresh child."""
    from modules import zerogpu
    from modules.job_control import JobControl

    def job(manager):
        return lambda: os.getpid()

    real_end, real_wait, real_timeout = zerogpu._end_after_this_call, zerogpu._wait_for_exit, zerogpu.CHILD_EXIT_TIMEOUT_S
    zerogpu._end_after_this_call = lambda: None  # the child stays, waiting for another call
    zerogpu._wait_for_exit = lambda pid: None
    try:
        lingering = worker.run(job, JobControl(), estimate_s=5)
    finally:
        zerogpu._end_after_this_call, zerogpu._wait_for_exit = real_end, real_wait
    zerogpu.CHILD_EXIT_TIMEOUT_S = 1.0
    try:
        lingering_alive_before = alive(lingering)
        start = time.monotonic()
        fresh = worker.run(job, JobControl(), estimate_s=5)
        seconds = time.monotonic() - start
    finally:
        zerogpu.CHILD_EXIT_TIMEOUT_S = real_timeout
    return {
        "parent": parent,
        "lingering": lingering,
        "lingering_alive_before": lingering_alive_before,
        "fresh": fresh,
        "lingering_alive_after": alive(lingering),
        "seconds": seconds,
    }


def stepping_job(control, steps=200, seconds=0.1):
    def job(manager):
        def sample():
            for done in range(1, steps + 1):
                time.sleep(seconds)
                control.step(done, steps)
            return "finished"

        return sample

    return job


def wait_for(condition, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.005)


def scenario_cancel(worker, parent):
    from modules.job_control import JobControl

    progress = []
    control = JobControl(
        progress=lambda fraction, text: progress.append({"fraction": fraction, "text": text, "pid": os.getpid()})
    )
    thread, box = run_in_thread(lambda: worker.run(stepping_job(control), control, estimate_s=30))
    wait_for(lambda: len(progress) >= 3)
    at_cancel = len(progress)
    cancelled_at = time.monotonic()
    control.cancel()
    thread.join(timeout=30)
    stopped = time.monotonic() - cancelled_at
    child = worker_child_pids[-1] if worker_child_pids else None
    return {
        "parent": parent,
        "outcome": outcome_of(box),
        "steps_reported_at_cancel": at_cancel,
        "last_step_reported": len(progress),
        "seconds_to_stop": stopped,
        "progress": progress[:3],
        "progress_received_in": sorted({p["pid"] for p in progress}),
        "stopped_message": control.stopped_message(),
        "child_alive_after": alive(child) if child else None,
    }


worker_child_pids: list[int] = []


def scenario_should_stop(worker, parent, tmp):
    from modules.job_control import JobControl

    probe_log = Path(tmp) / "should_stop_pids.txt"
    stop = threading.Event()

    def should_stop():
        with open(probe_log, "a") as f:  # a file: a call in the child would show up here too
            f.write(f"{os.getpid()}\n")
        return stop.is_set()

    progress = []
    control = JobControl(should_stop=should_stop, progress=lambda fraction, text: progress.append(text))
    thread, box = run_in_thread(lambda: worker.run(stepping_job(control), control, estimate_s=30))
    wait_for(lambda: len(progress) >= 3)
    at_stop = len(progress)
    stop.set()
    thread.join(timeout=30)
    return {
        "parent": parent,
        "outcome": outcome_of(box),
        "steps_reported_at_stop": at_stop,
        "last_step_reported": len(progress),
        "cancel_event_set_in_parent": control.cancel_event.is_set(),
        "should_stop_called_in": sorted({int(line) for line in probe_log.read_text().split()}),
    }


class NeedsTwo(Exception):
    def __init__(self, a, b):
        super().__init__(f"{a} {b}")


def scenario_errors(worker, parent):
    from modules.video_io import VideoError
    from modules.job_control import JobControl

    def raising(error):
        def job(manager):
            def sample():
                raise error

            return sample

        return job

    result = {}
    try:
        worker.run(raising(VideoError("The clip is unreadable: try another file.")), JobControl(), estimate_s=5)
    except Exception as error:  # noqa: BLE001
        result["user_error"] = {"type": type(error).__name__, "message": str(error)}
        notes = getattr(error, "__notes__", [])
        pids = [int(n.split("process ", 1)[1].split("]", 1)[0]) for n in notes if "ZeroGPU worker process" in n]
        result["user_error_note_names_child"] = len(pids) == 1 and pids[0] != parent
    try:
        worker.run(raising(NeedsTwo("left", "right")), JobControl(), estimate_s=5)
    except Exception as error:  # noqa: BLE001
        result["unpicklable"] = {"type": type(error).__name__, "message": str(error)}
    return result


def scenario_oom(worker, stub):
    import torch

    from modules.job_control import JobControl

    def failing(manager):
        def sample():
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

        return sample

    progress = []
    control = JobControl(progress=lambda fraction, text: progress.append(text))
    before = len(stub.schedules)
    worker.manager.make_room = lambda: None
    result = worker.run(failing, control, fallback=lambda manager: lambda: "smaller chunks", estimate_s=5)
    return {"result": result, "progress": progress, "schedules": len(stub.schedules) - before}


def scenario_duration(worker, stub):
    from modules.job_control import JobControl

    times = {}

    def slow_loading(manager):
        start = time.monotonic()
        time.sleep(1.0)  # a download
        times["load"] = (start, time.monotonic())
        return lambda: "ok"

    before = len(stub.schedules)
    worker.run(slow_loading, JobControl(), estimate_s=42.3)
    worker.run(lambda manager: lambda: "ok", JobControl(), estimate_s=1000)
    schedules = stub.schedules[before:]
    loaded = []
    try:  # a training job past the limit: refused before it loads or asks for a GPU, not killed at 300 s
        worker.run(lambda manager: loaded.append(1), JobControl(), estimate_s=1000,
                   too_long_hint="ask for fewer training steps or frames")
        refused = None
    except Exception as error:  # noqa: BLE001 - the sentence travels back as text
        refused = f"{type(error).__name__}: {error}"
    return {
        "refused": refused,
        "refused_loaded": bool(loaded),
        "refused_schedules": len(stub.schedules) - before - len(schedules),
        "durations": [int(s["durationSeconds"]) for s in schedules],
        "loading_seconds": times["load"][1] - times["load"][0],
        "load_ended_before_schedule": times["load"][1] <= schedules[0]["time"],
    }


def scenario_cpu_only(worker, parent, stub):
    """Edge maps and drawn skeletons: `needs_gpu=False` samples here, asking the device API for nothing."""
    from modules.job_control import JobControl

    progress = []
    control = JobControl(progress=lambda fraction, text: progress.append(text))

    def job(manager):
        def sample():
            for done in (1, 2):
                control.step(done, 2)
            return os.getpid()

        return sample

    before = len(stub.schedules)
    cpu_pid = worker.run(job, control, needs_gpu=False, estimate_s=5)
    cpu_schedules = len(stub.schedules) - before
    gpu_pid = worker.run(lambda manager: lambda: os.getpid(), JobControl(), estimate_s=5)
    return {
        "parent": parent,
        "cpu_sampled_in": cpu_pid,
        "cpu_schedules": cpu_schedules,
        "cpu_progress": progress,
        "cpu_ran_on": control.ran_on.get("device"),
        "gpu_sampled_in": gpu_pid,
        "gpu_schedules": len(stub.schedules) - before - cpu_schedules,
    }


def main(out_path: str) -> None:
    import tempfile

    tmp = tempfile.mkdtemp(prefix="zerogpu-")
    stub = StubDeviceAPI()
    cgroup = Path(tmp) / "cgroup"
    cgroup.write_text("0::/stub.slice\n")
    os.environ.update(
        SPACES_ZERO_GPU="true",
        SPACES_ZERO_DEVICE_API_URL=stub.url,
        ZEROGPU_PROC_SELF_CGROUP_PATH=str(cgroup),
        ZEROGPU_OFFLOAD_DIR=str(Path(tmp) / "tensors"),
    )
    sys.path.insert(0, str(ROOT))

    import spaces  # first, as app.py does: it patches torch before anything touches CUDA
    import spaces.zero.decorator
    import spaces.zero.torch as zero_torch

    zero_torch.init = lambda nvidia_uuid: None  # no GPU here
    zero_torch.move = lambda callback=None: None

    from modules import zerogpu
    from modules.settings import Settings
    from modules.worker import Worker

    # Record each child's pid as the relay learns it (for the "child ended" checks).
    original_handle = zerogpu._Relay._handle

    def handle(self, message):
        if message[0] == "pid":
            worker_child_pids.append(message[1])
        original_handle(self, message)

    zerogpu._Relay._handle = handle

    results: dict = {
        "setup": {
            "on_zerogpu": zerogpu.zerogpu_spaces() is spaces,
            "entry_decorated_before_launch": zerogpu._gpu_entry in spaces.zero.decorator.decorated_cache,
        }
    }
    parent = os.getpid()
    worker = Worker(Settings.from_env(preset="tiny", outputs_dir=tmp, device="cpu"))
    scenarios = {
        "result": lambda: scenario_result(worker, parent),
        "fresh": lambda: scenario_fresh(worker, parent, stub),
        "stale": lambda: scenario_stale(worker, parent),
        "cancel": lambda: scenario_cancel(worker, parent),
        "should_stop": lambda: scenario_should_stop(worker, parent, tmp),
        "errors": lambda: scenario_errors(worker, parent),
        "oom": lambda: scenario_oom(worker, stub),
        "duration": lambda: scenario_duration(worker, stub),
        "cpu_only": lambda: scenario_cpu_only(worker, parent, stub),
    }
    for name, scenario in scenarios.items():
        try:
            results[name] = scenario()
        except BaseException as error:  # noqa: BLE001 - reported to the pytest side
            import traceback

            results[name] = {"crashed": "".join(traceback.format_exception(error))}
        print(name, "done", flush=True)
    results["releases"] = stub.releases
    Path(out_path).write_text(json.dumps(results, default=str))
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1])
