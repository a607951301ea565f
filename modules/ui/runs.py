"""What the page says about each tab's job, in one place: queued, working, done, failed or stopped.

Gradio tells the page only *that* an event failed or was cancelled, not why, and pops every
gr.Error up for 10 s while badging each output "Error". So a job's outcome is kept here per
(session, tab), its error is raised invisibly (`gr.Error(visible=False)`: API clients still read
the sentence) and the tab's status box reads the outcome in follow-up events:

- when Generate is pressed, before the job is queued: "1 job ahead of yours, about 20 s";
- while it runs: the job's own progress, shown on the status box only (`show_progress_on`);
- after success: what was made, what was adjusted to fit the server, the seed;
- after a failure: the sentence, until the next run (and it is logged with a reference);
- after Stop: "Stopped after step k of n", the last finished result left in place.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from gradio.context import LocalContext

from ..job_control import JobControl

MAX_RUNS = 4096  # (session, tab) records kept; the oldest go first


@dataclass
class Run:
    """One tab's latest job in one browser session (or API client)."""

    tab: str  # the page's tab title, e.g. "Depth"
    state: str = "queued"  # queued, running, done, failed, stopped
    control: JobControl | None = None
    message: str = ""  # the failure's sentence, or what was made
    text: str = ""  # the job's last progress text
    fraction: float = 0.0  # and how far it is, 0 to 1
    stop_pressed: bool = False
    started: float = field(default_factory=time.monotonic)
    has_result: bool = False  # a result of an earlier job is in the tab's players (a Stop leaves it there)

    def stopped_text(self) -> str:
        if self.control is None or self.state == "queued":
            said = "Stopped before it started."
        else:
            stopped = getattr(self.control, "stopped_message", None)
            said = stopped() if callable(stopped) else f"Stopped at: {self.text}." if self.text else "Stopped."
        ready = ("The last finished result is kept; the worker is ready for the next job." if self.has_result
                 else "The worker is ready for the next job.")
        return f"**{said}** {ready}"


_runs: OrderedDict[tuple[str, str], Run] = OrderedDict()
_lock = threading.Lock()


def session() -> str:
    """The running event's session (a browser tab or an API client); "" outside an event.

    Gradio passes `gr.Request` only to handlers that declare it; `LocalContext` (also used for the
    event id, see `common.gradio_job_control`) gives it to the helpers every handler calls.
    """
    request = LocalContext.request.get(None)
    return str(getattr(request, "session_hash", "") or "")


def begin(tab: str, session_hash: str | None = None, *, state: str = "queued") -> Run:
    """A new record for the tab's job: the previous outcome is forgotten."""
    key = (session_hash if session_hash is not None else session(), tab)
    with _lock:
        previous = _runs.get(key)
        run = Run(tab=tab, state=state,
                  has_result=previous is not None and (previous.has_result or previous.state == "done"))
        _runs[key] = run
        _runs.move_to_end(key)
        while len(_runs) > MAX_RUNS:
            _runs.popitem(last=False)
    return run


def current(tab: str, session_hash: str | None = None) -> Run | None:
    with _lock:
        return _runs.get((session_hash if session_hash is not None else session(), tab))


def started(tab: str, control: JobControl | None = None) -> Run:
    """The job reached the worker: the record (made when Generate was pressed, or now for an API call)."""
    run = current(tab)
    if run is None or run.state != "queued":
        run = begin(tab)
    run.state, run.control, run.started = "running", control, time.monotonic()
    return run


def failed(tab: str, message: str) -> None:
    run = current(tab) or begin(tab)
    run.state, run.message = "failed", message


def finished(tab: str, message: str) -> None:
    run = current(tab) or begin(tab)
    run.state, run.message = "done", message


def stopped(tab: str, session_hash: str | None = None) -> None:
    """The job no longer runs: the worker reached the stop (its next step after Stop), or none was left."""
    run = current(tab, session_hash)
    if run is not None:
        run.state = "stopped"


def press_stop(tab: str, session_hash: str) -> None:
    run = current(tab, session_hash)
    if run is not None and run.state in ("queued", "running"):
        run.stop_pressed = True


def explain(tab: str, session_hash: str):
    """The status box after an event failed or was cancelled: why, or None when there is nothing to add
    (a queue-full refusal, which the page shows itself)."""
    run = current(tab, session_hash)
    if run is None:
        return None
    if run.state == "failed":
        return run.message
    if run.stop_pressed or run.state in ("running", "stopped"):
        return run.stopped_text()
    return None
