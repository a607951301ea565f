"""video_io: round trips, windowing, resizing and the errors users see. Offline and fast."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from modules.video_io import (  # noqa: E402
    VideoError,
    fit_size,
    probe_video,
    read_video,
    to_uint8,
    write_gif,
    write_mp4,
)


def moving_bar(num_frames: int, height: int, width: int) -> np.ndarray:
    """Frames whose content tells them apart: a white bar whose width is the frame number + 1."""
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    frames[..., 0] = np.linspace(0, 200, width, dtype=np.uint8)[None, None, :]
    for index in range(num_frames):
        frames[index, height // 4: 3 * height // 4, : (index + 1) * 4] = 255
    return frames


def bar_index(frame: np.ndarray) -> int:
    """Recover the source frame number from moving_bar content (robust to lossy coding)."""
    row = frame[frame.shape[0] // 2, :, 1]  # green is 0 except in the bar
    return int(round((row > 128).sum() / 4)) - 1


@pytest.fixture(scope="module")
def clip_320x240(tmp_path_factory) -> Path:
    """3.0 s at 12 fps."""
    path = tmp_path_factory.mktemp("clips") / "clip.mp4"
    write_mp4(moving_bar(36, 240, 320), path, 12)
    return path


# ------------------------------------------------------------------------------ round trips


def test_mp4_round_trip_keeps_count_size_fps(clip_320x240):
    info = probe_video(clip_320x240)
    assert (info.num_frames, info.width, info.height) == (36, 320, 240)
    assert info.fps == pytest.approx(12)
    assert info.duration == pytest.approx(3.0, abs=0.05)

    frames, fps = read_video(clip_320x240)
    assert frames.shape == (36, 240, 320, 3) and frames.dtype == np.uint8
    assert fps == pytest.approx(12)
    assert [bar_index(frame) for frame in frames] == list(range(36))


def test_write_mp4_accepts_float_frames_and_returns_path(tmp_path):
    frames = moving_bar(4, 64, 96).astype(np.float32) / 255.0
    out = write_mp4(frames, tmp_path / "sub" / "float.mp4", 8)
    assert isinstance(out, str) and Path(out).is_file()
    decoded, _ = read_video(out)
    assert decoded.shape == (4, 64, 96, 3)
    assert np.abs(decoded.astype(int) - to_uint8(frames).astype(int)).mean() < 6


def test_mp4_keeps_sizes_that_are_not_multiples_of_16(tmp_path):
    write_mp4(moving_bar(5, 130, 250), tmp_path / "even.mp4", 8)
    info = probe_video(tmp_path / "even.mp4")
    assert (info.width, info.height, info.num_frames) == (250, 130, 5)


def test_mp4_pads_odd_sizes_to_even(tmp_path):
    """yuv420p cannot hold odd sides, so one edge row/column is repeated."""
    write_mp4(moving_bar(5, 131, 251), tmp_path / "odd.mp4", 8)
    info = probe_video(tmp_path / "odd.mp4")
    assert (info.width, info.height) == (252, 132)
    frames, _ = read_video(tmp_path / "odd.mp4", multiple=1)
    assert frames.shape == (5, 132, 252, 3)


def test_gif_round_trip(tmp_path):
    frames = moving_bar(16, 48, 64)
    write_gif(frames, tmp_path / "clip.gif", 8)
    info = probe_video(tmp_path / "clip.gif")
    assert (info.num_frames, info.width, info.height) == (16, 64, 48)
    assert info.fps == pytest.approx(8)
    assert info.duration == pytest.approx(2.0)

    decoded, fps = read_video(tmp_path / "clip.gif")
    assert decoded.shape == (16, 48, 64, 3) and fps == pytest.approx(8)
    assert [bar_index(frame) for frame in decoded] == list(range(16))


def test_gif_keeps_timing_when_identical_frames_are_merged(tmp_path):
    """GIF writers fold repeated frames into one longer delay; reading must expand them again."""
    frames = moving_bar(6, 32, 48)
    frames[3] = frames[2]
    write_gif(frames, tmp_path / "repeat.gif", 10)
    decoded, fps = read_video(tmp_path / "repeat.gif")
    assert fps == pytest.approx(10)
    assert [bar_index(frame) for frame in decoded] == [0, 1, 2, 2, 4, 5]


def test_gif_loops_forever(tmp_path):
    write_gif(moving_bar(3, 16, 16), tmp_path / "loop.gif", 5)
    from PIL import Image

    with Image.open(tmp_path / "loop.gif") as image:
        assert image.info.get("loop") == 0


def test_reads_rgba_and_greyscale_frames(tmp_path):
    grey = np.repeat(np.linspace(0, 1, 32, dtype=np.float32)[None, None, :], 24, axis=1)
    write_mp4(np.repeat(grey, 3, axis=0), tmp_path / "grey.mp4", 8)  # (F, H, W)
    rgba = np.concatenate([moving_bar(3, 24, 32), np.full((3, 24, 32, 1), 255, np.uint8)], axis=-1)
    write_gif(rgba, tmp_path / "rgba.gif", 8)
    assert read_video(tmp_path / "grey.mp4")[0].shape == (3, 24, 32, 3)
    assert read_video(tmp_path / "rgba.gif")[0].shape == (3, 24, 32, 3)


def test_to_uint8():
    assert to_uint8(np.array([0.0, 0.5, 1.0, 1.5, -1.0])).tolist() == [0, 128, 255, 255, 0]
    data = np.array([1, 2, 3], np.uint8)
    assert to_uint8(data) is data


# ------------------------------------------------------------------------------ windowing


def test_window_and_fps_pick_the_nearest_frames(clip_320x240):
    frames, fps = read_video(clip_320x240, start=0.5, end=2.5, fps=4)
    assert fps == 4 and len(frames) == 8
    # 0.5 s + k / 4 at 12 fps -> source frames 6, 9, 12, ...
    assert [bar_index(frame) for frame in frames] == [6 + 3 * k for k in range(8)]


def test_window_end_is_clamped_and_higher_fps_repeats_frames(clip_320x240):
    frames, fps = read_video(clip_320x240, start=2.0, end=99.0, fps=36)
    assert fps == 36 and len(frames) == 36  # 1 s left in the clip
    # 2.0 + k / 36 s at 12 fps: 24, 24.33, 24.67, 25 -> nearest 24, 24, 25, 25
    assert [bar_index(frame) for frame in frames[:4]] == [24, 24, 25, 25]
    assert bar_index(frames[-1]) == 35


def test_keeping_source_fps_with_a_window(clip_320x240):
    frames, fps = read_video(clip_320x240, start=1.0, end=2.0)
    assert fps == pytest.approx(12) and [bar_index(f) for f in frames] == list(range(12, 24))


def test_very_short_window_gives_one_frame(clip_320x240):
    frames, _ = read_video(clip_320x240, start=1.0, end=1.01, fps=2)
    assert len(frames) == 1


# ------------------------------------------------------------------------------ resizing


@pytest.mark.parametrize(
    ("size", "long_side", "multiple", "expected"),
    [
        ((320, 240), 256, 8, (256, 192)),
        ((250, 130), 128, 8, (128, 64)),  # 66.6 -> nearest multiple of 8 is 64
        ((250, 130), None, 8, (248, 128)),  # keep the size, round each side to the nearest 8
        ((240, 320), 512, 8, (384, 512)),  # portrait: the long side is the height
        ((1000, 20), 512, 8, (512, 8)),  # never below one multiple
        ((252, 132), 200, 1, (200, 105)),
        ((100, 100), 60, 16, (64, 64)),  # halves round up
    ],
)
def test_fit_size_rule(size, long_side, multiple, expected):
    assert fit_size(*size, long_side=long_side, multiple=multiple) == expected


def test_read_video_resizes_with_the_fit_size_rule(clip_320x240, tmp_path):
    frames, _ = read_video(clip_320x240, long_side=256, fps=2)
    assert frames.shape[1:] == (192, 256, 3)
    grown, _ = read_video(clip_320x240, long_side=512, end=0.5)
    assert grown.shape[1:] == (384, 512, 3)

    write_mp4(moving_bar(3, 130, 250), tmp_path / "wide.mp4", 8)
    small, _ = read_video(tmp_path / "wide.mp4", long_side=128)
    width, height = small.shape[2], small.shape[1]
    assert (width, height) == fit_size(250, 130, long_side=128) == (128, 64)
    assert width % 8 == 0 and height % 8 == 0
    assert abs(width / height - 250 / 130) < 0.2  # aspect kept up to the rounding
    assert read_video(tmp_path / "wide.mp4")[0].shape[1:3] == (128, 248)


# ------------------------------------------------------------------------------ errors


def test_max_frames_error_names_the_numbers(clip_320x240):
    with pytest.raises(VideoError) as error:
        read_video(clip_320x240, fps=12, max_frames=10)
    message = str(error.value)
    assert "36 frames" in message and "10" in message
    assert "Shorten" in message and "fps" in message
    assert len(read_video(clip_320x240, fps=12, end=0.8, max_frames=10)[0]) == 10


def test_max_seconds_caps_the_window_asked_for(clip_320x240):
    with pytest.raises(VideoError, match=r"The selected part is 3\.0 s long; this server takes up to 2 s"):
        read_video(clip_320x240, max_seconds=2)  # no end: the whole 3 s clip
    with pytest.raises(VideoError, match=r"is 2\.5 s long"):
        read_video(clip_320x240, start=0.5, max_seconds=2)
    assert len(read_video(clip_320x240, start=0.5, end=2.5, fps=4, max_seconds=2)[0]) == 8


@pytest.mark.parametrize(
    ("window", "fragment"),
    [
        (dict(start=5.0), "Start time 5.0 s is past the end of the video (3.0 s)"),
        (dict(start=-1.0), "Start time"),
        (dict(start=2.0, end=1.0), "must be after the start"),
        (dict(start=1.0, end=1.0), "must be after the start"),
        (dict(fps=0), "Frame rate must be positive"),
        (dict(fps=-3), "Frame rate must be positive"),
    ],
)
def test_bad_windows_are_explained(clip_320x240, window, fragment):
    with pytest.raises(VideoError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        read_video(clip_320x240, **window)


def test_text_file_named_mp4_is_rejected(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 20)
    for call in (probe_video, read_video):
        with pytest.raises(VideoError, match=r"Could not read the video 'notes.mp4'.*Supported: mp4"):
            call(fake)


def test_empty_file_is_rejected(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(VideoError, match="empty"):
        probe_video(empty)
    with pytest.raises(VideoError, match="empty"):
        read_video(empty)


def test_missing_file_is_rejected(tmp_path):
    with pytest.raises(VideoError, match="does not exist"):
        probe_video(tmp_path / "nope.mp4")
    with pytest.raises(VideoError, match="does not exist"):
        read_video(tmp_path / "nope.gif")


def test_video_error_is_a_value_error():
    assert issubclass(VideoError, ValueError)


def test_writing_nothing_is_an_error(tmp_path):
    with pytest.raises(VideoError, match="no frames"):
        write_mp4(np.zeros((0, 8, 8, 3), np.uint8), tmp_path / "none.mp4", 8)


# ------------------------------------------------------------------------------ assets


def _load_make_assets():
    spec = importlib.util.spec_from_file_location("make_assets", ROOT / "assets" / "make_assets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_all_writes_readable_small_assets(tmp_path):
    make_assets = _load_make_assets()
    paths = make_assets.make_all(tmp_path)
    names = {path.name for path in paths}
    for prefix in ("pose_", "edge_", "depth_", "edit_"):
        assert any(name.startswith(prefix) for name in names), prefix
    assert sum(1 for name in names if name.startswith("pose_")) == 3
    total = 0
    for path in paths:
        size = path.stat().st_size
        total += size
        assert size < 300_000, path.name
        info = probe_video(path)
        frames, fps = read_video(path, long_side=128)
        assert len(frames) == info.num_frames and 1.5 <= info.duration <= 3.0
        assert max(frames.shape[1:3]) == 128 and frames.std() > 5  # not blank
    assert total < 2_000_000


def test_pose_assets_use_openpose_colours(tmp_path):
    """Pose clips must look like OpenPose maps: black background, the 18 ControlNet joint colours."""
    make_assets = _load_make_assets()
    clip = make_assets.pose_clip(make_assets.wave_pose)
    first = clip[0]
    assert (first.reshape(-1, 3).sum(axis=1) == 0).mean() > 0.8
    for (x, y), color in zip(make_assets.REST_POSE[:2], make_assets.POSE_COLORS[:2]):
        height, width = first.shape[:2]
        assert tuple(first[int(y * height), int(x * width)]) == color
