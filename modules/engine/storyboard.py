"""Storyboards: a prompt per key frame, as `0: a cat sleeping` / `16: the cat wakes up` lines.

Engines that take them (their `inputs` say "storyboard") read them: a diffusers pipeline through
FreeNoise's prompt interpolation, the zero-shot loop by interpolating text embeddings per frame
between key frames (`key_frame_weights`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np


class StoryboardError(ValueError):
    """A storyboard (prompt schedule) that can't be used; the message is meant for the user."""


_KEYED = re.compile(r"^\s*([-+]?\d[\w.]*)\s*:(.*)$")


def parse_storyboard(text: str) -> dict[int, str] | str:
    """'0: a cat sleeping\\n16: the cat wakes up' -> {0: 'a cat sleeping', 16: 'the cat wakes up'}.

    Text with no 'frame:' line is a plain prompt and comes back as the stripped string. Blank
    lines and lines starting with '#' are skipped. Raises `StoryboardError` for a line without a
    frame number among numbered ones, a frame that isn't a whole number >= 0, a frame given twice,
    an empty prompt, or a storyboard that doesn't start at frame 0.
    """
    lines = [(n, line) for n, line in enumerate(str(text).splitlines(), 1) if line.strip()]
    lines = [(n, line) for n, line in lines if not line.lstrip().startswith("#")]
    if not any(_KEYED.match(line) for _, line in lines):
        return str(text).strip()
    board: dict[int, str] = {}
    where: dict[int, int] = {}
    for n, line in lines:
        match = _KEYED.match(line)
        if match is None:
            raise StoryboardError(
                f"Storyboard line {n} ({line.strip()!r}) has no frame number: "
                "write every line as 'frame: prompt', e.g. '16: the cat wakes up'."
            )
        key, prompt = match.group(1), match.group(2).strip()
        if not re.fullmatch(r"[-+]?\d+", key):
            raise StoryboardError(f"Storyboard line {n}: the frame {key!r} must be a whole number such as 0 or 16.")
        frame = int(key)
        if frame < 0:
            raise StoryboardError(f"Storyboard line {n}: frame numbers start at 0, got {frame}.")
        if not prompt:
            raise StoryboardError(f"Storyboard line {n}: frame {frame} has no prompt after the ':'.")
        if frame in board:
            raise StoryboardError(f"Storyboard line {n}: frame {frame} is already given on line {where[frame]}.")
        board[frame], where[frame] = prompt, n
    if 0 not in board:
        raise StoryboardError(
            f"A storyboard must start at frame 0 (its first frame is {min(board)}): add a '0: ...' line."
        )
    return dict(sorted(board.items()))


def check_storyboard(prompt, num_frames: int, what: str) -> dict[int, str] | str:
    """`prompt` (text, storyboard text or {frame: text}) checked against `num_frames`."""
    if isinstance(prompt, str):
        prompt = parse_storyboard(prompt)
    elif isinstance(prompt, Mapping):
        if not prompt:
            raise StoryboardError(f"The {what} storyboard is empty.")
        for frame, text in prompt.items():
            if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)) or frame < 0:
                raise StoryboardError(f"{what.capitalize()} storyboard frames are whole numbers >= 0, got {frame!r}.")
            if not isinstance(text, str):
                raise StoryboardError(f"The {what} for frame {frame} must be text, got {type(text).__name__}.")
        prompt = {int(k): v for k, v in sorted(prompt.items())}
        if 0 not in prompt:
            raise StoryboardError(f"A {what} storyboard must start at frame 0 (its first frame is {min(prompt)}).")
    else:
        raise StoryboardError(f"The {what} must be text or {{frame: text}}, got {type(prompt).__name__}.")
    if isinstance(prompt, dict):
        late = [k for k in prompt if k >= num_frames]
        if late:
            raise StoryboardError(
                f"The {what} storyboard names frame {late[0]}, "
                f"but the clip has {num_frames} frames (0-{num_frames - 1})."
            )
        if len(prompt) == 1:
            return prompt[0]
    return prompt


def key_frame_weights(keys: list[int], frame: int) -> tuple[int, int, float]:
    """(key before, key after, weight of the key after) for `frame`: linear between key frames,
    held after the last one (as diffusers' FreeNoise prompt interpolation does)."""
    before = max(k for k in keys if k <= frame)
    later = [k for k in keys if k > frame]
    if not later:
        return before, before, 0.0
    after = min(later)
    return before, after, (frame - before) / (after - before)
