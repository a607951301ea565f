"""The worker: one job per device at a time, cancel within a step, OOM recovery, pools, ZeroGPU.

A job loads (a function of the manager) and returns `sample`, which only samples.
"""

import subprocess
import sys
import threading
import time
import types
import weakref
from pathlib import Path

import pytest
import torch

from modules.job_control import Cancelled, JobControl
from modules.settings import Settings
from modules.worker import Worker, WorkerError, WorkerPool, retry_chunk_size
from modules.zerogpu import run_on_gpu

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def settings(tmp_path):
    return Settings.from_env(preset="tiny", outputs_dir=str(tmp_path))


def stepping_job(steps, seconds_per_step, control, log):
    """A fake generation: `steps` steps, each reporting to control.step like the engine does."""

    def job(manager):
        def sample():
            for done in range(1, steps + 1):
                time.sleep(seconds_per_step)
                log.append(done)
                control.step(done, steps)
            return "finished"

        return sample

    return job


def returning(value):
    """A job that loads nothing and samples `value`."""
    return lambda manager: lambda: value


def test_job_control_imports_neither_the_worker_nor_zerogpu():
    """No import cycle: worker and zerogpu both take JobControl and Cancelled from job_control."""
    import modules.job_control as job_control
    import modules.worker as worker
    import modules.zerogpu as zerogpu

    assert zerogpu.JobControl is job_control.JobControl
    assert (worker.JobControl, worker.Cancelled) == (job_control.JobControl, job_control.Cancelled)  # re-exported
    code = (
        "import sys, modules.job_control as j; first = sorted(m for m in sys.modules if m.startswith('modules'));"
        "import modules.zerogpu; print(first, 'modules.worker' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["['modules',", "'modules.job_control']", "False", "False"]


def test_cancel_stops_a_running_job_within_one_step_and_frees_the_device(settings):
    worker = Worker(settings)
    control, log = JobControl(), []
    outcome = {}

    def run():
        try:
            worker.run(stepping_job(100, 0.02, control, log), control)
        except Cancelled:
            outcome["cancelled_at"] = len(log)

    thread = threading.Thread(target=run)
    thread.start()
    while len(log) < 3:
        time.sleep(0.005)
    control.cancel()
    requested_at = len(log)
    thread.join(timeout=5)
    assert outcome["cancelled_at"] <= requested_at + 1
    assert not worker.manager.lock.locked()
    assert worker.run(returning("next"), JobControl()) == "next"


def test_a_job_cancelled_while_waiting_never_runs(settings):
    worker = Worker(settings)
    worker.manager.lock.acquire()
    control = JobControl()
    control.cancel()
    try:
        with pytest.raises(Cancelled):
            worker.run(lambda manager: pytest.fail("must not load"), control)
    finally:
        worker.manager.lock.release()


def test_a_job_cancelled_while_loading_never_samples(settings):
    worker, control = Worker(settings), JobControl()

    def job(manager):
        control.cancel()  # e.g. the user gave up during a long download
        return lambda: pytest.fail("must not sample")

    with pytest.raises(Cancelled):
        worker.run(job, control)
    assert not worker.manager.lock.locked()


def test_two_workers_on_one_device_never_overlap(settings):
    """The device lock is process-wide: even two Worker objects on one device take turns,
    loading included."""
    workers = [Worker(settings), Worker(settings)]
    spans = []

    def job(manager):
        start = time.monotonic()
        time.sleep(0.05)  # loading

        def sample():
            time.sleep(0.05)
            spans.append((start, time.monotonic()))

        return sample

    threads = [threading.Thread(target=w.run, args=(job, JobControl())) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (a0, a1), (b0, b1) = sorted(spans)
    assert a1 <= b0


def out_of_memory(manager):
    def sample():
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    return sample


def test_out_of_memory_retries_with_fallback_then_next_job_runs(settings):
    worker = Worker(settings)
    made_room = []
    worker.manager.make_room = lambda: made_room.append(True)  # the manager's LRU eviction
    progress = []
    control = JobControl(progress=lambda fraction, text: progress.append(text))

    assert worker.run(out_of_memory, control, fallback=returning("smaller chunks")) == "smaller chunks"
    assert made_room == [True]  # room made once, before the retry
    assert "out of memory: retrying with smaller chunks" in progress
    with pytest.raises(WorkerError, match="Out of GPU memory"):
        worker.run(out_of_memory, JobControl())
    with pytest.raises(WorkerError, match="even with smaller chunks"):
        worker.run(out_of_memory, JobControl(), fallback=out_of_memory)
    assert worker.run(returning("healthy"), JobControl()) == "healthy"
    assert not worker.manager.lock.locked()


def test_out_of_memory_without_make_room_evicts_every_extra(settings):
    """Before the manager had `make_room`, the retry evicted every extra model."""
    worker = Worker(settings)
    evicted = []
    worker._manager = types.SimpleNamespace(  # a manager without make_room
        lock=threading.Lock(), device="cpu", evict=evicted.append
    )
    assert worker.run(out_of_memory, JobControl(), fallback=returning("ok")) == "ok"
    assert evicted == ["all-extras"]


def test_out_of_memory_retry_starts_after_the_failed_attempt_was_freed(settings):
    """The retry runs outside the except block: the first attempt's objects are gone by then."""
    worker = Worker(settings)
    worker.manager.make_room = lambda: None
    refs = []

    class Activations:  # stands for the tensors a failed sampling step held
        pass

    def failing(manager):
        def sample():
            activations = Activations()
            refs.append(weakref.ref(activations))
            raise torch.OutOfMemoryError("CUDA out of memory.")

        return sample

    def fallback(manager):
        alive_while_loading = refs[0]() is not None

        def sample():
            return alive_while_loading, refs[0]() is not None

        return sample

    assert worker.run(failing, JobControl(), fallback=fallback) == (False, False)


def test_other_errors_propagate_unchanged(settings):
    from modules.errors import UserError

    class BadInput(UserError):
        pass

    worker = Worker(settings)

    def job(manager):
        def sample():
            raise BadInput("The clip has no frames.")

        return sample

    with pytest.raises(BadInput, match="The clip has no frames."):
        worker.run(job, JobControl())
    assert worker.run(returning("healthy"), JobControl()) == "healthy"


def test_a_failing_device_release_still_frees_the_worker(settings, monkeypatch):
    """With CPU offload, moving the models off the device after a job may fail (a driver error): the device lock
    is released all the same, so the next job runs instead of waiting forever."""
    from dataclasses import replace

    worker = Worker(replace(settings, cpu_offload=True))

    def broken_release():
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(worker.manager, "release_device", broken_release)
    with pytest.raises(RuntimeError, match="illegal memory access"):
        worker.run(returning("first"), JobControl())
    monkeypatch.undo()
    finished = []
    thread = threading.Thread(target=lambda: finished.append(worker.run(returning("next"), JobControl())), daemon=True)
    thread.start()
    thread.join(10)
    assert finished == ["next"]


def test_the_busy_log_keeps_only_the_last_jobs(settings):
    from modules.worker import BUSY_LOG_KEPT

    worker = Worker(settings)
    for _ in range(BUSY_LOG_KEPT + 5):
        worker.run(returning(None), JobControl())
    assert len(worker.busy_log) == BUSY_LOG_KEPT


def test_pool_of_two_simulated_devices_overlaps_two_jobs_and_queues_a_third(tmp_path):
    settings = Settings.from_env(preset="tiny", outputs_dir=str(tmp_path), devices=("cpu:0", "cpu:1"))
    pool = WorkerPool(settings)
    assert len(pool) == 2
    spans, guard = [], threading.Lock()

    def job(manager):
        start = time.monotonic()

        def sample():
            time.sleep(0.3)
            with guard:
                spans.append((start, time.monotonic(), str(manager.device)))

        return sample

    threads = [threading.Thread(target=pool.run, args=(job, JobControl())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spans.sort()
    (a0, a1, _), (b0, b1, _), (c0, c1, _) = spans
    assert b0 < a1  # the first two overlap
    assert c0 >= min(a1, b1) - 0.01  # the third waited for a free worker
    assert {device for *_, device in spans} == {"cpu:0", "cpu:1"}


def test_each_job_learns_the_device_and_dtype_it_ran_on(tmp_path):
    """On several devices the pool's `manager` is the first one's; `control.ran_on` is the job's own."""
    settings = Settings.from_env(preset="tiny", outputs_dir=str(tmp_path), devices=("cpu:0", "cpu:1"))
    pool = WorkerPool(settings)
    pool.workers[1].manager.dtype = torch.bfloat16  # the second device runs another dtype
    both_running = threading.Barrier(2)

    def job(manager):
        def sample():
            both_running.wait(timeout=10)  # two jobs at once: each worker takes one
            return {"device": str(manager.device), "dtype": str(manager.dtype)}

        return sample

    controls, results = [JobControl(), JobControl()], [None, None]

    def run(index):
        results[index] = pool.run(job, controls[index])

    threads = [threading.Thread(target=run, args=(index,)) for index in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [control.ran_on for control in controls] == results
    assert sorted(map(tuple, (r.values() for r in results))) == [("cpu:0", "torch.float32"), ("cpu:1", "torch.bfloat16")]


def test_manager_is_made_once_when_first_asked_from_several_threads(settings, monkeypatch):
    """The first page view (status line) and the first job may ask at once: one manager, loaded once."""
    made = []

    class SlowManager:
        def __init__(self, settings, device=None):
            time.sleep(0.2)  # e.g. the CPU dtype probe
            made.append(self)

    monkeypatch.setattr("modules.models.ModelManager", SlowManager)
    worker, got = Worker(settings), []
    ready = threading.Barrier(4)

    def ask():
        ready.wait(timeout=10)
        got.append(worker.manager)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 1
    assert len(got) == 4 and all(manager is made[0] for manager in got)


def test_managers_of_two_workers_are_made_independently(tmp_path, monkeypatch):
    """One device's manager being made does not hold up another device's (a lock per worker)."""
    settings = Settings.from_env(preset="tiny", outputs_dir=str(tmp_path), devices=("cpu:0", "cpu:1"))
    both_started = threading.Barrier(2)

    class MeetingManager:
        def __init__(self, settings, device=None):
            both_started.wait(timeout=5)  # BrokenBarrierError unless both are being made at once
            self.device = device

    monkeypatch.setattr("modules.models.ModelManager", MeetingManager)
    pool, devices = WorkerPool(settings), []
    threads = [threading.Thread(target=lambda w=w: devices.append(w.manager.device)) for w in pool.workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(devices) == ["cpu:0", "cpu:1"]


@pytest.mark.parametrize(
    "chunk_size, num_frames, min_chunk, expected",
    [
        (8, 16, 2, 4),
        (8, 8, 2, 4),
        (16, 8, 2, 4),  # a chunk larger than the clip: halve the frames a pass really runs
        (64, 8, 2, 4),
        (4, 16, 2, 2),
        (3, 16, 2, None),  # 1 frame: below the anchor and one more
        (2, 16, 2, None),
        (8, 3, 2, None),  # 3 frames a pass: half is 1
        (8, 1, 2, None),
        (8, 0, 2, None),
        (None, 16, 2, None),  # the job has no chunks
        (8, 16, 4, 4),
        (6, 16, 4, None),
    ],
)
def test_retry_chunk_size_halves_the_frames_a_pass_runs(chunk_size, num_frames, min_chunk, expected):
    assert retry_chunk_size(chunk_size, num_frames, min_chunk) == expected
    if expected is not None:
        assert expected < min(chunk_size, num_frames)  # the retry never repeats the failed job


def fake_spaces(zero_gpu: bool, calls: list):
    """An in-process stand-in for `spaces`: GPU(duration=...) wraps, evaluating a callable
    duration on the call's arguments as spaces' `static_duration` does."""
    stand_in = types.ModuleType("spaces")
    stand_in.config = types.SimpleNamespace(Config=types.SimpleNamespace(zero_gpu=zero_gpu))

    def gpu(duration=None):
        def decorate(fn):
            def wrapped(*args):
                calls.append(duration(*args) if callable(duration) else duration)
                return fn(*args)

            return wrapped

        return decorate

    stand_in.GPU = gpu
    return stand_in


def test_zerogpu_wraps_only_sampling_when_spaces_is_on_zerogpu(settings, monkeypatch):
    calls, order = [], []
    monkeypatch.setitem(sys.modules, "spaces", fake_spaces(True, calls))
    assert run_on_gpu(lambda: 42, JobControl(), duration_s=73.4) == 42
    assert calls == [74]  # rounded up

    def job(manager):
        order.append(("load", len(calls)))
        return lambda: order.append(("sample", len(calls))) or "done"

    assert Worker(settings).run(job, JobControl(), estimate_s=500) == "done"
    assert calls == [74, 300]  # capped
    assert order == [("load", 1), ("sample", 2)]  # loading ran before (outside) the GPU call


def test_zerogpu_not_used_off_zerogpu_or_without_spaces(monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "spaces", fake_spaces(False, calls))
    assert run_on_gpu(lambda: 5, JobControl(), duration_s=10) == 5
    assert calls == []  # spaces present but not on ZeroGPU: called directly
    monkeypatch.delitem(sys.modules, "spaces")
    monkeypatch.setattr("builtins.__import__", _no_spaces(__import__))
    assert run_on_gpu(lambda: 7, JobControl(), duration_s=10) == 7


def _no_spaces(real_import):
    def fake(name, *args, **kwargs):
        if name == "spaces":
            raise ImportError("no spaces here")
        return real_import(name, *args, **kwargs)

    return fake


def test_a_job_that_needs_no_gpu_never_asks_zerogpu(settings, monkeypatch):
    """Edge maps and drawn skeletons are CPU work: sampled here, under the device lock, as usual."""
    calls = []
    monkeypatch.setitem(sys.modules, "spaces", fake_spaces(True, calls))
    worker, pool = Worker(settings), WorkerPool(settings)

    def cpu_job(manager):
        return lambda: ("edges", worker.manager.lock.locked())

    progress = []
    control = JobControl(progress=lambda fraction, text: progress.append(text))
    assert worker.run(cpu_job, control, needs_gpu=False, estimate_s=5) == ("edges", True)
    assert pool.run(cpu_job, JobControl(), needs_gpu=False) == ("edges", True)
    assert calls == []  # no ZeroGPU slot asked for
    assert control.ran_on["device"] == "cpu"

    log = []
    cancelled = JobControl()
    cancelled.progress = lambda fraction, text: cancelled.cancel() if len(log) >= 3 else None
    with pytest.raises(Cancelled):
        worker.run(stepping_job(100, 0, cancelled, log), cancelled, needs_gpu=False)
    assert log == [1, 2, 3, 4] and calls == []  # cancelled at step 3's report, stopped at step 4's check
    assert not worker.manager.lock.locked()

    assert worker.run(cpu_job, JobControl(), estimate_s=5) == ("edges", True)
    assert pool.run(cpu_job, JobControl(), needs_gpu=True, estimate_s=7) == ("edges", True)
    assert calls == [5, 7]  # the default, and needs_gpu=True, go through spaces.GPU
