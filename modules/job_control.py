"""What a running job shares with whoever waits for it: cancel in, progress out, where it ran.

Its own module so that the worker (modules/worker.py) and the ZeroGPU bridge (modules/zerogpu.py)
both use it without importing each other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field


class Cancelled(Exception):
    """The user stopped the job."""


def is_out_of_memory(error: BaseException) -> bool:
    """A CUDA OOM, or an error that says so (one that crossed a process boundary as text)."""
    import torch  # noqa: PLC0415 - not at import: the first page is served before torch loads

    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


@dataclass
class JobControl:
    """The link between one job and whoever waits for it: progress out, cancel in.

    On ZeroGPU the sample runs in a forked process: modules/zerogpu.py points that process's
    copy at a cross-process cancel flag and progress pipe; this API stays the same.
    `ran_on` is filled by the worker that takes the job ({"device": ..., "dtype": ...}), so the
    caller can record where it ran, which on several devices need not be the first one.
    """

    should_stop: Callable[[], bool] = lambda: False
    progress: Callable[[float, str], None] | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    ran_on: dict[str, str] = field(default_factory=dict)

    def cancel(self) -> None:
        self.cancel_event.set()

    def check(self) -> None:
        if self.cancel_event.is_set() or self.should_stop():
            self.cancel_event.set()
            raise Cancelled()

    def report(self, fraction: float, text: str) -> None:
        if self.progress is not None:
            self.progress(fraction, text)

    def step(self, done: int, total: int, phase: str = "") -> None:
        """The engine's per-step callback: stop here if cancelled, else report progress."""
        self.check()
        label = f"{phase} · step {done}/{total}" if phase else f"step {done}/{total}"
        self.report(done / max(total, 1), label)
