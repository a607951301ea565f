"""Reading, resampling, resizing and writing short videos for the pipelines.

Decoding goes through imageio: its ffmpeg plugin (the binary bundled with imageio-ffmpeg) for
mp4/webm/mov/..., and its pillow plugin for GIFs, whose per-frame delays ffmpeg would flatten.
Frames are decoded as a stream and resized one at a time, so only the frames we return are held.
No Gradio and no torch here: this module must stay importable in tests and tools.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import imageio.v2 as imageio
import imageio.v3 as iio
import numpy as np

from .errors import UserError

SUPPORTED_FORMATS = "mp4, webm, mov, gif"
GIF_MAGIC = (b"GIF87a", b"GIF89a")
# Browsers show a GIF frame without a delay (or with 0) at about 10 fps.
GIF_DEFAULT_FPS = 10.0
# GIF delays are stored in centiseconds; 1 cs is the shortest delay a GIF can hold.
GIF_DELAY_UNIT_MS = 10
# Constant rate factor for libx264: visually clean, yet small enough for short clips.
MP4_CRF = 20
MP4_PRESET = "medium"
# yuv420p stores chroma at half resolution, so libx264 refuses odd widths and heights.
YUV420_ALIGN = 2
# Slack for float timestamps, so 0.5 + k * 0.25 s never lands on the wrong side of a boundary.
TIME_EPS = 1e-6


class VideoError(UserError, ValueError):
    """A problem with the user's video or window, worded so it can be shown to the user as is."""


@dataclass
class VideoInfo:
    fps: float
    num_frames: int
    duration: float
    width: int
    height: int


# --------------------------------------------------------------------------- conversions


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Pipelines hand back float [0, 1]; encoders and the UI want uint8."""
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames
    if frames.dtype == np.bool_:
        return frames.astype(np.uint8) * 255
    if np.issubdtype(frames.dtype, np.floating):
        return np.round(np.clip(frames, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.clip(frames, 0, 255).astype(np.uint8)


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """Models expect 3 channels; drop alpha and repeat grey rather than fail on odd inputs."""
    if frame.ndim == 2:
        frame = frame[..., None]
    channels = frame.shape[-1]
    if channels == 3:
        return frame
    if channels == 1:
        return np.repeat(frame, 3, axis=-1)
    if channels == 4:
        return frame[..., :3]
    raise VideoError(f"Frames must have 1, 3 or 4 channels, got {channels}.")


def _as_rgb_frames(frames: np.ndarray) -> np.ndarray:
    """Normalise any writer input to uint8 (F, H, W, 3)."""
    frames = to_uint8(frames)
    if frames.ndim == 3 and frames.shape[-1] not in (1, 3, 4):
        frames = frames[..., None]  # (F, H, W) greyscale
    if frames.ndim != 4:
        raise VideoError(f"Expected frames shaped (F, H, W, 3), got {frames.shape}.")
    if len(frames) == 0:
        raise VideoError("There are no frames to write.")
    return np.stack([to_rgb(frame) for frame in frames]) if frames.shape[-1] != 3 else frames


# --------------------------------------------------------------------------- sizing


def _round_to_multiple(value: float, multiple: int) -> int:
    """Nearest multiple, halves rounding up, never below one multiple (a 0-pixel side is useless)."""
    return max(multiple, int(math.floor(value / multiple + 0.5)) * multiple)


def fit_size(width: int, height: int, *, long_side: int | None = None, multiple: int = 8) -> tuple[int, int]:
    """The (width, height) that read_video returns for a source of this size.

    Rule: scale so the long side equals `long_side` (or keep the size when None), then round each
    side to the nearest multiple of `multiple` (halves up), at least `multiple`. Latent diffusion
    needs sides divisible by 8; rounding each side separately keeps the aspect ratio within a
    few pixels.
    """
    if multiple < 1:
        raise VideoError(f"multiple must be at least 1, got {multiple}.")
    scale = 1.0
    if long_side is not None:
        if long_side <= 0:
            raise VideoError(f"The resolution must be positive, got {long_side}.")
        scale = long_side / max(width, height)
    return _round_to_multiple(width * scale, multiple), _round_to_multiple(height * scale, multiple)


def _resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """INTER_AREA avoids aliasing when shrinking; INTER_CUBIC stays sharp when growing."""
    height, width = frame.shape[:2]
    if (width, height) == size:
        return frame
    shrinking = size[0] * size[1] < width * height
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(frame, size, interpolation=interpolation)


# --------------------------------------------------------------------------- opening


def _unreadable(path: Path, reason: str) -> VideoError:
    return VideoError(f"Could not read the video '{path.name}': {reason}. Supported: {SUPPORTED_FORMATS}.")


def _ffmpeg_reason(error: Exception) -> str:
    """ffmpeg's stderr is a wall of text; its last line usually says what went wrong."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _check_file(path: Path) -> bool:
    """Fail early with a clear message; returns whether the file is a GIF (by content, not name)."""
    if not path.exists():
        raise _unreadable(path, "the file does not exist")
    if not path.is_file():
        raise _unreadable(path, "it is not a file")
    if path.stat().st_size == 0:
        raise _unreadable(path, "the file is empty (0 bytes)")
    with open(path, "rb") as handle:
        return handle.read(len(GIF_MAGIC[0])) in GIF_MAGIC


