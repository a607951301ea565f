"""The Ray backend for real: a local Ray cluster (2 logical GPUs) with 2 Serve replicas on the tiny preset.

One app on `--backend ray` is launched for the module (a cluster costs ~15 s to start); its tests
drive it through gradio_client as the page would.
"""

import json
import re
import os
import signal
import threading
import time

import pytest

ray = pytest.importorskip("ray")

from gradio_client.exceptions import AppError  # noqa: E402
from gradio_client.utils import Status  # noqa: E402

from modules import video_io  # noqa: E402
from tests.test_app_client import text2video_args  # noqa: E402
from tests.test_app_video_endpoints import video_path  # noqa: E402


@pytest.fixture
def ray_served(ray_app):
    """(studio, demo, url) of the run's tiny-preset app whose workers are 2 Ray Serve replicas (tests/conftest.py)."""
    return ray_app


@pytest.fixture
def client(ray_served, tmp_path):
    from gradio_client import Client

    def make():
        return Client(ray_served[2], analytics_enabled=False, verbose=False, download_files=str(tmp_path))

    return make


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["ray"])  # "[ray]" in its id: the run's Ray tests go together (conftest.py)
def test_ray_backend_end_to_end(ray_served, client, sample_videos, backend):
    """One test, so that `-n 2` never starts a second cluster for a share of this module's tests."""
    four_clients_at_once_all_get_videos_from_both_replicas(ray_served, client)
    a_control_job_runs_its_detector_on_a_replica(ray_served, client, sample_videos)
    the_other_endpoints_answer_as_locally(client, sample_videos)
    out_of_memory_on_a_replica_retries_with_half_the_chunk_as_locally(client)
    a_model_is_tuned_and_run_on_replicas(ray_served, client, sample_videos)
    cancel_frees_the_replica_within_a_step(ray_served, client)
    a_killed_replica_fails_its_job_with_a_sentence_and_the_next_job_succeeds(ray_served, client)


LONG = dict(steps=100, num_frames=16)  # a job that takes a while on a replica


def four_clients_at_once_all_get_videos_from_both_replicas(ray_served, client):
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
    assert all(os.path.getsize(video_path(result[0])) > 0 for result in results)
    assert len({record["replica"] for record in records}) == 2, records  # both replicas served some
    assert all(record["host"] and record["device"] == "cpu" for record in records)
    assert any(p is not None and p > 0 for p in progress)  # the replicas' steps reached the page
    from modules.ui.common import server_details

    assert "workers 2" in server_details(studio)


def a_control_job_runs_its_detector_on_a_replica(ray_served, client, sample_videos):
    """The pose job's maps are made on the replica (with its own Studio), and come back with the frames."""
    from tests.test_app_video_endpoints import control_args

    video, _, params, _, control = client().predict(*control_args("pose", sample_videos["mp4"]),
                                                    allow_empty_maps=True,  # the tiny preset's OpenPose finds nobody
                                                    api_name="/pose2video")
    assert video_io.read_video(video_path(video))[0].shape == (4, 80, 128, 3)
    assert video_io.read_video(video_path(control))[0].shape == (4, 80, 128, 3)
    assert json.load(open(params))["replica"]


def the_other_endpoints_answer_as_locally(client, sample_videos):
    """A CPU job (edges drawn, no GPU slot), an edit of a clip, a comparison: the same answers as locally."""
    from gradio_client import handle_file

    preview = client().predict(handle_file(sample_videos["mp4"]), 0, 1, 4, 96, 100, 200, api_name="/edge_preview")
    assert video_io.read_video(video_path(preview))[0].shape[2] == 96
    video, _, params, seed = client().predict(
        handle_file(sample_videos["mp4"]), "make it snow", "", 1.5, 7.5, 2, "euler_ancestral", 5, 0, 0.5, 4, 96, 4,
        api_name="/edit_video")
    assert video_io.read_video(video_path(video))[0].shape == (2, 56, 96, 3) and seed == 5
    assert json.load(open(params))["replica"]
    video, videos, seconds, seed = client().predict(
        "a lighthouse in a storm", ["text2video-zero"], "", "dreamlike-art/dreamlike-photoreal-2.0", 3, 64, 64, 2,
        11, 4, api_name="/compare")
    assert len(videos) == 1 and set(seconds) == {"text2video-zero"} and seed == 11


