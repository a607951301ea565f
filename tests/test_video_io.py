"""video_io: round trips, windowing, resizing and the errors users see. Offline and fast."""

from __future__ import annotations

import errno
import importlib.util
import sys
from pathlib import Path

import imageio.v2 as imageio_v2
import imageio.v3 as imageio_v3
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
    """fps and end both set by the user and too many frames: an error that says what to change."""
    with pytest.raises(VideoError) as error:
        read_video(clip_320x240, fps=12, end=3.0, max_frames=10)
    message = str(error.value)
    assert "36 frames" in message and "10" in message
    assert "Shorten" in message and "fps" in message and "frame rate to 0" in message
    assert len(read_video(clip_320x240, fps=12, end=0.8, max_frames=10)[0]) == 10


def test_max_seconds_caps_the_window_asked_for(clip_320x240):
    """An end the user set is kept, so a window longer than allowed is an error naming the numbers."""
    with pytest.raises(VideoError, match=r"The selected part is 3\.0 s long; this server takes up to 2 s"):
        read_video(clip_320x240, end=3.0, max_seconds=2)
    with pytest.raises(VideoError, match=r"is 2\.5 s long.*end time to 2\.5 s or less"):
        read_video(clip_320x240, start=0.5, end=3.0, max_seconds=2)
    assert len(read_video(clip_320x240, start=0.5, end=2.5, fps=4, max_seconds=2)[0]) == 8


def test_max_seconds_shortens_an_auto_end(clip_320x240):
    clip = read_video(clip_320x240, start=0.5, max_seconds=2)
    assert (clip.used.start, clip.used.end, len(clip.frames)) == (0.5, 2.5, 24)
    assert "0.5–2.5 s of the 3.0 s video" in clip.used.note


@pytest.mark.parametrize(
    ("window", "fragment"),
    [
        (dict(start=5.0), "Start time 5.0 s is past the end of the video (3.0 s)"),
        (dict(start=-1.0), "Start time"),
        (dict(start=2.0, end=1.0), "must be after the start"),
        (dict(start=1.0, end=1.0), "must be after the start"),
        (dict(start=1.0, end=float("nan")), "must be after the start"),
        (dict(fps=-3), "Frame rate must be positive"),
        (dict(fps=float("inf")), "Frame rate must be positive"),
    ],
)
def test_bad_windows_are_explained(clip_320x240, window, fragment):
    with pytest.raises(VideoError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        read_video(clip_320x240, **window)


def test_text_file_named_mp4_is_rejected(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 20)
    for call in (probe_video, read_video):
        with pytest.raises(VideoError, match=r"Could not read the video 'notes.mp4': it is not a video file this "
                                             r"server can decode, or it is damaged\. Please upload an mp4, webm"):
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


# ------------------------------------------------------------------------------ fitting to the caps


def test_auto_fps_is_lowered_to_fit_max_frames(clip_320x240):
    clip = read_video(clip_320x240, max_frames=10)
    frames, fps = clip  # the (frames, fps) callers always had
    assert len(frames) == 10 and fps == pytest.approx(10 / 3, abs=1e-3) and fps <= 10 / 3
    used = clip.used
    assert (used.start, used.end, used.frames, used.fps) == (0.0, 3.0, 10, fps)
    assert (used.width, used.height) == (320, 240) and used.source.num_frames == 36
    assert used.note == "12 fps → 3.33 fps to fit the 10-frame limit."
    indices = [bar_index(frame) for frame in frames]
    assert indices == sorted(indices) and indices[0] == 0 and indices[-1] >= 30  # spread over the clip


def test_auto_fps_stops_at_the_floor_and_then_shortens_the_window(clip_320x240):
    clip = read_video(clip_320x240, max_frames=2, min_auto_fps=1.0)
    assert clip.fps == 1.0 and len(clip.frames) == 2 and clip.used.end == 2.0
    assert clip.used.note == "12 fps → 1 fps and 0.0–2.0 s of the video to fit the 2-frame limit."


def test_a_set_end_keeps_its_window_and_lowers_the_fps(clip_320x240):
    clip = read_video(clip_320x240, start=1.0, end=3.0, max_frames=8)
    assert (clip.used.start, clip.used.end, len(clip.frames), clip.fps) == (1.0, 3.0, 8, 4.0)
    with pytest.raises(VideoError, match=r"gives 3 frames even at 1 fps; the limit is 2\. Shorten it to 2\.0 s"):
        read_video(clip_320x240, end=3.0, max_frames=2)


def test_a_set_fps_keeps_its_rate_and_shortens_an_auto_end(clip_320x240):
    clip = read_video(clip_320x240, start=0.5, fps=12, max_frames=10)
    assert clip.fps == 12 and len(clip.frames) == 10
    assert clip.used.end == pytest.approx(0.5 + 10 / 12, abs=1e-6)
    assert [bar_index(frame) for frame in clip.frames] == list(range(6, 16))
    assert clip.used.note == "Used 0.5–1.33 s at 12 fps to fit the 10-frame limit."


def test_zero_end_and_zero_fps_mean_auto_and_an_end_past_the_clip_means_to_the_end(clip_320x240):
    frames, fps = read_video(clip_320x240, start=0, end=0, fps=0)
    assert len(frames) == 36 and fps == pytest.approx(12)
    clip = read_video(clip_320x240, start=2.0, end=99.0)
    assert len(clip.frames) == 12 and clip.used.end == 3.0
    assert "end time 99.0 s is past the video's end" in clip.used.note
    assert read_video(clip_320x240).used.note == ""  # nothing changed, nothing to say


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory) -> Path:
    """3.0 s at 12 fps, tiny frames: cheap enough to read many times."""
    path = tmp_path_factory.mktemp("small") / "small.mp4"
    write_mp4(moving_bar(36, 16, 160), path, 12)
    return path


