"""Frames as arrays: uint8 RGB conversion and the output-size rule (the long side, a multiple of 8)."""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np

from .clips import VideoError

log = logging.getLogger(__name__)

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


def as_rgb_frames(frames: np.ndarray) -> np.ndarray:
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


def round_to_multiple(value: float, multiple: int) -> int:
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
    return round_to_multiple(width * scale, multiple), round_to_multiple(height * scale, multiple)


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


def resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """INTER_AREA avoids aliasing when shrinking; INTER_CUBIC stays sharp when growing."""
    height, width = frame.shape[:2]
    if (width, height) == size:
        return frame
    shrinking = size[0] * size[1] < width * height
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(frame, size, interpolation=interpolation)
