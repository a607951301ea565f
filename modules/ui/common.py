"""Widgets and glue every tab shares: the only place that knows both Gradio and the Studio.

Error policy: a handler passes the widgets' raw values into a request dataclass (a cleared box
is None, an API client may send text) and `run_job` calls the Studio; `validate()` coerces and
checks every value, so the widgets' own bound checks are off (`Slider`, `Number` below) and a
user always reads our sentence, never Gradio's "Value 1000 is greater than maximum value 64.".
`UserError` is the only failure type shown as it is; anything else is logged and shown as a
sentence that says what to do (modules.errors.unexpected).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import gradio as gr
from gradio.context import LocalContext

from .. import video_io
from ..errors import UserError
from ..request_types import (
    MAX_FPS,
    MAX_SEED,
    MAX_WINDOW_SECONDS,
    SIZE_MULTIPLE,
    RequestError,
    VideoWindow,
    request_from_dict,
)
from ..settings import Settings
from ..forms import ceil_to, floor_to, side_bounds, side_maximum, tab_frame_cap  # noqa: F401 - the tabs import them here
from ..jobs import VideoResult, user_errors
from ..job_control import Cancelled, JobControl, duration_text
from . import runs

log = logging.getLogger(__name__)

VIDEO_TYPES = [".mp4", ".webm", ".mov", ".gif", ".avi", ".mkv"]
MAX_PARAMS_BYTES = 1_000_000  # a params.json is a few kB
STOPPED = "Stopped. The server is ready for the next job."
# Page tab titles, for "this file is from the X tab" (which tab made a mode is the registry's `mode_tab`).
TAB_TITLES = {"text2video": "Text to video", "edit": "Video editing", "tune": "Tune", "tuned": "Tune"}
KIND_TABS = {"pose": "Pose", "edge": "Edge", "depth": "Depth"}


# --------------------------------------------------------------------------- widgets


@contextmanager
def _no_stub_files():
    """Gradio writes a .pyi stub beside the source of every Component subclass it sees defined
    (gradio.component_meta.create_or_modify_pyi): not into our source tree."""
    from gradio import component_meta

    write_stub = component_meta.create_or_modify_pyi
    component_meta.create_or_modify_pyi = lambda *args, **kwargs: None
    try:
        yield
    finally:
        component_meta.create_or_modify_pyi = write_stub


with _no_stub_files():

    class Slider(gr.Slider):
        """gr.Slider whose value goes to our validation as sent: its bounds guide the widget only."""

        is_template = True  # rendered as a plain slider; a session's gr.update keeps this class

        def preprocess(self, payload):
            return payload

    class Number(gr.Number):
        """gr.Number whose value goes to our validation as sent (None when the box is cleared)."""

        is_template = True

        def preprocess(self, payload):
            return payload

    class Dropdown(gr.Dropdown):
        """gr.Dropdown whose value goes to our validation as sent: an API client's unknown or wrongly
        cased choice gets the app's sentence with the allowed values, not "Value: x is not in the list"."""

        is_template = True

        def preprocess(self, payload):
            return payload

    class CheckboxGroup(gr.CheckboxGroup):
        """gr.CheckboxGroup whose value goes to our validation as sent (None means the default)."""

        is_template = True

        def preprocess(self, payload):
            return payload

    class Image(gr.Image):
        """gr.Image that hands on the uploaded file's path unopened: Gradio's own preprocessing decodes
        the whole picture with PIL and fails with its generic text on a renamed text file or a
        decompression bomb; the request's validation reads the header and answers in a sentence."""

        is_template = True

        def preprocess(self, payload):
            return _file_path(payload)

    class Video(gr.Video):
        """gr.Video that hands on the uploaded file's path (validation and video_io read and explain it)."""

        is_template = True

        def preprocess(self, payload):
            return _file_path(payload)

    class File(gr.File):
        """gr.File (one file) that hands on the uploaded file's path."""

        is_template = True

        def preprocess(self, payload):
            return _file_path(payload)


def _file_path(payload) -> str | None:
    """The path in Gradio's file data (FileData, ImageData), or None: `uploaded()` checks where it is."""
    path = getattr(payload, "path", None)
    return str(path) if path else None


