"""The part of a clip a job uses: start, end and frame rate fitted to the server's caps, said in words."""

from __future__ import annotations

import logging
import math


from .clips import TIME_EPS, VideoError, VideoInfo

log = logging.getLogger(__name__)

def frame_count(start: float, end: float, fps: float) -> int:
    """Timestamps start + k / fps that fall inside [start, end), at least one."""
    return max(1, int(math.ceil((end - start) * fps - TIME_EPS)))


def seconds_text(value: float) -> str:
    """5 -> '5.0', 0.25 -> '0.25': short, but always visibly a time."""
    text = f"{value:.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def rate_text(fps: float) -> str:
    """30 -> '30', 6.4 -> '6.4', 1/3 -> '0.33': a frame rate as people write it."""
    return f"{round(fps, 2):g}"


def round_down(value: float, places: int = 3) -> float:
    """A frame rate lowered to fit a cap, kept readable and never above the exact fit."""
    scale = 10**places
    return math.floor(value * scale) / scale


def notes_sentence(notes: list[str]) -> str:
    text = "; ".join(notes)
    return text[:1].upper() + text[1:] + "." if text else ""


def is_auto(value: float | None) -> bool:
    """None and 0 both mean "choose for me" (end: to the end; fps: the input's or what fits)."""
    return value is None or value == 0


def fit_window(
    info: VideoInfo,
    start: float | None,
    end: float | None,
    fps: float | None,
    *,
    max_frames: int | None,
    max_seconds: float | None,
    min_auto_fps: float,
) -> tuple[float, float, float, list[str]]:
    """(start, end, output fps, notes): the user's window, fitted to the caps.

    The rule: a value the user set is never changed; a value left on auto (end or fps 0/None)
    is chosen to fit. So with both on auto any clip fits: the frame rate goes down to fit
    max_frames, and below `min_auto_fps` the window is shortened instead. With the fps set, the
    window is shortened; with the end set, the fps is lowered (to the floor); with both set and
    too many frames, the error says which to change. An end past the clip means "to the end".
    """
    notes: list[str] = []
    start = 0.0 if start is None else float(start)
    if not math.isfinite(start) or start < 0:
        raise VideoError(f"Start time must be 0 s or later, got {seconds_text(start)} s.")
    if start >= info.duration:
        raise VideoError(
            f"Start time {seconds_text(start)} s is past the end of the video ({seconds_text(info.duration)} s); "
            "set a start time before the end."
        )

    auto_end = is_auto(end)
    if not auto_end:
        end = float(end)
        if math.isnan(end) or end <= start:
            raise VideoError(
                f"End time {seconds_text(end)} s must be after the start time {seconds_text(start)} s (0 = to the end)."
            )
        if end > info.duration + TIME_EPS:
            if math.isfinite(end):
                notes.append(f"the end time {seconds_text(end)} s is past the video's end, so it runs to the end "
                             f"({seconds_text(info.duration)} s)")
            auto_end = True
    end = info.duration if auto_end else min(end, info.duration)

    auto_fps = is_auto(fps)
    if not auto_fps:
        fps = float(fps)
        if not math.isfinite(fps) or fps <= 0:
            raise VideoError(f"Frame rate must be positive (or 0 for the input's), got {fps:g} fps.")
    out_fps = info.fps if auto_fps else fps

    if max_seconds is not None and end - start > max_seconds + TIME_EPS:
        if not auto_end:
            raise VideoError(
                f"The selected part is {end - start:.1f} s long; this server takes up to {max_seconds:g} s. "
                f"Set the end time to {seconds_text(start + max_seconds)} s or less (0 picks the longest part allowed)."
            )
        end = start + max_seconds
        notes.append(f"used {seconds_text(start)}–{seconds_text(end)} s of the {seconds_text(info.duration)} s video "
                     f"(this server takes up to {max_seconds:g} s)")

    count = frame_count(start, end, out_fps)
    if max_frames is None or count <= max_frames:
        return start, end, out_fps, notes
    span = end - start
    limit = f"the {max_frames}-frame limit"
    if auto_fps:
        floor_fps = min(min_auto_fps, info.fps)
        fitted = round_down(max_frames / span)
        if fitted >= floor_fps:
            notes.append(f"{rate_text(info.fps)} fps → {rate_text(fitted)} fps to fit {limit}")
            return start, end, fitted, notes
        if not auto_end:
            at_floor = frame_count(start, end, floor_fps)
            raise VideoError(
                f"The selected part ({seconds_text(start)}–{seconds_text(end)} s) gives {at_floor} frames even at "
                f"{rate_text(floor_fps)} fps; the limit is {max_frames}. Shorten it to {max_frames / floor_fps:.1f} s "
                "or less, or set the end time to 0 to fit it automatically."
            )
        end = start + max_frames / floor_fps
        rate = f"{rate_text(info.fps)} fps → {rate_text(floor_fps)} fps and " if floor_fps != info.fps else ""
        notes.append(f"{rate}{seconds_text(start)}–{seconds_text(end)} s of the video to fit {limit}")
        return start, end, floor_fps, notes
    if auto_end:
        end = start + max_frames / out_fps
        notes.append(f"used {seconds_text(start)}–{seconds_text(end)} s at {rate_text(out_fps)} fps to fit {limit}")
        return start, end, out_fps, notes
    raise VideoError(
        f"The selected part ({seconds_text(start)}–{seconds_text(end)} s at {rate_text(out_fps)} fps) gives {count} frames; "
        f"the limit is {max_frames}. Shorten the window to {max_frames / out_fps:.1f} s, lower the frame rate "
        f"to {round_down(max_frames / span, 1):g} fps or less, or set the frame rate to 0 to fit it automatically."
    )
