"""Where the anchor frame's trajectory splits (t1) and where motion is injected (t0).

t0 and t1 count DDIM steps from the end, as in the paper's code: with 50 steps, t1=47 means the
anchor frame is denoised for 2 steps alone before its latent is kept for re-noising, and t0=44
means the latent warped to the other frames is taken 3 steps later.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import UserError

# Samplers a user can pick where the method allows a choice (the zero-shot text-to-video itself needs DDIM,
# or LCM in fast mode); `common.SCHEDULERS` maps each name to its diffusers class. "lcm" is meant
# for a UNet with the LCM-LoRA active (`engine.fast`): on a plain UNet it makes blurry frames.
SCHEDULER_NAMES = ("ddim", "euler_ancestral", "euler", "dpm++_2m", "lcm")

PAPER_STEPS = 50
PAPER_T0 = 44
PAPER_T1 = 47


class ScheduleError(UserError, ValueError):
    pass


def default_t0_t1(steps: int) -> tuple[int, int]:
    """The paper's 44/47 of 50, scaled to `steps` and kept inside 0 <= t0 < t1 <= steps-1."""
    if steps < 2:
        raise ScheduleError("Text-to-video needs at least 2 denoising steps (t0 < t1 < steps).")
    t1 = min(round(steps * PAPER_T1 / PAPER_STEPS), steps - 1)
    t0 = min(round(steps * PAPER_T0 / PAPER_STEPS), t1 - 1)
    return t0, t1


def resolve_t0_t1(steps: int, t0: int | None = None, t1: int | None = None) -> tuple[int, int]:
    """User values where given (None or -1 = scaled default), with a clear error if impossible."""
    auto_t0, auto_t1 = default_t0_t1(steps)
    t0 = auto_t0 if t0 is None or t0 < 0 else int(t0)
    t1 = auto_t1 if t1 is None or t1 < 0 else int(t1)
    if not 0 <= t0 < t1 <= steps - 1:
        raise ScheduleError(
            f"t0={t0} and t1={t1} don't fit {steps} steps: need 0 <= t0 < t1 <= {steps - 1} "
            f"(use -1 for the default, {auto_t0} and {auto_t1} at {steps} steps)."
        )
    return t0, t1


def chunk_frame_ids(num_frames: int, chunk_size: int) -> list[list[int]]:
    """Frame ids of each chunk of a long clip, every chunk after the first led by anchor frame 0.

    The first chunk holds frames 0..chunk_size-1; each later one is [0] + the next
    chunk_size-1 frames, and its leading 0 is dropped from the output. Frame 0 is re-made
    identically in every chunk (same seed), so all chunks attend to the same anchor.
    """
    if chunk_size < 2:
        raise ScheduleError("chunk size must be at least 2 (the anchor frame and one more)")
    chunks = [list(range(min(chunk_size, num_frames)))]
    start = chunk_size
    while start < num_frames:
        end = min(start + chunk_size - 1, num_frames)
        chunks.append([0, *range(start, end)])
        start = end
    return chunks


def new_frames(chunk: Sequence[int], index: int) -> slice:
    """The part of a chunk's output that is new (every chunk but the first repeats frame 0)."""
    return slice(0, None) if index == 0 else slice(1, None)
