"""request_types: any value in any field validates to a clean request or a RequestError for the user.

Property-based: hypothesis feeds None, NaN, infinities, -0.0, huge ints and floats, odd unicode,
numeric text, bools, lists and dicts to every field of every request (and of the video window).
"""

from __future__ import annotations

import builtins
import json
import math
import re
import sys
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from modules.request_types import (  # noqa: E402
    ControlVideoRequest,
    EditVideoRequest,
    RequestError,
    Text2VideoRequest,
    VideoWindow,
    request_from_dict,
)
from modules.settings import Settings  # noqa: E402
from modules.video_io import write_mp4  # noqa: E402

PROPERTY = hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
# Words a user should never read: Python's exception names and what a traceback or repr leaks.
PYTHON_WORDS = re.compile(
    r"\b(%s|Traceback|NoneType|__\w+__)\b"
    % "|".join(
        name for name, value in vars(builtins).items() if isinstance(value, type) and issubclass(value, BaseException)
    )
)

WILD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([2**63, -(2**63), 2**64 + 1, 10**400, -(10**400), 10**4400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 0.0, 1e308, -1e308, 5e-324, 0.5, 12.0]),
    st.text(max_size=12),
    st.sampled_from(
        ["12", " 12 ", "12.0", "12.5", "1e3", "-0", "-0.0", "nan", "NaN", "inf", "-Infinity", "1e400", "1" * 5000,
         "١٢", "１２", "0x10", "1_000", "", "   ", "\x00", "a\x00b", "\ud800", "\U0001f600", "ddim", "pose", "edge",
         "true", "False", "on", "-1"]
    ),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.binary(max_size=4),
    st.sampled_from([np.float32(2.5), np.int64(8), np.nan, object()]),
)


def wild_or(valid) -> st.SearchStrategy:
    """A plausible value 9 times in 10, so that checks after the first bad field are reached too.

    (st.one_of(valid, WILD) would pick `valid` 1 time in 14: one_of flattens WILD's branches.)
    """
    return st.integers(0, 9).flatmap(lambda n: WILD if n == 0 else valid)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    folder = tmp_path_factory.mktemp("requests")
    video = folder / "clip.mp4"
    write_mp4(np.zeros((2, 16, 16, 3), np.uint8), video, 8)
    return Settings.from_env(preset="tiny", outputs_dir=str(folder / "outputs")), str(video)


def windows(video_ok: bool = True) -> st.SearchStrategy:
    valid = st.builds(
        VideoWindow,
        start=wild_or(st.floats(0, 5)),
        end=wild_or(st.sampled_from([0.0, 1.0, 2.5, 100.0])),
        fps=wild_or(st.sampled_from([0.0, 4.0, 30.0])),
        resolution=wild_or(st.sampled_from([64, 128, 512, 1024])),
    )
    as_dict = valid.map(asdict)
    return st.integers(0, 9).flatmap(lambda n: [st.none(), WILD, as_dict][n] if n < 3 else valid)


def assert_user_message(error: RequestError) -> None:
    message = str(error)
    assert message and message.endswith("."), message
    assert not PYTHON_WORDS.search(message), message
    assert len(message) < 600, message


def assert_plain_fields(record) -> None:
    """Every field holds exactly its declared type; floats are finite and never -0.0."""
    for field in fields(record):
        value = getattr(record, field.name)
        if field.type in ("int", "float", "bool", "str"):
            assert type(value).__name__ == field.type, (field.name, value)
        if isinstance(value, float):
            assert math.isfinite(value) and math.copysign(1.0, value) > 0 or value < 0, (field.name, value)


def assert_clean(request, settings) -> None:
    """A validated request: plain JSON-able values of the right types, and validate() is stable."""
    assert_plain_fields(request)
    if hasattr(request, "window"):
        assert type(request.window) is VideoWindow
        assert_plain_fields(request.window)
    json.dumps(asdict(request), allow_nan=False)
    assert request.validate(settings) == request


def validate_or_explain(request, settings, **kwargs) -> None:
    try:
        result = request.validate(settings, **kwargs)
    except RequestError as error:
        event("explained")
        assert_user_message(error)
        return
    event("validated")
    assert type(result) is type(request)
    if not kwargs.get("preview"):
        assert_clean(result, settings)


@PROPERTY
@given(data=st.data())
def test_text2video_request_validates_or_explains(env, data):
    settings, _ = env
    request = Text2VideoRequest(
        prompt=data.draw(wild_or(st.just("a cat on the moon"))),
        negative_prompt=data.draw(wild_or(st.just(""))),
        model=data.draw(wild_or(st.sampled_from(["", settings.default_base_model]))),
        num_frames=data.draw(wild_or(st.integers(1, 8))),
        width=data.draw(wild_or(st.sampled_from([64, 96, 128]))),
        height=data.draw(wild_or(st.sampled_from([64, 96, 128]))),
        steps=data.draw(wild_or(st.integers(2, 12))),
        guidance_scale=data.draw(wild_or(st.floats(0, 30))),
        motion_x=data.draw(wild_or(st.floats(-40, 40))),
        motion_y=data.draw(wild_or(st.floats(-40, 40))),
        t0=data.draw(wild_or(st.sampled_from([-1, -1, 0, 1, 5]))),
        t1=data.draw(wild_or(st.sampled_from([-1, -1, 1, 6, 11]))),
        seed=data.draw(wild_or(st.integers(-1, 2**32 - 1))),
        chunk_size=data.draw(wild_or(st.integers(2, 8))),
        fps=data.draw(wild_or(st.floats(0.5, 60))),
    )
    validate_or_explain(request, settings)


