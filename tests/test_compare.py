"""Side-by-side comparison videos: sizes, lengths and rates of different engines in one clip."""

import numpy as np
import pytest

from modules.compare import GAP, LABEL_HEIGHT, side_by_side


def clip(frames, height, width, value):
    video = np.full((frames, height, width, 3), value, dtype=np.uint8)
    video[:, :, :, 0] = np.arange(frames, dtype=np.uint8)[:, None, None] * 10  # frame index in red
    return video


def test_clips_of_different_size_length_and_rate_line_up_in_time():
    a = clip(8, 64, 64, 50)  # 2 s at 4 fps
    b = clip(16, 128, 96, 200)  # 2 s at 8 fps, taller
    out = side_by_side([a, b], ["text2video-zero", "animatediff"], [4, 8])
    assert out.dtype == np.uint8
    assert out.shape == (16, 128 + LABEL_HEIGHT, 128 + GAP + 96, 3)  # a scaled to 128 high
    # At output frame 5 (0.625 s) clip a shows its frame 2, clip b its frame 5.
    assert out[5, LABEL_HEIGHT + 10, 10, 0] == 20 and out[5, LABEL_HEIGHT + 10, 128 + GAP + 10, 0] == 50
    assert out[:, :LABEL_HEIGHT].max() > 0  # labels drawn


def test_a_shorter_clip_holds_its_last_frame():
    out = side_by_side([clip(2, 32, 32, 0), clip(6, 32, 32, 0)], ["a", "b"], [2, 2])
    assert len(out) == 6
    assert (out[5, LABEL_HEIGHT:, :32] == out[1, LABEL_HEIGHT:, :32]).all()


def test_mismatched_arguments_are_refused():
    with pytest.raises(ValueError):
        side_by_side([clip(2, 32, 32, 0)], ["a", "b"], [2])