def out_of_memory_on_a_replica_retries_with_half_the_chunk_as_locally(client):
    """A replica out of memory retries once with half the chunk (params.json records what ran), then says so;
    a bug on a replica is the same sentence with a reference as locally (tests/ray_faults.py makes both)."""
    from tests.ray_faults import BUG, OOM_ALWAYS, OOM_ONCE

    with pytest.raises(AppError, match="Out of GPU memory"):
        client().predict(**text2video_args(prompt=f"{OOM_ALWAYS} a horse", chunk_size=4), api_name="/text2video")
    video, _, params, _ = client().predict(**text2video_args(prompt=f"{OOM_ONCE} a horse", chunk_size=4),
                                           api_name="/text2video")
    record = json.load(open(params))
    assert video_io.read_video(video_path(video))[0].shape[0] == 5 and record["replica"]
    assert record["request"]["chunk_size"] == 2 and record["chunk_size_used"] == 2
    assert record["chunk_size_requested"] == 4 and "chunks of 2" in record["notes"][0]
    with pytest.raises(AppError) as error:
        client().predict(**text2video_args(prompt=f"{BUG} a horse"), api_name="/text2video")
    text = str(error.value)
    assert "Something went wrong on the server" in text and "(reference " in text
    assert "KeyError" not in text and "unet.down_blocks" not in text and "Traceback" not in text


def a_model_is_tuned_and_run_on_replicas(ray_served, client, sample_videos):
    """Tuning trains on a replica, which saves into the app's tuned-models folder (shared: one host here); the
    model runs on a replica, and the page lists it."""
    from tests.test_app_tune import run_tuned, tune

    video, _, params, _, model = tune(client(), sample_videos["mp4"], name="ray-box", steps=2, num_frames=3)
    assert model == "ray-box" and video_io.read_video(video_path(video))[0].shape[0] == 3
    assert json.load(open(params))["replica"]
    assert "ray-box" in [entry["name"] for entry in client().predict(api_name="/list_tuned")]
    video, _, params, _ = run_tuned(client(), model, num_frames=2)
    assert video_io.read_video(video_path(video))[0].shape[0] == 2 and json.load(open(params))["replica"]
    # A Stop before the first checkpoint keeps a runnable model, as locally: the app waits for the replica's last
    # save before it decides what to keep (it hears of the Stop before the replica does).
    from tests.test_app_tune import tune_args

    stopping = client().submit(**tune_args(sample_videos["mp4"], name="ray-stopped", steps=200, num_frames=3),
                               api_name="/tune_video")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = stopping.status()
        if status.progress_data and "training" in (status.progress_data[-1].desc or ""):
            break
        assert not stopping.done(), stopping.result()
        time.sleep(0.01)
    stopping.cancel()
    listed: dict = {}
    while not listed and time.monotonic() < deadline + 30:
        listed = {entry["name"]: entry for entry in client().predict(api_name="/list_tuned")}.get("ray-stopped", {})
        time.sleep(0.2)
    assert listed.get("frames") == 3 and listed.get("fps") and 1 <= listed.get("steps", 0) < 200, listed
    video, _, params, _ = run_tuned(client(), "ray-stopped", num_frames=2)
    assert video_io.read_video(video_path(video))[0].shape[0] == 2


