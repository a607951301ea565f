"""The trained engines beside the zero-shot one, through gradio_client on the tiny preset."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from modules import engines, video_io

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def video_path(value) -> str:
    return value["video"] if isinstance(value, dict) else value


def text2video(client, **overrides):
    args = dict(prompt="a horse galloping", negative_prompt="", model="dreamlike-art/dreamlike-photoreal-2.0",
                num_frames=4, width=64, height=64, steps=2, guidance_scale=7.5, motion_x=12, motion_y=12, t0=-1,
                t1=-1, seed=5, chunk_size=8, fps=4)
    args.update(overrides)
    return client.predict(**args, api_name="/text2video")


@pytest.mark.parametrize("engine, count", [("animatediff", 4), ("modelscope", 4), ("wan", 5)])  # Wan: 4k+1
def test_trained_engines_make_a_video(client_factory, engine, count):
    video, gif, params, seed = text2video(client_factory(), engine=engine, num_frames=count)
    frames, fps = video_io.read_video(video_path(video))
    # fps 4 is the tab's default, so the engine's recipe's rate applies (RECIPES.md)
    expected_fps = engines.get(engine).recipe("text2video").fps
    assert frames.shape == (count, 64, 64, 3) and fps == pytest.approx(expected_fps, abs=0.01)
    record = json.load(open(params))
    assert record["engine"] == engine and record["mode"] == f"text2video-{engine}" and seed == 5
    if engine == "modelscope":
        assert "non-commercial" in record["licence"]
    if engine == "wan":
        assert record["licence"] == "Apache-2.0" and record["model"] == "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"


def test_wan_refuses_frames_that_do_not_fit_naming_one_that_does(client_factory):
    with pytest.raises(AppError, match=r"Wan 2\.1 makes clips of 4k\+1 frames, e\.g\. 13; got 12\."):
        text2video(client_factory(), engine="wan", num_frames=12)


def test_animatediff_storyboard_over_many_frames(client_factory):
    video, *_ = text2video(client_factory(), engine="animatediff", num_frames=24,
                           prompt="0: a cat sleeping\n8: the cat wakes up\n16: the cat runs")
    assert video_io.read_video(video_path(video))[0].shape[0] == 24


def test_modelscope_refuses_a_storyboard(client_factory):
    with pytest.raises(AppError, match="ModelScope takes one prompt"):
        text2video(client_factory(), engine="modelscope", prompt="0: a\n2: b")


def test_animatediff_follows_the_edge_maps(client_factory):
    video, gif, params, seed, control = client_factory().predict(
        handle_file(str(ASSETS / "edge_box.mp4")), "a robot", "", "dreamlike-art/dreamlike-photoreal-2.0",
        0, 1, 4, 64, 2, 9.0, 1.0, 3, 8, 100, 200, "animatediff", api_name="/edge2video",
    )
    frames, _ = video_io.read_video(video_path(video))
    assert frames.shape == video_io.read_video(video_path(control))[0].shape
    assert json.load(open(params))["engine"] == "animatediff"


def test_compare_runs_each_engine_and_returns_them_side_by_side(client_factory):
    client = client_factory()
    video, videos, seconds, seed = client.predict(
        "a lighthouse in a storm", ["text2video-zero", "animatediff", "modelscope"], "",
        "dreamlike-art/dreamlike-photoreal-2.0", 3, 64, 64, 2, 11, 4, api_name="/compare",
    )
    frames, _ = video_io.read_video(video_path(video))
    assert frames.shape[0] == 3 and frames.shape[2] > 3 * 64  # three 64-wide clips and gaps
    assert len(videos) == 3 and set(seconds) == {"text2video-zero", "animatediff", "modelscope"}
    assert all(value > 0 for value in seconds.values()) and seed == 11
    paths = [path if isinstance(path, str) else path["path"] for path in videos]
    for path in paths:
        assert video_io.read_video(path)[0].shape == (3, 64, 64, 3)
    # Each download is named after its engine.
    assert sorted(os.path.basename(path) for path in paths) == sorted(f"{name}.mp4" for name in seconds)


def test_compare_needs_an_engine(client_factory):
    with pytest.raises(AppError, match="at least one engine"):
        client_factory().predict("a", [], "", "dreamlike-art/dreamlike-photoreal-2.0", 3, 64, 64, 2, 11, 4,
                                 api_name="/compare")


def test_zero_shot_storyboard_and_first_frame_image(client_factory, tmp_path):
    import imageio.v3 as iio
    import numpy as np

    picture = tmp_path / "first.png"
    iio.imwrite(picture, np.random.default_rng(1).integers(0, 255, (90, 120, 3), dtype=np.uint8))
    client = client_factory()
    video, _, params, _ = text2video(client, prompt="0: a cat sleeping\n3: a cat running", image=handle_file(str(picture)))
    assert video_io.read_video(video_path(video))[0].shape == (4, 64, 64, 3)
    assert json.load(open(params))["request"]["image"]
    with pytest.raises(AppError, match="AnimateDiff does not start from an image; clear the image or pick Text2Video-Zero"):
        text2video(client, engine="animatediff", image=handle_file(str(picture)))


def test_fast_mode_in_every_tab_and_a_normal_run_after_is_unchanged(client_factory, app, backend):
    """Fast: LCM-LoRA on the shared base for the job only, TAESD decoding; the next normal job is as before."""
    from modules.engine.fast import lora_enabled

    client = client_factory()
    before, *_ = text2video(client, seed=21)
    fast_video, _, params, _ = text2video(client, seed=21, fast=True, steps=50, guidance_scale=7.5)
    record = json.load(open(params))
    assert record["request"]["fast"] and record["request"]["steps"] == 4 and record["scheduler"] == "lcm"
    assert record["request"]["guidance_scale"] == 1.0 and any("Fast mode" in note for note in record["notes"])
    after, *_ = text2video(client, seed=21)
    a, b = video_io.read_video(video_path(before))[0], video_io.read_video(video_path(after))[0]
    assert (a == b).all()  # the LoRA is off again: exactly the frames of before
    assert not (video_io.read_video(video_path(fast_video))[0] == a).all()
    if backend == "local":  # the Ray replicas' UNets are in their own processes; the frames above show it
        assert not lora_enabled(app[0].manager.components().unet)
    clip = ASSETS / "edge_box.mp4"
    video, _, params, _, _ = client.predict(
        handle_file(str(clip)), "a robot", "", "dreamlike-art/dreamlike-photoreal-2.0", 0, 1, 4, 64, 20, 9.0, 1.0, 3, 8,
        100, 200, "text2video-zero", True, api_name="/edge2video")
    assert json.load(open(params))["scheduler"] == "lcm"
    video, _, params, _ = client.predict(
        handle_file(str(clip)), "make it snow", "", 1.0, 7.5, 50, "euler_ancestral", 5, 0, 1, 4, 64, 8, True,
        api_name="/edit_video")
    record = json.load(open(params))
    assert record["request"]["scheduler"] == "lcm" and record["request"]["steps"] == 4
    video, _, params, _, _ = client.predict(
        handle_file(str(ASSETS / "depth_ball.mp4")), "a planet", "", "dreamlike-art/dreamlike-photoreal-2.0", 0, 1, 4,
        64, 20, 9.0, 1.0, 3, 8, "text2video-zero", True, api_name="/depth2video")
    assert json.load(open(params))["scheduler"] == "lcm" and video_io.read_video(video_path(video))[0].shape[0] == 4
    with pytest.raises(AppError, match="no few-step weights for ModelScope"):
        text2video(client, engine="modelscope", fast=True)


@pytest.mark.slow  # five jobs through the launched app, three Lightning adapters
def test_fast_animatediff_runs_lightning_for_the_step_count(client_factory, app):
    """AnimateDiff + Fast: AnimateDiff-Lightning's adapter for 2/4/8 steps, its Euler recipe, TAESD;
    the normal adapter's frames are unchanged after."""
    client = client_factory()
    before, *_ = text2video(client, engine="animatediff", seed=3)
    video, _, params, _ = text2video(client, engine="animatediff", fast=True, steps=25, guidance_scale=7.5, seed=3)
    record = json.load(open(params))
    assert record["scheduler"] == "lightning" and record["request"]["steps"] == 4
    assert record["request"]["guidance_scale"] == 1.0
    assert record["motion_adapter"] == "ByteDance/AnimateDiff-Lightning/animatediff_lightning_4step_diffusers.safetensors"
    assert any("AnimateDiff-Lightning" in note for note in record["notes"])
    fast_frames = video_io.read_video(video_path(video))[0]
    assert fast_frames.shape == (4, 64, 64, 3)
    _, _, params, _ = text2video(client, engine="animatediff", fast=True, steps=8, guidance_scale=1.0, seed=3)
    assert json.load(open(params))["motion_adapter"].endswith("_8step_diffusers.safetensors")
    after, *_ = text2video(client, engine="animatediff", seed=3)
    a, b = video_io.read_video(video_path(before))[0], video_io.read_video(video_path(after))[0]
    assert (a == b).all() and not (fast_frames == a).all()
    video, _, params, _, _ = client.predict(
        handle_file(str(ASSETS / "pose_walk.mp4")), "an astronaut", "", "dreamlike-art/dreamlike-photoreal-2.0", 0, 1,
        4, 64, 2, 1.0, 1.0, 3, 8, False, False, False, "animatediff", True, True,  # the tiny OpenPose finds nobody
        api_name="/pose2video")
    record = json.load(open(params))
    assert record["scheduler"] == "lightning" and record["request"]["steps"] == 2
    assert record["motion_adapter"].endswith("_2step_diffusers.safetensors")


