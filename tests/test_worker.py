"""The worker: one job per device at a time, cancel within a step, OOM recovery, pools, ZeroGPU."""

import sys
import threading
import time
import types

import pytest
import torch

from modules.settings import Settings
from modules.worker import Cancelled, JobControl, Worker, WorkerError, WorkerPool, run_on_gpu


@pytest.fixture
def settings(tmp_path):
    return Settings.from_env(preset="tiny", outputs_dir=str(tmp_path))


def stepping_job(steps, seconds_per_step, control, log):
    """A fake generation: `steps` steps, each reporting to control.step like the engine does."""

    def job(manager):
        for done in range(1, steps + 1):
            time.sleep(seconds_per_step)
            log.append(done)
            control.step(done, steps)
        return "finished"

    return job


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
    assert worker.run(lambda manager: "next", JobControl()) == "next"


def test_a_job_cancelled_while_waiting_never_runs(settings):
    worker = Worker(settings)
    worker.manager.lock.acquire()
    control = JobControl()
    control.cancel()
    try:
        with pytest.raises(Cancelled):
            worker.run(lambda manager: pytest.fail("must not run"), control)
    finally:
        worker.manager.lock.release()


def test_two_workers_on_one_device_never_overlap(settings):
    """The device lock is process-wide: even two Worker objects on one device take turns."""
    workers = [Worker(settings), Worker(settings)]
    spans = []

    def job(manager):
        start = time.monotonic()
        time.sleep(0.1)
        spans.append((start, time.monotonic()))

    threads = [threading.Thread(target=w.run, args=(job, JobControl())) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (a0, a1), (b0, b1) = sorted(spans)
    assert a1 <= b0


def test_out_of_memory_retries_with_fallback_then_next_job_runs(settings):
    worker = Worker(settings)
    worker.manager.controlnet("pose")

    def failing(manager):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    assert worker.run(failing, JobControl(), fallback=lambda manager: "smaller chunks") == "smaller chunks"
    assert worker.manager.resident()["controlnets"] == []  # extras were evicted to make room
    with pytest.raises(WorkerError, match="Out of GPU memory"):
        worker.run(failing, JobControl())
    with pytest.raises(WorkerError, match="even with smaller chunks"):
        worker.run(failing, JobControl(), fallback=failing)
    assert worker.run(lambda manager: "healthy", JobControl()) == "healthy"


def test_pool_of_two_simulated_devices_overlaps_two_jobs_and_queues_a_third(tmp_path):
    settings = Settings.from_env(preset="tiny", outputs_dir=str(tmp_path), devices=("cpu:0", "cpu:1"))
    pool = WorkerPool(settings)
    assert len(pool) == 2
    spans, guard = [], threading.Lock()

    def job(manager):
        start = time.monotonic()
        time.sleep(0.3)
        with guard:
            spans.append((start, time.monotonic(), str(manager.device)))

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


def test_zerogpu_wraps_jobs_when_spaces_is_importable(monkeypatch):
    calls = []
    stand_in = types.ModuleType("spaces")

    def gpu(duration):
        def decorate(fn):
            def wrapped():
                calls.append(duration)
                return fn()

            return wrapped

        return decorate

    stand_in.GPU = gpu
    monkeypatch.setitem(sys.modules, "spaces", stand_in)
    assert run_on_gpu(lambda: 42, duration_s=73.4) == 42
    assert calls == [73]
    monkeypatch.delitem(sys.modules, "spaces")
    monkeypatch.setattr("builtins.__import__", _no_spaces(__import__))
    assert run_on_gpu(lambda: 7, duration_s=10) == 7


def _no_spaces(real_import):
    def fake(name, *args, **kwargs):
        if name == "spaces":
            raise ImportError("no spaces here")
        return real_import(name, *args, **kwargs)

    return fake
