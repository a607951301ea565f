"""The launched app (tiny preset) through gradio_client, as a script would use it."""

import json
import re
from dataclasses import asdict

import pytest
from gradio_client.exceptions import AppError

from modules import video_io
from modules.request_types import DEFAULT_NEGATIVE_PROMPT


def video_path(value) -> str:
    return value["video"] if isinstance(value, dict) else value


def text2video_args(**overrides):
    args = dict(
        prompt="a horse galloping on a street",
        negative_prompt=DEFAULT_NEGATIVE_PROMPT,
        model="dreamlike-art/dreamlike-photoreal-2.0",
        num_frames=5,
        width=96,
        height=64,
        steps=3,
        guidance_scale=7.5,
        motion_x=12,
        motion_y=12,
        t0=-1,
        t1=-1,
        seed=-1,
        chunk_size=8,
        fps=6,
    )
    args.update(overrides)
    return args


def test_text2video_endpoint_returns_the_requested_video(client_factory):
    client = client_factory()
    video, gif, params, seed = client.predict(**text2video_args(), api_name="/text2video")
    info = video_io.probe_video(video_path(video))
    frames, fps = video_io.read_video(video_path(video))
    assert (len(frames), info.width, info.height) == (5, 96, 64)
    assert fps == pytest.approx(6, abs=0.01)
    assert len(video_io.read_video(gif)[0]) == 5
    record = json.loads(open(params).read())
    assert record["seed"] == seed >= 0  # -1 became a real seed, shown and stored
    assert record["request"]["num_frames"] == 5 and record["t0"] < record["t1"]
    assert record["versions"]["diffusers"] == "0.42.1"


def test_same_seed_same_video_and_outputs_never_overwrite(client_factory):
    client = client_factory()
    first = client.predict(**text2video_args(seed=123, num_frames=3), api_name="/text2video")
    second = client.predict(**text2video_args(seed=123, num_frames=3), api_name="/text2video")
    a, b = video_io.read_video(video_path(first[0]))[0], video_io.read_video(video_path(second[0]))[0]
    assert (a == b).all()
    assert json.load(open(first[2]))["request"] == json.load(open(second[2]))["request"]


def test_params_json_repeats_the_run(app, client_factory):
    """params.json holds what is needed to make the same video again."""
    from modules.request_types import Text2VideoRequest, request_from_dict

    studio = app[0]
    client = client_factory()
    video, _, params, seed = client.predict(**text2video_args(num_frames=3), api_name="/text2video")
    request = request_from_dict(Text2VideoRequest, json.load(open(params))["request"])
    again = studio.text2video(request)
    assert again.seed == seed
    assert (video_io.read_video(video_path(video))[0] == video_io.read_video(again.video)[0]).all()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(prompt="   "), "Please enter a prompt."),
        (dict(num_frames=1000), "Frames must be a whole number from 1 to 64 (Text2Video-Zero's longest clip here); got 1000."),
        (dict(width=20), "Width must be a whole number from 64 to 1024 pixels; got 20."),
        (dict(steps=10, t0=9, t1=12), "t0=9 and t1=12 don't fit 10 steps"),
        (dict(width=1024, height=1024), "1024x1024 is more than this server allows (589824 pixels per frame)"),
        (dict(steps=2.5), "Steps must be a whole number from 2 to 100; got 2.5."),
        (dict(seed="lucky"), "Seed must be a whole number from -1 to 4294967295 (-1 = random); got 'lucky'."),
    ],
)
def test_bad_input_is_a_clear_error(client_factory, overrides, message):
    """Our validation's sentence, not Gradio's bounds check ("Value 1000 is greater than maximum value 64.")."""
    with pytest.raises(AppError) as error:
        client_factory().predict(**text2video_args(**overrides), api_name="/text2video")
    text = str(error.value)
    assert message in text, text
    assert "Traceback" not in text and "Value " not in text


def test_cleared_fields_take_defaults_and_numbers_may_be_text(client_factory):
    """A cleared number box arrives as None (the field's default); clients may send numbers as text."""
    video, _, params, seed = client_factory().predict(
        **text2video_args(guidance_scale=None, t0=None, t1=None, seed="17", num_frames="3"), api_name="/text2video"
    )
    record = json.load(open(params))
    assert seed == 17 and record["request"]["guidance_scale"] == 7.5 and record["request"]["num_frames"] == 3
    assert len(video_io.read_video(video_path(video))[0]) == 3


