"""Typed requests, one per endpoint, validated in one place against the settings' limits.

A request is what a user asked for, in the user's units; `validate()` returns the checked copy
or raises `RequestError` with a message meant for the user (the UI shows it as a gr.Error).
Any value in any field gives one or the other: numbers sent as text are read ("12" -> 12), None
(an emptied box) gives the field's default, and NaN, infinities, bools where numbers belong,
lists and the like get a message naming the field and what it accepts.
The same dataclasses are stored in each output's params.json, so a run can be repeated.
How one field is read: modules/request_fields.py; the Tune tab's requests: modules/tune_requests.py.
"""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, fields, replace

from .errors import UserError
from . import engines, video_io
from .engine import SCHEDULER_NAMES, ScheduleError, resolve_t0_t1
from .forms import SIZE_MULTIPLE, frame_cap, tab_frame_cap, with_recipe
from .settings import Settings
from .request_fields import RequestError
from .request_fields import check as _check, choice as _choice, flag as _flag, number as _number, show as _show
from .request_fields import text as _text

# The tabs' default engine's negative prompt (Text2Video-Zero's demo): what the text-to-video and ControlNet forms
# start with; another engine's recipe brings its own (forms.with_recipe).
DEFAULT_NEGATIVE_PROMPT = engines.default("text2video").recipe("text2video").negative_prompt
MAX_SEED = 2**32 - 1
CONTROL_KINDS = engines.CONTROL_KINDS
MAX_GUIDANCE = 30.0
MAX_MOTION = 40.0
MAX_FPS = 60.0


MAX_WINDOW_SECONDS = 24 * 3600.0  # start/end beyond a day are typos, whatever the upload
MAX_CANNY = 255
MAX_CONDITIONING = 2.0
MAX_IMAGE_GUIDANCE = 5.0
def _engine(value, tab: str) -> engines.Engine:
    """The engine `value` names (any case; None or "" = the tab's default) that serves `tab`."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return engines.default(tab)
    engine = engines.find(value)
    offered = engines.for_tab(tab)
    if engine not in offered:
        choices = ", ".join(e.name for e in offered)
        raise RequestError(f"Engine {_show(value)} is not offered {'here' if engine is None else 'in this tab'}; "
                           f"choose one of: {choices}.")
    return engine


def _check_engine_inputs(engine: engines.Engine, values: dict, tab: str, settings: Settings) -> None:
    """The engine takes what the request gives (a first frame, a storyboard), frames and size by its rules."""
    def offer(input_name: str) -> str:
        return " or ".join(e.title for e in engines.for_tab(tab) if input_name in e.inputs)

    name = engine.title
    if values.get("image") is not None and "image" not in engine.inputs:
        raise RequestError(f"{name} does not start from an image; clear the image or pick {offer('image')}.")
    if isinstance(values.get("storyboard"), dict) and "storyboard" not in engine.inputs:
        raise RequestError(f"{name} takes one prompt; a storyboard (one prompt per key frame) needs {offer('storyboard')}.")
    rules = engine.rules
    frames = values.get("num_frames")
    if frames is not None and not rules.frames.fits(frames):
        suggestion = rules.frames.closest(frames, frame_cap(engine, tab, settings))
        raise RequestError(f"{name} makes clips of {rules.frames} frames, e.g. {suggestion}; got {frames}.")
    for side in ("width", "height"):
        if side in values and values[side] % rules.size_multiple:
            raise RequestError(f"{name} needs a {side} that is a multiple of {rules.size_multiple}; got {values[side]}.")
    if "steps" in values and values["steps"] < rules.min_steps:
        raise RequestError(f"{name} needs at least {rules.min_steps} steps; got {values['steps']}.")
    if "guidance_scale" in values and values["guidance_scale"] > rules.max_guidance:
        raise RequestError(f"{name} takes guidance up to {rules.max_guidance:g}; got {values['guidance_scale']:g}.")


def _as_run(engine: engines.Engine, request, tab: str):
    """The request as it will run: in fast mode, with the steps and t0/t1 of the engine's recipe."""
    try:
        return engine.fast_settings(request, tab)[0]
    except UserError as error:  # fast mode on an engine without few-step weights
        raise RequestError(str(error)) from error


def _default(cls, name: str):
    return next(f.default for f in fields(cls) if f.name == name)


def check_prompt(prompt) -> str:
    prompt = _text(prompt, "The prompt")
    _check(bool(prompt), "Please enter a prompt.")
    return prompt


