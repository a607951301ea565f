"""Reading, resampling, resizing and writing short videos for the pipelines.

Decoding goes through imageio: its ffmpeg plugin (the binary bundled with imageio-ffmpeg) for
mp4/webm/mov/..., and its pillow plugin for GIFs, whose per-frame delays ffmpeg would flatten.
Frames are decoded as a stream and resized one at a time, so only the frames we return are held.
Uploads are checked against the server's caps from their header alone (file size, picture size,
frame count, duration) before any frame is decoded. With the window on its defaults (end and fps
on auto) any accepted upload gives frames: read_video lowers the frame rate, and past a floor
shortens the window, to fit the frame cap, and says what it did in `VideoWindowUsed.note`.
A file that cannot be read is answered in the app's own sentence; what ffmpeg or Pillow said,
and the upload's path, go to the server log only. `read_image` reads a first-frame picture.
No Gradio and no torch here: this module must stay importable in tests and tools.
"""

from __future__ import annotations

import errno
import logging
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import imageio.v2 as imageio
import imageio.v3 as iio
import numpy as np
from PIL import Image, ImageOps

from .errors import UserError
from .outputs import atomic_write_path

log = logging.getLogger(__name__)

SUPPORTED_FORMATS = "mp4, webm, mov, gif, avi or mkv"
# The file names imageio's ffmpeg plugin opens (it refuses others unread); GIFs are told by content.
FFMPEG_EXTENSIONS = (".mov", ".avi", ".mpg", ".mpeg", ".mp4", ".mkv", ".webm", ".wmv", ".h264")
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
# When fitting a whole clip into the frame cap, the frame rate goes no lower than this (below it
# a clip is a slide show); past it the window is shortened instead.
MIN_AUTO_FPS = 1.0


class VideoError(UserError, ValueError):
    """A problem with the user's video or window, worded so it can be shown to the user as is."""


@dataclass
class VideoInfo:
    fps: float
    num_frames: int
    duration: float
    width: int
    height: int


@dataclass(frozen=True)
class SourceLimits:
    """Caps on an uploaded file, checked from its header before any frame is decoded (None = no cap).

    They bound the work of reading a file, whatever part of it the user picks; what one job may
    use is capped separately by read_video's max_frames, max_seconds and max_pixels.
    """

    max_mb: float | None = None  # file size
    max_pixels: int | None = None  # width x height of the source frames
    max_frames: int | None = None  # frames in the whole file
    max_seconds: float | None = None  # duration of the whole file

    @classmethod
    def of(cls, limits) -> "SourceLimits":
        """The caps of a server's `settings.limits` (max_upload_mb, max_source_pixels, _frames, _seconds)."""
        return cls(max_mb=limits.max_upload_mb, max_pixels=limits.max_source_pixels,
                   max_frames=limits.max_source_frames, max_seconds=limits.max_source_seconds)


@dataclass(frozen=True)
class VideoWindowUsed:
    """What read_video actually used, for the result's params.json and a line to the user."""

    start: float
    end: float
    fps: float
    frames: int
    width: int
    height: int
    source: VideoInfo
    note: str = ""  # what was changed to fit the server's caps, in words; "" when nothing was


class VideoClip(tuple):
    """read_video's result: unpacks as `(frames, fps)` as it always did, and carries `.used`."""

    used: VideoWindowUsed

    def __new__(cls, frames: np.ndarray, fps: float, used: VideoWindowUsed) -> "VideoClip":
        clip = super().__new__(cls, (frames, fps))
        clip.used = used
        return clip

    @property
    def frames(self) -> np.ndarray:
        return self[0]

    @property
    def fps(self) -> float:
        return self[1]


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


