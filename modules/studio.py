"""What each endpoint does: build the job (validate, read, which engine, what to record) and run it.

Studio is a façade: every generating endpoint is one `VideoJob` run by the generic `JobRunner`
(modules/jobs.py: load, sample with the out-of-memory retry, save). Which engine serves a request
is the registry's (modules/engines): Studio names none. The UI calls exactly one method of
`Studio` per event; so do scripts and tests that skip the UI.

Besides the jobs: `estimate` (what a request would cost on this server: modules/estimates.py),
`activity` (what the workers are doing now) and a small cache of control maps, so that a Preview's
maps serve the Generate that follows it.
"""

from __future__ import annotations

import hashlib
import logging
import random
import shutil
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from . import empty_maps, engines, video_io
from .compare import side_by_side
from .empty_maps import EmptyControlMaps
from .engines import JobInputs
from .errors import UserError
from .estimates import Estimate, Estimator, upload_identity  # noqa: F401 - Estimate: callers import it here
from .forms import frame_cap, tab_frame_cap
from .job_control import Cancelled, JobControl
from .jobs import JobRunner, VideoJob, VideoResult, user_errors
from .outputs import Outputs, write_params
from .request_types import (
    HUB_REPO_ID,
    MAX_SEED,
    CompareRequest,
    ControlVideoRequest,
    EditVideoRequest,
    RunTunedRequest,
    Text2VideoRequest,
    TuneRequest,
    UploadTunedRequest,
    VideoWindow,
)
from .settings import Settings
from .tuned_models import TunedModels
from .visitors import OWNER, Visitor
from .worker import WorkerPool

if TYPE_CHECKING:
    from .models import ModelManager

log = logging.getLogger(__name__)

# What each control kind's detection is called on the page ("finding pose in frame 12 of 64").
DETECTION_WORDS = {"pose": "pose", "edge": "edges", "depth": "depth"}
# The last detections kept for reuse: maps at the window's size (50 MB for 64 frames of 512x512).
CONTROL_MAPS_KEPT, CONTROL_MAPS_BYTES = 4, 256 * 2**20
PROBES_KEPT = 32
TRAINING_END_WAIT_S = 120.0  # the most a Stop waits for a remote training job's last save (one step and a save)


@dataclass
class TuneResult:
    """A training run ("tune" tab): the model's name (what /run_tuned takes), its folder, the sample clip."""

    model: str
    folder: str
    video: VideoResult


@dataclass
class CompareResult:
    video: str  # the engines side by side, labelled with their seconds
    seed: int
    engines: dict  # engine -> {"video", "params", "seconds"}


def resolve_seed(seed: int) -> int:
    return random.SystemRandom().randint(0, MAX_SEED) if seed is None or seed < 0 else int(seed)


class LastUsed:
    """A small least-recently-used map, safe across threads (the page's events run concurrently).

    It keeps at most `kept` entries and, with `size_of`, entries of at most `max_size` in all (the
    newest stays whatever its size).
    """

    def __init__(self, kept: int, size_of=None, max_size: float = float("inf")):
        self.kept, self.size_of, self.max_size = kept, size_of, max_size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.kept or (len(self._items) > 1 and self._size() > self.max_size):
                self._items.popitem(last=False)

    def _size(self) -> float:
        return sum(self.size_of(value) for value in self._items.values()) if self.size_of else 0.0