def _common(r, settings: Settings, tab: str, *, min_steps: int = 1) -> dict:
    """Steps, guidance, seed and chunk size: the fields every generating request has."""
    limits = settings.limits
    cls = type(r)
    return dict(
        steps=_number(r.steps, "Steps", min_steps, limits.max_steps, default=_default(cls, "steps"), whole=True),
        guidance_scale=_number(
            r.guidance_scale, "Guidance scale", 0, MAX_GUIDANCE, default=_default(cls, "guidance_scale"), whole=False
        ),
        seed=_number(r.seed, "Seed", -1, MAX_SEED, default=-1, whole=True, hint=" (-1 = random)"),
        chunk_size=_number(
            r.chunk_size, "Chunk size", 2, max(2, tab_frame_cap(tab, settings)), default=_default(cls, "chunk_size"),
            whole=True
        ),
    )


def _clip_shape(r, settings: Settings, max_frames: int, whose: str = "") -> dict:
    """Base model, frame count (up to `max_frames`: the cap of the engine `whose` is) and size: the fields of
    every request that makes a clip from text."""
    limits = settings.limits
    cls = type(r)
    return dict(
        model=_choice(r.model, "Model", settings.base_models, default=settings.default_base_model, what=" here"),
        num_frames=_number(r.num_frames, "Frames", 1, max_frames, default=8, whole=True,
                           hint=f" ({whose}'s longest clip here)" if whose else ""),
        width=_number(r.width, "Width", limits.min_side, limits.max_side, default=_default(cls, "width"),
                      whole=True, hint=" pixels"),
        height=_number(r.height, "Height", limits.min_side, limits.max_side, default=_default(cls, "height"),
                       whole=True, hint=" pixels"),
    )


def check_size(width: int, height: int, settings: Settings) -> None:
    limits = settings.limits
    for name, value in (("Width", width), ("Height", height)):
        _check(
            limits.min_side <= value <= limits.max_side,
            f"{name} must be between {limits.min_side} and {limits.max_side} pixels, got {value}.",
        )
        _check(value % SIZE_MULTIPLE == 0, f"{name} must be a multiple of {SIZE_MULTIPLE}, got {value}.")
    _check(
        width * height <= limits.max_pixels,
        f"{width}x{height} is more than this server allows ({limits.max_pixels} pixels per frame); "
        "lower the resolution.",
    )


@dataclass(frozen=True)
class Text2VideoRequest:
    prompt: str
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    model: str = ""  # "" = the default base model
    num_frames: int = 8
    width: int = 512
    height: int = 512
    steps: int = 50
    guidance_scale: float = 7.5
    motion_x: float = 12.0
    motion_y: float = 12.0
    t0: int = -1  # -1 = the paper's 44 of 50, scaled to `steps`
    t1: int = -1  # -1 = the paper's 47 of 50, scaled to `steps`
    seed: int = -1  # -1 = random; the seed used is returned and stored
    chunk_size: int = 8
    fps: float = 4.0
    engine: str = ""  # "" = the tab's default engine (modules/engines: the registry)
    image: str | None = None  # engines that take one: this picture becomes the first frame
    fast: bool = False  # few-step sampling (the engine's fast recipe) and the tiny decoder

    def validate(self, settings: Settings) -> "Text2VideoRequest":
        limits = settings.limits
        engine = _engine(self.engine, "text2video")
        self = with_recipe(replace(self, engine=engine.name), "text2video", settings)  # noqa: PLW0642
        fast = _flag(self.fast, "Fast", default=False)
        values = dict(
            prompt=check_prompt(self.prompt),
            negative_prompt=_text(self.negative_prompt, "The negative prompt", default=DEFAULT_NEGATIVE_PROMPT),
            **_clip_shape(self, settings, frame_cap(engine, "text2video", settings), engine.title),
            # The schedule needs 2 steps; fast mode runs its recipe's steps instead of 1, with a note.
            **_common(self, settings, "text2video", min_steps=1 if fast else 2),
            motion_x=_number(self.motion_x, "Motion x", -MAX_MOTION, MAX_MOTION, default=12.0, whole=False),
            motion_y=_number(self.motion_y, "Motion y", -MAX_MOTION, MAX_MOTION, default=12.0, whole=False),
            t0=_number(self.t0, "t0", -1, limits.max_steps, default=-1, whole=True, hint=" (-1 = default)"),
            t1=_number(self.t1, "t1", -1, limits.max_steps, default=-1, whole=True, hint=" (-1 = default)"),
            fps=_number(self.fps, "FPS", 0, MAX_FPS, default=4.0, whole=False),
            engine=engine.name,
            fast=fast,
        )
        values["image"] = _check_image_path(self.image, settings)
        board = _check_storyboard(values["prompt"], values["num_frames"])
        check_size(values["width"], values["height"], settings)
        _check_engine_inputs(engine, {**values, "storyboard": board}, "text2video", settings)
        _check(values["fps"] > 0, f"FPS must be above 0 and at most {MAX_FPS:g}; got 0.")
        runs = _as_run(engine, replace(self, **values), "text2video")
        try:
            resolve_t0_t1(runs.steps, runs.t0, runs.t1)
        except ScheduleError as error:
            raise RequestError(str(error)) from error
        return replace(self, **values)


