"""What a running job shares with whoever waits for it: cancel in, progress out, where it ran.

Its own module so that the worker (modules/worker.py) and the ZeroGPU bridge (modules/zerogpu.py)
both use it without importing each other. No torch here: the page reads a job's progress.

Progress reads in plain words, the same for every engine:

- a generation of one pass: "step 12 of 30" (the step of the schedule the user asked for, or
  fast mode's);
- a clip made in several passes (chunks): "frames 9–15 of 64 · step 12 of 30" (the step
  restarts with each pass);
- the zero-shot method's own steps on the first frame: "first frame · step 2 of 50";
- after a pass's last step, its frames are decoded: "decoding the frames";
- control maps: "finding pose in frame 12 of 64"; the saved video: "writing the video".

The bar (the fraction) rises monotonically over the whole job: each stage reports 0..1 of its
own share (`within`), which the control maps onto the job's bar and never lets go down.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


class Cancelled(Exception):
    """The user stopped the job."""


def is_out_of_memory(error: BaseException) -> bool:
    """A CUDA OOM, or an error that says so (one that crossed a process boundary as text)."""
    import torch  # noqa: PLC0415 - not at import: the first page is served before torch loads

    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


DECODING = "decoding the frames"
WRITING = "writing the video"
FIRST_FRAME = "first frame"  # the zero-shot method's steps on the anchor frame alone
TRAINING = "training"  # a training job's steps ("training · step 120 of 300 · loss 0.081 · about 3 min left")
INVERTING = "inverting the source"  # DDIM inversion of a clip: steps towards noise
UNDECODED = (FIRST_FRAME, TRAINING, INVERTING)  # parts whose last step is not followed by decoding


def duration_text(seconds: float) -> str:
    """Seconds as a person says them: "40 s", "12 min", "2.5 h"."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 90 else f"{minutes / 60:.1f} h"


@dataclass(frozen=True)
class Place:
    """Where a generation stands: which step of the schedule, and which frames this pass makes.

    `frames` is (first, last), 1-based, of `of` frames when the clip runs in several passes;
    None for one pass. `part` names a pass that is not a pass over frames (`FIRST_FRAME`).
    """

    step: int
    steps: int
    frames: tuple[int, int] | None = None
    of: int = 0
    part: str = ""
    detail: str = ""  # more words after the step ("loss 0.081 · about 3 min left")

    @property
    def where(self) -> str:
        """Which frames the pass makes, in words: "frames 9–15 of 64", "first frame", or "" for one pass."""
        if self.part:
            return self.part
        if self.frames is None:
            return ""
        first, last = self.frames
        span = f"frame {first}" if first == last else f"frames {first}\u2013{last}"
        return f"{span} of {self.of}" if self.of else span

    @property
    def last_of_pass(self) -> bool:
        """The pass's last step: its frames are decoded next (the first-frame part is not decoded)."""
        return self.step >= self.steps and self.part not in UNDECODED

    def text(self, what: str = "") -> str:
        """The progress line: "frames 9–15 of 64 · step 12 of 30" (or `what` in place of the step)."""
        what = what or f"step {self.step} of {self.steps}" + (f" · {self.detail}" if self.detail else "")
        return f"{self.where} · {what}" if self.where else what