def output_size(
    width: int, height: int, *, long_side: int | None = None, max_pixels: int | None = None, multiple: int = 8
) -> tuple[int, int]:
    """fit_size, lowered where needed so that width x height stays within `max_pixels`.

    The resolution a user picks is a long side, and the pixels it costs depend on the upload's
    aspect ratio, which they did not choose: so the size is capped (aspect kept, sides still
    multiples of `multiple`) rather than refused; read_video notes the change. Only a cap too
    small for any frame is an error.
    """
    size = fit_size(width, height, long_side=long_side, multiple=multiple)
    if max_pixels is None or size[0] * size[1] <= max_pixels:
        return size
    # Start from the long side that would just reach max_pixels, then step down to a fit.
    target = int(max(size) * math.sqrt(max_pixels / (size[0] * size[1])) // multiple) * multiple
    for side in range(max(target, multiple), 0, -multiple):
        size = fit_size(width, height, long_side=side, multiple=multiple)
        if size[0] * size[1] <= max_pixels:
            return size
    raise VideoError(
        f"No frame size for this {width}x{height} video fits within {max_pixels:,} pixels; "
        "the server's pixel limit is set too low for it."
    )


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
    """The user's sentence: the file's own name (never its server path), why, and what to upload."""
    return VideoError(f"Could not read the video '{path.name}': {reason}. Please upload an {SUPPORTED_FORMATS} video.")


def _last_lines(error: BaseException, count: int = 3) -> str:
    """ffmpeg's stderr is a wall of text (its build options first); its last lines say what went wrong."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " | ".join(lines[-count:]) or type(error).__name__


def _undecodable(path: Path, error: BaseException, doing: str) -> VideoError:
    """A decoder's failure in our words; its own text, with the path, goes to the server log."""
    log.warning("%s %s failed: %s", doing, path, _last_lines(error))
    if "does not contain any stream" in str(error):  # ffmpeg found no video stream to decode
        return _unreadable(path, "it holds no video pictures (perhaps only sound), or it is damaged")
    return _unreadable(path, "it is not a video file this server can decode, or it is damaged")


def _check_file(path: Path, max_mb: float | None = None) -> bool:
    """Fail early with a clear message; returns whether the file is a GIF (by content, not name)."""
    if not path.exists():
        raise _unreadable(path, "the file does not exist")
    if not path.is_file():
        raise _unreadable(path, "it is not a file")
    size = path.stat().st_size
    if size == 0:
        raise _unreadable(path, "the file is empty (0 bytes)")
    if max_mb is not None and size / 2**20 > max_mb:
        raise VideoError(
            f"The video '{path.name}' is {size / 2**20:.1f} MB; this server accepts up to {max_mb:g} MB. "
            "Upload a shorter or more compressed clip."
        )
    with open(path, "rb") as handle:
        return handle.read(len(GIF_MAGIC[0])) in GIF_MAGIC


def _check_source(path: Path, info: VideoInfo, limits: SourceLimits) -> None:
    """Refuse a file the server should not decode at all, from its header's numbers."""
    pixels = info.width * info.height
    if limits.max_pixels is not None and pixels > limits.max_pixels:
        raise VideoError(
            f"The video '{path.name}' is {info.width}x{info.height} ({pixels:,} pixels per frame); this "
            f"server reads videos of up to {limits.max_pixels:,} pixels per frame. Scale it down and upload it again."
        )
    if limits.max_seconds is not None and info.duration > limits.max_seconds + TIME_EPS:
        raise VideoError(
            f"The video '{path.name}' is {info.duration:.1f} s long; this server reads videos of up to "
            f"{limits.max_seconds:g} s. Trim it and upload it again."
        )
    if limits.max_frames is not None and info.num_frames > limits.max_frames:
        raise VideoError(
            f"The video '{path.name}' has {info.num_frames:,} frames; this server reads videos of up to "
            f"{limits.max_frames:,} frames. Trim it or lower its frame rate and upload it again."
        )


def _open_ffmpeg(path: Path):
    if path.suffix.lower() not in FFMPEG_EXTENSIONS:
        if path.suffix.lower() == ".gif":
            raise _unreadable(path, "its name ends in .gif but it is not a GIF (perhaps a picture or a video "
                                    "saved under another name)")
        raise _unreadable(path, "its name does not end in a video file extension such as .mp4")
    try:
        return imageio.get_reader(os.fspath(path), format="FFMPEG")
    except Exception as error:  # imageio raises OSError, RuntimeError or IndexError here
        raise _undecodable(path, error, "opening the video") from error


def _probe_ffmpeg(path: Path, limits: SourceLimits = SourceLimits()) -> VideoInfo:
    """Header numbers first (checked against `limits`), then the first frame for the real size."""
    with _open_ffmpeg(path) as reader:
        meta = reader.get_meta_data()
        fps = float(meta.get("fps") or 0.0)
        if not math.isfinite(fps) or fps <= 0:
            raise _unreadable(path, "its frame rate is unknown")
        duration = float(meta.get("duration") or 0.0)
        if not math.isfinite(duration) or duration <= 0:
            # Some streamed webm files and still images carry no duration; count the frames
            # instead (ffmpeg only demuxes for this, it decodes nothing).
            try:
                duration = reader.count_frames() / fps
            except Exception as error:
                raise _undecodable(path, error, "counting the frames of") from error
        # ffmpeg prints the duration to the centisecond; snap it to whole frames so that reading
        # "to the end" gives exactly num_frames frames rather than one extra.
        num_frames = max(1, int(math.floor(duration * fps + 0.5)))
        width, height = meta.get("source_size") or meta.get("size") or (0, 0)
        header = VideoInfo(fps=fps, num_frames=num_frames, duration=num_frames / fps,
                           width=int(width), height=int(height))
        _check_source(path, header, limits)
        try:
            first = np.asarray(reader.get_data(0))
        except Exception as error:
            log.warning("decoding the first frame of %s failed: %s", path, _last_lines(error))
            raise VideoError(f"The video '{path.name}' has no frames that can be decoded; it may be damaged. "
                             "Please upload it again or try another file.") from error
    # The decoded frame has the size after rotation metadata; its pixel count is the header's.
    info = VideoInfo(fps=fps, num_frames=num_frames, duration=num_frames / fps,
                     width=int(first.shape[1]), height=int(first.shape[0]))
    _check_source(path, info, limits)  # for headers that had no size
    return info


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    """Past a chain of GIF data sub-blocks (length byte + bytes, ended by a 0 length)."""
    while pos < len(data):
        length = data[pos]
        pos += 1
        if length == 0:
            break
        pos += length
    return pos


def _scan_gif(path: Path) -> tuple[int, int, list[int]]:
    """(canvas width, height, per-frame delays in centiseconds) from the GIF's block structure.

    Walks the blocks and skips the compressed pixel data, so a GIF of thousands of frames is
    counted without decoding one (Pillow decodes every frame to reach a frame's delay). A file
    cut short counts the frames it has.
    """
    data = path.read_bytes()
    if len(data) < 13:
        raise _unreadable(path, "the GIF header is cut short")
    width = int.from_bytes(data[6:8], "little")
    height = int.from_bytes(data[8:10], "little")
    packed = data[10]
    pos = 13
    if packed & 0x80:  # global colour table
        pos += 3 << ((packed & 0x07) + 1)
    delays: list[int] = []
    delay = 0  # from the graphic control extension that precedes a frame
    while pos < len(data):
        block = data[pos]
        pos += 1
        if block == 0x21:  # extension: label, then sub-blocks
            if pos >= len(data):
                break
            label = data[pos]
            pos += 1
            if label == 0xF9 and pos + 4 < len(data) and data[pos] >= 4:
                delay = int.from_bytes(data[pos + 2: pos + 4], "little")
            pos = _skip_sub_blocks(data, pos)
        elif block == 0x2C:  # image descriptor: 9 bytes, local colour table, LZW size, data
            if pos + 9 > len(data):
                break
            local = data[pos + 8]
            pos += 9
            if local & 0x80:
                pos += 3 << ((local & 0x07) + 1)
            pos = _skip_sub_blocks(data, pos + 1)
            delays.append(delay)
            delay = 0
        else:  # 0x3B trailer, or bytes after the last frame that browsers ignore too
            break
    if width == 0 or height == 0:
        raise _unreadable(path, "the GIF has no picture size")
    return width, height, delays


def _gif_delays(path: Path) -> tuple[int, int, list[float]]:
    """Canvas size and per-frame display times in seconds; missing or zero delays count as GIF_DEFAULT_FPS."""
    width, height, delays_cs = _scan_gif(path)
    if not delays_cs:
        raise _unreadable(path, "the GIF has no frames")
    delays = [cs / 100.0 if cs > 0 else 1.0 / GIF_DEFAULT_FPS for cs in delays_cs]
    return width, height, delays


def _gif_timing(delays: Sequence[float]) -> tuple[float, int]:
    """(fps, frame count at that fps) for a GIF.

    Writers merge identical consecutive frames into one long delay and jitter delays to fit whole
    centiseconds, so count each frame as the number of typical delays it spans and divide by the
    total time: that recovers the rate the GIF was made at.
    """
    typical = float(np.median(delays))
    spans = sum(max(1, int(math.floor(delay / typical + 0.5))) for delay in delays)
    return spans / math.fsum(delays), spans


def _probe_gif(path: Path, limits: SourceLimits = SourceLimits()) -> tuple[VideoInfo, list[float]]:
    width, height, delays = _gif_delays(path)
    fps, num_frames = _gif_timing(delays)
    info = VideoInfo(fps=fps, num_frames=num_frames, duration=math.fsum(delays), width=width, height=height)
    _check_source(path, info, limits)
    return info, delays


def probe_video(path: str | os.PathLike, limits: SourceLimits | None = None) -> VideoInfo:
    """Cheap look at a video (header, plus the first frame of non-GIFs): size, fps and length.

    num_frames is duration x fps (for GIFs, frames at the reported fps), which is what
    read_video returns with no window and no fps. With `limits`, a file over them is refused
    before any (further) frame is decoded.
    """
    path = Path(path)
    limits = limits or SourceLimits()
    if _check_file(path, limits.max_mb):
        return _probe_gif(path, limits)[0]
    return _probe_ffmpeg(path, limits)


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
    """Like _iter_ffmpeg for GIFs; a file damaged after some frames gives the frames before it."""
    last_wanted = wanted[-1]
    wanted_set = set(wanted)
    yielded = False
    try:
        with iio.imopen(os.fspath(path), "r", plugin="pillow") as gif:
            for index, frame in enumerate(gif.iter(mode="RGB")):
                if index in wanted_set:
                    yielded = True
                    yield index, np.asarray(frame)
                if index >= last_wanted:
                    return
    except Exception as error:
        if yielded:
            return
        log.warning("decoding the GIF %s failed: %s", path, _last_lines(error))
        raise _unreadable(path, "the GIF's image data is damaged") from error


def _frame_count(start: float, end: float, fps: float) -> int:
    """Timestamps start + k / fps that fall inside [start, end), at least one."""
    return max(1, int(math.ceil((end - start) * fps - TIME_EPS)))


def _seconds(value: float) -> str:
    """5 -> '5.0', 0.25 -> '0.25': short, but always visibly a time."""
    text = f"{value:.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _rate(fps: float) -> str:
    """30 -> '30', 6.4 -> '6.4', 1/3 -> '0.33': a frame rate as people write it."""
    return f"{round(fps, 2):g}"


def _round_down(value: float, places: int = 3) -> float:
    """A frame rate lowered to fit a cap, kept readable and never above the exact fit."""
    scale = 10**places
    return math.floor(value * scale) / scale


def _sentence(notes: list[str]) -> str:
    text = "; ".join(notes)
    return text[:1].upper() + text[1:] + "." if text else ""


def _is_auto(value: float | None) -> bool:
    """None and 0 both mean "choose for me" (end: to the end; fps: the input's or what fits)."""
    return value is None or value == 0


def _fit_window(
    info: VideoInfo,
    start: float | None,
    end: float | None,
    fps: float | None,
    *,
    max_frames: int | None,
    max_seconds: float | None,
    min_auto_fps: float,
) -> tuple[float, float, float, list[str]]:
    """(start, end, output fps, notes): the user's window, fitted to the caps.

    The rule: a value the user set is never changed; a value left on auto (end or fps 0/None)
    is chosen to fit. So with both on auto any clip fits: the frame rate goes down to fit
    max_frames, and below `min_auto_fps` the window is shortened instead. With the fps set, the
    window is shortened; with the end set, the fps is lowered (to the floor); with both set and
    too many frames, the error says which to change. An end past the clip means "to the end".
    """
    notes: list[str] = []
    start = 0.0 if start is None else float(start)
    if not math.isfinite(start) or start < 0:
        raise VideoError(f"Start time must be 0 s or later, got {_seconds(start)} s.")
    if start >= info.duration:
        raise VideoError(
            f"Start time {_seconds(start)} s is past the end of the video ({_seconds(info.duration)} s); "
            "set a start time before the end."
        )

    auto_end = _is_auto(end)
    if not auto_end:
        end = float(end)
        if math.isnan(end) or end <= start:
            raise VideoError(
                f"End time {_seconds(end)} s must be after the start time {_seconds(start)} s (0 = to the end)."
            )
        if end > info.duration + TIME_EPS:
            if math.isfinite(end):
                notes.append(f"the end time {_seconds(end)} s is past the video's end, so it runs to the end "
                             f"({_seconds(info.duration)} s)")
            auto_end = True
    end = info.duration if auto_end else min(end, info.duration)

    auto_fps = _is_auto(fps)
    if not auto_fps:
        fps = float(fps)
        if not math.isfinite(fps) or fps <= 0:
            raise VideoError(f"Frame rate must be positive (or 0 for the input's), got {fps:g} fps.")
    out_fps = info.fps if auto_fps else fps

    if max_seconds is not None and end - start > max_seconds + TIME_EPS:
        if not auto_end:
            raise VideoError(
                f"The selected part is {end - start:.1f} s long; this server takes up to {max_seconds:g} s. "
                f"Set the end time to {_seconds(start + max_seconds)} s or less (0 picks the longest part allowed)."
            )
        end = start + max_seconds
        notes.append(f"used {_seconds(start)}–{_seconds(end)} s of the {_seconds(info.duration)} s video "
                     f"(this server takes up to {max_seconds:g} s)")

    count = _frame_count(start, end, out_fps)
    if max_frames is None or count <= max_frames:
        return start, end, out_fps, notes
    span = end - start
    limit = f"the {max_frames}-frame limit"
    if auto_fps:
        floor_fps = min(min_auto_fps, info.fps)
        fitted = _round_down(max_frames / span)
        if fitted >= floor_fps:
            notes.append(f"{_rate(info.fps)} fps → {_rate(fitted)} fps to fit {limit}")
            return start, end, fitted, notes
        if not auto_end:
            at_floor = _frame_count(start, end, floor_fps)
            raise VideoError(
                f"The selected part ({_seconds(start)}–{_seconds(end)} s) gives {at_floor} frames even at "
                f"{_rate(floor_fps)} fps; the limit is {max_frames}. Shorten it to {max_frames / floor_fps:.1f} s "
                "or less, or set the end time to 0 to fit it automatically."
            )
        end = start + max_frames / floor_fps
        rate = f"{_rate(info.fps)} fps → {_rate(floor_fps)} fps and " if floor_fps != info.fps else ""
        notes.append(f"{rate}{_seconds(start)}–{_seconds(end)} s of the video to fit {limit}")
        return start, end, floor_fps, notes
    if auto_end:
        end = start + max_frames / out_fps
        notes.append(f"used {_seconds(start)}–{_seconds(end)} s at {_rate(out_fps)} fps to fit {limit}")
        return start, end, out_fps, notes
    raise VideoError(
        f"The selected part ({_seconds(start)}–{_seconds(end)} s at {_rate(out_fps)} fps) gives {count} frames; "
        f"the limit is {max_frames}. Shorten the window to {max_frames / out_fps:.1f} s, lower the frame rate "
        f"to {_round_down(max_frames / span, 1):g} fps or less, or set the frame rate to 0 to fit it automatically."
    )


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
    max_pixels: int | None = None,
    source_limits: SourceLimits | None = None,
    min_auto_fps: float = MIN_AUTO_FPS,
) -> VideoClip:
    """Decode the window [start, end) at `fps`, sized for the model, fitted to the caps.

    Returns a VideoClip: `frames, fps = read_video(...)` (uint8 RGB frames) as before, and
    `.used` says what was used (window, fps, size, and a note of what was changed to fit).
    `end` and `fps` None or 0 mean auto (to the end; the input's rate, lowered to fit max_frames);
    see _fit_window for what is fitted and what is an error. `max_seconds` caps the window used,
    `max_pixels` the output frame (the size is lowered to fit, see output_size), `source_limits`
    the file itself (checked from its header before decoding).

    Output frame k is the source frame nearest to start + k / fps, so lowering the fps drops frames
    and raising it repeats them, and the clip keeps its real-time speed.
    """
    path = Path(path)
    limits = source_limits or SourceLimits()
    if _check_file(path, limits.max_mb):
        info, delays = _probe_gif(path, limits)
        frame_starts = np.concatenate([[0.0], np.cumsum(delays)[:-1]])
        frames_stream = _iter_gif
    else:
        info = _probe_ffmpeg(path, limits)
        frame_starts = None
        frames_stream = _iter_ffmpeg

    start, end, out_fps, notes = _fit_window(
        info, start, end, fps, max_frames=max_frames, max_seconds=max_seconds, min_auto_fps=min_auto_fps
    )
    count = _frame_count(start, end, out_fps)

    # Nearest source frame = the frame on screen half a source frame after the timestamp.
    timestamps = start + np.arange(count) / out_fps + 0.5 / info.fps + TIME_EPS
    if frame_starts is None:
        source_index = np.floor(timestamps * info.fps).astype(int)
    else:
        source_index = np.searchsorted(frame_starts, timestamps, side="right") - 1
    source_index = np.clip(source_index, 0, info.num_frames - 1)
    wanted = sorted(set(source_index.tolist()))

    size = output_size(info.width, info.height, long_side=long_side, max_pixels=max_pixels, multiple=multiple)
    asked = fit_size(info.width, info.height, long_side=long_side, multiple=multiple)
    if size != asked:
        notes.append(f"{asked[0]}x{asked[1]} → {size[0]}x{size[1]} to stay within this server's "
                     f"{max_pixels:,} pixels per frame")
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
    frames = np.stack([decoded.get(index, last_frame) for index in source_index.tolist()]).astype(np.uint8, copy=False)
    used = VideoWindowUsed(
        start=round(start, 6), end=round(end, 6), fps=out_fps, frames=len(frames),
        width=size[0], height=size[1], source=info, note=_sentence(notes),
    )
    return VideoClip(frames, out_fps, used)