@dataclass(frozen=True)
class VideoWindow:
    """Which part of an uploaded video to use, and at what size and rate."""

    start: float = 0.0
    end: float = 0.0  # 0 = to the end; past the video's end also means to the end
    fps: float = 0.0  # 0 = the input's fps, lowered where needed to fit the frame limit
    resolution: int = 512  # long side; the aspect ratio is kept

    def validate(self, settings: Settings) -> "VideoWindow":
        limits = settings.limits
        start = _number(self.start, "Start time", 0, MAX_WINDOW_SECONDS, default=0.0, whole=False, hint=" s")
        end = _number(self.end, "End time", 0, MAX_WINDOW_SECONDS, default=0.0, whole=False,
                      hint=" s (0 = to the end)")
        _check(end == 0 or end > start, "End time must be after the start time (0 = to the end).")
        fps = _number(self.fps, "FPS", 0, MAX_FPS, default=0.0, whole=False, hint=" (0 = the input's)")
        resolution = _number(self.resolution, "Resolution", limits.min_side, limits.max_side,
                             default=min(settings.default_resolution, limits.max_side), whole=True,
                             hint=" pixels")
        return VideoWindow(start=start, end=end, fps=fps, resolution=resolution)

    def check(self, settings: Settings) -> None:
        self.validate(settings)


def check_window(window, settings: Settings) -> VideoWindow:
    """A VideoWindow, or the dict params.json and JSON clients send, validated."""
    if window is None:
        window = VideoWindow()
    elif isinstance(window, dict):
        names = {f.name for f in fields(VideoWindow)}
        window = VideoWindow(**{key: value for key, value in window.items() if key in names})
    elif not isinstance(window, VideoWindow):
        raise RequestError("The video window must give a start, end, fps and resolution.")
    return window.validate(settings)


def _check_image_path(path, settings: Settings) -> str | None:
    """An uploaded first frame: optional; when given, a picture file whose header is fine.

    The UI hands over the uploaded file as it came, so this is where a text file named .png, an
    empty, damaged or enormous picture or an unread format is answered, before any model loads.
    """
    if isinstance(path, dict):  # Gradio's file data, as some clients send it
        path = path.get("path")
    if path is None or path == "":
        return None
    _check(isinstance(path, (str, os.PathLike)), "The first-frame image must be an uploaded file; please upload it again.")
    path = os.fspath(path)
    missing = "The first-frame image could not be found; please upload it again."
    _check(os.path.isfile(path), missing)  # False, not an error, for NULs and odd names
    try:
        size_mb = os.path.getsize(path) / 2**20
    except OSError:
        raise RequestError(missing) from None
    limit = settings.limits.max_upload_mb
    _check(size_mb <= limit, f"The first-frame image is {size_mb:.1f} MB; this server accepts up to {limit:g} MB. "
                             "Upload a smaller picture.")
    try:
        video_io.probe_image(path)
    except video_io.ImageError as error:
        raise RequestError(str(error)) from error
    return path


def _check_storyboard(prompt: str, num_frames: int) -> dict[int, str] | str:
    """The prompt, or its storyboard ('0: ...' lines) checked against the clip."""
    from .engine.storyboard import StoryboardError, check_storyboard, parse_storyboard

    try:
        return check_storyboard(parse_storyboard(prompt), num_frames, "prompt")
    except StoryboardError as error:
        raise RequestError(str(error)) from error


def check_video_path(path, settings: Settings) -> str:
    if isinstance(path, dict):  # Gradio's file data, as some clients send it
        path = path.get("path")
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    _check(path is not None and path != "", "Please upload a video or pick an example.")
    _check(isinstance(path, str), "The video must be an uploaded file; please upload it again.")
    missing = "The uploaded video could not be found; please upload it again."
    _check(os.path.isfile(path), missing)  # False, not an error, for NULs and odd names
    try:
        size_mb = os.path.getsize(path) / 2**20
    except OSError:
        raise RequestError(missing) from None
    limit = settings.limits.max_upload_mb
    _check(size_mb <= limit, f"The video is {size_mb:.1f} MB; this server accepts up to {limit:g} MB.")
    return path


