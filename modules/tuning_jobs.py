"""The Tune tab's side of the Studio façade: train a model on a clip, run tuned models (tuned here or fetched from
the Hub), list, delete and share them, each visitor seeing their own on a public server (modules/visitors.py).

`TuneJobs` is a part of `Studio` (it uses the Studio's runner, settings and helpers: `_validated`, `_read`,
`_engine_job`, `_source_limits`); the tuned-models folder itself is modules/tuned_models.py.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, replace

import numpy as np

from . import engines, video_io
from .engines import JobInputs
from .errors import UserError
from .job_control import Cancelled, JobControl
from .jobs import VideoJob, VideoResult, user_errors
from .tune_requests import HUB_REPO_ID, RunTunedRequest, TuneRequest, UploadTunedRequest
from .tuned_models import TunedModel, TunedModels
from .visitors import OWNER, Visitor

log = logging.getLogger(__name__)

TRAINING_END_WAIT_S = 120.0  # the most a Stop waits for a remote training job's last save (one step and a save)


@dataclass
class TuneResult:
    """A training run ("tune" tab): the model's name (what /run_tuned takes), its folder, the sample clip."""

    model: str
    folder: str
    video: VideoResult


class TuneJobs:
    """Training, tuned runs and the tuned models of each visitor (mixed into `Studio`)."""

    def tune_video(self, request: TuneRequest, control: JobControl | None = None,
                   visitor: Visitor | None = None) -> TuneResult:
        """Train a model on the clip (the "tune" tab's engine), keep it in the tuned-models folder (the
        visitor's, on a public server), and make a sample clip with it. A Stop keeps the model as of its last
        checkpoint (the Stop's message says so)."""
        made: dict = {}
        models = self.tuned_for(visitor)
        control = control or JobControl()
        engine = engines.default("tune")
        try:
            result = self.runner.run(lambda: self._tune_job(request, made, models), control)
        except BaseException as error:
            if "folder" in made:
                # A worker in another process may still be saving after a Stop (a Ray replica hears it after us).
                training_ended(engine, made["folder"], wait=isinstance(error, Cancelled) and control.reached_worker)
                models.discard(made["folder"])  # nothing saved: no empty model left behind
            raise
        folder = made["folder"]
        training_ended(engine, folder, wait=False)
        with user_errors("keeping the tuned model"):
            engines.default("tune").keep_sample(folder, result.gif)
        return TuneResult(model=made["name"], folder=str(folder), video=result)

    def run_tuned(self, request: RunTunedRequest, control: JobControl | None = None,
                  visitor: Visitor | None = None) -> VideoResult:
        """A clip of a new prompt from a tuned model (one the visitor sees here, or a Hub repo fetched into the
        cache with the visitor's token: on a public server never the server's)."""
        visitor = self._visitor(visitor)
        return self.runner.run(lambda: self._tuned_job(request, visitor), control)

    def fetch_tuned(self, name: str, control: JobControl | None = None, visitor: Visitor | None = None) -> str:
        """Download a tuned model given by Hub id into the cache (nothing to do for one tuned here), its bytes told
        to `control`: the page does this before `run_tuned` queues for the GPU, so no download holds the worker.
        Sized on the Hub first (T2VZ_MAX_TUNED_DOWNLOAD_MB). Returns a sentence."""
        control = control or JobControl()
        with user_errors("downloading the tuned model"):
            name = str(name or "").strip()
            if not HUB_REPO_ID.fullmatch(name):
                return f"{name} is tuned here: nothing to download." if name else "No tuned model is chosen."
            def told(fraction: float, text: str) -> None:  # a Stop ends the download at its next bytes
                control.check()
                control.report(fraction, text)

            model = self._find_tuned(name, self._visitor(visitor), on_progress=told)
            return f"{model.name} is downloaded: run it."

    def _find_tuned(self, name: str, visitor: Visitor, on_progress=None) -> TunedModel:
        """The visitor's tuned model `name`, or a Hub id's, fetched with the visitor's token (on a public server
        never the server's) within the server's download cap."""
        return self.tuned_for(visitor).find(
            name, token=visitor.token or (None if visitor.server_token else False), on_progress=on_progress,
            max_bytes=int(self.settings.limits.max_tuned_download_mb * 1_000_000))

    def list_tuned(self, visitor: Visitor | None = None) -> list[dict]:
        """The models the visitor sees here, newest first: name, base model, training prompt, steps, frames,
        size, fps (and `shared` for those the owner offers on a public server)."""
        return [model.summary() for model in self.tuned_for(visitor).list()]

    def delete_tuned(self, name: str, visitor: Visitor | None = None) -> None:
        """Remove one of the visitor's own tuned models (never one the owner offers)."""
        self.tuned_for(visitor).delete(str(name or "").strip())

    def upload_tuned(self, request: UploadTunedRequest, visitor: Visitor | None = None, *,
                     include_source: bool | None = None) -> str:
        """Push one of the visitor's tuned models to the Hub (private unless asked otherwise), with its source clip
        where `include_source` (None: in private mode, not on a public server); returns its repo id. The token is
        the request's, else the visitor's sign-in, else (the owner only) the server's."""
        visitor = self._visitor(visitor)
        with user_errors("uploading the tuned model"):
            request = request.validate(self.settings)
            model, files = self._upload_plan(request.tuned, visitor, include_source)
            token = request.token or visitor.token or (None if visitor.server_token else False)
            return engines.default("tune").upload_model(
                model.folder, files, repo_name=request.repo_name or model.name,
                namespace=request.namespace, token=token, private=request.private)

    def upload_files(self, name: str, visitor: Visitor | None = None,
                     include_source: bool | None = None) -> list[tuple[str, int]]:
        """What `upload_tuned` would push of the model `name`: (file, bytes) each, for the page to say."""
        model, files = self._upload_plan(name, self._visitor(visitor), include_source)
        return [(file, (model.folder / file).stat().st_size) for file in files if (model.folder / file).is_file()]

    def _upload_plan(self, name: str, visitor: Visitor, include_source: bool | None):
        models = self.tuned_for(visitor)
        model = models.find(name)
        if model.shared:  # the owner's offer is theirs to share
            raise models.missing(name)
        if include_source is None:
            include_source = not self.settings.public
        left_out = () if include_source else engines.default("tune").model_source_files
        return model, tuple(file for file in models.files if file not in left_out)

    def tuned_for(self, visitor: Visitor | None) -> TunedModels:
        """The tuned models `visitor` sees: the one folder (the owner's), or on a public server the visitor's own
        (anonymous sessions' swept after T2VZ_TUNED_TTL_S) and those the owner offers (T2VZ_SHARED_TUNED)."""
        visitor = self._visitor(visitor)
        if visitor.is_owner:
            return self.tuned
        self.tuned.sweep_sessions(self.settings.tuned_ttl_s)
        return self.tuned.view(visitor.folder, shared=self.settings.shared_tuned_dir or None,
                               keep=self.settings.tuned_per_visitor)

    def _visitor(self, visitor: Visitor | None) -> Visitor:
        """`visitor`; None only in private mode (its one user), so that no public request forgets who it is for."""
        if visitor is None:
            if self.settings.public:
                raise ValueError("a public server's tuned models need the visitor (modules/visitors.py)")
            return OWNER
        return visitor

    def _tune_job(self, request: TuneRequest, made: dict, models: TunedModels) -> VideoJob:
        """Read the frames the authors' recipe tunes on (`tune_frames`: consecutive at the stride from the
        window's start, at the clip's own rate; the model plays at that rate over the stride), claim the
        model's folder (its source clip kept there first: a model saved by a Stop can be run too)."""
        request = self._validated(request)
        engine = engines.default("tune")
        info = video_io.probe_video(request.video, self._source_limits())
        longest = request.window.start + self.settings.limits.max_video_seconds  # what one job may read
        picks, end = tune_frames(info, request.window.start, request.window.end or longest, request.num_frames,
                                 request.stride)
        window = replace(request.window, end=end, fps=info.fps / request.stride)  # every stride-th source frame
        clip = self._read(window, request.video, multiple=engine.rules.size_multiple, max_frames=request.num_frames)
        frames, fps, notes = spread_frames(clip.frames, clip.fps, request.num_frames,
                                           hint=" a longer window or a smaller stride gives more")
        source_frames = [picks[i] for i in spread(len(picks), len(frames))]
        if request.window.fps:
            notes.append(f"Tuning takes the clip's frames at its own rate ({info.fps:g} fps) with Stride "
                         f"{request.stride}, so the FPS setting ({request.window.fps:g}) is not used.")
        wanted = request.name or name_from_prompt(request.prompt)
        name, folder = models.new_folder(wanted)
        made.update(name=name, folder=folder)
        if name != wanted:
            notes.append(f"A model called {wanted} exists already, so this one is called {name}.")
        engine.keep_source(folder, frames, fps)
        height, width = frames.shape[1:3]
        models.write_info(folder, {
            "base_model": request.model, "training_prompt": request.prompt, "steps": request.steps,
            "learning_rate": request.learning_rate, "frames": len(frames), "width": width, "height": height,
            "fps": fps, "stride": request.stride, "created": time.time()})
        job = self._engine_job(engine, request, "tune", JobInputs(frames=frames, save_to=folder), frames=len(frames),
                               width=width, height=height, fps=fps, clip=clip)
        return replace(job, notes=[*job.notes, *notes], too_long_hint="ask for fewer training steps or frames",
                       record={**job.record, "tuned_model": name, "source_frames": source_frames,
                               "stride": request.stride})

    def _tuned_job(self, request: RunTunedRequest, visitor: Visitor = OWNER) -> VideoJob:
        """The tuned model's parameters, its source clip's first frames (as many as asked, at the model's own
        rate, which its motion was tuned at) and the base it runs on (another than its own: the tuning's
        changes are added to that base's weights, `tuned_on`)."""
        request = self._validated(request)
        engine = engines.default("tuned")
        model = self._find_tuned(request.tuned, visitor)
        try:
            made = engine.read_model(model.folder)
        except (OSError, ValueError) as error:
            log.warning("tuned model %s unreadable: %s", request.tuned, error)
            raise UserError(f"The tuned model {request.tuned} is incomplete or damaged; tune it again or pick "
                            "another.") from error
        base = request.model or made.base_model
        if base not in self.settings.base_models:
            raise UserError(f"{request.tuned} was tuned on {base or 'an unnamed base'}, which this server does not "
                            f"offer; pick a base model to run it on: {', '.join(self.settings.base_models)}.")
        asked = request.num_frames or len(made.frames)
        if asked <= len(made.frames):
            frames, notes = made.frames[:asked], []
        else:
            frames, _, notes = spread_frames(made.frames, made.fps, asked, what="source clip", hint="")
        if not made.source and request.inversion:  # shared without its source clip
            request = replace(request, inversion=False)
            notes.append(f"{request.tuned} was shared without its source clip, so the clip starts from noise (no DDIM "
                         "inversion).")
        offered = made.base_model in self.settings.base_models
        if base != made.base_model:
            notes.append(f"{request.tuned} was tuned on {made.base_model}, run on {base}: the tuning's changes were "
                         f"added to {base}'s weights." if offered else
                         f"{request.tuned} was tuned on {made.base_model or 'an unnamed base'}, which this server "
                         f"does not offer, so its tuned weights replace {base}'s as they are.")
        request = replace(request, model=base, tuned_on=made.base_model if offered else "", num_frames=len(frames),
                          fps=request.fps or made.fps)
        height, width = frames.shape[1:3]
        job = self._engine_job(engine, request, "tuned", JobInputs(frames=frames, weights=made.weights),
                               frames=len(frames), width=width, height=height, fps=request.fps)
        return replace(job, notes=[*job.notes, *notes], record={**job.record, "tuned_model": request.tuned})