# --------------------------------------------------------------------------- writing


def _pad_to_even(frames: np.ndarray) -> np.ndarray:
    """libx264 yuv420p needs even sides: repeat the last row/column rather than lose image content."""
    height, width = frames.shape[1:3]
    pad_h, pad_w = (-height) % YUV420_ALIGN, (-width) % YUV420_ALIGN
    if not (pad_h or pad_w):
        return frames
    return np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")


def _unwritable(path: Path, error: BaseException, what: str) -> VideoError:
    """A failed write in a sentence: the system's reason (e.g. a full disk) where there is one; the
    encoder's own text, with the path, goes to the server log only."""
    log.warning("writing %s failed: %s", path, _last_lines(error))
    number = getattr(error, "errno", None)
    reason = os.strerror(number) if isinstance(number, int) and number in errno.errorcode else "the encoder failed"
    return VideoError(f"Could not write the {what} '{path.name}': {reason}. Please try again; if it keeps "
                      "failing, tell whoever runs this server.")


def write_mp4(frames: np.ndarray, path: str | os.PathLike, fps: float) -> str:
    """H.264 yuv420p so every browser (and Gradio's player) can play it; written atomically.

    Sizes are kept exactly (macro_block_size=1), except that an odd width or height gets one
    repeated pixel row/column to become even, which yuv420p requires.
    """
    return _write_mp4_frames(_pad_to_even(_as_rgb_frames(frames)), path, fps)