@dataclass(frozen=True)
class ControlVideoRequest:
    kind: str  # pose, edge or depth
    video: str
    prompt: str
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    model: str = ""
    steps: int = 20
    guidance_scale: float = 9.0
    conditioning_scale: float = 1.0
    seed: int = -1
    chunk_size: int = 8
    window: VideoWindow = VideoWindow()
    canny_low: int = 100
    canny_high: int = 200
    pose_hands: bool = False
    pose_face: bool = False
    is_skeleton: bool = False  # the input already is a pose-skeleton video: skip detection
    engine: str = ""  # "" = the tab's default engine; any engine that serves the ControlNet tabs
    fast: bool = False
    allow_empty_maps: bool = False  # generate even when the maps carry nothing (modules/empty_maps.py)

    def allowed_models(self, settings: Settings) -> tuple[str, ...]:
        if self.kind == "edge":
            return settings.base_models + settings.edge_style_models
        return settings.base_models

    def validate(self, settings: Settings, *, preview: bool = False) -> "ControlVideoRequest":
        """The checked copy; `preview` checks only what the control-map preview uses."""
        kind = _choice(self.kind, "Control", CONTROL_KINDS)
        values = dict(
            kind=kind,
            video=check_video_path(self.video, settings),
            window=check_window(self.window, settings),
            canny_low=_number(self.canny_low, "Canny low threshold", 0, MAX_CANNY, default=100, whole=True),
            canny_high=_number(self.canny_high, "Canny high threshold", 0, MAX_CANNY, default=200, whole=True),
            pose_hands=_flag(self.pose_hands, "Hands", default=False),
            pose_face=_flag(self.pose_face, "Face", default=False),
            is_skeleton=_flag(self.is_skeleton, "Input is a skeleton", default=False),
        )
        _check(
            values["canny_low"] < values["canny_high"],
            f"Canny thresholds must satisfy 0 <= low < high <= {MAX_CANNY}; got low {values['canny_low']} "
            f"and high {values['canny_high']}.",
        )
        if preview:
            return replace(self, **values)
        engine = _engine(self.engine, "control")
        self = with_recipe(replace(self, engine=engine.name), "control", settings)  # noqa: PLW0642
        allowed = replace(self, kind=kind).allowed_models(settings)
        values.update(
            prompt=check_prompt(self.prompt),
            negative_prompt=_text(self.negative_prompt, "The negative prompt", default=DEFAULT_NEGATIVE_PROMPT),
            model=_choice(self.model, "Model", allowed, default=allowed[0], what=" here"),
            conditioning_scale=_number(self.conditioning_scale, "ControlNet conditioning scale", 0,
                                       MAX_CONDITIONING, default=1.0, whole=False),
            engine=engine.name,
            fast=_flag(self.fast, "Fast", default=False),
            allow_empty_maps=_flag(self.allow_empty_maps, "Go on with empty maps", default=False),
            **_common(self, settings, "control"),
        )
        _check_engine_inputs(engine, values, "control", settings)
        return replace(self, **values)


@dataclass(frozen=True)
class EditVideoRequest:
    video: str
    prompt: str
    negative_prompt: str = ""
    steps: int = 50
    guidance_scale: float = 7.5
    image_guidance_scale: float = 1.0
    scheduler: str = "euler_ancestral"
    seed: int = -1
    chunk_size: int = 8
    window: VideoWindow = VideoWindow()
    fast: bool = False

    def validate(self, settings: Settings) -> "EditVideoRequest":
        values = dict(
            video=check_video_path(self.video, settings),
            prompt=check_prompt(self.prompt),
            negative_prompt=_text(self.negative_prompt, "The negative prompt"),
            window=check_window(self.window, settings),
            **_common(self, settings, "edit"),
            image_guidance_scale=_number(self.image_guidance_scale, "Image guidance", 0, MAX_IMAGE_GUIDANCE,
                                         default=1.0, whole=False),
            scheduler=_choice(self.scheduler, "Scheduler", SCHEDULER_NAMES, default="euler_ancestral"),
            fast=_flag(self.fast, "Fast", default=False),
        )
        return replace(self, **values)


