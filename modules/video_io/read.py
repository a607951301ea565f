"""Reading a window of a clip as frames: streamed, resized one at a time, only the kept frames held."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .clips import MIN_AUTO_FPS, SourceLimits, TIME_EPS, VideoClip, VideoError, VideoWindowUsed
from .frames import fit_size, output_size, resize, to_rgb
from .gif import iter_gif
from .probe import check_file, open_ffmpeg, probe_ffmpeg, probe_gif
from .window import fit_window, frame_count, notes_sentence, seconds_text

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- streaming


def iter_ffmpeg(path: Path, wanted: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (index, frame) for the sorted distinct indices; stops early at the real end of the stream.

    imageio seeks when the next index is far ahead and otherwise skips frames, so a late window
    does not decode the whole file.
    """
    with open_ffmpeg(path) as reader:
        for index in wanted:
            try:
                frame = reader.get_data(index)
            except (IndexError, StopIteration, RuntimeError, OSError):
                return  # header durations can overstate the stream by a frame or two
            yield index, np.asarray(frame)


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
    see fit_window for what is fitted and what is an error. `max_seconds` caps the window used,
    `max_pixels` the output frame (the size is lowered to fit, see output_size), `source_limits`
    the file itself (checked from its header before decoding).

    Output frame k is the source frame nearest to start + k / fps, so lowering the fps drops frames
    and raising it repeats them, and the clip keeps its real-time speed.
    """
    path = Path(path)
    limits = source_limits or SourceLimits()
    if check_file(path, limits.max_mb):
        info, delays = probe_gif(path, limits)
        frame_starts = np.concatenate([[0.0], np.cumsum(delays)[:-1]])
        frames_stream = iter_gif
    else:
        info = probe_ffmpeg(path, limits)
        frame_starts = None
        frames_stream = iter_ffmpeg

    start, end, out_fps, notes = fit_window(
        info, start, end, fps, max_frames=max_frames, max_seconds=max_seconds, min_auto_fps=min_auto_fps
    )
    count = frame_count(start, end, out_fps)

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
        decoded[index] = resize(to_rgb(frame), size)
    if not decoded:
        raise VideoError(
            f"The video '{path.name}' has no frames between {seconds_text(start)} s and {seconds_text(end)} s."
        )

    # The stream stops at the first index it cannot reach, so every missing index lies past the
    # real end (headers can overstate the duration by a frame or two): repeat the last frame.
    last_frame = decoded[max(decoded)]
    frames = np.stack([decoded.get(index, last_frame) for index in source_index.tolist()]).astype(np.uint8, copy=False)
    used = VideoWindowUsed(
        start=round(start, 6), end=round(end, 6), fps=out_fps, frames=len(frames),
        width=size[0], height=size[1], source=info, note=notes_sentence(notes),
    )
    return VideoClip(frames, out_fps, used)
