"""GIFs as they are: the header scanned for frame delays (ffmpeg would flatten them), frames streamed through
Pillow, delays written back, and a GIF copied into an mp4 for the page's video boxes."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from PIL import Image

from ..outputs import atomic_write_path
from .clips import GIF_COLOURS, GIF_DEFAULT_FPS, GIF_DELAY_UNIT_MS, GIF_MAGIC, VideoError, last_lines, unreadable, unwritable
from .frames import as_rgb_frames

log = logging.getLogger(__name__)

def skip_sub_blocks(data: bytes, pos: int) -> int:
    """Past a chain of GIF data sub-blocks (length byte + bytes, ended by a 0 length)."""
    while pos < len(data):
        length = data[pos]
        pos += 1
        if length == 0:
            break
        pos += length
    return pos


def scan_gif(path: Path) -> tuple[int, int, list[int]]:
    """(canvas width, height, per-frame delays in centiseconds) from the GIF's block structure.

    Walks the blocks and skips the compressed pixel data, so a GIF of thousands of frames is
    counted without decoding one (Pillow decodes every frame to reach a frame's delay). A file
    cut short counts the frames it has.
    """
    data = path.read_bytes()
    if len(data) < 13:
        raise unreadable(path, "the GIF header is cut short")
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
            pos = skip_sub_blocks(data, pos)
        elif block == 0x2C:  # image descriptor: 9 bytes, local colour table, LZW size, data
            if pos + 9 > len(data):
                break
            local = data[pos + 8]
            pos += 9
            if local & 0x80:
                pos += 3 << ((local & 0x07) + 1)
            pos = skip_sub_blocks(data, pos + 1)
            delays.append(delay)
            delay = 0
        else:  # 0x3B trailer, or bytes after the last frame that browsers ignore too
            break
    if width == 0 or height == 0:
        raise unreadable(path, "the GIF has no picture size")
    return width, height, delays


def gif_delays(path: Path) -> tuple[int, int, list[float]]:
    """Canvas size and per-frame display times in seconds; missing or zero delays count as GIF_DEFAULT_FPS."""
    width, height, delays_cs = scan_gif(path)
    if not delays_cs:
        raise unreadable(path, "the GIF has no frames")
    delays = [cs / 100.0 if cs > 0 else 1.0 / GIF_DEFAULT_FPS for cs in delays_cs]
    return width, height, delays


def gif_timing(delays: Sequence[float]) -> tuple[float, int]:
    """(fps, frame count at that fps) for a GIF.

    Writers merge identical consecutive frames into one long delay and jitter delays to fit whole
    centiseconds, so count each frame as the number of typical delays it spans and divide by the
    total time: that recovers the rate the GIF was made at.
    """
    typical = float(np.median(delays))
    spans = sum(max(1, int(math.floor(delay / typical + 0.5))) for delay in delays)
    return spans / math.fsum(delays), spans



def iter_gif(path: Path, wanted: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Like iter_ffmpeg for GIFs; a file damaged after some frames gives the frames before it."""
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
        log.warning("decoding the GIF %s failed: %s", path, last_lines(error))
        raise unreadable(path, "the GIF's image data is damaged") from error


def gif_delays_ms(count: int, fps: float) -> list[int]:
    """Whole-centisecond delays whose running total tracks k / fps, so long GIFs don't drift."""
    ends_cs = [int(math.floor((k + 1) * 100.0 / fps + 0.5)) for k in range(count)]
    starts_cs = [0] + ends_cs[:-1]
    return [max(1, end - begin) * GIF_DELAY_UNIT_MS for begin, end in zip(starts_cs, ends_cs)]


def write_gif(frames: np.ndarray, path: str | os.PathLike, fps: float) -> str:
    """Looping GIF for previews and sharing; written atomically."""
    frames = as_rgb_frames(frames)
    if not (math.isfinite(fps) and fps > 0):
        raise VideoError(f"Frame rate must be positive, got {fps:g} fps.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    delays = gif_delays_ms(len(frames), fps)
    # Each frame's own 256 colours by fast octree: Pillow's default (median cut, in its GIF writer) took 25x as
    # long, over a second of a core for 16 frames of 256x256, for a preview of the mp4.
    images = [Image.fromarray(frame).quantize(GIF_COLOURS, method=Image.Quantize.FASTOCTREE) for frame in frames]
    try:
        with atomic_write_path(path) as temp:
            # Pillow takes a list of delays only for several frames; one frame takes a number.
            images[0].save(os.fspath(temp), format="GIF", save_all=True, append_images=images[1:],
                           duration=delays if len(delays) > 1 else delays[0], loop=0)
    except OSError as error:
        raise unwritable(path, error, "GIF") from error
    return os.fspath(path)


def is_gif(path: str | os.PathLike) -> bool:
    """Whether the file is a GIF (by its first bytes, not its name)."""
    try:
        with open(path, "rb") as file:
            return file.read(6) in GIF_MAGIC
    except OSError:
        return False