@dataclass(frozen=True)
class CompareRequest:
    """One prompt and one seed through several text-to-video engines, each at its published defaults."""

    prompt: str
    engines: tuple[str, ...] | None = None  # None = every text-to-video engine
    negative_prompt: str = ""
    model: str = ""  # the SD 1.5 base of the engines that run on one
    num_frames: int = 8
    width: int = 512
    height: int = 512
    steps: int = 0  # 0 = each engine's own default
    seed: int = -1
    fps: float = 4.0

    def validate(self, settings: Settings) -> "CompareRequest":
        chosen_names = self.engines
        if chosen_names is None:
            chosen_names = engines.names("text2video")
        if isinstance(chosen_names, str):
            chosen_names = [e.strip() for e in chosen_names.split(",")]
        _check(isinstance(chosen_names, (list, tuple)) and len(chosen_names) > 0,
               f"Pick at least one engine to compare: {', '.join(engines.names('text2video'))}.")
        chosen = tuple(dict.fromkeys(_engine(e, "text2video").name for e in chosen_names))
        limits = settings.limits
        values = dict(
            prompt=check_prompt(self.prompt),
            engines=chosen,
            negative_prompt=_text(self.negative_prompt, "The negative prompt"),
            **_clip_shape(self, settings, tab_frame_cap("text2video", settings)),
            steps=_number(self.steps, "Steps", 0, limits.max_steps, default=0, whole=True,
                          hint=" (0 = each engine's default)"),
            seed=_number(self.seed, "Seed", -1, MAX_SEED, default=-1, whole=True, hint=" (-1 = random)"),
            fps=_number(self.fps, "FPS", 0, MAX_FPS, default=4.0, whole=False),
        )
        _check(values["steps"] != 1, "Steps must be 0 (each engine's default) or at least 2; got 1.")
        _check(values["fps"] > 0, f"FPS must be above 0 and at most {MAX_FPS:g}; got 0.")
        check_size(values["width"], values["height"], settings)
        return replace(self, **values)

    def fitted(self, engine: str, settings: Settings) -> tuple[int, int, int]:
        """(frames, width, height) as `engine` makes them: the frame count of its rule nearest the asked one
        (within the server's cap), sides rounded down to its size multiple (up where that would fall below
        the minimum)."""
        rules = engines.get(engine).rules
        low = settings.limits.min_side

        def side(value: int) -> int:
            below = value - value % rules.size_multiple
            return below if below >= low else below + rules.size_multiple

        cap = frame_cap(engines.get(engine), "text2video", settings)
        return rules.frames.closest(min(self.num_frames, cap), cap), side(self.width), side(self.height)

    def notes_for(self, engine: str, settings: Settings) -> list[str]:
        """What `engine`'s clip changed of the shared frames and size to fit its model, in sentences."""
        chosen = engines.get(engine)
        frames, width, height = self.fitted(engine, settings)
        notes = []
        if frames != self.num_frames:
            notes.append(f"{chosen.title} made {frames} frame{'s' if frames != 1 else ''}, not {self.num_frames}: "
                         f"it makes clips of {chosen.rules.frames} frames.")
        if (width, height) != (self.width, self.height):
            notes.append(f"{chosen.title} made {width}×{height}, not {self.width}×{self.height}: its sides are "
                         f"multiples of {chosen.rules.size_multiple}.")
        return notes

    def for_engine(self, engine: str, settings: Settings) -> Text2VideoRequest:
        """The text-to-video request one engine runs: shared prompt, seed, frames and size (fitted to the
        engine's rules, `notes_for` says how); the engine's own steps, guidance and, where the comparison gives
        none, negative prompt (its recipe's)."""
        recipe = engines.get(engine).recipe("text2video")
        frames, width, height = self.fitted(engine, settings)
        return Text2VideoRequest(
            prompt=self.prompt, negative_prompt=self.negative_prompt or recipe.negative_prompt, model=self.model,
            num_frames=frames, width=width, height=height, steps=self.steps or settings.default_steps(recipe.steps),
            guidance_scale=recipe.guidance_scale, seed=self.seed, fps=self.fps, engine=engine,
        )


def request_from_dict(cls, data: dict):
    """Rebuild a request from params.json (ignores keys it doesn't know); validate() checks the values."""
    _check(isinstance(data, dict), "The saved request must be a set of named values, as params.json stores it.")
    names = {f.name for f in fields(cls)}
    values = {k: v for k, v in data.items() if k in names}
    missing = [f.name for f in fields(cls) if f.default is MISSING and f.name not in values]
    _check(not missing, f"The saved request lacks {', '.join(missing)}.")
    if isinstance(values.get("window"), dict):
        window_names = {f.name for f in fields(VideoWindow)}
        values["window"] = VideoWindow(**{k: v for k, v in values["window"].items() if k in window_names})
    return cls(**values)