def tune_frames(info: video_io.VideoInfo, start: float, end: float, num_frames: int,
                stride: int) -> tuple[list[int], float]:
    """The source frames a tuning job trains on, as the method's authors sample them (their dataset code:
    `list(range(0, len(vr), sample_frame_rate))[sample_start_idx:][:n_sample_frames]`): up to `num_frames`
    consecutive frame numbers `stride` apart at the clip's own rate, from the frame shown at `start`
    (seconds), as many as come before `end` (0 = the clip's end). Also the end time that makes `read_video`
    at fps / stride read exactly those frames."""
    rate = info.fps / stride
    end = min(end or info.duration, info.duration, start + num_frames / rate)
    first = int(np.floor((start + 0.5 / info.fps + video_io.TIME_EPS) * info.fps))  # as read_video finds it
    count = max(1, int(np.ceil((end - start) * rate - video_io.TIME_EPS)))  # read_video's frames in [start, end)
    return [first + stride * k for k in range(count)], end


def name_from_prompt(prompt: str) -> str:
    """A model name from the first words of its prompt ("a man is skiing" -> "a-man-is-skiing")."""
    words = re.findall(r"[A-Za-z0-9]+", prompt.lower())[:6]
    return "-".join(words)[:48].strip("-") or "tuned"


def training_ended(engine, folder, *, wait: bool) -> None:
    """Once the training job writing into `folder` ended where it ran (`wait`: up to TRAINING_END_WAIT_S for its
    `training_ended_file`), remove that file: the folder then holds what the job saved, and only that."""
    if not engine.training_ended_file:
        return
    flag = folder / engine.training_ended_file
    deadline = time.monotonic() + (TRAINING_END_WAIT_S if wait else 0.0)
    while not flag.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    flag.unlink(missing_ok=True)


def spread_frames(frames: np.ndarray, fps: float, wanted: int, what: str = "clip",
                  hint: str = " a longer window or a higher FPS gives more") -> tuple[np.ndarray, float, list[str]]:
    """`wanted` frames spread evenly over `frames` (repeating some where there are fewer), their rate (so
    the clip keeps its real-time length), and a note where frames had to repeat."""
    count = len(frames)
    if count == wanted:
        return frames, fps, []
    picks = spread(count, wanted)
    rate = fps * (wanted - 1) / (count - 1) if wanted > 1 and count > 1 else fps
    notes = []
    if wanted > count:
        notes.append(f"The {what} has {count} frame{'s' if count != 1 else ''}, fewer than the {wanted} asked for, "
                     f"so some frames repeat{';' + hint if hint else ''}.")
    return frames[picks], round(rate, 3), notes


def spread(count: int, wanted: int) -> np.ndarray:
    """`wanted` indices spread evenly over `count` items (all of them, in order, where `wanted == count`)."""
    return np.rint(np.linspace(0, count - 1, wanted)).astype(int) if wanted > 1 else np.zeros(1, int)