@pytest.mark.local_backend(reason="patches the engine in this process")
def test_unexpected_failure_is_a_sentence_with_what_to_do(client_factory, monkeypatch, caplog):
    """A bug deep down reaches the user as a sentence with a reference, never an exception name."""
    from modules import engine

    def broken(*args, **kwargs):
        raise KeyError("unet.down_blocks.0")

    monkeypatch.setattr(engine, "generate_text2video", broken)
    with pytest.raises(AppError) as error:
        client_factory().predict(**text2video_args(), api_name="/text2video")
    text = str(error.value)
    assert "Something went wrong on the server" in text and "please try again" in text
    assert "KeyError" not in text and "unet.down_blocks" not in text and "Traceback" not in text
    reference = text.split("(reference ")[1][:8]
    assert any(reference in record.getMessage() and record.exc_info for record in caplog.records)


# --------------------------------------------------------------------------- Load params.json


def _params_file(tmp_path, data, name="params.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_load_params_json_fills_each_tab_or_says_why_not(tmp_path, sample_videos, monkeypatch):
    """The tabs' Load params.json: the form values in endpoint order, or a sentence (never a crash)."""
    from modules.request_types import ControlVideoRequest, EditVideoRequest, Text2VideoRequest, VideoWindow
    from modules.settings import Settings
    from modules.ui import controlnet, edit, text2video
    from modules.ui.params_files import load_params

    settings = Settings.from_env(preset="tiny", outputs_dir=str(tmp_path))
    t2v = {"mode": "text2video", "request": asdict(Text2VideoRequest(prompt="a lighthouse", num_frames=3, seed=9,
                                                                     width=1024, height=512))}
    values = text2video.form_from_params(settings, t2v)
    assert values[0] == "a lighthouse" and values[3] == 3 and values[12] == 9
    assert values[4]["value"] == 1024 and values[5] == {"__type__": "update", "value": 512, "maximum": 576}

    window = VideoWindow(start=0.5, end=1.5, fps=4, resolution=128)
    edge = {"mode": "edge2video", "request": asdict(ControlVideoRequest(
        kind="edge", video="/gone/clip.mp4", prompt="gold", window=window, canny_low=50, canny_high=150, seed=3))}
    path = _params_file(tmp_path, edge)
    values = controlnet.form_from_params(settings, "edge", edge, path)
    assert values[0] == {"__type__": "update"}  # the video is not in params.json's folder: kept as is
    assert values[1] == "gold" and values[4:8] == [0.5, 1.5, 4, 128]
    assert values[-5:] == [50, 150, "text2video-zero", False, False]  # ..., engine, fast, allow_empty_maps
    preview = {"mode": "control-preview", "request": asdict(ControlVideoRequest(
        kind="pose", video="/gone/clip.mp4", prompt="", window=window, pose_hands=True))}
    values = controlnet.form_from_params(settings, "pose", preview, path)
    assert values[1] == {"__type__": "update"} and values[4:8] == [0.5, 1.5, 4, 128] and values[-5] is True
    edit_data = {"mode": "edit", "request": asdict(EditVideoRequest(video="/gone/clip.mp4", prompt="snow",
                                                                     scheduler="ddim", window=window))}
    assert edit.form_from_params(settings, edit_data, path)[6] == "ddim"

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))  # these files stand for uploads: in the upload folder

    def load(data, fill):
        count = 18
        return load_params(_params_file(tmp_path, data, "upload.json"), fill, count)

    t2v_fill = lambda data: text2video.form_from_params(settings, data)  # noqa: E731
    loaded = load(t2v, t2v_fill)
    assert loaded[-2] is None  # the upload box is emptied for the next file
    assert loaded[-1].startswith("Filled the form from params.json (seed 9)")  # said in the status box
    for data, message in [
        ("{not json", "not a params.json from this app (it is not readable JSON)"),
        ({"prompt": "x"}, "has no \"mode\" and \"request\""),
        (edge, "This params.json is from the Edge tab; open that tab and load it there."),
        (preview, "This params.json is from the Pose tab"),
        (edit_data, "This params.json is from the Video editing tab"),
        ({"mode": "text2video", "request": {**t2v["request"], "steps": 500}},
         "This params.json does not fit this server: Steps must be a whole number from 2 to 100; got 500."),
        ({"mode": "text2video", "request": {**t2v["request"], "width": 1024, "height": 1024}}, "pixels per frame"),
        ({"mode": "text2video", "request": {"negative_prompt": "x"}}, "The saved request lacks prompt."),
    ]:
        result = load(data, t2v_fill)  # no pop-up: the sentence goes to the tab's status box
        assert result[:-1] == [{"__type__": "update"}] * 18 + [None]  # the form is left as it was
        assert result[-1].startswith("**Could not load params.json:**") and message in result[-1]
