"""The Ray backend for real: a local Ray cluster (2 logical GPUs) with 2 Serve replicas on the tiny preset.

One app on `--backend ray` is launched for the module (a cluster costs ~15 s to start); its tests
drive it through gradio_client as the page would.
"""

import json
import os
import signal
import threading
import time

import pytest

ray = pytest.importorskip("ray")

from gradio_client.exceptions import AppError  # noqa: E402
from gradio_client.utils import Status  # noqa: E402

from tests.test_app_client import text2video_args  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_served(tmp_path_factory):
    """(studio, demo, url) of one tiny-preset app whose workers are 2 Ray Serve replicas."""
    from app import create_app, launch_options
    from modules.settings import Settings
    from tests.conftest import free_port

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                                           "PYTHONPATH": os.path.dirname(os.path.dirname(__file__))}})
    settings = Settings.from_env(preset="tiny", outputs_dir=str(tmp_path_factory.mktemp("outputs")),
                                 host="127.0.0.1", port=free_port(), backend="ray")
    studio, demo = create_app(settings)
    demo.launch(**launch_options(settings, studio), prevent_thread_lock=True, quiet=True)
    yield studio, demo, f"http://{settings.host}:{settings.port}/"
    demo.close()
    studio.pool.close()
    if started_here:
        from ray import serve

        serve.shutdown()
        ray.shutdown()


@pytest.fixture
def client(ray_served, tmp_path):
    from gradio_client import Client

    def make():
        return Client(ray_served[2], analytics_enabled=False, verbose=False, download_files=str(tmp_path))

    return make


def test_four_clients_at_once_all_get_videos_from_both_replicas(ray_served, client):
    studio = ray_served[0]
    assert len(studio.pool) == 2
    jobs = [client().submit(**text2video_args(steps=4, seed=i), api_name="/text2video") for i in range(4)]
    progress = []

    def watch(job):
        while not job.done():
            status = job.status()
            if status.progress_data:
                progress.append(status.progress_data[-1].progress)
            time.sleep(0.02)

    watchers = [threading.Thread(target=watch, args=(job,)) for job in jobs]
    for thread in watchers:
        thread.start()
    results = [job.result(timeout=120) for job in jobs]
    for thread in watchers:
        thread.join()
    assert [result[3] for result in results] == [0, 1, 2, 3]
    records = [json.load(open(result[2])) for result in results]
    assert all(os.path.getsize(result[0]["video"] if isinstance(result[0], dict) else result[0]) > 0
               for result in results)
    replicas = {record["replica"] for record in records}
    assert len(replicas) == 2, records  # both replicas served some
    assert all(record["host"] for record in records)
    assert any(p is not None and p > 0 for p in progress)  # the replicas' steps reached the page
    assert "workers 2" in studio_status(studio)


def studio_status(studio):
    from modules.ui.common import status_line

    return status_line(studio)


def test_cancel_frees_the_replica_within_a_step(ray_served, client):
    studio = ray_served[0]
    long_job = client().submit(**text2video_args(steps=100, num_frames=8), api_name="/text2video")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = long_job.status()
        if status.progress_data and "step 3 of" in (status.progress_data[-1].desc or ""):
            break
        time.sleep(0.02)
    replica = next(iter(studio.pool.running.values()))["replica"]
    slot = studio.pool._slots[replica]
    before = len(slot.busy_log)
    long_job.cancel()
    cancelled_at = time.monotonic()
    while len(slot.busy_log) == before and time.monotonic() < cancelled_at + 30:
        time.sleep(0.01)
    freed_after = time.monotonic() - cancelled_at
    # Two jobs at once now: both replicas take one, so the cancelled job's replica is free again.
    jobs = [client().submit(**text2video_args(steps=3, seed=10 + i), api_name="/text2video") for i in range(2)]
    records = [json.load(open(job.result(timeout=60)[2])) for job in jobs]
    assert replica in {record["replica"] for record in records}
    assert long_job.status().code == Status.CANCELLED
    assert freed_after < 5, freed_after  # a step of this job is well under a second


def test_a_killed_replica_fails_its_job_with_a_sentence_and_the_next_job_succeeds(ray_served, client):
    studio = ray_served[0]
    doomed = client().submit(**text2video_args(steps=100, num_frames=8), api_name="/text2video")
    deadline = time.monotonic() + 60
    while not studio.pool.running and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)  # a few steps in
    info = next(iter(studio.pool.running.values()))
    os.kill(info["pid"], signal.SIGKILL)
    with pytest.raises(AppError, match="The worker running your job stopped; please retry."):
        doomed.result(timeout=60)
    result = client().predict(**text2video_args(steps=3, seed=5), api_name="/text2video")
    assert result[3] == 5