def _write_mp4_frames(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: float) -> str:
    """write_mp4's encoder over any iterable of even-sided uint8 RGB frames (a stream need not fit in memory)."""
    if not (math.isfinite(fps) and fps > 0):
        raise VideoError(f"Frame rate must be positive, got {fps:g} fps.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_write_path(path) as temp, imageio.get_writer(
            os.fspath(temp),
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
        raise _unwritable(path, error, "video") from error
    return os.fspath(path)


def _gif_delays_ms(count: int, fps: float) -> list[int]:
    """Whole-centisecond delays whose running total tracks k / fps, so long GIFs don't drift."""
    ends_cs = [int(math.floor((k + 1) * 100.0 / fps + 0.5)) for k in range(count)]
    starts_cs = [0] + ends_cs[:-1]
    return [max(1, end - begin) * GIF_DELAY_UNIT_MS for begin, end in zip(starts_cs, ends_cs)]


def write_gif(frames: np.ndarray, path: str | os.PathLike, fps: float) -> str:
    """Looping GIF for previews and sharing; written atomically."""
    frames = _as_rgb_frames(frames)
    if not (math.isfinite(fps) and fps > 0):
        raise VideoError(f"Frame rate must be positive, got {fps:g} fps.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    delays = _gif_delays_ms(len(frames), fps)
    try:
        with atomic_write_path(path) as temp:
            # Pillow takes a list of delays only for several frames; one frame takes a number.
            iio.imwrite(os.fspath(temp), frames, plugin="pillow", extension=".gif",
                        duration=delays if len(delays) > 1 else delays[0], loop=0)
    except OSError as error:
        raise _unwritable(path, error, "GIF") from error
    return os.fspath(path)


# --------------------------------------------------------------------------- pictures

FIRST_FRAME = "The first-frame image"  # what messages call the picture: never its server path
# The formats a first frame may be in (Pillow's names; JPEG covers a phone's multi-picture MPO).
# Pillow tries no other decoder on an upload, so EPS, PDF and the like are refused unopened.
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
IMAGE_FORMATS_TEXT = "PNG, JPEG, WebP, GIF, BMP or TIFF"
# Pixels a picture may have, from its header before any pixel is decoded: a 48 MP phone photo fits,
# while a 20000x20000 PNG of a few hundred KB (1.2 GB as RGB) is refused.
MAX_IMAGE_PIXELS = 8192 * 8192
_HIGH_BIT_GREYS = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_WITH_ALPHA = ("RGBA", "RGBa", "LA", "La", "PA")


class ImageError(VideoError):
    """A problem with the user's picture, worded for the user; it names "the first-frame image"."""


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str  # Pillow's name, e.g. "PNG"


def _header_size(path: Path) -> tuple[int, int] | None:
    """The picture's size from its header alone, for the message when Pillow refused it as a
    decompression bomb (its own check, which runs before Image.open returns the size)."""
    try:
        with open(path, "rb") as handle:
            prefix = handle.read(16)
            for name in IMAGE_FORMATS:
                factory, accept = Image.OPEN[name]
                if accept is None or accept(prefix):
                    handle.seek(0)
                    with factory(handle, os.fspath(path)) as image:  # the plugin reads the header only
                        return image.size
    except Exception as error:
        log.warning("could not read the size of the picture %s: %s", path, _last_lines(error))
    return None


def _too_many_pixels(max_pixels: int, size: tuple[int, int] | None) -> ImageError:
    """`size` None: the header would not say it."""
    side = math.isqrt(max_pixels)
    limit = f"{side}x{side} ({max_pixels:,} pixels)" if side * side == max_pixels else f"{max_pixels:,} pixels"
    if size is None:
        found = f"has far more pixels than this server reads: up to {limit}"
    else:
        found = f"is {size[0]}x{size[1]} ({size[0] * size[1]:,} pixels); this server reads pictures of up to {limit}"
    return ImageError(f"{FIRST_FRAME} {found}. Scale it down and upload it again.")


@contextmanager
def _open_image(path: str | os.PathLike, max_pixels: int | None) -> Iterator[Image.Image]:
    """The picture with its header read and its size checked, no pixel decoded yet; else an ImageError."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{FIRST_FRAME} could not be found; please upload it again.")
    if path.stat().st_size == 0:
        raise ImageError(f"{FIRST_FRAME} is an empty file (0 bytes); please upload the picture again.")
    Image.init()  # registers every plugin: with `formats`, Pillow itself would only load the common ones
    try:
        image = Image.open(path, formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as error:  # Pillow's own cap, above ours: far too large
        log.warning("refused the picture %s: %s", path, error)
        raise _too_many_pixels(max_pixels or MAX_IMAGE_PIXELS, _header_size(path)) from error
    except Exception as error:  # not a picture, a format not offered, or a header Pillow cannot parse
        log.warning("could not open the picture %s: %s", path, _last_lines(error))
        raise ImageError(f"{FIRST_FRAME} is not a picture this server can read (or it is damaged). "
                         f"Please upload a {IMAGE_FORMATS_TEXT} picture.") from error
    with image:
        if max_pixels is not None and image.width * image.height > max_pixels:
            raise _too_many_pixels(max_pixels, image.size)
        yield image


def probe_image(path: str | os.PathLike, *, max_pixels: int | None = MAX_IMAGE_PIXELS) -> ImageInfo:
    """Cheap look at an uploaded picture (its header; a PNG's checksums too): size and format.

    Request validation calls it, so that a bad picture is answered before any model loads.
    """
    with _open_image(path, max_pixels) as image:
        info = ImageInfo(width=image.width, height=image.height, format=str(image.format))
        try:
            image.verify()  # PNG: walks the chunks and their checksums without decoding pixels
        except Exception as error:
            log.warning("the picture %s failed its check: %s", path, _last_lines(error))
            raise _damaged_image() from error
    return info


def _damaged_image() -> ImageError:
    return ImageError(f"{FIRST_FRAME} could not be read: the file is damaged or cut short. Please upload it "
                      "again, or save it again as a PNG or JPEG.")


def _upright(image: Image.Image) -> Image.Image:
    """Turned as its EXIF orientation says, as a camera's viewer shows it (Gradio's upload did this too)."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception as error:  # a broken EXIF block: keep the picture as stored
        log.warning("ignored the EXIF orientation of a picture: %s", _last_lines(error))
        return image


def _rgb_array(image: Image.Image) -> np.ndarray:
    """uint8 (H, W, 3): 16-bit and float greys scaled (Pillow would clip them), transparency laid on
    white (as most viewers show it), CMYK, palettes and the rest converted by Pillow."""
    if image.mode in _HIGH_BIT_GREYS:
        grey = np.nan_to_num(np.asarray(image, dtype=np.float64))
        if image.mode == "F":
            grey = grey * 255.0 if grey.max(initial=0.0) <= 1.0 else grey
        elif image.mode != "I" or grey.max(initial=0.0) > 255:
            grey = grey / 257.0  # 0..65535 -> 0..255
        grey = np.clip(np.round(grey), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    if image.mode in _WITH_ALPHA or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(image.convert("RGB"))


def read_image(path: str | os.PathLike, width: int, height: int, *,
               max_pixels: int | None = MAX_IMAGE_PIXELS) -> np.ndarray:
    """An uploaded picture as uint8 (height, width, 3) RGB, cropped to the aspect then resized.

    Centre-cropped rather than stretched, so a photo of another shape keeps its proportions. The
    picture is upright by its EXIF orientation; an animation gives its first frame; any problem
    (not a picture, damaged, too many pixels: checked before decoding) is an ImageError.
    """
    with _open_image(path, max_pixels) as image:
        try:
            # JPEGs decode at 1/2, 1/4 or 1/8 scale where that still covers the output: less memory.
            image.draft(None, (max(width, height),) * 2)
            image.load()
            image = _rgb_array(_upright(image))
        except Exception as error:
            log.warning("could not decode the picture %s: %s", path, _last_lines(error))
            raise _damaged_image() from error
    h, w = image.shape[:2]
    scale = min(w / width, h / height)
    crop_w, crop_h = max(1, round(width * scale)), max(1, round(height * scale))
    top, left = (h - crop_h) // 2, (w - crop_w) // 2
    image = image[top : top + crop_h, left : left + crop_w]
    return cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=cv2.INTER_AREA)


def is_gif(path: str | os.PathLike) -> bool:
    """Whether the file is a GIF (by its first bytes, not its name)."""
    try:
        with open(path, "rb") as file:
            return file.read(6) in GIF_MAGIC
    except OSError:
        return False


def gif_as_mp4(path: str | os.PathLike, folder: str | os.PathLike, limits: SourceLimits | None = None) -> str:
    """An mp4 of a GIF at its own rate, for a browser's video player (the page's video inputs play no GIF): frame
    k is the GIF frame on screen at k / fps, as `read_video` picks them, so a job reads the same frames from the
    copy. Streamed frame by frame: a long GIF need not fit in memory."""
    path = Path(path)
    limits = limits or SourceLimits()
    if not _check_file(path, limits.max_mb):
        raise _unreadable(path, "it is not a GIF")
    info, delays = _probe_gif(path, limits)
    starts = np.concatenate([[0.0], np.cumsum(delays)[:-1]])
    timestamps = np.arange(info.num_frames) / info.fps + 0.5 / info.fps + TIME_EPS
    shown = np.clip(np.searchsorted(starts, timestamps, side="right") - 1, 0, len(delays) - 1)
    repeats = np.bincount(shown, minlength=len(delays))

    def frames() -> Iterator[np.ndarray]:
        for index, frame in _iter_gif(path, list(range(len(delays)))):
            even = _pad_to_even(to_rgb(np.asarray(frame))[None])[0]
            for _ in range(int(repeats[index])):
                yield even

    return _write_mp4_frames(frames(), Path(folder) / f"{path.stem or 'upload'}.mp4", info.fps)
