"""Storyboards: key-frame prompts parsed once, interpolated per frame."""

import pytest

from modules.engine import StoryboardError, check_storyboard, key_frame_weights, parse_storyboard


def test_storyboard_text_and_plain_prompts():
    assert parse_storyboard("0: a cat sleeping\n# note\n16: the cat wakes up") == {0: "a cat sleeping", 16: "the cat wakes up"}
    assert parse_storyboard("  a plain prompt ") == "a plain prompt"
    assert parse_storyboard("4: late start") == "4: late start"  # one line not at frame 0: a plain prompt
    with pytest.raises(StoryboardError, match="frame 0"):
        parse_storyboard("4: late start\n8: later")
    with pytest.raises(StoryboardError, match="48 frames"):
        check_storyboard("0: a\n48: b", 48, "prompt")
    assert check_storyboard({0: "only one"}, 8, "prompt") == "only one"


def test_key_frame_weights_are_linear_between_keys_and_held_after_the_last():
    keys = [0, 16, 32]
    assert key_frame_weights(keys, 0) == (0, 16, 0.0)
    assert key_frame_weights(keys, 8) == (0, 16, 0.5)
    assert key_frame_weights(keys, 24) == (16, 32, 0.5)
    assert key_frame_weights(keys, 40) == (32, 32, 0.0)
