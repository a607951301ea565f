"""Side-by-side comparison videos: several engines' clips in one labelled mp4.

Clips may differ in size, length and frame rate. Each is scaled to a common height (aspect kept),
resampled to the output rate by time (a frame shows what its clip shows at that moment; a
shorter clip holds its last frame) and labelled along its top edge.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

LABEL_HEIGHT = 24
GAP = 4
MAX_HEIGHT = 512


def _fit_height(frames: np.ndarray, height: int) -> np.ndarray:
    count, h, w = frames.shape[:3]
    if h == height:
        return frames
    width = max(2, round(w * height / h / 2) * 2)
    return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames])


def _label(width: int, text: str) -> np.ndarray:
    strip = np.zeros((LABEL_HEIGHT, width, 3), dtype=np.uint8)
    scale = 0.5
    while scale > 0.25 and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > width - 8:
        scale -= 0.05
    cv2.putText(strip, text, (4, LABEL_HEIGHT - 8), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return strip


def side_by_side(clips: Sequence[np.ndarray], labels: Sequence[str], fps: Sequence[float], out_fps: float | None = None) -> np.ndarray:
    """uint8 (F, H, W, 3) frames of `clips` next to each other, labelled, at `out_fps` (default: the highest)."""
    if not clips or len(clips) != len(labels) or len(clips) != len(fps):
        raise ValueError("side_by_side needs one label and one frame rate per clip.")
    out_fps = out_fps or max(fps)
    height = min(MAX_HEIGHT, max(c.shape[1] for c in clips))
    height -= height % 2
    clips = [_fit_height(np.asarray(c, dtype=np.uint8), height) for c in clips]
    duration = max(len(c) / r for c, r in zip(clips, fps))
    count = max(1, round(duration * out_fps))
    columns = []
    for clip, rate, text in zip(clips, fps, labels):
        index = np.minimum((np.arange(count) / out_fps * rate).astype(int), len(clip) - 1)
        label = np.broadcast_to(_label(clip.shape[2], text), (count, LABEL_HEIGHT, clip.shape[2], 3))
        columns.append(np.concatenate([label, clip[index]], axis=1))
    gap = np.zeros((count, height + LABEL_HEIGHT, GAP, 3), dtype=np.uint8)
    parts = [columns[0]]
    for column in columns[1:]:
        parts += [gap, column]
    return np.concatenate(parts, axis=2)
