"""Pose, edge, depth, their control previews and video editing through gradio_client (tiny preset)."""

import json
from pathlib import Path

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from modules import video_io
from modules.empty_maps import empty_frames

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def video_path(value) -> str:
    return value["video"] if isinstance(value, dict) else value


def control_args(kind, video, **overrides):
    args = dict(
        video_in=handle_file(video),
        prompt="a robot dancing",
        negative_prompt="",
        model="dreamlike-art/dreamlike-photoreal-2.0",
        start=0.5,
        end=1.5,
        fps=4,
        resolution=128,
        steps=2,
        guidance_scale=9.0,
        conditioning_scale=1.0,
        seed=-1,
        chunk_size=3,
    )
    args.update({"edge": dict(canny_low=100, canny_high=200), "depth": {}, "pose": {}}[kind])
    args.update(overrides)
    return list(args.values())


@pytest.mark.parametrize("kind", ["pose", "edge", "depth"])
def test_control_endpoint_follows_window_fps_and_aspect(client_factory, sample_videos, kind):
    """150x90 at 15 fps, 0.5-1.5 s at 4 fps, long side 128 -> 4 frames of 128x80 (aspect kept)."""
    client = client_factory()
    video, gif, params, seed, control = client.predict(  # the tiny preset's OpenPose finds nobody: go on
        *control_args(kind, sample_videos["mp4"]), allow_empty_maps=kind == "pose", api_name=f"/{kind}2video"
    )
    frames, fps = video_io.read_video(video_path(video))
    assert frames.shape == (4, 80, 128, 3)
    assert fps == pytest.approx(4, abs=0.01)
    assert video_io.read_video(video_path(control))[0].shape == (4, 80, 128, 3)
    record = json.load(open(params))
    assert record["mode"] == f"{kind}2video" and record["seed"] == seed
    assert record["controlnet"].startswith("lllyasviel/")


def test_pose_skeleton_input_and_gif_upload(client_factory, sample_videos):
    client = client_factory()
    args = control_args("pose", sample_videos["gif"], start=0, end=0, fps=0) + [True, False, False]
    video, *_ = client.predict(*args, api_name="/pose2video")
    frames, fps = video_io.read_video(video_path(video))
    assert len(frames) == 12 and fps == pytest.approx(6, abs=0.01)  # the GIF's own frames and rate


def test_empty_maps_are_refused_with_a_sentence_and_the_last_parameter_goes_on(client_factory, tmp_path):
    """A plain clip has no edges: the job stops before sampling with the sentence (from a Ray replica too), and
    `allow_empty_maps`, the endpoint's new last parameter, goes on with the maps found then (not found again)."""
    plain = video_io.write_mp4(np.full((8, 64, 64, 3), 120, np.uint8), tmp_path / "plain.mp4", 8)
    args = control_args("edge", str(plain), start=0, end=1, fps=2, resolution=64) + ["text2video-zero", False]
    client = client_factory()
    with pytest.raises(AppError, match=r"No edges were found in any of the 2 frames, so the edge maps are empty and "
                                       r"the video would not follow any outline\. .*tick \"Go on with empty maps\""):
        client.predict(*args, api_name="/edge2video")
    video, _, params, _, control = client.predict(*args, True, api_name="/edge2video")
    assert empty_frames("edge", video_io.read_video(video_path(control))[0]).all()  # the maps found before
    record = json.load(open(params))
    assert record["request"]["allow_empty_maps"] is True and record["control_maps"] == "reused from an earlier run"


@pytest.mark.parametrize("kind", ["pose", "edge", "depth"])
def test_control_preview_returns_the_maps(client_factory, kind):
    example = sorted(ASSETS.glob(f"{kind}_*.mp4"))[0]
    preview = client_factory().predict(
        handle_file(str(example)), 0, 1, 0, 128, *({"edge": [50, 150]}.get(kind, [])),
        api_name=f"/{kind}_preview",
    )
    frames, _ = video_io.read_video(video_path(preview))
    assert frames.shape[2] == 128 and frames.shape[0] >= 8


def test_edit_video_keeps_input_fps_by_default(client_factory, sample_videos):
    video, gif, params, seed = client_factory().predict(
        handle_file(sample_videos["mp4"]), "make it snow", "", 1.5, 7.5, 2, "euler_ancestral", 5,
        0, 1.0, 0, 96, 4,
        api_name="/edit_video",
    )
    frames, fps = video_io.read_video(video_path(video))
    assert fps == pytest.approx(15, abs=0.01)  # the input's rate
    assert frames.shape == (15, 56, 96, 3)  # 1 s at 15 fps; 150x90 -> long side 96
    assert seed == 5 and json.load(open(params))["model"] == "timbrooks/instruct-pix2pix"


def test_bad_uploads_are_clear_errors(client_factory, tmp_path):
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("this is not a video")
    empty = tmp_path / "empty.webm"
    empty.write_bytes(b"")
    client = client_factory()
    for path in (not_video, empty):
        with pytest.raises(AppError, match="Could not read the video"):
            client.predict(*control_args("edge", str(path)), api_name="/edge2video")
    with pytest.raises(AppError, match="Could not read the video"):
        client.predict(
            handle_file(str(not_video)), "make it snow", "", 1.0, 7.5, 2, "euler_ancestral", 1,
            0, 0, 0, 96, 4, api_name="/edit_video",
        )


def test_out_of_range_values_are_clear_errors(client_factory, sample_videos):
    client = client_factory()
    with pytest.raises(AppError, match="End time must be after the start"):
        client.predict(*control_args("edge", sample_videos["mp4"], start=1.5, end=1.0), api_name="/edge2video")
    with pytest.raises(AppError, match="past the end"):
        client.predict(*control_args("edge", sample_videos["mp4"], start=5, end=0), api_name="/edge2video")
    with pytest.raises(AppError, match=r"Image guidance must be a number from 0 to 5; got 9\."):
        client.predict(
            handle_file(sample_videos["mp4"]), "make it snow", "", 9.0, 7.5, 2, "euler_ancestral", 1,
            0, 0, 0, 96, 4, api_name="/edit_video",
        )


def test_window_note_reaches_the_page_and_params_json(app, client_factory, sample_videos):
    """A size lowered to fit the pixel cap is said (a gr.Info on the page) and recorded in params.json."""
    from gradio_client.utils import StatusUpdate

    client = client_factory()
    # 150x90 at long side 1024 would be 1024x616: more than the 768x768 pixel cap, so it is lowered.
    job = client.submit(handle_file(sample_videos["mp4"]), 0, 0.5, 2, 1024, 100, 200, api_name="/edge_preview")
    frames, _ = video_io.read_video(video_path(job.result(timeout=120)))
    width, height = frames.shape[2], frames.shape[1]
    assert width * height <= 768 * 768 and width < 1024
    updates = []
    while not job.communicator.updates.empty():
        updates.append(job.communicator.updates.get_nowait())
    logs = [u.log for u in updates if isinstance(u, StatusUpdate) and u.log]
    assert any("1024x616" in text and "pixels per frame" in text for text, level in logs), logs
    records = [json.load(open(folder / "params.json")) for folder in app[0].outputs.root.glob("*-control-preview-*")]
    record = next(r for r in records if r["request"]["window"] == dict(start=0, end=0.5, fps=2, resolution=1024))
    assert "pixels per frame" in record["window_used"]["note"] and record["notes"] == [record["window_used"]["note"]]
