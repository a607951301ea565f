"""What each endpoint does: build the job (validate, read, which engine, what to record) and run it.

Studio is a façade: every generating endpoint is one `VideoJob` run by the generic `JobRunner`
(modules/jobs.py: load, sample with the out-of-memory retry, save). Which engine serves a request
is the registry's (modules/engines): Studio names none. The UI calls exactly one method of
`Studio` per event; so do scripts and tests that skip the UI.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from . import engines, video_io
from .compare import side_by_side
from .engines import JobInputs
from .errors import UserError
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
from .worker import WorkerPool

if TYPE_CHECKING:
    from .models import ModelManager


@dataclass
class CompareResult:
    video: str  # the engines side by side, labelled with their seconds
    seed: int
    engines: dict  # engine -> {"video", "params", "seconds"}


def resolve_seed(seed: int) -> int:
    return random.SystemRandom().randint(0, MAX_SEED) if seed is None or seed < 0 else int(seed)


class Studio:
    def __init__(self, settings: Settings, pool: WorkerPool | None = None):
        self.settings = settings
        self.pool = pool or WorkerPool(settings)
        self.outputs = Outputs(settings.outputs_dir, settings.outputs_ttl_s)
        self.runner = JobRunner(settings, self.pool, self.outputs)

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
        return self.runner.run(lambda: self._control_job(request), control)

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
            def report(fraction: float, text: str, index=index, name=name) -> None:
                control.report((index + fraction) / count, f"{name} ({index + 1}/{count}): {text}")

            engine_control = JobControl(should_stop=control.should_stop, progress=report,
                                        cancel_event=control.cancel_event)
            runs[name] = self.compare_engine(request, name, engine_control)
        return self.combine_compare(request, runs)

    def prepare_compare(self, request: CompareRequest) -> CompareRequest:
        """The validated request with its seed fixed, so every engine runs the same seed."""
        with user_errors("comparing the engines"):
            request = request.validate(self.settings)
            return replace(request, seed=resolve_seed(request.seed))

    def compare_engine(self, request: CompareRequest, engine_name: str, control: JobControl | None = None) -> dict:
        """One engine's clip of a (prepared) comparison: {"video", "params", "seconds"} (JSON, for the page's state)."""
        started = time.monotonic()
        result = self.text2video(request.for_engine(engine_name, self.settings), control)
        return {"video": result.video, "params": result.params, "seconds": round(time.monotonic() - started, 2)}

    def combine_compare(self, request: CompareRequest, runs: dict[str, dict]) -> CompareResult:
        """The engines' clips side by side, labelled with their seconds, in a folder of its own."""
        with user_errors("comparing the engines"):
            if not runs:
                raise UserError("No engine finished, so there is nothing to compare.")
            clips = [video_io.read_video(run["video"]) for run in runs.values()]
            frames = side_by_side([clip.frames for clip in clips],
                                  [f"{name} · {run['seconds']:.1f} s" for name, run in runs.items()],
                                  [request.fps] * len(clips))
            folder = self.outputs.new_folder("compare")
            video = video_io.write_mp4(frames, folder / "compare.mp4", request.fps)
            summary = {name: dict(run) for name, run in runs.items()}
            write_params(folder, {"mode": "compare", "request": asdict(request), "seed": request.seed,
                                  "engines": summary, "preset": self.settings.preset})
            return CompareResult(video=str(video), seed=request.seed, engines=summary)

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
        clip = self._read(request.window, request.video)
        frames, fps = clip
        needs_detector = request.kind == "depth" or (request.kind == "pose" and not request.is_skeleton)

        def detector(manager: ModelManager):
            """The annotator a request needs (loaded outside the GPU slot), or None (edges, skeletons)."""
            return manager.annotator(request.kind) if needs_detector else None

        if preview:
            return VideoJob(
                mode="control-preview",
                request=request,
                load=detector,
                sample=lambda loaded, _chunk, control: self._control_maps(loaded, request, frames, control),
                fps=fps,
                clip=clip,
                record={"kind": request.kind},
                needs_gpu=needs_detector,  # edges and given skeletons are drawn on the CPU
            )
        height, width = frames.shape[1:3]
        job = self._engine_job(engines.get(request.engine), request, "control", JobInputs(), frames=len(frames),
                               width=width, height=height, fps=fps, clip=clip, kind=request.kind)
        load_engine, sample_engine = job.load, job.sample

        def load(manager: ModelManager):
            return detector(manager), load_engine(manager)

        def sample(loaded, chunk_size: int | None, control: JobControl):
            annotator, engine_parts = loaded
            maps = self._control_maps(annotator, job.request, frames, control)
            return sample_engine(engine_parts, chunk_size, control, JobInputs(maps=maps)), maps

        return replace(job, load=load, sample=sample)

    def _edit_job(self, request: EditVideoRequest) -> VideoJob:
        request = self._validated(request)
        clip = self._read(request.window, request.video)
        frames, fps = clip
        height, width = frames.shape[1:3]
        return self._engine_job(engines.default("edit"), request, "edit", JobInputs(frames=frames), frames=len(frames),
                                width=width, height=height, fps=fps, clip=clip)

    def _engine_job(self, engine: engines.Engine, request, tab: str, inputs: JobInputs, *, frames: int, width: int,
                    height: int, fps: float, clip: video_io.VideoClip | None = None, kind: str = "") -> VideoJob:
        """A job of `tab` on `engine`: its fast-mode policy, loading, sampling, cost and record."""
        request, notes = engine.fast_settings(request, tab)

        def sample(loaded, chunk_size: int | None, control: JobControl, more: JobInputs | None = None):
            return engine.sample(loaded, request, tab, more or inputs, chunk_size=chunk_size, control=control)

        return VideoJob(
            mode=engine.mode(tab, kind),
            request=request,
            load=lambda manager: engine.load(manager, request, tab),
            sample=sample,
            fps=fps,
            chunk_size=engine.chunk_size(request, tab),
            frames=frames,
            estimate_s=engine.estimate_s(request, tab, frames, width, height),
            clip=clip,
            record=engine.record(request, tab, self.settings),
            notes=notes,
        )

    # ------------------------------------------------------------------ helpers
    def _validated(self, request):
        """The checked request, its seed resolved (-1 becomes the seed that will be used)."""
        request = request.validate(self.settings)
        return replace(request, seed=resolve_seed(request.seed))

    def _read(self, window: VideoWindow, path: str) -> video_io.VideoClip:
        limits = self.settings.limits
        return video_io.read_video(
            path,
            start=window.start,
            end=window.end or None,
            fps=window.fps or None,
            long_side=window.resolution,
            multiple=8,
            max_frames=limits.max_frames,
            max_seconds=limits.max_video_seconds,
            max_pixels=limits.max_pixels,
            source_limits=video_io.SourceLimits(
                max_mb=limits.max_upload_mb,
                max_pixels=limits.max_source_pixels,
                max_frames=limits.max_source_frames,
                max_seconds=limits.max_source_seconds,
            ),
        )

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
            control.report(done / max(total, 1), f"{kind} maps: frame {done}/{total}")

        return annotators.control_maps(
            kind, frames, detector=detector, on_frame=on_frame, should_stop=control.check, **options
        )