def _open_ffmpeg(path: Path):
    try:
        return imageio.get_reader(os.fspath(path), format="FFMPEG")
    except Exception as error:  # imageio raises OSError, RuntimeError or IndexError here
        raise _unreadable(path, _ffmpeg_reason(error)) from error


def _probe_ffmpeg(path: Path) -> VideoInfo:
    with _open_ffmpeg(path) as reader:
        meta = reader.get_meta_data()
        try:
            first = np.asarray(reader.get_data(0))
        except Exception as error:
            raise VideoError(f"The video '{path.name}' has no frames.") from error
        fps = float(meta.get("fps") or 0.0)
        if not math.isfinite(fps) or fps <= 0:
            raise _unreadable(path, "its frame rate is unknown")
        duration = float(meta.get("duration") or 0.0)
        if not math.isfinite(duration) or duration <= 0:
            # Some streamed webm files carry no duration; count the frames instead.
            duration = reader.count_frames() / fps
    # ffmpeg prints the duration to the centisecond; snap it to whole frames so that reading
    # "to the end" gives exactly num_frames frames rather than one extra.
    num_frames = max(1, int(math.floor(duration * fps + 0.5)))
    return VideoInfo(fps=fps, num_frames=num_frames, duration=num_frames / fps,
                     width=int(first.shape[1]), height=int(first.shape[0]))


def _gif_delays(path: Path) -> list[float]:
    """Per-frame display times in seconds; missing or zero delays count as GIF_DEFAULT_FPS."""
    try:
        with iio.imopen(os.fspath(path), "r", plugin="pillow") as gif:
            count = gif.properties(index=None).n_images
            delays_ms = [gif.metadata(index=i).get("duration") or 0 for i in range(count)]
    except Exception as error:
        raise _unreadable(path, str(error) or type(error).__name__) from error
    if not delays_ms:
        raise VideoError(f"The video '{path.name}' has no frames.")
    return [ms / 1000.0 if ms > 0 else 1.0 / GIF_DEFAULT_FPS for ms in delays_ms]


def _gif_timing(delays: Sequence[float]) -> tuple[float, int]:
    """(fps, frame count at that fps) for a GIF.

    Writers merge identical consecutive frames into one long delay and jitter delays to fit whole
    centiseconds, so count each frame as the number of typical delays it spans and divide by the
    total time: that recovers the rate the GIF was made at.
    """
    typical = float(np.median(delays))
    spans = sum(max(1, int(math.floor(delay / typical + 0.5))) for delay in delays)
    return spans / float(sum(delays)), spans


