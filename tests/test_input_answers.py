"""Every bad input is answered in the app's own sentence (issue 18).

Pictures (the first-frame image arrives as the raw uploaded file), videos ffmpeg cannot read,
fast mode's steps 1, and prompts that only look like storyboards. No message may carry ffmpeg's
or PIL's text, or the server path of the upload.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from modules.engine.storyboard import StoryboardError, parse_storyboard

# ------------------------------------------------------------------------------ storyboards

PLAIN_PROMPTS = [
    "16:9 widescreen shot of a beach",
    "18:30 sunset over the city",
    "4:3 photo, a cat",
    "1080p: a skyline",
    "1984: a dystopian city",
    "0:00 on the clock, a race starts",
    "16:9 widescreen\n4:3 inset, a cat",
    "a cat, style: anime",
]


@pytest.mark.parametrize("prompt", PLAIN_PROMPTS)
def test_ratios_times_and_sizes_are_plain_prompts(prompt):
    assert parse_storyboard(prompt) == prompt


@pytest.mark.parametrize(
    ("text", "board"),
    [
        ("0: a cat sleeping\n16: the cat wakes up", {0: "a cat sleeping", 16: "the cat wakes up"}),
        ("0:a cat\n16:the cat wakes", {0: "a cat", 16: "the cat wakes"}),  # no space, no digit after ':'
        ("# story\n0 : a cat\n\n16 :  the cat wakes  ", {0: "a cat", 16: "the cat wakes"}),
        ("0: a cat", {0: "a cat"}),
    ],
)
def test_real_storyboards_are_read(text, board):
    assert parse_storyboard(text) == board


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("4: a cat\n16: the cat wakes", "must start at frame 0"),
        ("0: a cat\nthe cat wakes", r"line 2 \('the cat wakes'\) has no frame number"),
        ("0: a cat\n16:9 the cat wakes", "number right after the ':'"),
        ("0: a cat\n1.5: b", "whole number"),
        ("0: a cat\n-4: b", "start at 0"),
        ("0: a cat\n8:", "no prompt"),
        ("0: a\n8: b\n8: c", "already given on line 2"),
    ],
)
def test_a_malformed_storyboard_says_how_to_write_one(text, problem):
    with pytest.raises(StoryboardError, match=problem) as error:
        parse_storyboard(text)
    assert "one line per key frame, 'frame: prompt', starting at 0" in str(error.value)
    assert "'0: a cat sleeping' / '16: the cat wakes up'" in str(error.value)


_WORDS = st.text(st.characters(codec="ascii", categories=("L", "Zs", "P")), max_size=40)


@hypothesis_settings(max_examples=200, deadline=None)
@given(left=st.integers(0, 10**6), right=st.integers(0, 10**6), rest=_WORDS,
       more=st.lists(_WORDS.filter(lambda line: not line.lstrip()[:1].isdigit()), max_size=3))
def test_a_first_line_of_digits_colon_digits_is_a_plain_prompt(left, right, rest, more):
    text = "\n".join([f"{left}:{right}{rest}", *more])
    assert parse_storyboard(text) == text.strip()


# ------------------------------------------------------------------------------ fast mode's steps 1


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    from modules.settings import Settings
    from modules.studio import Studio

    return Studio(Settings.from_env(preset="tiny", device="cpu", outputs_dir=str(tmp_path_factory.mktemp("answers"))))


def _fast_engines():
    from modules import engines

    return [engine.name for engine in engines.with_fast("text2video")]


@pytest.mark.parametrize("engine_name", _fast_engines())
def test_fast_text_to_video_runs_steps_1_as_its_recipe_with_a_note(studio, engine_name):
    """As in the ControlNet tabs: fast mode turns 1 step into the recipe's, and says so."""
    from modules import engines
    from modules.request_types import Text2VideoRequest

    engine = engines.get(engine_name)
    recipe_steps = engine.fast.for_tab("text2video")["steps"]
    request = Text2VideoRequest(prompt="a boat", num_frames=engine.rules.frames.nearest(2), width=64, height=64,
                                steps=1, guidance_scale=1.0, seed=1, engine=engine_name, fast=True)
    result = studio.text2video(request, None)
    assert result.notes == [f"Fast mode ({engine.fast.name}) runs {engine.fast.steps_text()} steps with guidance up "
                            f"to {engine.fast.max_guidance:g}: used steps {recipe_steps}."]


def test_steps_1_without_fast_is_refused_as_before():
    from modules.request_types import RequestError, Text2VideoRequest
    from modules.settings import Settings

    with pytest.raises(RequestError, match=r"^Steps must be a whole number from 2 to \d+; got 1\.$"):
        Text2VideoRequest(prompt="a boat", width=64, height=64, steps=1).validate(Settings.from_env(preset="tiny"))