def test_modern_engines_through_the_api(client_factory, tmp_path):
    """Wan 2.1 and CogVideoX through the endpoints a script calls: CogVideoX's text to video (8k+1 frames),
    Wan in the Pose, Edge and Depth endpoints (VACE, fitted to 4k+1 frames with a note) and with a first frame,
    and Fast: AnyFlow on Wan's text to video, a sentence where an engine or a tab has no few-step weights."""
    client = client_factory()
    video, _, params, _ = text2video(client, engine="cogvideox", num_frames=9, width=64, height=64)
    assert video_io.read_video(video_path(video)).frames.shape == (9, 64, 64, 3)
    assert json.load(open(params))["mode"] == "text2video-cogvideox"
    with pytest.raises(AppError, match=r"CogVideoX makes clips of 8k\+1 frames, e\.g\. 9; got 12\."):
        text2video(client, engine="cogvideox", num_frames=12)

    common = dict(prompt="a robot", negative_prompt="", model="dreamlike-art/dreamlike-photoreal-2.0", start=0, end=1,
                  fps=6, resolution=64, steps=2, guidance_scale=5.0, conditioning_scale=1.0, seed=3, chunk_size=8,
                  engine="wan", fast=False)
    for kind, clip, options in (("edge", "edge_box.mp4", dict(canny_low=100, canny_high=200)),
                                ("depth", "depth_ball.mp4", {}),
                                ("pose", "pose_walk.mp4", dict(is_skeleton=True, pose_hands=False, pose_face=False))):
        video, _, params, _, control = client.predict(video=handle_file(str(ASSETS / clip)), **common, **options,
                                                      api_name=f"/{kind}2video")
        frames = video_io.read_video(video_path(video)).frames
        record = json.load(open(params))
        assert record["engine"] == "wan" and (len(frames) - 1) % 4 == 0, (kind, frames.shape)
        assert record["model"] == "Wan-AI/Wan2.1-VACE-1.3B-diffusers"
        # 1 s at 6 fps is 6 frames: VACE takes the first 5 (4k+1), and the notes say so.
        assert len(frames) == 5 and any("used the first 5 of the window's 6 frames" in n for n in record["notes"])
    with pytest.raises(AppError, match="no few-step weights for Wan 2.1 in the Pose, Edge and Depth tabs"):
        client.predict(video=handle_file(str(ASSETS / "edge_box.mp4")), **{**common, "fast": True}, canny_low=100,
                       canny_high=200, api_name="/edge2video")

    picture = tmp_path / "first.png"
    from PIL import Image

    Image.fromarray(np.full((64, 64, 3), (200, 40, 40), np.uint8)).save(picture)
    video, _, params, _ = text2video(client, engine="wan", num_frames=5, image=handle_file(str(picture)))
    record = json.load(open(params))
    assert record["model"] == "Wan-AI/Wan2.1-VACE-1.3B-diffusers" and record["request"]["image"]

    video, _, params, _ = text2video(client, engine="wan", num_frames=5, fast=True, steps=50, guidance_scale=5.0)
    record = json.load(open(params))
    assert record["request"]["steps"] == 4 and record["request"]["guidance_scale"] == 1.0
    assert any("AnyFlow" in note for note in record["notes"])
    with pytest.raises(AppError, match="no few-step weights for CogVideoX"):
        text2video(client, engine="cogvideox", num_frames=9, fast=True)