def test_any_window_gives_frames_within_the_cap_or_a_video_error(small_clip):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    times = st.one_of(st.none(), st.just(0.0), st.floats(-1, 10), st.sampled_from([float("nan"), float("inf")]))
    rates = st.one_of(st.none(), st.just(0.0), st.floats(-5, 120), st.sampled_from([float("nan"), 1e-9]))

    @settings(max_examples=40, deadline=None)
    @given(start=st.one_of(st.just(0.0), st.floats(-1, 4)), end=times, fps=rates, max_frames=st.integers(1, 40))
    def check(start, end, fps, max_frames):
        auto = (end is None or end == 0) and (fps is None or fps == 0)
        try:
            clip = read_video(small_clip, start=start, end=end, fps=fps, max_frames=max_frames, max_seconds=2.5)
        except VideoError as error:
            assert not (auto and 0 <= start < 3.0), error  # both on auto: any valid start gives frames
            assert "Error" not in str(error)
            return
        assert 1 <= len(clip.frames) <= max_frames and clip.used.frames == len(clip.frames)
        assert clip.used.end - clip.used.start <= 2.5 + 1e-6

    check()


# ------------------------------------------------------------------------------ one-frame inputs


@pytest.mark.parametrize("kind", ["mp4", "gif", "png", "jpeg"])
def test_one_frame_inputs_give_one_frame(tmp_path, kind):
    from PIL import Image

    still = moving_bar(1, 48, 64)
    path = tmp_path / ("one.gif" if kind == "gif" else "one.mp4")  # stills renamed .mp4, as users do
    if kind == "mp4":
        write_mp4(still, path, 8)
    elif kind == "gif":
        write_gif(still, path, 8)
    else:
        Image.fromarray(still[0]).save(path, format=kind.upper())
    assert probe_video(path).num_frames == 1
    clip = read_video(path, long_side=64, max_frames=64, max_seconds=60)
    assert clip.frames.shape == (1, 48, 64, 3) and clip.fps > 0
    assert np.abs(clip.frames[0].astype(int) - still[0]).mean() < 12


