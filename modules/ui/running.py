"""Jobs on the page: a Studio call as a queued event, its status box while it waits and runs (words and a bar,
followed every second), its outcome as a sentence (never a pop-up), its Stop, and the estimate under Generate."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, replace

import gradio as gr
from gradio.context import LocalContext

from ..errors import UserError
from ..jobs import VideoResult, user_errors
from ..job_control import Cancelled, JobControl, duration_text
from . import runs
from .common import gpu_options

log = logging.getLogger(__name__)

STOPPED = "Stopped. The server is ready for the next job."


def gradio_job_control(blocks: gr.Blocks, progress: gr.Progress, run: runs.Run | None = None,
                       what: str = "") -> JobControl:
    """A JobControl for the running event: progress to the page, and a cancel probe.

    Gradio's cancel (Stop button or a client's job.cancel()) ends the event's task and removes
    it from the queue's active jobs, but the worker thread runs on; the probe sees the event
    gone and the worker stops at its next step. `run` (the tab's record) keeps the last text, for
    the status line of every tab and for "Stopped after ..."; `what` names the job in it ("<engine title>: step 3
    of 20", where one tab runs several engines).
    """
    event_id = LocalContext.event_id.get(None)

    def should_stop() -> bool:
        queue = getattr(blocks, "_queue", None)
        if event_id is None or queue is None:
            return False
        return not any(job and any(event._id == event_id for event in job) for job in queue.active_jobs)

    def report(fraction: float, text: str) -> None:
        text = f"{what}: {text}" if what else text
        if run is not None:
            run.text, run.fraction = text, fraction
        progress(fraction, desc=text)

    return JobControl(should_stop=should_stop, progress=report)


def _reference(message: str) -> str:
    """The reference a message already quotes (an unexpected failure's), or a new one."""
    found = re.search(r"\(reference ([0-9a-f]{8})\)", message)
    return found.group(1) if found else uuid.uuid4().hex[:8]


@contextmanager
def gradio_errors(what: str = "making your video", tab: str | None = None):
    """Every failure of the block as a sentence for the page or the client (gr.Error): ours as they
    are, a stop as STOPPED, anything unexpected as a reference to the server log (`user_errors`).

    Each sentence is logged with a reference. With a `tab`, the sentence goes to that tab's status
    box (modules/ui/runs.py) instead of a pop-up: the gr.Error is raised invisibly for the page,
    and clients read it as before.
    """
    try:
        with user_errors(what):
            yield
    except UserError as error:
        message = str(error)
        reference = _reference(message)
        log.warning("%s%s: answered with a sentence (reference %s): %s", what, f" in the {tab} tab" if tab else "",
                    reference, message)
        if tab is not None:
            runs.failed(tab, message if reference in message else f"{message} (reference {reference})")
        raise gr.Error(message, print_exception=False, visible=tab is None) from error
    except Cancelled as error:
        if tab is not None:
            runs.stopped(tab)
        raise gr.Error(STOPPED, print_exception=False, visible=tab is None) from error


def run_job(
    blocks: gr.Blocks, method: Callable[..., VideoResult], make_request: Callable[[], object], progress: gr.Progress,
    tab: str,
    done: Callable[[], str] | None = None,
) -> VideoResult:
    """Build the request from raw values and call one Studio method; every failure is a sentence.

    The outcome goes to the tab's status box (`wire_job`); notes on what the server changed to fit
    its caps (window, frame rate, size, chunk size) are part of it, and params.json records them.
    API clients also get each note as a log message (gr.Info, not shown on the page). `done` adds a
    sentence to the status box's outcome (where a training job saved its model).
    """
    with gradio_errors(tab=tab):
        run = runs.started(tab)
        run.control = control = gradio_job_control(blocks, progress, run)
        result = method(make_request(), control)
    for note in result.notes:
        gr.Info(note, duration=None, title="Note", visible=False)
    text = done_text(result, time.monotonic() - run.started)
    runs.finished(tab, text + (f"\n\n{done()}" if done is not None else ""))
    return result


def done_text(result: VideoResult, seconds: float) -> str:
    size = f"{result.num_frames} frame{'s' if result.num_frames != 1 else ''} of {result.width}×{result.height}"
    text = f"**Done in {seconds:.1f} s:** {size} at {result.fps:g} fps, seed {result.seed}."
    if result.notes:
        text += "\n\n**Notes:** " + " ".join(result.notes)  # what was fitted to the server, and what was found
    return text


def video_outputs(result: VideoResult) -> tuple[str, str, str, int]:
    """(mp4, gif, params.json, used seed) - the outputs every generating tab returns."""
    return result.video, result.gif, result.params, result.seed


LIVE_EVERY_S = 1.0  # how often a tab's status box follows its job while it waits or runs
BAR_CELLS = 20  # the status box's progress bar, in characters


def live_text(demo: gr.Blocks, studio, tab: str, session_hash: str):
    """The tab's status box while its job waits or runs, in words that stay readable (no progress overlay over
    them): "Waiting for the worker: 1 job ahead of yours, about 20 s." or
    "**Working** (12 s): step 3 of 20." Once the job ended its own handlers say how (gr.skip here)."""
    from .queue import line_sentence

    run = runs.current(tab, session_hash)
    if run is None or run.state not in ("queued", "running"):
        return gr.skip()
    if run.state == "queued":
        return line_sentence(demo, studio, queued=True)
    doing = run.text or "starting"
    done = min(max(float(run.fraction or 0.0), 0.0), 1.0)
    bar = "▰" * round(done * BAR_CELLS) + "▱" * (BAR_CELLS - round(done * BAR_CELLS))
    return f"**Working** ({time.monotonic() - run.started:.0f} s): {doing}.\n\n{bar} {done:.0%}"


def progress_sink() -> gr.HTML:
    """Where a GPU event's Gradio progress goes: nowhere seen. Gradio's display greys out and prints over what it
    sits on, and leaves an "Error" badge on each output after a failure (show_progress="hidden" hides neither);
    the status box says it all in words and a bar (`live_text`)."""
    return gr.HTML(visible=False)


def live_timer() -> gr.Timer:
    """A timer that ticks only while a job of the tab waits or runs (`wire_job` starts and stops it)."""
    return gr.Timer(LIVE_EVERY_S, active=False)


KEEP_OUTCOME_JS = """(text, now) => {
  const shown = (now || "").trim();
  return !shown || /^(\\*\\*Working\\*\\*|Waiting for the worker|Starting|Comparing)/.test(shown) ? text : shown;
}"""


def follow_live(timer: gr.Timer, status: gr.Markdown, text_of: Callable) -> None:
    """Each tick of `timer` puts `text_of(request)` in `status` through a hidden box and a page-side copy: an event
    that outputs to the status box itself shows Gradio's pending timer ("0.3s") over the sentence every tick."""
    relay = gr.Textbox(visible=False)
    timer.tick(text_of, None, relay, queue=False, show_progress="hidden", api_visibility="private")
    # A tick answered after the job's outcome was shown must not cover it: only a waiting or working text is replaced.
    relay.change(None, [relay, status], status, js=KEEP_OUTCOME_JS, queue=False, show_progress="hidden",
                 api_visibility="private")


def wire_job(demo: gr.Blocks, studio, tab: str, trigger: gr.Button, fn: Callable, inputs: list, outputs: list, *, status: gr.Markdown,
             seed: gr.Number | None = None, prepare: "Prepare | None" = None, stop: gr.Button | None = None,
             **options):
    """Trigger → one queued GPU event (`options`: api_name, ...), with the status box around it.

    Pressing the button first says, without queueing, where the job stands in line; while it waits or runs the
    status box follows it in words and a bar (`live_text`, every second; Gradio's own progress display is off);
    afterwards the box says what was made, why it failed, or where it stopped (and "Seed used" appears).
    `prepare`: a step that runs before the job joins the GPU queue, in its own queue (a download: it must not
    hold the worker), followed in the status box the same way. `stop`: Stop for every event of the job.
    Returns the GPU event, for Stop's `cancels`.
    """
    from .queue import line_sentence

    timer = live_timer()

    def announce(request: gr.Request):
        runs.begin(tab, request.session_hash)
        return line_sentence(demo, studio), gr.Timer(active=True)

    def succeeded(request: gr.Request):
        run = runs.current(tab, request.session_hash)
        text = run.message if run is not None and run.state == "done" else gr.skip()
        return (text, gr.Timer(active=False)) if seed is None else (text, gr.Timer(active=False), gr.update(visible=True))

    def failed(request: gr.Request):
        text = runs.explain(tab, request.session_hash)
        return gr.skip() if text is None else text, gr.Timer(active=False)

    private = dict(queue=False, show_progress="hidden", api_visibility="private")
    announced = trigger.click(announce, None, [status, timer], **private)
    then = announced.then  # the GPU event follows the announcement, or a prepare step that succeeded
    stoppable = []
    if prepare is not None:
        prepared = announced.then(prepare.fn, prepare.inputs, gr.Textbox(visible=False),
                                  show_progress_on=[progress_sink()], concurrency_id=prepare.queue,
                                  concurrency_limit=prepare.limit, api_name=prepare.api_name)
        prepared.failure(failed, None, [status, timer], **private)
        then, stoppable = prepared.success, [prepared]
    event = then(fn, inputs, outputs, show_progress_on=[progress_sink()], **gpu_options(studio), **options)
    event.success(succeeded, None, [status, timer] if seed is None else [status, timer, seed], **private)
    event.failure(failed, None, [status, timer], **private)
    if stop is not None:
        wire_stop(stop, tab, [*stoppable, event])
    def follow(request: gr.Request):
        return live_text(demo, studio, tab, request.session_hash)

    follow_live(timer, status, follow)
    return event


@dataclass(frozen=True)
class Prepare:
    """A job's first step outside the GPU queue (`wire_job`): `fn(*inputs)` returns a sentence (its endpoint's
    answer); it reports through `prepare_control` and raises through `gradio_errors(tab=...)`."""

    fn: Callable
    inputs: list
    api_name: str
    queue: str = "downloads"
    limit: int = 2


def prepare_step(blocks: gr.Blocks, tab: str, progress: gr.Progress, work: Callable[[JobControl], str],
                 what: str) -> str:
    """Run a `Prepare` step's `work(control)` (`what` it does, for the log) as the tab's job so far (followed by
    the status box, stopped by its Stop), then put the job back in line for the GPU."""
    with gradio_errors(what, tab=tab):
        run = runs.started(tab)
        run.control = control = gradio_job_control(blocks, progress, run)
        said = work(control)
    runs.begin(tab)  # queued for the GPU now: the box says where it waits
    return said


def say_failures(event, tab: str, box: gr.Markdown) -> None:
    """A quick (unqueued) event's failure sentence in `box`, not a pop-up: its handler raises through
    `gradio_errors(tab=...)`, which records the sentence and raises it invisibly (clients still read it)."""
    def failed(request: gr.Request):
        text = runs.explain(tab, request.session_hash)
        return gr.skip() if text is None else text

    event.failure(failed, None, box, queue=False, show_progress="hidden", api_visibility="private")


LONG_JOB_S = 60.0  # beyond this, the estimate suggests Fast where the engine has it


def estimate_text(studio, request) -> str:
    """The cost of `request` on this server in words, with a hint to use Fast where it would take minutes.

    Empty while the form does not make a valid request yet (validation says why when Generate is pressed).
    """
    def seconds_of(candidate):
        try:
            estimate = studio.estimate(candidate)
        except UserError:
            return None, False
        if estimate is None:
            return None, False
        return float(getattr(estimate, "seconds", estimate)), bool(getattr(estimate, "measured", False))

    with user_errors("estimating the job's time"):
        seconds, measured = seconds_of(request)
        if seconds is None:
            return ""
        # "measured here" only once this server timed a job of this kind (engine, tab, fast): modules/estimates.py
        text = f"About **{duration_text(seconds)}** ({'measured here' if measured else 'estimate'})."
        if seconds > LONG_JOB_S and hasattr(request, "fast") and request.fast is not True:
            fast_seconds, _ = seconds_of(replace(request, fast=True))
            if fast_seconds is not None and fast_seconds < seconds / 2:
                text += f" Tick **Fast** for about {duration_text(fast_seconds)}."
        return text


def wire_estimate(demo: gr.Blocks, studio, estimate: gr.Markdown, inputs: list, make_request: Callable) -> None:
    """The estimate follows the form: recomputed (without queueing) whenever an input changes, and on load.
    `make_request(*values)` builds the raw request from `inputs`' values."""
    def update(*values):
        try:
            return estimate_text(studio, make_request(*values))
        except UserError:
            return ""

    triggers = [component.change for component in inputs if hasattr(component, "change")]
    gr.on([demo.load, *triggers], update, inputs, estimate, queue=False, show_progress="hidden",
          trigger_mode="always_last", api_visibility="private")


def wire_stop(stop: gr.Button, tab: str, events: list) -> None:
    """Stop cancels the tab's events; the status box then says where the job stopped (runs.explain).
    With nothing running it does nothing at all."""
    def press(request: gr.Request):
        runs.press_stop(tab, request.session_hash)

    stop.click(press, None, None, cancels=events, queue=False, show_progress="hidden", api_visibility="private")