# A slider's number box clamps a typed value to its range in the browser (1000 frames become 64) before
# any event fires, so the server never sees it: this page script says so beside the slider, once per
# typed value, and forgets it when the value is typed or dragged back within range.
RANGE_NOTE_JS = """
() => {
  const noteFor = (input) => {
    const block = input.closest(".block");
    if (!block || !block.querySelector("input[type=range]")) return null;  // sliders only
    return block;
  };
  const show = (input, raw) => {
    const block = noteFor(input);
    if (!block) return;
    let note = block.querySelector(".t2vz-range-note");
    const max = Number(input.max), min = Number(input.min);
    let text = "";
    if (input.max !== "" && raw > max) text = `${raw} is more than this server allows here: ${max} is used.`;
    else if (input.min !== "" && raw < min) text = `${raw} is less than the smallest value here: ${min} is used.`;
    if (!text) { if (note) note.remove(); return; }
    if (!note) {
      note = document.createElement("div");
      note.className = "t2vz-range-note";
      note.setAttribute("role", "status");
      note.style.cssText = "color: var(--color-accent); font-size: var(--text-sm); padding-top: 4px;";
      block.appendChild(note);
    }
    note.textContent = text;
  };
  const listen = (event) => {
    const input = event.target;
    if (!(input instanceof HTMLInputElement)) return;
    if (input.type === "number" && input.value !== "" && !Number.isNaN(Number(input.value))) {
      show(input, Number(input.value));
    } else if (input.type === "range") {
      const block = noteFor(input);
      const note = block && block.querySelector(".t2vz-range-note");
      if (note) note.remove();
    }
  };
  document.addEventListener("input", listen, true);
  document.addEventListener("keydown", (event) => { if (event.key === "Enter") listen(event); }, true);
}
"""


# Gradio's video box refuses any file that is not video/* with its own pop-up, before an event fires. This page
# script hands a GIF picked or dropped on a video box (`video_input`) to the GIF button under it instead, whose
# upload the server turns into an mp4; and lets the box's file picker list GIFs. tests/test_browser_page.py
# uploads a GIF through the box: it fails if Gradio's markup changes under this script.
GIF_ROUTE_JS = """
() => {
  const isGif = (file) => file && (file.type === "image/gif" || /\\.gif$/i.test(file.name));
  const reroute = (event, files) => {
    const target = event.target instanceof Element ? event.target : null;
    const box = target && target.closest(".t2vz-video-in");
    if (!box || !files || !files.length || !isGif(files[0])) return;
    const inputs = box.closest(".t2vz-video-box")?.querySelectorAll("input[type=file]") || [];
    const button = [...inputs].find((input) => !input.closest(".t2vz-video-in"));  // the GIF button's own
    if (!button) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    const transfer = new DataTransfer();
    transfer.items.add(files[0]);
    button.files = transfer.files;
    button.dispatchEvent(new Event("change", { bubbles: true }));
    if (target instanceof HTMLInputElement) target.value = "";
  };
  document.addEventListener("drop", (event) => reroute(event, event.dataTransfer && event.dataTransfer.files), true);
  document.addEventListener("change", (event) => {
    if (event.target instanceof HTMLInputElement && event.target.type === "file") reroute(event, event.target.files);
  }, true);
  document.addEventListener("click", (event) => {  // the box's picker lists GIFs too
    const box = event.target instanceof Element ? event.target.closest(".t2vz-video-in") : null;
    const input = box && box.querySelector("input[type=file]");
    if (input && !/gif/.test(input.accept)) input.accept += ",.gif,image/gif";
  }, true);
}
"""


def gpu_options(studio) -> dict:
    """Every GPU event shares one queue, served by as many jobs at once as there are workers."""
    return dict(concurrency_id="gpu", concurrency_limit=len(studio.pool))


def seed_input(default: int = -1) -> gr.Number:
    return Number(label="Seed (-1 = random)", value=default, precision=0, minimum=-1, maximum=MAX_SEED)


def steps_slider(settings: Settings, default: int, *, minimum: int = 1, label: str = "Steps") -> gr.Slider:
    return Slider(label=label, minimum=minimum, maximum=settings.limits.max_steps, step=1,
                  value=min(max(settings.default_steps(default), minimum), settings.limits.max_steps))


def chunk_slider(settings: Settings, default: int, tab: str) -> gr.Slider:
    maximum = max(2, tab_frame_cap(tab, settings))
    return Slider(label="Chunk size (frames per pass)", minimum=2, maximum=maximum, step=1,
                  value=min(default, maximum))