# ------------------------------------------------------------------------------ limits before work


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if any frame is decoded (ffmpeg frames or Pillow GIF frames)."""
    import imageio.v2 as imageio

    from modules import video_io

    def refuse(*args, **kwargs):
        pytest.fail("a frame was decoded")  # a BaseException: no handler in video_io can swallow it

    with imageio.get_reader(str(ROOT / "assets" / "edge_box.mp4"), format="FFMPEG") as reader:
        monkeypatch.setattr(type(reader), "get_data", refuse)
    monkeypatch.setattr(imageio_v3, "imopen", refuse)
    monkeypatch.setattr(imageio_v3, "imread", refuse)


@pytest.mark.parametrize("suffix", ["mp4", "gif"])
def test_sources_over_the_limits_are_refused_from_the_header(tmp_path, suffix, request):
    from modules.video_io import SourceLimits

    path = tmp_path / f"clip.{suffix}"
    (write_gif if suffix == "gif" else write_mp4)(moving_bar(20, 48, 64), path, 10)  # 2 s, 64x48
    request.getfixturevalue("no_decoding")
    cases = [
        (SourceLimits(max_pixels=64 * 48 - 1), r"is 64x48 \(3,072 pixels per frame\).*up to 3,071 pixels"),
        (SourceLimits(max_frames=19), r"has 20 frames; this server reads videos of up to 19 frames"),
        (SourceLimits(max_seconds=1.5), r"is 2\.0 s long; this server reads videos of up to 1\.5 s"),
        (SourceLimits(max_mb=path.stat().st_size / 2**20 / 2), r"MB; this server accepts up to .* MB"),
    ]
    for limits, message in cases:
        with pytest.raises(VideoError, match=message):
            read_video(path, source_limits=limits)
    if suffix == "gif":  # GIFs are probed without decoding a frame at all
        info = probe_video(path, SourceLimits(max_pixels=64 * 48, max_frames=20, max_seconds=2, max_mb=1))
        assert (info.width, info.height, info.num_frames) == (64, 48, 20)


def test_gif_scan_matches_pillow(tmp_path):
    from PIL import Image

    from modules.video_io.gif import scan_gif

    frames = moving_bar(7, 20, 40)
    frames[4] = frames[3]  # merged into one longer delay
    write_gif(frames, tmp_path / "a.gif", 7)
    width, height, delays = scan_gif(tmp_path / "a.gif")
    with Image.open(tmp_path / "a.gif") as image:
        expected = []
        for index in range(image.n_frames):
            image.seek(index)
            expected.append(image.info["duration"] // 10)
        assert (width, height) == image.size
    assert delays == expected and len(delays) == 6


def test_truncated_gif_gives_the_frames_it_has(tmp_path):
    write_gif(moving_bar(8, 32, 48), tmp_path / "whole.gif", 8)
    data = (tmp_path / "whole.gif").read_bytes()
    (tmp_path / "cut.gif").write_bytes(data[: int(len(data) * 0.8)])
    frames, _ = read_video(tmp_path / "cut.gif")
    assert 1 <= len(frames) <= 8 and bar_index(frames[0]) == 0


def test_garbage_after_gif_magic_is_explained(tmp_path):
    (tmp_path / "fake.gif").write_bytes(b"GIF89a" + b"\x00" * 3)
    with pytest.raises(VideoError, match="Could not read the video 'fake.gif'"):
        read_video(tmp_path / "fake.gif")


@pytest.mark.parametrize(
    ("size", "long_side", "max_pixels", "expected"),
    [
        ((1024, 1024), 1024, 768 * 768, (768, 768)),
        ((1920, 1080), 1024, 768 * 768, (1024, 576)),  # fits exactly: unchanged
        ((1920, 1080), 1024, 500_000, (936, 528)),
        ((1000, 20), 512, 768 * 768, (512, 8)),
        ((320, 240), None, 100 * 100, (112, 88)),
    ],
)
def test_output_size_caps_pixels_keeping_aspect_and_multiples(size, long_side, max_pixels, expected):
    from modules.video_io import output_size

    width, height = output_size(*size, long_side=long_side, max_pixels=max_pixels)
    assert (width, height) == expected
    assert width * height <= max_pixels and width % 8 == 0 and height % 8 == 0


def test_output_size_too_small_a_cap_is_explained():
    from modules.video_io import output_size

    with pytest.raises(VideoError, match="fits within 10 pixels"):
        output_size(64, 48, long_side=64, max_pixels=10)


def test_read_video_caps_pixels_and_says_so(clip_320x240):
    clip = read_video(clip_320x240, long_side=512, max_pixels=256 * 192, end=0.5)
    assert clip.frames.shape[1:3] == (192, 256) and (clip.used.width, clip.used.height) == (256, 192)
    assert clip.used.note == "512x384 → 256x192 to stay within this server's 49,152 pixels per frame."


# ------------------------------------------------------------------------------ atomic writes


class _BrokenWriter:
    """An encoder that writes part of a file and then fails, like ffmpeg running out of disk."""

    def __init__(self, path, **kwargs):
        self.path = Path(path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def append_data(self, frame):
        self.path.write_bytes(b"half a video")
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_failing_mp4_writer_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    from modules import video_io

    frames = moving_bar(3, 16, 16)
    monkeypatch.setattr(imageio_v2, "get_writer", lambda path, **kw: _BrokenWriter(path))
    with pytest.raises(VideoError, match="Could not write the video 'new.mp4': No space left"):
        write_mp4(frames, tmp_path / "new.mp4", 8)
    assert list(tmp_path.iterdir()) == []  # no final file, no partial file
    monkeypatch.undo()
    write_mp4(frames, tmp_path / "old.mp4", 8)
    before = (tmp_path / "old.mp4").read_bytes()
    monkeypatch.setattr(imageio_v2, "get_writer", lambda path, **kw: _BrokenWriter(path))
    with pytest.raises(VideoError):
        write_mp4(frames, tmp_path / "old.mp4", 8)
    assert (tmp_path / "old.mp4").read_bytes() == before and len(list(tmp_path.iterdir())) == 1


def test_a_failing_gif_writer_leaves_no_file(tmp_path, monkeypatch):
    from modules import video_io

    from PIL import Image

    def broken(image, path, *args, **kwargs):
        Path(path).write_bytes(b"GIF89a half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken)
    with pytest.raises(VideoError, match="Could not write the GIF 'clip.gif': No space left on device"):
        write_gif(moving_bar(3, 16, 16), tmp_path / "clip.gif", 8)
    assert list(tmp_path.iterdir()) == []


def test_written_files_appear_under_their_final_name_only(tmp_path):
    write_mp4(moving_bar(3, 16, 16), tmp_path / "a.mp4", 8)
    write_gif(moving_bar(3, 16, 16), tmp_path / "a.gif", 8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif", "a.mp4"]
    assert len(read_video(tmp_path / "a.mp4")[0]) == 3 and len(read_video(tmp_path / "a.gif")[0]) == 3


def test_a_gif_becomes_an_mp4_of_the_same_frames_for_the_page(sample_videos, tmp_path):
    """The page's video inputs play no GIF: the copy they get is an mp4 from which a job reads what it would
    have read from the GIF (same rate and duration, the same frames up to H.264's loss)."""
    from modules import video_io

    gif = sample_videos["gif"]
    copy = video_io.gif_as_mp4(gif, tmp_path)
    assert copy.endswith(".mp4") and not video_io.is_gif(copy) and video_io.is_gif(gif)
    from_gif, gif_fps = video_io.read_video(gif)
    from_copy, copy_fps = video_io.read_video(copy)
    assert copy_fps == pytest.approx(gif_fps, rel=1e-3) and from_copy.shape[0] == from_gif.shape[0]
    probed = video_io.probe_video(copy)
    assert (probed.width, probed.height) == (100, 70)  # even sides are kept exactly
    assert np.abs(from_copy.astype(float) - from_gif.astype(float)).mean() < 8  # H.264's loss only
    with pytest.raises(video_io.VideoError):
        video_io.gif_as_mp4(copy, tmp_path)  # an mp4 is not converted
