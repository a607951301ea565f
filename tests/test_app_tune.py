"""The Tune tab's endpoints through gradio_client on the launched tiny app, as a script would use them:
/tune_video, /run_tuned (with and without inversion), /list_tuned, /upload_tuned to the Hub stand-in and a
run by repo id from a fresh cache, and /text2video unchanged after tuning."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from modules import video_io
from tests.conftest import sliding_box_clip
from tests.hub_standin.server import HubStandIn, hub_env

TOKEN = "hf_client_upload_secret_77"
TEXT2VIDEO = dict(prompt="a red ball", num_frames=3, width=64, height=64, steps=2, seed=11, chunk_size=8, fps=4,
                  api_name="/text2video")


def video_path(value) -> str:
    return value["video"] if isinstance(value, dict) else value


def frames_of(value) -> np.ndarray:
    return video_io.read_video(video_path(value)).frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> str:
    return sliding_box_clip(tmp_path_factory.mktemp("clip"), frames=8, height=64, width=96, step=6)


def tune_args(clip: str, **more) -> dict:
    args = dict(video=handle_file(clip), prompt="an orange box slides", name="", model="", steps=2,
                learning_rate=1e-3, num_frames=4, sample_prompt="a blue box slides", sample_steps=2,
                guidance_scale=12.5, seed=3, start=0, end=0, fps=0, resolution=64)
    return {**args, **more}


def tune(client, clip: str, **more):
    return client.predict(**tune_args(clip, **more), api_name="/tune_video")


def run_tuned(client, tuned: str, **more):
    args = dict(tuned=tuned, prompt="a green box slides", negative_prompt="", model="", num_frames=0, steps=2,
                guidance_scale=12.5, fps=0, seed=1, inversion=True)
    args.update(more)
    return client.predict(**args, api_name="/run_tuned")


def test_tune_then_run_with_and_without_inversion_and_list(client_factory, clip):
    client = client_factory()
    before = frames_of(client.predict(**TEXT2VIDEO)[0])
    video, gif, params, seed, model = tune(client, clip, name="client-box")
    assert model == "client-box" and seed == 3
    assert frames_of(video).shape == (4, 64, 64, 3)
    assert json.load(open(params))["tuned_model"] == "client-box"

    listed = client.predict(api_name="/list_tuned")
    assert "client-box" in [entry["name"] for entry in listed]
    entry = next(entry for entry in listed if entry["name"] == "client-box")
    assert entry["training_prompt"] == "an orange box slides" and entry["frames"] == 4

    inverted = run_tuned(client, model, num_frames=3)
    assert frames_of(inverted[0]).shape[0] == 3
    from_noise = run_tuned(client, model, num_frames=6, inversion=False, seed=2)
    assert frames_of(from_noise[0]).shape[0] == 6
    record = json.load(open(from_noise[2]))
    assert record["request"]["inversion"] is False and record["mode"] == "tuned"

    # The shared base is as it was: the same text-to-video frames as before tuning.
    assert np.array_equal(frames_of(client.predict(**TEXT2VIDEO)[0]), before)


def test_tune_takes_frames_at_a_stride_and_plays_them_at_the_rate_over_it(client_factory, clip):
    """`stride`, the endpoint's last parameter (default 1: earlier calls keep working): the 8 fps clip's frames
    0, 2, 4, 6, played at 4 fps."""
    video, gif, params, seed, model = tune(client_factory(), clip, name="client-stride", steps=1, sample_steps=1,
                                           stride=2)
    record = json.load(open(params))
    assert record["source_frames"] == [0, 2, 4, 6] and record["stride"] == 2 and record["fps"] == 4
    assert frames_of(video).shape[0] == 4


def test_tune_on_a_4_s_25_fps_clip_takes_consecutive_frames_at_a_constant_stride(client_factory, tmp_path):
    """The issue's case: a 4 s clip at 25 fps, tuned from 1 s on at stride 3: frames 25, 28, 31, 34 of the
    upload (consecutive at the stride, not spread over the 4 s), played at 25 / 3 fps."""
    frames = np.zeros((100, 64, 64, 3), np.uint8)
    for i in range(len(frames)):
        frames[i, 16:48, (i % 40): (i % 40) + 20] = (230, 120, 30)
    clip = str(video_io.write_mp4(frames, tmp_path / "four-seconds.mp4", 25))
    video, gif, params, seed, model = tune(client_factory(), clip, name="client-25fps", steps=1, sample_steps=1,
                                           start=1.0, stride=3)
    record = json.load(open(params))
    picks = record["source_frames"]
    assert picks == [25, 28, 31, 34] and {b - a for a, b in zip(picks, picks[1:])} == {3}
    assert record["fps"] == pytest.approx(25 / 3, abs=1e-3)


def test_bad_tune_input_is_a_sentence(client_factory, clip):
    with pytest.raises(AppError, match="There is no tuned model called nobody-tuned-this"):
        run_tuned(client_factory(), "nobody-tuned-this")
    with pytest.raises(AppError, match="Training steps must be a whole number from 1 to"):
        tune(client_factory(), clip, steps=0)
    with pytest.raises(AppError, match="Learning rate must be above 0"):
        tune(client_factory(), clip, learning_rate=0)


def test_upload_to_the_hub_then_run_by_repo_id_from_a_fresh_cache(client_factory, clip, tmp_path):
    client = client_factory()
    model = tune(client, clip, name="shared-box", steps=1)[4]
    with HubStandIn(tokens={TOKEN: "alice"}, orgs={"alice": ["studio-org"]}) as hub:
        with hub_env(hub.url, tmp_path / "cache"):
            with pytest.raises(AppError, match="Sign in"):
                client.predict(tuned=model, repo_name="", namespace="", private=True, token="", api_name="/upload_tuned")
            said = client.predict(tuned=model, repo_name="box-for-all", namespace="studio-org", private=False,
                                  token=TOKEN, api_name="/upload_tuned")
        assert "studio-org/box-for-all" in said and not hub.is_private("studio-org/box-for-all")
        with hub_env(hub.url, tmp_path / "fresh-cache"):
            video, gif, params, seed = run_tuned(client, "studio-org/box-for-all", num_frames=2)
        assert frames_of(video).shape[0] == 2
        assert hub.downloaded("studio-org/box-for-all") >= {"tune_a_video.safetensors", "source.safetensors"}
        assert TOKEN not in open(params).read()


@pytest.mark.local_backend(reason="reads the one in-process worker's spans")
def test_two_tuning_jobs_and_a_generation_share_the_one_worker(app, client_factory, clip):
    """Tuning is a GPU job like any other: the same queue, one at a time on the shared worker."""
    studio, demo, _ = app
    gpu = {fn.api_name: fn.concurrency_id for fn in demo.fns.values()}
    assert gpu["tune_video"] == gpu["run_tuned"] == gpu["text2video"] == "gpu"
    worker = studio.pool.workers[0]
    since = time.monotonic()  # the spans of the jobs below (the log keeps only the last ones)
    jobs = [client_factory().submit(video=handle_file(clip), prompt="a box", name=f"queued-{i}", model="", steps=2,
                                    learning_rate=1e-3, num_frames=2, sample_prompt="", sample_steps=1,
                                    guidance_scale=12.5, seed=i, start=0, end=0, fps=0, resolution=64,
                                    api_name="/tune_video") for i in range(2)]
    jobs.append(client_factory().submit(**{k: v for k, v in TEXT2VIDEO.items() if k != "api_name"},
                                        api_name="/text2video"))
    results = [job.result(timeout=300) for job in jobs]
    assert [result[4] for result in results[:2]] == ["queued-0", "queued-1"]
    spans = sorted(span for span in worker.busy_log if span[0] >= since)
    assert len(spans) == 3 and all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:]))
