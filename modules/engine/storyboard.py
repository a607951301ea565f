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


# A key-frame line: a whole frame number, a colon, and the prompt. The colon must not be followed
# by a digit, so that "16:9 widescreen", "4:3 photo" and "18:30 sunset" stay plain prompts.
_KEY_LINE = re.compile(r"^\s*(\d+)\s*:(?!\d)(.*)$")
# What a mistyped key-frame line looks like ("1.5: b", "-4: b", "16a: b"), to say what is wrong with it.
_KEY_LIKE = re.compile(r"^\s*([-+]?\d[\w.]*)\s*:(.*)$")
HOW_TO_WRITE = ("Write a storyboard as one line per key frame, 'frame: prompt', starting at 0: "
                "e.g. '0: a cat sleeping' / '16: the cat wakes up'.")


def _fail(problem: str) -> StoryboardError:
    return StoryboardError(f"{problem} {HOW_TO_WRITE}")


def is_storyboard(text: str) -> bool:
    """Whether `text` is meant as a storyboard: a '0: ...' line, or two or more 'frame: ...' lines.

    A single line such as "1984: a dystopian city" or "4: late start" is a plain prompt (a
    storyboard of one line would hold one prompt for the whole clip anyway), and so is any text
    whose numbers are ratios, times or sizes ("16:9 widescreen", "18:30 sunset", "1080p: a skyline").
    """
    keys = [int(match.group(1)) for _, line in _content_lines(text) if (match := _KEY_LINE.match(line))]
    return len(keys) > 1 or keys == [0]


def _content_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of the lines that are neither blank nor '#' comments."""
    return [(n, line) for n, line in enumerate(str(text).splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")]


def parse_storyboard(text: str) -> dict[int, str] | str:
    """'0: a cat sleeping\\n16: the cat wakes up' -> {0: 'a cat sleeping', 16: 'the cat wakes up'}.

    Text that `is_storyboard` does not take for one is a plain prompt and comes back as the
    stripped string. In a storyboard, blank lines and lines starting with '#' are skipped, and
    every other line is 'frame: prompt' ('16 : b' and '16:b' too, but not '16:9 ...'). Raises
    `StoryboardError`, with how to write one, for a line without a frame number, a frame that
    isn't a whole number >= 0, a frame given twice, an empty prompt, or no frame 0.
    """
    if not is_storyboard(text):
        return str(text).strip()
    board: dict[int, str] = {}
    where: dict[int, int] = {}
    for n, line in _content_lines(text):
        match = _KEY_LINE.match(line)
        if match is None:
            raise _line_error(n, line)
        frame, prompt = int(match.group(1)), match.group(2).strip()
        if not prompt:
            raise _fail(f"Storyboard line {n}: frame {frame} has no prompt after the ':'.")
        if frame in board:
            raise _fail(f"Storyboard line {n}: frame {frame} is already given on line {where[frame]}.")
        board[frame], where[frame] = prompt, n
    if 0 not in board:
        raise _fail(f"A storyboard must start at frame 0 (its first frame is {min(board)}): add a '0: ...' line.")
    return dict(sorted(board.items()))


def _line_error(n: int, line: str) -> StoryboardError:
    """What is wrong with storyboard line `n`, which is not a 'frame: prompt' line."""
    shown = line.strip() if len(line.strip()) <= 40 else line.strip()[:37] + "..."
    match = _KEY_LIKE.match(line)
    if match is None:
        return _fail(f"Storyboard line {n} ({shown!r}) has no frame number.")
    key = match.group(1)
    if re.fullmatch(r"-\d+", key):
        return _fail(f"Storyboard line {n}: frame numbers start at 0, got {key}.")
    if not re.fullmatch(r"\d+", key):
        return _fail(f"Storyboard line {n}: the frame {key!r} must be a whole number such as 0 or 16.")
    return _fail(f"Storyboard line {n} ({shown!r}) has a number right after the ':'; put a space after it.")


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