PLAYER_HEIGHT = 400  # px: a portrait clip must not push the buttons out of view


def video_input(label: str, settings: Settings | None = None) -> gr.Video:
    """The upload box for a clip, with a button under it for GIFs: Gradio's video box takes only video/* files
    (its own pop-up refuses a GIF before our code runs), so a GIF picked or dropped on the box goes to the button
    (GIF_ROUTE_JS), and the button's upload becomes an mp4 copy that the box plays and the job reads."""
    with gr.Column(elem_classes=["t2vz-video-box"]):
        video = Video(label=label, sources=["upload"], format=None, height=PLAYER_HEIGHT, elem_classes=["t2vz-video-in"])
        other = gr.UploadButton("Upload a GIF (or any video file)", file_types=VIDEO_TYPES, size="sm",
                                elem_classes=["t2vz-any-video"])
    other.upload(lambda path: playable(path, settings), other, video, queue=False, show_progress="minimal",
                 api_visibility="private")
    return video


def playable(path, settings: Settings | None):
    """What the video box shows for an upload from the GIF button: a GIF's mp4 copy (beside the upload, in
    Gradio's upload folder), any other file as it is. A GIF that cannot be converted goes in as it is: the job's
    validation says what is wrong with it when Generate is pressed."""
    path = getattr(path, "name", path)
    if not path or not video_io.is_gif(path):
        return path
    source = video_io.SourceLimits.of(settings.limits) if settings is not None else None
    try:
        return video_io.gif_as_mp4(path, Path(path).parent, source)
    except video_io.VideoError as error:
        log.info("kept the GIF %s as it is: %s", path, error)
        return path


def status_box() -> gr.Markdown:
    """The tab's one place for progress and outcome (see modules/ui/runs.py)."""
    return gr.Markdown("", min_height=48, container=True, padding=True, elem_classes=["t2vz-status"])


def output_column() -> tuple[gr.Markdown, gr.Video, gr.File, gr.File, gr.Number]:
    status = status_box()
    video = gr.Video(label="Result", format=None, autoplay=True, loop=True, buttons=["download"], height=PLAYER_HEIGHT)
    with gr.Row():
        gif = gr.File(label="GIF download", height=90)
        params = gr.File(label="params.json (repeat this run)", height=90)
    used_seed = gr.Number(label="Seed used", precision=0, interactive=False, visible=False)  # shown after a run
    return status, video, gif, params, used_seed


def run_buttons() -> tuple[gr.Button, gr.Button, gr.Markdown]:
    """Generate, Stop, and the cost estimate under them (filled by `wire_estimate`)."""
    with gr.Row():
        run = gr.Button("Generate", variant="primary")
        stop = gr.Button("Stop", variant="stop")
    estimate = gr.Markdown("")
    return run, stop, estimate


def params_upload() -> gr.File:
    """Any file is taken (no file_types): a wrong one gets our sentence in the status box, not the page's pop-up."""
    with gr.Accordion("Repeat a run: load its params.json", open=False):
        return File(label="params.json (fills this tab's form)", type="filepath", elem_classes=["t2vz-params"])


def video_window_inputs(settings: Settings):
    """Start, end, fps, resolution: which part of an uploaded video to use and how."""
    low, high = side_bounds(settings)
    with gr.Row():
        start = Number(label="Start (s)", value=0.0, minimum=0.0, maximum=MAX_WINDOW_SECONDS)
        end = Number(label="End (s, 0 = to the end)", value=0.0, minimum=0.0, maximum=MAX_WINDOW_SECONDS)
    with gr.Row():
        fps = Number(label="FPS (0 = the input's)", value=0.0, minimum=0.0, maximum=MAX_FPS)
        resolution = Slider(
            label="Resolution (long side, aspect kept; lowered to fit the server's pixel cap)",
            minimum=low,
            maximum=high,
            step=SIZE_MULTIPLE,
            value=min(max(settings.default_resolution, low), high),
        )
    return start, end, fps, resolution


def window(start, end, fps, resolution) -> VideoWindow:
    """The raw values: VideoWindow.validate reads text, treats None as its default, and checks."""
    return VideoWindow(start=start, end=end, fps=fps, resolution=resolution)


# --------------------------------------------------------------------------- uploads

ASSETS = Path(__file__).resolve().parents[2] / "assets"  # the examples the tabs offer


