"""Writing frames as H.264 mp4 (even sizes, yuv420p) and as GIF, atomically."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

from ..outputs import atomic_write_path
from .clips import MP4_CRF, MP4_PRESET, SourceLimits, TIME_EPS, VideoError, YUV420_ALIGN, unreadable, unwritable
from .frames import as_rgb_frames, to_rgb
from .gif import iter_gif
from .probe import check_file, probe_gif

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- writing


def pad_to_even(frames: np.ndarray) -> np.ndarray:
    """libx264 yuv420p needs even sides: repeat the last row/column rather than lose image content."""
    height, width = frames.shape[1:3]
    pad_h, pad_w = (-height) % YUV420_ALIGN, (-width) % YUV420_ALIGN
    if not (pad_h or pad_w):
        return frames
    return np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")


def write_mp4(frames: np.ndarray, path: str | os.PathLike, fps: float) -> str:
    """H.264 yuv420p so every browser (and Gradio's player) can play it; written atomically.

    Sizes are kept exactly (macro_block_size=1), except that an odd width or height gets one
    repeated pixel row/column to become even, which yuv420p requires.
    """
    return write_mp4_frames(pad_to_even(as_rgb_frames(frames)), path, fps)


def write_mp4_frames(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: float) -> str:
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
        raise unwritable(path, error, "video") from error
    return os.fspath(path)


def gif_as_mp4(path: str | os.PathLike, folder: str | os.PathLike, limits: SourceLimits | None = None) -> str:
    """An mp4 of a GIF at its own rate, for a browser's video player (the page's video inputs play no GIF): frame
    k is the GIF frame on screen at k / fps, as `read_video` picks them, so a job reads the same frames from the
    copy. Streamed frame by frame: a long GIF need not fit in memory."""
    path = Path(path)
    limits = limits or SourceLimits()
    if not check_file(path, limits.max_mb):
        raise unreadable(path, "it is not a GIF")
    info, delays = probe_gif(path, limits)
    starts = np.concatenate([[0.0], np.cumsum(delays)[:-1]])
    timestamps = np.arange(info.num_frames) / info.fps + 0.5 / info.fps + TIME_EPS
    shown = np.clip(np.searchsorted(starts, timestamps, side="right") - 1, 0, len(delays) - 1)
    repeats = np.bincount(shown, minlength=len(delays))

    def frames() -> Iterator[np.ndarray]:
        for index, frame in iter_gif(path, list(range(len(delays)))):
            even = pad_to_even(to_rgb(np.asarray(frame))[None])[0]
            for _ in range(int(repeats[index])):
                yield even

    return write_mp4_frames(frames(), Path(folder) / f"{path.stem or 'upload'}.mp4", info.fps)
