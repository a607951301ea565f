"""The launched app (tiny preset) through gradio_client, as a script would use it."""

import json

import pytest
from gradio_client import handle_file
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


def test_params_json_repeats_the_run(served, client_factory):
    """params.json holds what is needed to make the same video again."""
    from modules.request_types import Text2VideoRequest, request_from_dict

    studio = served[0]
    client = client_factory()
    video, _, params, seed = client.predict(**text2video_args(num_frames=3), api_name="/text2video")
    request = request_from_dict(Text2VideoRequest, json.load(open(params))["request"])
    again = studio.text2video(request)
    assert again.seed == seed
    assert (video_io.read_video(video_path(video))[0] == video_io.read_video(again.video)[0]).all()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(prompt="   "), "Please enter a prompt"),
        (dict(num_frames=1000), "Frames"),
        (dict(width=20), "Width"),
        (dict(steps=10, t0=9, t1=12), "don't fit"),
        (dict(width=1024, height=1024), "pixels per frame"),
    ],
)
def test_bad_input_is_a_clear_error(client_factory, overrides, message):
    with pytest.raises(AppError) as error:
        client_factory().predict(**text2video_args(**overrides), api_name="/text2video")
    text = str(error.value)
    assert message.lower() in text.lower() or "value" in text.lower(), text
    assert "Traceback" not in text