def _probe_gif(path: Path) -> tuple[VideoInfo, list[float]]:
    delays = _gif_delays(path)
    fps, num_frames = _gif_timing(delays)
    try:
        first = iio.imread(os.fspath(path), plugin="pillow", index=0, mode="RGB")
    except Exception as error:
        raise _unreadable(path, str(error) or type(error).__name__) from error
    info = VideoInfo(fps=fps, num_frames=num_frames, duration=float(sum(delays)),
                     width=int(first.shape[1]), height=int(first.shape[0]))
    return info, delays


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Cheap look at a video (header plus first frame): its size, fps and length without decoding it.

    num_frames is duration x fps (for GIFs, frames at the reported fps), which is what
    read_video returns with no window and no fps.
    """
    path = Path(path)
    if _check_file(path):
        return _probe_gif(path)[0]
    return _probe_ffmpeg(path)


# --------------------------------------------------------------------------- streaming


def _iter_ffmpeg(path: Path, wanted: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (index, frame) for the sorted distinct indices; stops early at the real end of the stream.

    imageio seeks when the next index is far ahead and otherwise skips frames, so a late window
    does not decode the whole file.
    """
    with _open_ffmpeg(path) as reader:
        for index in wanted:
            try:
                frame = reader.get_data(index)
            except (IndexError, StopIteration, RuntimeError, OSError):
                return  # header durations can overstate the stream by a frame or two
            yield index, np.asarray(frame)


def _iter_gif(path: Path, wanted: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
    last_wanted = wanted[-1]
    wanted_set = set(wanted)
    try:
        with iio.imopen(os.fspath(path), "r", plugin="pillow") as gif:
            for index, frame in enumerate(gif.iter(mode="RGB")):
                if index in wanted_set:
                    yield index, np.asarray(frame)
                if index >= last_wanted:
                    return
    except Exception as error:
        raise _unreadable(path, str(error) or type(error).__name__) from error


def _frame_count(start: float, end: float, fps: float) -> int:
    """Timestamps start + k / fps that fall inside [start, end), at least one."""
    return max(1, int(math.ceil((end - start) * fps - TIME_EPS)))


def _seconds(value: float) -> str:
    """5 -> '5.0', 0.25 -> '0.25': short, but always visibly a time."""
    text = f"{value:.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _validate_window(
    info: VideoInfo, start: float, end: float | None, fps: float | None
) -> tuple[float, float, float]:
    """Check the user's window and return (start, end clamped to the video, output fps)."""
    if not math.isfinite(start) or start < 0:
        raise VideoError(f"Start time must be 0 s or later, got {_seconds(start)} s.")
    if end is not None and (not math.isfinite(end) or end <= start):
        raise VideoError(f"End time {_seconds(end)} s must be after the start time {_seconds(start)} s.")
    if fps is not None and (not math.isfinite(fps) or fps <= 0):
        raise VideoError(f"Frame rate must be positive, got {fps:g} fps.")
    if start >= info.duration:
        raise VideoError(
            f"Start time {_seconds(start)} s is past the end of the video ({_seconds(info.duration)} s)."
        )
    end = info.duration if end is None else min(end, info.duration)
    return start, end, info.fps if fps is None else float(fps)