def cancel_frees_the_replica_within_a_step(ray_served, client):
    studio = ray_served[0]
    long_job = client().submit(**text2video_args(**LONG), api_name="/text2video")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = long_job.status()
        step = re.search(r"step (\d+) of", status.progress_data[-1].desc or "") if status.progress_data else None
        if step and int(step.group(1)) >= 3:
            break
        assert not long_job.done(), long_job.result()
        time.sleep(0.01)
    replica = next(iter(studio.pool.running.values()))["replica"]
    long_job.cancel()
    cancelled_at = time.monotonic()
    # Two jobs at once, until the cancelled job's replica runs one: it is free again long before the 97 steps
    # left. (Rounds, since Serve's router may send both to the other replica: under load its probe of a replica's
    # queue can miss its 0.1 s deadline, and that replica is skipped for the round.)
    served_by: set[str] = set()
    seeds = iter(range(10, 1000))
    while replica not in served_by and time.monotonic() - cancelled_at < 30:
        jobs = [client().submit(**text2video_args(steps=3, seed=next(seeds)), api_name="/text2video") for _ in range(2)]
        served_by |= {json.load(open(job.result(timeout=60)[2]))["replica"] for job in jobs}
    assert replica in served_by, served_by
    assert time.monotonic() - cancelled_at < 30  # far from the 97 steps left
    assert long_job.status().code == Status.CANCELLED
    stopped = studio.pool._slots[replica].info["last_cancel"]  # the replica's own account
    assert 3 <= stopped["step_at_cancel"] < 100
    assert stopped["step_at_stop"] - stopped["step_at_cancel"] <= 1, stopped  # the step in flight, no more


def a_killed_replica_fails_its_job_with_a_sentence_and_the_next_job_succeeds(ray_served, client):
    studio = ray_served[0]
    doomed = client().submit(**text2video_args(**LONG), api_name="/text2video")
    queued = client().submit(**text2video_args(steps=3, seed=6), api_name="/text2video")
    deadline = time.monotonic() + 60
    while not studio.pool.running and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)  # a few steps in
    info = studio.pool.running[next(iter(studio.pool.running))]
    os.kill(info["pid"], signal.SIGKILL)
    with pytest.raises(AppError, match="The worker running your job stopped; please retry."):
        doomed.result(timeout=60)
    assert queued.result(timeout=60)[3] == 6  # the other replica's
    result = client().predict(**text2video_args(steps=3, seed=5), api_name="/text2video")
    assert result[3] == 5


def test_an_unreachable_cluster_is_one_sentence_at_start_up():
    import subprocess
    import sys

    from tests.conftest import free_port

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    started = time.monotonic()
    done = subprocess.run([sys.executable, "app.py", "--preset", "tiny", "--backend", "ray", "--port",
                           str(free_port()), "--ray-address", f"127.0.0.1:{free_port()}"],
                          cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]  # one line, no traceback
    assert done.stderr.startswith("Could not reach the Ray cluster at 127.0.0.1:")
    assert time.monotonic() - started < 30


def test_the_local_backend_needs_no_ray():
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("import sys, app; from modules.settings import Settings; studio, _ = app.create_app("
            "Settings.from_env(preset='tiny')); assert len(studio.pool) == 1; "
            "assert 'ray' not in sys.modules, 'ray imported'")
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "T2VZ_BACKEND": "local"})
    assert done.returncode == 0, done.stderr


def test_the_backend_benchmark_is_a_mode_of_its_own():
    from benchmarks import cli, modes

    args = cli.parse_args(["--mode", "backend", "--repeats", "2"])
    assert (args.mode, args.engine) == ("backend", None) and "backend" in modes.special_modes()


def test_the_deployment_is_one_job_per_replica_one_gpu_each_and_autoscales_on_request():
    """No cluster needed: the deployment's options as Serve will read them."""
    from modules.ray_replica import deployment as _deployment
    from modules.settings import Settings

    fixed = _deployment(Settings.from_env(preset="tiny", backend="ray"), 3, 1)._bound_deployment
    assert fixed.num_replicas == 3 and fixed.ray_actor_options["num_gpus"] == 1
    assert fixed._deployment_config.max_ongoing_requests == 1
    scaled = _deployment(Settings.from_env(preset="tiny", backend="ray", ray_max_replicas=8), 2, 1)._bound_deployment
    autoscaling = scaled._deployment_config.autoscaling_config
    assert (autoscaling.min_replicas, autoscaling.max_replicas, autoscaling.target_ongoing_requests) == (2, 8, 1)
    assert autoscaling.downscale_delay_s >= 300  # a new replica loads its weights again
