"""Opening an upload: checked against the server's caps from its header alone (size, pixels, frames,
duration) before any frame is decoded; what ffmpeg or Pillow said goes to the log, the user reads our words."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

from .clips import FFMPEG_EXTENSIONS, GIF_MAGIC, SourceLimits, TIME_EPS, VideoError, VideoInfo, last_lines, undecodable, unreadable
from .gif import gif_delays, gif_timing

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- opening


def check_file(path: Path, max_mb: float | None = None) -> bool:
    """Fail early with a clear message; returns whether the file is a GIF (by content, not name)."""
    if not path.exists():
        raise unreadable(path, "the file does not exist")
    if not path.is_file():
        raise unreadable(path, "it is not a file")
    size = path.stat().st_size
    if size == 0:
        raise unreadable(path, "the file is empty (0 bytes)")
    if max_mb is not None and size / 2**20 > max_mb:
        raise VideoError(
            f"The video '{path.name}' is {size / 2**20:.1f} MB; this server accepts up to {max_mb:g} MB. "
            "Upload a shorter or more compressed clip."
        )
    with open(path, "rb") as handle:
        return handle.read(len(GIF_MAGIC[0])) in GIF_MAGIC


def check_source(path: Path, info: VideoInfo, limits: SourceLimits) -> None:
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


def open_ffmpeg(path: Path):
    if path.suffix.lower() not in FFMPEG_EXTENSIONS:
        if path.suffix.lower() == ".gif":
            raise unreadable(path, "its name ends in .gif but it is not a GIF (perhaps a picture or a video "
                                    "saved under another name)")
        raise unreadable(path, "its name does not end in a video file extension such as .mp4")
    try:
        return imageio.get_reader(os.fspath(path), format="FFMPEG")
    except Exception as error:  # imageio raises OSError, RuntimeError or IndexError here
        raise undecodable(path, error, "opening the video") from error


def probe_ffmpeg(path: Path, limits: SourceLimits = SourceLimits()) -> VideoInfo:
    """Header numbers first (checked against `limits`), then the first frame for the real size."""
    with open_ffmpeg(path) as reader:
        meta = reader.get_meta_data()
        fps = float(meta.get("fps") or 0.0)
        if not math.isfinite(fps) or fps <= 0:
            raise unreadable(path, "its frame rate is unknown")
        duration = float(meta.get("duration") or 0.0)
        if not math.isfinite(duration) or duration <= 0:
            # Some streamed webm files and still images carry no duration; count the frames
            # instead (ffmpeg only demuxes for this, it decodes nothing).
            try:
                duration = reader.count_frames() / fps
            except Exception as error:
                raise undecodable(path, error, "counting the frames of") from error
        # ffmpeg prints the duration to the centisecond; snap it to whole frames so that reading
        # "to the end" gives exactly num_frames frames rather than one extra.
        num_frames = max(1, int(math.floor(duration * fps + 0.5)))
        width, height = meta.get("source_size") or meta.get("size") or (0, 0)
        header = VideoInfo(fps=fps, num_frames=num_frames, duration=num_frames / fps,
                           width=int(width), height=int(height))
        check_source(path, header, limits)
        try:
            first = np.asarray(reader.get_data(0))
        except Exception as error:
            log.warning("decoding the first frame of %s failed: %s", path, last_lines(error))
            raise VideoError(f"The video '{path.name}' has no frames that can be decoded; it may be damaged. "
                             "Please upload it again or try another file.") from error
    # The decoded frame has the size after rotation metadata; its pixel count is the header's.
    info = VideoInfo(fps=fps, num_frames=num_frames, duration=num_frames / fps,
                     width=int(first.shape[1]), height=int(first.shape[0]))
    check_source(path, info, limits)  # for headers that had no size
    return info


def probe_gif(path: Path, limits: SourceLimits = SourceLimits()) -> tuple[VideoInfo, list[float]]:
    width, height, delays = gif_delays(path)
    fps, num_frames = gif_timing(delays)
    info = VideoInfo(fps=fps, num_frames=num_frames, duration=math.fsum(delays), width=width, height=height)
    check_source(path, info, limits)
    return info, delays


def probe_video(path: str | os.PathLike, limits: SourceLimits | None = None) -> VideoInfo:
    """Cheap look at a video (header, plus the first frame of non-GIFs): size, fps and length.

    num_frames is duration x fps (for GIFs, frames at the reported fps), which is what
    read_video returns with no window and no fps. With `limits`, a file over them is refused
    before any (further) frame is decoded.
    """
    path = Path(path)
    limits = limits or SourceLimits()
    if check_file(path, limits.max_mb):
        return probe_gif(path, limits)[0]
    return probe_ffmpeg(path, limits)
