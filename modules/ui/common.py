"""Widgets every tab shares, uploads as the tabs read them, and the page's own lines (status, Fast).

Error policy: a handler passes the widgets' raw values into a request dataclass (a cleared box
is None, an API client may send text) and `running.run_job` calls the Studio; `validate()` coerces and
checks every value, so the widgets' own bound checks are off (`Slider`, `Number` below) and a
user always reads our sentence, never Gradio's "Value 1000 is greater than maximum value 64.".
`UserError` is the only failure type shown as it is; anything else is logged and shown as a
sentence that says what to do (modules.errors.unexpected). Jobs on the page: modules/ui/running.py;
params.json uploads: modules/ui/params_files.py.
"""

from __future__ import annotations

import logging
import os
import uuid
from contextlib import contextmanager
from pathlib import Path

import gradio as gr

from .. import video_io
from ..errors import UserError
from ..request_types import MAX_FPS, MAX_SEED, MAX_WINDOW_SECONDS, SIZE_MULTIPLE, VideoWindow
from ..settings import Settings
from ..forms import side_bounds, tab_frame_cap

log = logging.getLogger(__name__)

VIDEO_TYPES = [".mp4", ".webm", ".mov", ".gif", ".avi", ".mkv"]
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


def tab_title(mode, request: dict | None = None) -> str | None:
    """The page's tab that makes a params.json "mode" (any engine's), or None for a mode this app does not know."""
    from .. import engines

    made_by = engines.mode_tab(mode)  # "text2video", "control" or "edit" (any engine's mode), or None
    if made_by == "control":
        return KIND_TABS.get(mode.removesuffix("2video"))
    if mode == "control-preview":
        return KIND_TABS.get((request or {}).get("kind"))
    return TAB_TITLES.get(made_by)


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