@PROPERTY
@given(data=st.data())
def test_control_video_request_validates_or_explains(env, data):
    settings, video = env
    request = ControlVideoRequest(
        kind=data.draw(wild_or(st.sampled_from(["pose", "edge", "depth"]))),
        video=data.draw(wild_or(st.just(video))),
        prompt=data.draw(wild_or(st.just("a robot dancing"))),
        negative_prompt=data.draw(wild_or(st.just(""))),
        model=data.draw(wild_or(st.sampled_from(["", settings.default_base_model, settings.edge_style_models[0]]))),
        steps=data.draw(wild_or(st.integers(1, 12))),
        guidance_scale=data.draw(wild_or(st.floats(0, 30))),
        conditioning_scale=data.draw(wild_or(st.floats(0, 2))),
        seed=data.draw(wild_or(st.integers(-1, 99))),
        chunk_size=data.draw(wild_or(st.integers(2, 8))),
        window=data.draw(windows()),
        canny_low=data.draw(wild_or(st.integers(0, 120))),
        canny_high=data.draw(wild_or(st.integers(121, 255))),
        pose_hands=data.draw(wild_or(st.booleans())),
        pose_face=data.draw(wild_or(st.booleans())),
        is_skeleton=data.draw(wild_or(st.booleans())),
        allow_empty_maps=data.draw(wild_or(st.booleans())),
    )
    validate_or_explain(request, settings, preview=data.draw(st.booleans()))


@PROPERTY
@given(data=st.data())
def test_edit_video_request_validates_or_explains(env, data):
    settings, video = env
    request = EditVideoRequest(
        video=data.draw(wild_or(st.just(video))),
        prompt=data.draw(wild_or(st.just("make it snow"))),
        negative_prompt=data.draw(wild_or(st.just(""))),
        steps=data.draw(wild_or(st.integers(1, 12))),
        guidance_scale=data.draw(wild_or(st.floats(0, 30))),
        image_guidance_scale=data.draw(wild_or(st.floats(0, 5))),
        scheduler=data.draw(wild_or(st.sampled_from(["ddim", "euler_ancestral", ""]))),
        seed=data.draw(wild_or(st.integers(-1, 99))),
        chunk_size=data.draw(wild_or(st.integers(2, 8))),
        window=data.draw(windows()),
    )
    validate_or_explain(request, settings)


@PROPERTY
@given(data=st.data())
def test_request_from_dict_rebuilds_or_explains(env, data):
    """params.json (or a hand-edited copy) goes through the same door."""
    settings, video = env
    record = data.draw(st.one_of(
        WILD,
        st.fixed_dictionaries({"prompt": WILD}, optional={"steps": WILD, "window": windows(), "seed": WILD}),
    ))
    try:
        request = request_from_dict(Text2VideoRequest, record)
    except RequestError as error:
        assert_user_message(error)
        return
    validate_or_explain(request, settings)


# ------------------------------------------------------------------------------ chosen coercions


def test_sensible_values_are_coerced(env):
    settings, video = env
    request = Text2VideoRequest(
        prompt="  a cat  ", num_frames="4", width=" 128 ", height=96.0, steps=None, seed="-1",
        motion_x=-0.0, fps="8", model=None, negative_prompt=None, chunk_size=np.int64(4),
    ).validate(settings)
    assert (request.prompt, request.num_frames, request.width, request.height) == ("a cat", 4, 128, 96)
    assert request.steps == 50 and request.seed == -1 and request.fps == 8.0 and request.chunk_size == 4
    assert str(request.motion_x) == "0.0" and request.model == settings.default_base_model
    assert request.negative_prompt == Text2VideoRequest.negative_prompt

    edit = EditVideoRequest(video=Path(video), prompt="snow", window={"start": "0.5", "end": None, "extra": 1},
                            scheduler=None).validate(settings)
    assert edit.window == VideoWindow(start=0.5, end=0.0, fps=0.0, resolution=512) and edit.video == video
    control = ControlVideoRequest(kind=" edge ", video=video, prompt="x", pose_hands="true", is_skeleton=0,
                                  window=None).validate(settings)
    assert control.kind == "edge" and control.pose_hands is True and control.is_skeleton is False


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(steps=math.nan), "Steps must be a whole number from 2 to 100; got NaN (not a number)."),
        (dict(steps=12.5), "Steps must be a whole number from 2 to 100; got 12.5."),
        (dict(num_frames=True), "Frames must be a whole number from 1 to 64 (Text2Video-Zero's longest clip here); got true."),
        (dict(guidance_scale=math.inf), "Guidance scale must be a number from 0 to 30; got infinity."),
        (dict(seed=10**5000), "Seed must be a whole number from -1 to 4294967295 (-1 = random); got a number of"),
        (dict(width="wide"), "Width must be a whole number from 64 to 1024 pixels; got 'wide'."),
        (dict(width=100), "Width must be a multiple of 8"),
        (dict(fps=0), "FPS must be above 0"),
        (dict(prompt=["a", "cat"]), "The prompt must be text"),
        (dict(prompt=" "), "Please enter a prompt."),
        (dict(prompt="x" * 5000), "at most 2,000"),
        (dict(model="nope"), "Model 'nope' is not offered here; choose one of"),
        (dict(t0=9, t1=3, steps=10), "don't fit"),
    ],
)
def test_bad_values_name_the_field_and_the_range(env, overrides, message):
    settings, _ = env
    overrides.setdefault("prompt", "a cat")
    with pytest.raises(RequestError) as error:
        Text2VideoRequest(**overrides).validate(settings)
    assert message in str(error.value)
    assert_user_message(error.value)