def test_recipes_through_the_api(client_factory):
    """A call that names an engine and leaves the rest at the API's defaults runs that engine's recipe
    (RECIPES.md); explicit values win (issue 28)."""
    client = client_factory()
    wan = engines.get("wan").recipe("control")
    video, _, params, _, _ = client.predict(
        video=handle_file(str(ASSETS / "pose_walk.mp4")), prompt="an astronaut dancing", engine="wan", start=0, end=1,
        fps=5, resolution=64, steps=2, is_skeleton=True, api_name="/pose2video")
    record = json.load(open(params))
    assert record["request"]["guidance_scale"] == 5.0 == wan.guidance_scale
    assert record["request"]["negative_prompt"] == wan.negative_prompt and "walking backwards" in wan.negative_prompt
    assert record["scheduler_config"]["class"] == "UniPCMultistepScheduler"
    assert record["scheduler_config"]["flow_shift"] == 3.0

    video, _, params, _ = client.predict(prompt="a fox", engine="cogvideox", num_frames=9, width=64, height=64,
                                         steps=2, api_name="/text2video")
    record = json.load(open(params))
    assert record["request"]["guidance_scale"] == 6.0 and record["request"]["negative_prompt"] == ""
    assert record["fps"] == 8.0 and record["scheduler_config"]["class"] == "CogVideoXDDIMScheduler"

    video, _, params, _ = client.predict(prompt="a fox", engine="wan", num_frames=81, width=64, height=64, steps=2,
                                         api_name="/text2video")
    assert video_io.read_video(video_path(video)).frames.shape[0] == 81
    assert json.load(open(params))["frames"] == 81

    # The same call naming no engine runs the tab's first engine as before: its guidance and negative prompt.
    video, _, params, _ = client.predict(prompt="a fox", num_frames=4, width=64, height=64, steps=2,
                                         api_name="/text2video")
    record = json.load(open(params))
    assert record["engine"] == "text2video-zero" and record["request"]["guidance_scale"] == 7.5
    assert record["request"]["negative_prompt"].startswith("longbody, lowres")