def uploaded(value, what: str):
    """`value` (a file input's path, or Gradio's file data) when the file is one Gradio received for
    this app: inside its upload folder, or one of the app's examples. A client can send any server
    path as file data (`gr.Image` does not check it), so any other path is refused in a sentence
    and logged: a job never reads a file nobody uploaded. Values that are not paths pass on, for
    the request's validation to explain."""
    path = value.get("path") if isinstance(value, dict) else value
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        return value
    real = os.path.realpath(os.fspath(path))
    roots = [os.path.realpath(gr.utils.get_upload_folder()), os.path.realpath(ASSETS)]
    if not any(os.path.commonpath([real, root]) == root for root in roots):
        reference = uuid.uuid4().hex[:8]
        log.warning("refused the %s at %r (reference %s): not an upload of this app", what, os.fspath(path), reference)
        raise UserError(f"The {what} must be a file uploaded to this app, not a path on the server "
                        f"(reference {reference}); please upload it again.")
    return path


# --------------------------------------------------------------------------- running


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
    announced = events = trigger.click(announce, None, [status, timer], **private)
    if prepare is not None:
        announced = announced.then(prepare.fn, prepare.inputs, gr.Textbox(visible=False),
                                   show_progress_on=[progress_sink()], concurrency_id=prepare.queue,
                                   concurrency_limit=prepare.limit, api_name=prepare.api_name)
        announced.failure(failed, None, [status, timer], **private)
        events = [announced]
    event = announced.success(fn, inputs, outputs, show_progress_on=[progress_sink()], **gpu_options(studio),
                              **options) if prepare is not None else announced.then(
        fn, inputs, outputs, show_progress_on=[progress_sink()], **gpu_options(studio), **options)
    event.success(succeeded, None, [status, timer] if seed is None else [status, timer, seed], **private)
    event.failure(failed, None, [status, timer], **private)
    if stop is not None:
        wire_stop(stop, tab, [*(events if prepare is not None else []), event])
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


# --------------------------------------------------------------------------- params.json


def read_params_file(path) -> dict:
    """The parsed params.json an upload holds, or a UserError that says what is wrong with it."""
    if not path:
        raise UserError("Please choose a params.json file saved with a result of this app.")
    path = Path(path)
    try:
        if os.path.getsize(path) > MAX_PARAMS_BYTES:
            raise UserError("That file is too large to be a params.json from this app; please pick the params.json "
                            "saved next to a result.")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        raise UserError("That file is not a params.json from this app (it is not readable JSON); please pick "
                        "the params.json saved next to a result.") from None
    if not isinstance(data, dict) or not isinstance(data.get("request"), dict) or "mode" not in data:
        raise UserError("That JSON file is not a params.json from this app (it has no \"mode\" and \"request\"); "
                        "please pick the params.json saved next to a result.")
    return data


def tab_title(mode, request: dict | None = None) -> str | None:
    """The page's tab that makes a params.json "mode" (any engine's), or None for a mode this app does not know."""
    from .. import engines

    made_by = engines.mode_tab(mode)  # "text2video", "control" or "edit" (any engine's mode), or None
    if made_by == "control":
        return KIND_TABS.get(mode.removesuffix("2video"))
    if mode == "control-preview":
        return KIND_TABS.get((request or {}).get("kind"))
    return TAB_TITLES.get(made_by)


def wrong_mode_message(data: dict, this_tab: str) -> str:
    mode = data.get("mode")
    tab = tab_title(mode, data.get("request"))
    if tab is None:
        return (f"This params.json is from a mode this app does not know ({str(mode)[:40]!r}); it cannot fill the "
                f"{this_tab} tab.")
    return f"This params.json is from the {tab} tab; open that tab and load it there."


def request_from_params(cls, data: dict, settings: Settings, *, video_stand_in: str | None = None, **validate_options):
    """The request stored in params.json, checked against this server's limits.

    A video request's upload is not in params.json's folder and may be gone: `video_stand_in`
    (any existing file) stands in for it so that every other field is checked.
    """
    request = request_from_dict(cls, data["request"])
    if video_stand_in is not None:
        request = replace(request, video=video_stand_in)
    try:
        return request.validate(settings, **validate_options)
    except RequestError as error:
        raise UserError(f"This params.json does not fit this server: {error}") from error