@pytest.mark.parametrize(
    ("window", "message"),
    [
        (VideoWindow(start=-1), "Start time must be a number from 0 to 86400 s"),
        (VideoWindow(start=2, end=1), "End time must be after the start time (0 = to the end)."),
        (VideoWindow(fps="fast"), "FPS must be a number from 0 to 60 (0 = the input's); got 'fast'."),
        (VideoWindow(resolution=[512]), "Resolution must be a whole number from 64 to 1024 pixels"),
        ("0-4 s", "The video window must give a start, end, fps and resolution."),
    ],
)
def test_bad_windows_name_the_field(env, window, message):
    settings, video = env
    with pytest.raises(RequestError) as error:
        EditVideoRequest(video=video, prompt="snow", window=window).validate(settings)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("video", "message"),
    [
        (None, "Please upload a video"),
        ("", "Please upload a video"),
        ("/no/such/clip.mp4", "could not be found"),
        ("clip\x00.mp4", "could not be found"),
        (12, "must be an uploaded file"),
    ],
)
def test_bad_video_paths_are_explained(env, video, message):
    settings, _ = env
    with pytest.raises(RequestError, match=message):
        ControlVideoRequest(kind="edge", video=video, prompt="x").validate(settings)


def test_request_from_dict_explains_a_broken_record(env):
    with pytest.raises(RequestError, match="lacks prompt"):
        request_from_dict(Text2VideoRequest, {"steps": 3})
    with pytest.raises(RequestError, match="set of named values"):
        request_from_dict(Text2VideoRequest, ["prompt"])
    request = request_from_dict(EditVideoRequest, {"video": env[1], "prompt": "p", "window": {"end": 2, "zoom": 3}})
    assert request.window == VideoWindow(end=2)


def test_engines_fast_and_first_frame_image(tmp_path):
    from modules.request_types import ControlVideoRequest, RequestError, Text2VideoRequest
    from modules.settings import Settings

    settings = Settings.from_env(preset="tiny", outputs_dir=str(tmp_path))
    from PIL import Image

    image = tmp_path / "first.png"
    Image.new("RGB", (8, 8)).save(image)  # validation opens the picture's header
    ok = Text2VideoRequest(prompt="0: a cat\n4: a dog", num_frames=8, width=64, height=64, steps=4,
                           engine="animatediff", fast="true").validate(settings)
    assert ok.engine == "animatediff" and ok.fast is True
    assert Text2VideoRequest(prompt="a", width=64, height=64, image=str(image)).validate(settings).image == str(image)
    with pytest.raises(RequestError, match="ModelScope does not start from an image; clear the image or pick Text2Video-Zero"):
        Text2VideoRequest(prompt="a", width=64, height=64, engine="modelscope", image=str(image)).validate(settings)
    with pytest.raises(RequestError, match="ModelScope takes one prompt; a storyboard .one prompt per key frame. needs Text2Video-Zero or AnimateDiff"):
        Text2VideoRequest(prompt="0: a\n4: b", width=64, height=64, engine="modelscope").validate(settings)
    with pytest.raises(RequestError, match="clip has 8 frames"):
        Text2VideoRequest(prompt="0: a\n9: b", num_frames=8, width=64, height=64).validate(settings)
    with pytest.raises(RequestError, match="Engine"):
        Text2VideoRequest(prompt="a", width=64, height=64, engine="sora").validate(settings)
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    with pytest.raises(RequestError, match="Engine 'modelscope' is not offered in this tab; choose one of: text2video-zero, animatediff"):
        ControlVideoRequest(kind="edge", video=str(video), prompt="a", engine="modelscope").validate(settings)
    # engine names in any case (the registry's names are lower case)
    assert ControlVideoRequest(kind="edge", video=str(video), prompt="a", engine=" AnimateDiff ").validate(settings).engine == "animatediff"
