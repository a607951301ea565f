"""What the video modules pass around: a clip as read (frames, rate, what was used), a source's header facts,
the caps on uploads, and the one error type whose words a user reads."""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError

log = logging.getLogger(__name__)

SUPPORTED_FORMATS = "mp4, webm, mov, gif, avi or mkv"
# The file names imageio's ffmpeg plugin opens (it refuses others unread); GIFs are told by content.
FFMPEG_EXTENSIONS = (".mov", ".avi", ".mpg", ".mpeg", ".mp4", ".mkv", ".webm", ".wmv", ".h264")
GIF_MAGIC = (b"GIF87a", b"GIF89a")
# Browsers show a GIF frame without a delay (or with 0) at about 10 fps.
GIF_DEFAULT_FPS = 10.0
# GIF delays are stored in centiseconds; 1 cs is the shortest delay a GIF can hold.
GIF_DELAY_UNIT_MS = 10
GIF_COLOURS = 256  # a GIF frame's palette
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
        """The caps of a server's `settings.limits` (max_upload_mb, max_source_pixels, _frames, seconds)."""
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


def unreadable(path: Path, reason: str) -> VideoError:
    """The user's sentence: the file's own name (never its server path), why, and what to upload."""
    return VideoError(f"Could not read the video '{path.name}': {reason}. Please upload an {SUPPORTED_FORMATS} video.")


def last_lines(error: BaseException, count: int = 3) -> str:
    """ffmpeg's stderr is a wall of text (its build options first); its last lines say what went wrong."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " | ".join(lines[-count:]) or type(error).__name__


def undecodable(path: Path, error: BaseException, doing: str) -> VideoError:
    """A decoder's failure in our words; its own text, with the path, goes to the server log."""
    log.warning("%s %s failed: %s", doing, path, last_lines(error))
    if "does not contain any stream" in str(error):  # ffmpeg found no video stream to decode
        return unreadable(path, "it holds no video pictures (perhaps only sound), or it is damaged")
    return unreadable(path, "it is not a video file this server can decode, or it is damaged")


def unwritable(path: Path, error: BaseException, what: str) -> VideoError:
    """A failed write in a sentence: the system's reason (e.g. a full disk) where there is one; the
    encoder's own text, with the path, goes to the server log only."""
    log.warning("writing %s failed: %s", path, last_lines(error))
    number = getattr(error, "errno", None)
    reason = os.strerror(number) if isinstance(number, int) and number in errno.errorcode else "the encoder failed"
    return VideoError(f"Could not write the {what} '{path.name}': {reason}. Please try again; if it keeps "
                      "failing, tell whoever runs this server.")