_filled = threading.local()  # what the running `fill` said: a handler runs in one thread from start to end


def filled(text: str) -> None:
    """What a tab's `fill` says after filling its form from a params.json (shown in the tab's status box)."""
    _filled.text = text


def load_params(path, fill: Callable[[dict], list], count: int) -> list:
    """The `count` form values `fill(data)` makes of an uploaded params.json, None for the upload, and the
    sentence for the tab's status box (what to do next, or why the file cannot fill the form).

    The upload box is emptied either way, ready for another file; a file that cannot fill the
    form leaves the form as it was. Nothing pops up: the status box is the tab's one place for words.
    """
    _filled.text = "Filled the form from params.json."
    try:
        with user_errors("reading the params.json"):
            values = fill(read_params_file(uploaded(path, "params.json")))
        return [*values, None, _filled.text]
    except UserError as error:
        return [gr.skip()] * count + [None, f"**Could not load params.json:** {error}"]


def status_summary(studio) -> str:
    """The page's one plain line: what the workers do now ("Ready." / "Busy: a Depth job, step 12 of 30.")."""
    busy = studio.activity()
    loading = studio.manager.loading  # never waits for the load
    if not busy:
        return f"**Ready:** loading {loading}." if loading else "**Ready:** the worker is free."
    jobs = "; ".join(f"a {tab_title(mode) or mode} job, {text}" for mode, text in busy)
    return f"**Busy:** {jobs}. A new job waits for its turn." + (f" Loading {loading}." if loading else "")


def server_details(studio) -> str:
    """What is behind the status line's click: preset, devices and why that dtype, workers, what is loaded."""
    manager = studio.manager
    resident = manager.resident()
    loaded = ", ".join(f"{k}: {', '.join(v)}" for k, v in resident.items() if v) or "nothing yet (loads on first use)"
    loading = f" · loading **{manager.loading}** now" if manager.loading else ""
    workers = getattr(studio.pool, "workers", ())
    devices = f"device **{manager.device}** ({manager.dtype_reason})"
    if len(workers) > 1:  # each worker's own device and dtype: a job runs on whichever is free
        devices = "devices " + ", ".join(f"**{w.manager.device}** ({w.manager.dtype})" for w in workers)
    from ..visitors import mode_text

    return (f"Preset **{studio.settings.preset}** · {devices} · workers {len(studio.pool)} · loaded: {loaded}{loading}"
            f" · {mode_text(studio.settings)}")


def fast_label(tab: str) -> str:
    """The Fast switch's label: the fast recipe of each engine of `tab` that has one for it, by name."""
    from .. import engines

    fast = [e for e in engines.for_tab(tab) if e.fast is not None and e.fast.serves(tab)]
    steps = "/".join(sorted({str(e.fast.for_tab(tab)["steps"]) for e in fast}))
    recipes = [e.fast.name if i == 0 else f"{e.fast.name} on {e.title}" for i, e in enumerate(fast)]
    return f"Fast ({steps} steps: {', or '.join(recipes)})" if fast else "Fast"


def fast_checkbox(tab: str) -> gr.Checkbox:
    return gr.Checkbox(label=fast_label(tab), value=False)


def wire_fast(fast: gr.Checkbox, steps, guidance, settings: Settings, tab: str, normal_steps: int, normal_guidance: float,
              engine: gr.Dropdown | None = None) -> None:
    """Ticking Fast sets the engine's fast steps and guidance for the tab (still adjustable); unticking
    restores its defaults (where the tab has an engine choice, the chosen engine's recipe). Only a user's tick:
    the engine switch sets Fast itself."""
    from .. import engines

    def update(on: bool, engine_name: str | None = None):
        chosen = engines.find(engine_name) or engines.default(tab)
        if on and chosen.fast is not None:
            values = chosen.form_defaults(tab, fast=True)
            return gr.update(value=values["steps"]), gr.update(value=values["guidance_scale"])
        if engine is not None:  # the chosen engine's recipe for the tab
            values = chosen.form_defaults(tab, fast=False)
            return gr.update(value=settings.default_steps(values["steps"])), gr.update(value=values["guidance_scale"])
        return gr.update(value=settings.default_steps(normal_steps)), gr.update(value=normal_guidance)

    inputs = [fast] if engine is None else [fast, engine]
    fast.input(update, inputs, [steps, guidance], queue=False, api_visibility="private")
