"""What each endpoint does: build the job (validate, read, which engine, what to record) and run it.

Studio is a façade: every generating endpoint is one `VideoJob` run by the generic `JobRunner`
(modules/jobs.py: load, sample with the out-of-memory retry, save). Which engine serves a request
is the registry's (modules/engines): Studio names none. The UI calls exactly one method of
`Studio` per event; so do scripts and tests that skip the UI. The Tune tab's jobs and the tuned models are its
part `TuneJobs` (modules/tuning_jobs.py).

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
from .job_control import JobControl
from .jobs import JobRunner, VideoJob, VideoResult, user_errors
from .outputs import Outputs, write_params
from .request_types import (
    MAX_SEED,
    CompareRequest,
    ControlVideoRequest,
    EditVideoRequest,
    Text2VideoRequest,
    VideoWindow,
)
from .settings import Settings
from .tuned_models import TunedModels
from .tuning_jobs import TuneJobs
from .worker import WorkerPool

if TYPE_CHECKING:
    from .models import ModelManager

log = logging.getLogger(__name__)

# What each control kind's detection is called on the page ("finding pose in frame 12 of 64").
DETECTION_WORDS = {"pose": "pose", "edge": "edges", "depth": "depth"}
# The last detections kept for reuse: maps at the window's size (50 MB for 64 frames of 512x512).
CONTROL_MAPS_KEPT, CONTROL_MAPS_BYTES = 4, 256 * 2**20
PROBES_KEPT = 32


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


class Studio(TuneJobs):
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