class Studio:
    def __init__(self, settings: Settings, pool: WorkerPool | None = None):
        self.settings = settings
        self.pool = pool or WorkerPool(settings)
        self.outputs = Outputs(settings.outputs_dir, settings.outputs_ttl_s)
        self.runner = JobRunner(settings, self.pool, self.outputs)
        # detection key (`_maps_key`) -> (maps, which job made them)
        self.control_maps = LastUsed(CONTROL_MAPS_KEPT, lambda entry: entry[0].nbytes, CONTROL_MAPS_BYTES)
        self._probes = LastUsed(PROBES_KEPT)  # upload identity -> VideoInfo, or UNREADABLE
        self._contents = LastUsed(PROBES_KEPT)  # upload identity -> the SHA-256 of its bytes (`_maps_key`)
        self.estimates = Estimator(self)
        trainers = engines.for_tab("tune")
        self.tuned = TunedModels(settings.tuned_dir, trainers[0].model_files if trainers else (),
                                 trainers[0].download_model if trainers else None)

    @property
    def manager(self) -> ModelManager:
        return self.pool.manager

    # ------------------------------------------------------------------ endpoints
    def text2video(self, request: Text2VideoRequest, control: JobControl | None = None) -> VideoResult:
        return self.runner.run(lambda: self._text2video_job(request), control)

    def control_preview(self, request: ControlVideoRequest, control: JobControl | None = None) -> VideoResult:
        """The control maps alone, to check them before a slow generation."""
        return self.runner.run(lambda: self._control_job(request, preview=True), control)

    def control_video(self, request: ControlVideoRequest, control: JobControl | None = None) -> VideoResult:
        """The video; it stops before sampling (`EmptyControlMaps`) where the maps carry nothing to follow, unless
        the request says to go on, and keeps the maps it found so that going on does not find them again."""
        made: list[VideoJob] = []

        def make_job() -> VideoJob:
            made.append(self._control_job(request))
            return made[-1]

        try:
            return self.runner.run(make_job, control)
        except EmptyControlMaps as error:
            # The refusal is raised where the maps were made (a Ray replica, a ZeroGPU child) and carries them here.
            if made and made[-1].keep is not None and error.maps is not None:
                made[-1].keep(None, error.maps)
            error.maps = None  # the page needs the sentence only
            raise

    def edit_video(self, request: EditVideoRequest, control: JobControl | None = None) -> VideoResult:
        return self.runner.run(lambda: self._edit_job(request), control)

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

    def compare(self, request: CompareRequest, control: JobControl | None = None) -> CompareResult:
        """One prompt and seed through each engine, one worker job each, then one labelled side-by-side mp4.

        The API's single call; the Compare tab queues `compare_engine` per engine instead (each its
        own queue entry, progress and Stop) and then calls `combine_compare`.
        """
        control = control or JobControl()
        request = self.prepare_compare(request)
        runs: dict[str, dict] = {}
        count = len(request.engines)
        for index, name in enumerate(request.engines):
            engine_control = JobControl(should_stop=control.should_stop, cancel_event=control.cancel_event)

            def report(fraction: float, text: str, index=index, name=name, engine_control=engine_control) -> None:
                # Where the engine's job stands, for Stop's message, then its progress under the engine's name.
                control.last_step, control.last_frames = engine_control.last_step, engine_control.last_frames
                control.report((index + fraction) / count, f"{name} ({index + 1}/{count}): {text}")

            engine_control.progress = report
            runs[name] = self.compare_engine(request, name, engine_control)
        return self.combine_compare(request, runs)

    def prepare_compare(self, request: CompareRequest) -> CompareRequest:
        """The validated request with its seed fixed, so every engine runs the same seed."""
        with user_errors("comparing the engines"):
            request = request.validate(self.settings)
            return replace(request, seed=resolve_seed(request.seed))

    def compare_engine(self, request: CompareRequest, engine_name: str, control: JobControl | None = None) -> dict:
        """One engine's clip of a (prepared) comparison: {"video", "params", "seconds", "notes"} (JSON, for the
        page's state); `notes` say where the shared frames or size were fitted to the engine's rules."""
        started = time.monotonic()
        result = self.text2video(request.for_engine(engine_name, self.settings), control)
        return {"video": result.video, "params": result.params, "seconds": round(time.monotonic() - started, 2),
                "notes": request.notes_for(engine_name, self.settings) + list(result.notes)}

    def combine_compare(self, request: CompareRequest, runs: dict[str, dict]) -> CompareResult:
        """The engines' clips side by side, labelled with their seconds, in a folder of its own."""
        with user_errors("comparing the engines"):
            if not runs:
                raise UserError("No engine finished, so there is nothing to compare.")
            clips = [video_io.read_video(run["video"]) for run in runs.values()]
            frames = side_by_side([clip.frames for clip in clips],
                                  [f"{engines.get(name).title} · {run['seconds']:.1f} s" for name, run in runs.items()],
                                  [request.fps] * len(clips))
            folder = self.outputs.new_folder("compare")
            video = video_io.write_mp4(frames, folder / "compare.mp4", request.fps)
            # Each engine's clip beside the comparison, named after the engine: downloads say which is which.
            summary = {name: {**run, "video": str(shutil.copyfile(run["video"], folder / f"{name}.mp4"))}
                       for name, run in runs.items()}
            write_params(folder, {"mode": "compare", "request": asdict(request), "seed": request.seed,
                                  "engines": summary, "preset": self.settings.preset})
            return CompareResult(video=str(video), seed=request.seed, engines=summary)

    # ------------------------------------------------------------------ what the page shows beside the jobs
    def estimate(self, request, *, preview: bool = False) -> Estimate | None:
        """What the job of `request` (any tab's request, or a CompareRequest) would take on this server before it
        runs, and whether jobs of its kind were timed here; None if it can't be told (modules/estimates.py)."""
        return self.estimates.estimate(request, preview=preview)

    def activity(self) -> list[tuple[str, str]]:
        """(mode, progress text) of each job running now, e.g. ("depth2video", "frames 9–15 of 64 · step 12 of 30").

        `mode` is params.json's "mode"; jobs waiting for a device are not listed.
        """
        return self.runner.activity()

    # The stages' costs and seconds (modules/estimates.py), as the jobs below log and share them.
    def _sampling_cost(self, engine: engines.Engine, request, tab: str, frames: int, width: int, height: int):
        return self.estimates.sampling_cost(engine, request, tab, frames, width, height)

    def _detection_cost(self, request: ControlVideoRequest, frames: int, width: int, height: int):
        return self.estimates.detection_cost(request, frames, width, height)

    def _writing_cost(self, kind: str, frames: int, width: int, height: int):
        return self.estimates.writing_cost(kind, frames, width, height)

    def _seconds(self, cost) -> tuple[float, bool]:
        return self.estimates.seconds(cost)

    # ------------------------------------------------------------------ the modes
    def _text2video_job(self, request: Text2VideoRequest) -> VideoJob:
        request = self._validated(request)
        first_frame = video_io.read_image(request.image, request.width, request.height) if request.image else None
        return self._engine_job(engines.get(request.engine), request, "text2video", JobInputs(first_frame=first_frame),
                                frames=request.num_frames, width=request.width, height=request.height,
                                fps=request.fps)

    def _control_job(self, request: ControlVideoRequest, *, preview: bool = False) -> VideoJob:
        if preview:
            request = request.validate(self.settings, preview=True)
        else:
            request = self._validated(request)
        clip = self._read(request.window, request.video, max_frames=self._control_cap(request))
        frames, fps = clip
        height, width = frames.shape[1:3]
        maps_key = self._maps_key(request)
        reused = self.control_maps.get(maps_key)  # (maps, which job made them): detected for this clip before
        needs_detector = reused is None and self._needs_detector(request)
        detection = self._detection_cost(request, len(frames), width, height) if reused is None else None
        record = {"control_maps": f"reused from {reused[1]}"} if reused is not None else {}
        skeleton = request.kind == "pose" and request.is_skeleton

        def detector(manager: ModelManager):
            """The annotator a request needs (loaded outside the GPU slot), or None (edges, skeletons, reused maps)."""
            return manager.annotator(request.kind) if needs_detector else None

        def control_maps(annotator, control: JobControl) -> np.ndarray:
            if reused is not None:
                return reused[0]
            with control.timed("detection"):
                return self._control_maps(annotator, request, frames, control)

        def keep(job: VideoJob, made_by: str):
            """Given (frames, maps) in this process (on ZeroGPU and Ray they were made elsewhere): keep maps found
            here for the next job on this clip, and say in the job's notes where they carry nothing."""
            remember = reused is None and detection is not None

            def kept(output, maps) -> None:
                maps = maps if maps is not None else output
                if remember:
                    self.control_maps.put(maps_key, (maps, made_by))
                said = empty_maps.note(request.kind, maps, went_on=not preview, is_skeleton=skeleton)
                if said is not None:
                    job.notes.append(said)

            return kept

        costs = {"detection": detection} if detection is not None else {}
        if preview:
            costs["writing"] = self._writing_cost("control-preview", len(frames), width, height)
            job = VideoJob(
                mode="control-preview",
                request=request,
                load=detector,
                sample=lambda loaded, _chunk, control: control_maps(loaded, control),
                fps=fps,
                clip=clip,
                record={"kind": request.kind, **record},
                needs_gpu=needs_detector,  # edges and given skeletons are drawn on the CPU
                costs=costs,
            )
            job.keep = keep(job, "the preview")
            return job
        job = self._engine_job(engines.get(request.engine), request, "control", JobInputs(), frames=len(frames),
                               width=width, height=height, fps=fps, clip=clip, kind=request.kind)
        load_engine, sample_engine = job.load, job.sample
        # The detection's share of the sampling stage's bar: its share of the time.
        detect_s = self._seconds(detection)[0] if detection is not None else 0.0
        share = detect_s / max(detect_s + self._seconds(job.costs["sampling"])[0], 1e-9)

        def load(manager: ModelManager):
            return detector(manager), load_engine(manager)

        def sample(loaded, chunk_size: int | None, control: JobControl):
            annotator, engine_parts = loaded
            with control.within(0.0, share):
                maps = control_maps(annotator, control)
            if not request.allow_empty_maps:  # before the long part: nothing to follow is said, not sampled
                empty_maps.check(request.kind, maps, is_skeleton=skeleton, canny=(request.canny_low, request.canny_high))
            with control.within(share, 1.0):
                return sample_engine(engine_parts, chunk_size, control, JobInputs(maps=maps)), maps

        job = replace(job, load=load, sample=sample, record={**job.record, **record}, costs={**job.costs, **costs},
                      ran_with=lambda loaded, ran_with=job.ran_with: ran_with(loaded[1]))
        job.keep = keep(job, "an earlier run")
        return job

    def _edit_job(self, request: EditVideoRequest) -> VideoJob:
        request = self._validated(request)
        clip = self._read(request.window, request.video, max_frames=frame_cap(engines.default("edit"), "edit",
                                                                              self.settings))
        frames, fps = clip
        height, width = frames.shape[1:3]
        return self._engine_job(engines.default("edit"), request, "edit", JobInputs(frames=frames), frames=len(frames),
                                width=width, height=height, fps=fps, clip=clip)

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

    def _engine_job(self, engine: engines.Engine, request, tab: str, inputs: JobInputs, *, frames: int, width: int,
                    height: int, fps: float, clip: video_io.VideoClip | None = None, kind: str = "") -> VideoJob:
        """A job of `tab` on `engine`: its fast-mode policy, loading, sampling, cost and record."""
        request, notes = engine.fast_settings(request, tab)
        notes = [*notes, *engine.fit_notes(request, tab, frames, width, height)]

        def sample(loaded, chunk_size: int | None, control: JobControl, more: JobInputs | None = None):
            with control.timed("sampling"):
                return engine.sample(loaded, request, tab, more or inputs, chunk_size=chunk_size, control=control)

        return VideoJob(
            mode=engine.mode(tab, kind),
            request=request,
            load=lambda manager: engine.load(manager, request, tab),
            ran_with=lambda loaded: engine.ran_with(loaded, request, tab),
            sample=sample,
            fps=fps,
            chunk_size=engine.chunk_size(request, tab),
            frames=frames,
            estimate_s=engine.estimate_s(request, tab, frames, width, height),
            clip=clip,
            record=engine.record(request, tab, self.settings),
            notes=notes,
            costs={"sampling": self._sampling_cost(engine, request, tab, frames, width, height),
                   "writing": self._writing_cost(tab, frames, width, height)},
        )

    # ------------------------------------------------------------------ helpers
    def _validated(self, request):
        """The checked request, its seed resolved (-1 becomes the seed that will be used)."""
        request = request.validate(self.settings)
        return replace(request, seed=resolve_seed(request.seed))

    def _source_limits(self) -> video_io.SourceLimits:
        return video_io.SourceLimits.of(self.settings.limits)

    def _control_cap(self, request: ControlVideoRequest) -> int:
        """The most frames a control job's window gives: its engine's cap in the ControlNet tabs."""
        return frame_cap(engines.find(request.engine) or engines.default("control"), "control", self.settings)

    def _read(self, window: VideoWindow, path: str, multiple: int = 8, max_frames: int | None = None
              ) -> video_io.VideoClip:
        """The window of an upload, at most `max_frames` (the job's engine's cap; None: the largest any tab has)."""
        limits = self.settings.limits
        return video_io.read_video(
            path,
            start=window.start,
            end=window.end or None,
            fps=window.fps or None,
            long_side=window.resolution,
            multiple=multiple,
            max_frames=max_frames or self._largest_cap(),
            max_seconds=limits.max_video_seconds,
            max_pixels=limits.max_pixels,
            source_limits=self._source_limits(),
        )

    def _largest_cap(self) -> int:
        return max(tab_frame_cap(tab, self.settings) for tab in engines.TABS)

    @staticmethod
    def _needs_detector(request: ControlVideoRequest) -> bool:
        """Whether the maps come from a network (pose, depth) rather than a rule (edges) or the upload (skeletons)."""
        return request.kind == "depth" or (request.kind == "pose" and not request.is_skeleton)

    def _maps_key(self, request: ControlVideoRequest) -> tuple:
        """What a clip's control maps depend on: the upload, the window read, the kind and its options."""
        options = {"pose": (request.is_skeleton, request.pose_hands, request.pose_face),
                   "edge": (request.canny_low, request.canny_high), "depth": ()}[request.kind]
        return (self._content_of(request.video), request.window, request.kind, options)

    def _content_of(self, path: str) -> str:
        """An upload's bytes as the control-map cache knows them: their SHA-256, read once per file. The same clip
        uploaded again (an API client uploads it with every call) finds the maps made for it."""
        identity = upload_identity(path)
        digest = self._contents.get(identity)
        if digest is None:
            with open(path, "rb") as file:
                digest = hashlib.file_digest(file, "sha256").hexdigest()
            self._contents.put(identity, digest)
        return digest

    def _control_maps(
        self, detector, request: ControlVideoRequest, frames: np.ndarray, control: JobControl
    ) -> np.ndarray:
        from . import annotators  # controlnet-aux takes seconds to import: only when needed

        kind = request.kind
        # Detect at the frames' own size: the maps are made for exactly these frames.
        detect_resolution = max(annotators.MIN_DETECT_RESOLUTION, *frames.shape[1:3])
        options = {
            "edge": dict(low=request.canny_low, high=request.canny_high),
            "pose": dict(
                is_skeleton=request.is_skeleton,
                hands=request.pose_hands,
                face=request.pose_face,
                detect_resolution=detect_resolution,
            ),
            "depth": dict(detect_resolution=detect_resolution),
        }[kind]

        def on_frame(done: int, total: int) -> None:
            control.frame_done(f"finding {DETECTION_WORDS[kind]}", done, total)

        return annotators.control_maps(
            kind, frames, detector=detector, on_frame=on_frame, should_stop=control.check, **options
        )


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
    import re

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
