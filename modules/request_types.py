"""Typed requests, one per endpoint, validated in one place against the settings' limits.

A request is what a user asked for, in the user's units; `validate()` returns the checked copy
or raises `RequestError` with a message meant for the user (the UI shows it as a gr.Error).
The same dataclasses are stored in each output's params.json, so a run can be repeated.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields, replace

from .errors import UserError
from .engine import SCHEDULER_NAMES, ScheduleError, resolve_t0_t1
from .settings import Settings

DEFAULT_NEGATIVE_PROMPT = (
    "longbody, lowres, bad anatomy, bad hands, missing fingers, extra digit, fewer digits, cropped, "
    "worst quality, low quality, deformed body, bloated, ugly, unrealistic"
)
SIZE_MULTIPLE = 8  # the VAE's down-scaling; SD's UNet pads other sizes itself
MAX_SEED = 2**32 - 1
CONTROL_KINDS = ("pose", "edge", "depth")
MAX_GUIDANCE = 30.0
MAX_MOTION = 40.0
MAX_FPS = 60.0


class RequestError(UserError, ValueError):
    """Bad input; the message is shown to the user as is."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise RequestError(message)


def _check_prompt(prompt: str) -> str:
    prompt = (prompt or "").strip()
    _check(bool(prompt), "Please enter a prompt.")
    return prompt


def _check_common(r, settings: Settings) -> None:
    limits = settings.limits
    _check(1 <= r.steps <= limits.max_steps, f"Steps must be between 1 and {limits.max_steps}, got {r.steps}.")
    _check(0 <= r.guidance_scale <= MAX_GUIDANCE, f"Guidance scale must be between 0 and {MAX_GUIDANCE}.")
    _check(-1 <= r.seed <= MAX_SEED, f"Seed must be -1 (random) or between 0 and {MAX_SEED}.")
    _check(2 <= r.chunk_size <= limits.max_frames, f"Chunk size must be between 2 and {limits.max_frames}.")


def _check_model(model: str, allowed: tuple[str, ...]) -> str:
    model = model or allowed[0]
    _check(model in allowed, f"Model {model!r} is not offered here; choose one of: {', '.join(allowed)}.")
    return model


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

    def validate(self, settings: Settings) -> "Text2VideoRequest":
        limits = settings.limits
        prompt = _check_prompt(self.prompt)
        model = _check_model(self.model, settings.base_models)
        _check(
            1 <= self.num_frames <= limits.max_frames,
            f"Frames must be between 1 and {limits.max_frames}, got {self.num_frames}.",
        )
        check_size(self.width, self.height, settings)
        _check_common(self, settings)
        _check(self.steps >= 2, "Text-to-video needs at least 2 steps.")
        for name, value in (("Motion x", self.motion_x), ("Motion y", self.motion_y)):
            _check(abs(value) <= MAX_MOTION, f"{name} must be between -{MAX_MOTION} and {MAX_MOTION}.")
        _check(0 < self.fps <= MAX_FPS, f"FPS must be above 0 and at most {MAX_FPS}.")
        try:
            resolve_t0_t1(self.steps, self.t0, self.t1)
        except ScheduleError as error:
            raise RequestError(str(error)) from error
        return replace(self, prompt=prompt, model=model)


@dataclass(frozen=True)
class VideoWindow:
    """Which part of an uploaded video to use, and at what size and rate."""

    start: float = 0.0
    end: float = 0.0  # 0 = to the end
    fps: float = 0.0  # 0 = the input's fps
    resolution: int = 512  # long side; the aspect ratio is kept

    def check(self, settings: Settings) -> None:
        limits = settings.limits
        _check(self.start >= 0, "Start time can't be negative.")
        _check(self.end == 0 or self.end > self.start, "End time must be after the start time (0 = to the end).")
        _check(0 <= self.fps <= MAX_FPS, f"FPS must be between 0 (the input's) and {MAX_FPS}.")
        _check(
            limits.min_side <= self.resolution <= limits.max_side,
            f"Resolution must be between {limits.min_side} and {limits.max_side}, got {self.resolution}.",
        )


def _check_video_path(path: str, settings: Settings) -> str:
    _check(bool(path), "Please upload a video or pick an example.")
    _check(os.path.isfile(path), "The uploaded video could not be found; please upload it again.")
    size_mb = os.path.getsize(path) / 2**20
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

    def allowed_models(self, settings: Settings) -> tuple[str, ...]:
        if self.kind == "edge":
            return settings.base_models + settings.edge_style_models
        return settings.base_models

    def validate(self, settings: Settings, *, preview: bool = False) -> "ControlVideoRequest":
        _check(self.kind in CONTROL_KINDS, f"Unknown control {self.kind!r}; choose one of {CONTROL_KINDS}.")
        video = _check_video_path(self.video, settings)
        self.window.check(settings)
        _check(
            0 <= self.canny_low < self.canny_high <= 255,
            "Canny thresholds must satisfy 0 <= low < high <= 255.",
        )
        if preview:
            return replace(self, video=video)
        prompt = _check_prompt(self.prompt)
        model = _check_model(self.model, self.allowed_models(settings))
        _check_common(self, settings)
        _check(0 <= self.conditioning_scale <= 2, "ControlNet conditioning scale must be between 0 and 2.")
        return replace(self, video=video, prompt=prompt, model=model)


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

    def validate(self, settings: Settings) -> "EditVideoRequest":
        video = _check_video_path(self.video, settings)
        prompt = _check_prompt(self.prompt)
        self.window.check(settings)
        _check_common(self, settings)
        _check(0 <= self.image_guidance_scale <= 5, "Image guidance must be between 0 and 5.")
        _check(self.scheduler in SCHEDULER_NAMES, f"Scheduler must be one of {', '.join(SCHEDULER_NAMES)}.")
        return replace(self, video=video, prompt=prompt)


def request_to_dict(request) -> dict:
    return asdict(request)


def request_from_dict(cls, data: dict):
    """Rebuild a request from params.json (ignores keys it doesn't know)."""
    names = {f.name for f in fields(cls)}
    values = {k: v for k, v in data.items() if k in names}
    if "window" in values and isinstance(values["window"], dict):
        values["window"] = VideoWindow(**values["window"])
    return cls(**values)
