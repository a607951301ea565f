"""The Tune tab's requests: train a model on a clip, run a tuned model, share one on the Hub; validated as every
request is (modules/request_types.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from . import engines
from .forms import frame_cap
from .request_fields import check as _check, choice as _choice, flag as _flag, number as _number, show as _show
from .request_fields import text as _text
from .request_types import MAX_FPS, MAX_GUIDANCE, MAX_SEED, VideoWindow, check_prompt, check_video_path, check_window
from .settings import Settings

# The "tune" and "tuned" tabs' defaults: their engine's.
_TUNING = engines.default("tune").defaults
TUNE_STEPS, TUNE_LEARNING_RATE = _TUNING.training_steps, _TUNING.learning_rate
TUNED_STEPS, TUNED_GUIDANCE = engines.default("tuned").defaults.steps, engines.default("tuned").defaults.guidance_scale
MAX_LEARNING_RATE = 1e-2
MAX_STRIDE = 16  # source frames between the frames tuned on (the authors' configs use 2; their Space 1)
MAX_TUNED_NAME = 96  # the Hub's limit on a repo name
TUNED_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
HUB_REPO_ID = re.compile(rf"{TUNED_NAME.pattern}/{TUNED_NAME.pattern}")


def _name(value, what: str, *, default: str = "") -> str:
    """A model or repo name: letters, digits, '-', '_' and '.', as the Hub allows (spaces become '-'; no '--'
    or '..')."""
    text = re.sub(r"\s+", "-", _text(value, what, default=default))
    _check(not text or (len(text) <= MAX_TUNED_NAME and TUNED_NAME.fullmatch(text) and ".." not in text
                        and "--" not in text),
           f"{what} {_show(text)} can't be used: use up to {MAX_TUNED_NAME} letters, digits, '-', '_' or '.', "
           "starting and ending with a letter or digit, without '--' or '..'.")
    return text


def _tuned(value) -> str:
    """A tuned model: the name of one tuned here, or a Hub repo id "owner/name"."""
    text = _text(value, "The tuned model")
    _check(bool(text), "Pick a tuned model: one tuned here, or a Hub repo id such as owner/name.")
    _check(bool(TUNED_NAME.fullmatch(text) or HUB_REPO_ID.fullmatch(text)) and ".." not in text and "--" not in text,
           f"The tuned model {_show(text)} is neither a model tuned here nor a Hub repo id (owner/name).")
    return text


@dataclass(frozen=True)
class TuneRequest:
    """The Tune tab: fine-tune an SD 1.5 base on one clip that `prompt` describes, keep it as `name`,
    and make a sample clip of `sample_prompt` with it."""

    video: str
    prompt: str  # what the clip shows ("a man is skiing")
    name: str = ""  # "" = made from the prompt; taken names get "-2", "-3", ...
    model: str = ""  # the SD 1.5 base ("" = the default base model)
    steps: int = TUNE_STEPS  # training steps
    learning_rate: float = TUNE_LEARNING_RATE
    num_frames: int = 8  # frames tuned on: consecutive (at `stride`) from the window's start
    seed: int = -1
    window: VideoWindow = VideoWindow()
    sample_prompt: str = ""  # the sample clip's prompt ("" = the training prompt)
    sample_steps: int = TUNED_STEPS
    guidance_scale: float = TUNED_GUIDANCE
    stride: int = 1  # source frames between picks, at the clip's own rate (the authors' sample_frame_rate)

    def validate(self, settings: Settings) -> "TuneRequest":
        limits = settings.limits
        max_frames = frame_cap(engines.default("tune"), "tune", settings)
        values = dict(
            video=check_video_path(self.video, settings),
            prompt=check_prompt(self.prompt),
            name=_name(self.name, "The model name"),
            model=_choice(self.model, "Model", settings.base_models, default=settings.default_base_model,
                          what=" here"),
            steps=_number(self.steps, "Training steps", 1, limits.max_tune_steps, default=TUNE_STEPS, whole=True),
            learning_rate=_number(self.learning_rate, "Learning rate", 0, MAX_LEARNING_RATE,
                                  default=TUNE_LEARNING_RATE, whole=False),
            num_frames=_number(self.num_frames, "Frames", 1, max_frames, default=8, whole=True),
            seed=_number(self.seed, "Seed", -1, MAX_SEED, default=-1, whole=True, hint=" (-1 = random)"),
            window=check_window(self.window, settings),
            stride=_number(self.stride, "Stride", 1, MAX_STRIDE, default=1, whole=True,
                           hint=" (source frames between the frames tuned on; 1 = every frame)"),
            sample_prompt=_text(self.sample_prompt, "The sample prompt"),
            sample_steps=_number(self.sample_steps, "Sample steps", 1, limits.max_steps, default=TUNED_STEPS,
                                 whole=True),
            guidance_scale=_number(self.guidance_scale, "Guidance scale", 0, MAX_GUIDANCE, default=TUNED_GUIDANCE,
                                   whole=False),
        )
        _check(values["learning_rate"] > 0, f"Learning rate must be above 0 and at most {MAX_LEARNING_RATE:g}; got 0.")
        return replace(self, **values)


@dataclass(frozen=True)
class RunTunedRequest:
    """A clip of `prompt` from a tuned model, by default starting from its source clip's DDIM
    inversion (which keeps the source's motion)."""

    tuned: str  # the name of a model tuned here, or a Hub repo id "owner/name"
    prompt: str
    negative_prompt: str = ""
    model: str = ""  # the SD 1.5 base to run it on ("" = the one it was tuned on)
    num_frames: int = 0  # 0 = the source clip's frames
    steps: int = TUNED_STEPS
    guidance_scale: float = TUNED_GUIDANCE
    fps: float = 0.0  # 0 = the source clip's
    seed: int = -1
    inversion: bool = True  # start from the source's inverted latents (off: from noise)
    # Set by the job, not asked: the base the model was tuned on, where it differs from `model` and is offered
    # here (the tuning's changes are then added to `model`'s weights).
    tuned_on: str = ""

    def validate(self, settings: Settings) -> "RunTunedRequest":
        limits = settings.limits
        max_frames = frame_cap(engines.default("tuned"), "tuned", settings)
        values = dict(
            tuned=_tuned(self.tuned),
            prompt=check_prompt(self.prompt),
            negative_prompt=_text(self.negative_prompt, "The negative prompt"),
            model=_choice(self.model, "Model", settings.base_models, default="", what=" here") if self.model else "",
            num_frames=_number(self.num_frames, "Frames", 0, max_frames, default=0, whole=True,
                               hint=" (0 = the source clip's)"),
            steps=_number(self.steps, "Steps", 1, limits.max_steps, default=TUNED_STEPS, whole=True),
            guidance_scale=_number(self.guidance_scale, "Guidance scale", 0, MAX_GUIDANCE, default=TUNED_GUIDANCE,
                                   whole=False),
            fps=_number(self.fps, "FPS", 0, MAX_FPS, default=0.0, whole=False, hint=" (0 = the source clip's)"),
            seed=_number(self.seed, "Seed", -1, MAX_SEED, default=-1, whole=True, hint=" (-1 = random)"),
            inversion=_flag(self.inversion, "DDIM inversion", default=True),
            tuned_on=_text(self.tuned_on, "Tuned on"),  # the job sets it from the model
        )
        return replace(self, **values)


@dataclass(frozen=True)
class UploadTunedRequest:
    """Push a model tuned here to the Hub. The token is never logged nor written anywhere."""

    tuned: str
    repo_name: str = ""  # "" = the model's name
    namespace: str = ""  # "" = the token's user; or an organisation the token may write to
    private: bool = True
    token: str = field(default="", repr=False)  # "" = HF_TOKEN

    def validate(self, settings: Settings) -> "UploadTunedRequest":
        tuned = _tuned(self.tuned)
        _check("/" not in tuned, f"{tuned} is a Hub repo already; pick a model tuned here to upload.")
        token = self.token if isinstance(self.token, str) else None
        _check(token is not None or self.token is None, "The token must be text.")
        return replace(
            self, tuned=tuned, repo_name=_name(self.repo_name, "The repo name"),
            namespace=_name(self.namespace, "The user or organisation"),
            private=_flag(self.private, "Private", default=True), token=(token or "").strip(),
        )