@dataclass
class JobControl:
    """The link between one job and whoever waits for it: progress out, cancel in.

    On ZeroGPU the sample runs in a forked process: modules/zerogpu.py points that process's
    copy at a cross-process cancel flag and progress pipe (`publish` takes its reports in
    here); this API stays the same.
    `ran_on` is filled by the worker that takes the job ({"device": ..., "dtype": ...}), so the
    caller can record where it ran, which on several devices need not be the first one.
    `running` is True while a worker holds a device for the job (not while it waits in line).
    `last_text`, `last_step` and `last_frames` are what was last reported: the page's activity
    line and `stopped_message` read them. `timings` holds seconds spent per stage in this
    process (the runner's cost log reads them). `stopped_note` is a sentence the job adds to
    `stopped_message` (where a stopped training run saved its model).
    """

    should_stop: Callable[[], bool] = lambda: False
    progress: Callable[[float, str], None] | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    ran_on: dict[str, Any] = field(default_factory=dict)
    running: bool = False
    reached_worker: bool = False  # a worker took the job (on another process it may run on after a Stop)
    last_text: str = ""
    last_fraction: float = 0.0
    last_step: Place | None = None
    last_frames: tuple[str, int, int] | None = None  # (what, done, total) of a per-frame stage
    timings: dict[str, float] = field(default_factory=dict)
    stopped_note: str = ""
    _span: tuple[float, float] = field(default=(0.0, 1.0), init=False, repr=False)  # the stage's share of the bar

    def cancel(self) -> None:
        self.cancel_event.set()

    def check(self) -> None:
        if self.cancel_event.is_set() or self.should_stop():
            self.cancel_event.set()
            raise Cancelled()

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Add the seconds the block takes (when it succeeds) to `timings[stage]`."""
        started = time.monotonic()
        yield
        self.timings[stage] = self.timings.get(stage, 0.0) + time.monotonic() - started

    # ------------------------------------------------------------------ reporting
    @contextmanager
    def within(self, start: float, end: float) -> Iterator[JobControl]:
        """Reports inside take [start, end] of the current stage's share of the bar (nested stages compose)."""
        outer = self._span
        low, high = outer
        self._span = (low + start * (high - low), low + end * (high - low))
        try:
            yield self
        finally:
            self._span = outer

    def report(self, fraction: float, text: str) -> None:
        """Show `text`, the bar at `fraction` (0..1) of the current stage: never lower than it was."""
        low, high = self._span
        self.publish(low + min(max(float(fraction), 0.0), 1.0) * (high - low), text)

    def publish(self, fraction: float, text: str, last_step: Place | None = None,
                last_frames: tuple[str, int, int] | None = None, stopped_note: str = "") -> None:
        """Record and show a report already placed on the job's bar (the relay's of a job that runs in another
        process: a ZeroGPU child, a Ray replica; `report_message` makes them there)."""
        self.last_fraction = max(self.last_fraction, float(fraction))
        self.last_text = text
        if last_step is not None:
            self.last_step = last_step
        if last_frames is not None:
            self.last_frames = last_frames
        if stopped_note:
            self.stopped_note = stopped_note
        if self.progress is not None:
            self.progress(self.last_fraction, text)

    def report_message(self, fraction: float, text: str) -> tuple:
        """A report as it crosses to the caller's process: ("progress", *publish's arguments)."""
        return ("progress", float(fraction), str(text), self.last_step, self.last_frames, self.stopped_note)

    def step(self, done: int, total: int, phase: Place | str = "", *, kept: bool = False) -> None:
        """The engine's per-step callback: stop here if cancelled, else say where the job stands.

        `done` of `total`: the generation's denoiser calls so far (the bar). `phase`: a `Place`,
        or "" for a generation of one pass whose every call is a step (then step `done` of
        `total`); other text is a prefix of that ("chunk 2/3"). Every engine decodes a pass's
        frames right after its last step, so that step's report is followed by "decoding the frames".
        `kept`: the step's work outlives a stop (a training step, saved when stopped), so the step
        counts before the stop check ("Stopped after step k" then says what was kept).
        """
        place = phase if isinstance(phase, Place) else Place(step=done, steps=total, part=phase)
        if kept:
            self.last_step = place
        self.check()
        self.last_step = place
        fraction = done / max(total, 1)
        self.report(fraction, place.text())
        if place.last_of_pass:
            self.report(fraction, place.text(DECODING))

    def frame_done(self, what: str, done: int, total: int) -> None:
        """A per-frame stage ("finding pose") has done `done` of `total` frames."""
        self.last_frames = (what, done, total)
        self.report(done / max(total, 1), f"{what} in frame {done} of {total}")

    def stopped_message(self) -> str:
        """The sentence the page shows after Stop: how far the job got (and the job's own note)."""
        return " ".join(filter(None, (self._how_far(), self.stopped_note)))

    def _how_far(self) -> str:
        place = self.last_step
        if place is not None:
            where = f" ({place.where})" if place.where else ""
            return f"Stopped after step {place.step} of {place.steps}{where}."
        if self.last_frames is not None:
            what, done, total = self.last_frames
            return f"Stopped while {what}, after frame {done} of {total}."
        return "Stopped before the first step."
