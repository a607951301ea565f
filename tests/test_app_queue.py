"""One GPU worker for every tab: queue order, live progress, a cancel that stops, OOM recovery."""

import json
import threading
import time

import pytest
import torch
from gradio_client.exceptions import AppError
from gradio_client.utils import Status

from tests.test_app_client import text2video_args


def watch(job, seen):
    """Collect (code, rank, progress) of a running job until it is done."""
    while not job.done():
        status = job.status()
        progress = status.progress_data[-1].progress if status.progress_data else None
        seen.append((status.code, status.rank, progress))
        time.sleep(0.02)


def unet_calls(studio):
    unet = studio.manager.components().unet
    calls = []
    handle = unet.register_forward_hook(lambda *_: calls.append((threading.get_ident(), time.monotonic())))
    return calls, handle


@pytest.mark.local_backend(reason="reads the one in-process worker and its UNet, or patches the engine here")
def test_three_concurrent_jobs_run_one_at_a_time_with_progress(app, client_factory):
    studio = app[0]
    worker = studio.pool.workers[0]
    since = time.monotonic()  # the spans of the jobs below (the log keeps only the last ones)
    jobs = [client_factory().submit(**text2video_args(steps=12, seed=i), api_name="/text2video") for i in range(3)]
    seen = [[] for _ in jobs]
    watchers = [threading.Thread(target=watch, args=(job, log)) for job, log in zip(jobs, seen)]
    for thread in watchers:
        thread.start()
    results = [job.result(timeout=120) for job in jobs]
    for thread in watchers:
        thread.join()
    assert all(result[3] == i for i, result in enumerate(results))
    spans = sorted(span for span in worker.busy_log if span[0] >= since)
    assert len(spans) == 3
    assert all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:]))  # never overlapping
    assert any(code == Status.IN_QUEUE for log in seen for code, _, _ in log)  # someone waited in line
    assert any(progress is not None and progress > 0 for log in seen for _, _, progress in log)


@pytest.mark.local_backend(reason="reads the one in-process worker and its UNet, or patches the engine here")
def test_cancel_stops_the_running_job_within_one_step_and_the_next_runs(app, client_factory):
    studio = app[0]
    worker = studio.pool.workers[0]
    calls, hook = unet_calls(studio)
    try:
        long_job = client_factory().submit(**text2video_args(steps=100, num_frames=8), api_name="/text2video")
        next_job = client_factory().submit(**text2video_args(steps=3, seed=7), api_name="/text2video")
        deadline = time.monotonic() + 60
        while len(calls) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        long_job.cancel()
        cancelled_at = time.monotonic()
        result = next_job.result(timeout=120)
        assert result[3] == 7
        (long_start, long_end), (next_start, _) = list(worker.busy_log)[-2:]  # spans: cancelled job, next job
        assert long_end <= next_start  # never two generations at once
        long_steps = [t for _, t in calls if long_start <= t <= long_end]
        steps_after_cancel = [t for t in long_steps if t > cancelled_at]
        assert len(steps_after_cancel) <= 1  # the step in flight, no more
        assert len(long_steps) < 50  # far from its 100+ steps
        assert long_job.status().code == Status.CANCELLED
        assert not studio.manager.lock.locked()
    finally:
        hook.remove()


@pytest.mark.local_backend(reason="reads the one in-process worker and its UNet, or patches the engine here")
def test_simulated_out_of_memory_is_a_clear_error_and_the_next_job_succeeds(app, client_factory, monkeypatch):
    from modules import engine

    real = engine.generate_text2video
    attempts = []

    def out_of_memory(*args, **kwargs):
        attempts.append(kwargs["chunk_size"])
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.00 GiB")

    monkeypatch.setattr(engine, "generate_text2video", out_of_memory)
    with pytest.raises(AppError, match="Out of GPU memory"):
        client_factory().predict(**text2video_args(chunk_size=4), api_name="/text2video")
    assert attempts == [4, 2]  # retried once with half the frames a pass ran

    def out_of_memory_once(*args, **kwargs):
        attempts.append(kwargs["chunk_size"])
        if len(attempts) == 3:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "generate_text2video", out_of_memory_once)
    video, _, params, _ = client_factory().predict(**text2video_args(chunk_size=4), api_name="/text2video")
    assert attempts[-2:] == [4, 2] and video
    # params.json records what ran, so that loading it repeats the run that made this video.
    record = json.load(open(params))
    assert record["request"]["chunk_size"] == 2 and record["chunk_size_used"] == 2
    assert record["chunk_size_requested"] == 4 and "chunks of 2" in record["notes"][0]

    monkeypatch.setattr(engine, "generate_text2video", real)
    assert client_factory().predict(**text2video_args(seed=1), api_name="/text2video")[3] == 1