def read_video(
    path: str | os.PathLike,
    *,
    start: float = 0.0,
    end: float | None = None,
    fps: float | None = None,
    long_side: int | None = None,
    multiple: int = 8,
    max_frames: int | None = None,
    max_seconds: float | None = None,
) -> tuple[np.ndarray, float]:
    """Decode the window [start, end) at `fps`, sized for the model; returns (uint8 RGB frames, fps).

    Output frame k is the source frame nearest to start + k / fps, so lowering the fps drops frames
    and raising it repeats them, and the clip keeps its real-time speed. The size follows fit_size.
    `max_seconds` caps the window as asked for (end, or the video's end when None).
    """
    path = Path(path)
    if _check_file(path):
        info, delays = _probe_gif(path)
        frame_starts = np.concatenate([[0.0], np.cumsum(delays)[:-1]])
        frames_stream = _iter_gif
    else:
        info = _probe_ffmpeg(path)
        frame_starts = None
        frames_stream = _iter_ffmpeg

    if max_seconds is not None:
        span = (info.duration if end is None else float(end)) - float(start)
        if span > max_seconds:
            raise VideoError(
                f"The selected part is {span:.1f} s long; this server takes up to {max_seconds:g} s. "
                "Set a start and end time."
            )
    start, end, out_fps = _validate_window(info, float(start), None if end is None else float(end), fps)
    count = _frame_count(start, end, out_fps)
    if max_frames is not None and count > max_frames:
        highest_fps = max_frames / (end - start)
        raise VideoError(
            f"The selected part ({_seconds(start)}-{_seconds(end)} s at {out_fps:g} fps) "
            f"gives {count} frames; "
            f"the limit is {max_frames}. Shorten the window to {max_frames / out_fps:.1f} s or "
            f"lower the frame rate to {highest_fps:.1f} fps or less."
        )

    # Nearest source frame = the frame on screen half a source frame after the timestamp.
    timestamps = start + np.arange(count) / out_fps + 0.5 / info.fps + TIME_EPS
    if frame_starts is None:
        source_index = np.floor(timestamps * info.fps).astype(int)
    else:
        source_index = np.searchsorted(frame_starts, timestamps, side="right") - 1
    source_index = np.clip(source_index, 0, info.num_frames - 1)
    wanted = sorted(set(source_index.tolist()))

    size = fit_size(info.width, info.height, long_side=long_side, multiple=multiple)
    decoded: dict[int, np.ndarray] = {}
    for index, frame in frames_stream(path, wanted):
        decoded[index] = _resize(to_rgb(frame), size)
    if not decoded:
        raise VideoError(
            f"The video '{path.name}' has no frames between {_seconds(start)} s and {_seconds(end)} s."
        )

    # The stream stops at the first index it cannot reach, so every missing index lies past the
    # real end (headers can overstate the duration by a frame or two): repeat the last frame.
    last_frame = decoded[max(decoded)]
    frames = [decoded.get(index, last_frame) for index in source_index.tolist()]
    return np.stack(frames).astype(np.uint8, copy=False), out_fps


# --------------------------------------------------------------------------- writing


def _pad_to_even(frames: np.ndarray) -> np.ndarray:
    """libx264 yuv420p needs even sides: repeat the last row/column rather than lose image content."""
    height, width = frames.shape[1:3]
    pad_h, pad_w = (-height) % YUV420_ALIGN, (-width) % YUV420_ALIGN
    if not (pad_h or pad_w):
        return frames
    return np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")


def write_mp4(frames: np.ndarray, path: str | os.PathLike, fps: float) -> str:
    """H.264 yuv420p so every browser (and Gradio's player) can play it.

    Sizes are kept exactly (macro_block_size=1), except that an odd width or height gets one
    repeated pixel row/column to become even, which yuv420p requires.
    """
    frames = _pad_to_even(_as_rgb_frames(frames))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with imageio.get_writer(
            os.fspath(path),
            format="FFMPEG",
            mode="I",
            fps=float(fps),
            codec="libx264",
            pixelformat="yuv420p",
            macro_block_size=1,
            quality=None,
            output_params=["-crf", str(MP4_CRF), "-preset", MP4_PRESET, "-movflags", "+faststart"],
        ) as writer:
            for frame in frames:
                writer.append_data(frame)
    except Exception as error:
        raise VideoError(f"Could not write the video '{path.name}': {_ffmpeg_reason(error)}") from error
    return os.fspath(path)


def _gif_delays_ms(count: int, fps: float) -> list[int]:
    """Whole-centisecond delays whose running total tracks k / fps, so long GIFs don't drift."""
    ends_cs = [int(math.floor((k + 1) * 100.0 / fps + 0.5)) for k in range(count)]
    starts_cs = [0] + ends_cs[:-1]
    return [max(1, end - begin) * GIF_DELAY_UNIT_MS for begin, end in zip(starts_cs, ends_cs)]


def write_gif(frames: np.ndarray, path: str | os.PathLike, fps: float) -> str:
    """Looping GIF for previews and sharing."""
    frames = _as_rgb_frames(frames)
    if not (math.isfinite(fps) and fps > 0):
        raise VideoError(f"Frame rate must be positive, got {fps:g} fps.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(os.fspath(path), frames, plugin="pillow", extension=".gif",
                duration=_gif_delays_ms(len(frames), fps), loop=0)
    return os.fspath(path)
