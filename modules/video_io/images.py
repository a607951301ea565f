"""A first-frame picture: checked from its header, upright, RGB, fitted to the job's size."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from .clips import VideoError, last_lines

log = logging.getLogger(__name__)

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
        log.warning("could not read the size of the picture %s: %s", path, last_lines(error))
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
        log.warning("could not open the picture %s: %s", path, last_lines(error))
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
            log.warning("the picture %s failed its check: %s", path, last_lines(error))
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
        log.warning("ignored the EXIF orientation of a picture: %s", last_lines(error))
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
            log.warning("could not decode the picture %s: %s", path, last_lines(error))
            raise _damaged_image() from error
    h, w = image.shape[:2]
    scale = min(w / width, h / height)
    crop_w, crop_h = max(1, round(width * scale)), max(1, round(height * scale))
    top, left = (h - crop_h) // 2, (w - crop_w) // 2
    image = image[top : top + crop_h, left : left + crop_w]
    return cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=cv2.INTER_AREA)
