"""What each endpoint does, start to end: validate, read input, run on the worker, write outputs.

Every mode is the same generic video job (`Studio._run`):

1. validate the request (and resolve its seed), read the uploaded clip where there is one;
2. load what the mode needs on the worker (outside the GPU function: it may download);
3. sample on the GPU, in chunks; after an out-of-memory, once more with half the chunk;
4. write video.mp4, video.gif and params.json, which records what actually ran (the chunk
   size used, the window read, the resolved t0/t1) so that it makes the same video again.

A mode only says how to do 2 and 3 and what else to record: a `VideoJob` built by
`_text2video_job`, `_control_job` or `_edit_job`. The UI calls exactly one method of `Studio`
per event; so do scripts and tests that skip the UI.

Errors: everything a user should read comes out as `modules.errors.UserError` with a sentence
meant for them; any other failure becomes one (logged with its traceback, see
`errors.unexpected`). `Cancelled` passes through: the caller asked for it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from . import engine, video_io
from .engine import chunk_frame_ids, resolve_t0_t1
from .compare import side_by_side
from .errors import UserError, unexpected
from .outputs import Outputs, write_params
from .request_types import (
    CompareRequest,
    MAX_SEED,
    ControlVideoRequest,
    EditVideoRequest,
    Text2VideoRequest,
    VideoWindow,
)
from .settings import Settings
from .worker import Cancelled, JobControl, WorkerPool

if TYPE_CHECKING:
    from .models import ModelManager

FAST_MAX_GUIDANCE = 2.0  # LCM-LoRA's card: guidance 1 (off) to 2; above that frames over-saturate
# Seconds of GPU per UNet call per 512x512 frame on a ZeroGPU slice, and fixed overhead.
GPU_SECONDS_PER_FRAME_STEP = 0.05
GPU_OVERHEAD_S = 20.0
PREVIEW_ESTIMATE_S = 60.0
MIN_CHUNK = 2  # an anchor and one frame: halving below this after an OOM would not help


@dataclass
class VideoResult:
    video: str  # mp4 (H.264)
    gif: str
    params: str  # params.json: everything needed to make the same video again
    seed: int
    fps: float
    num_frames: int
    width: int
    height: int
    control: str | None = None  # the control-map video of ControlNet modes
    notes: list[str] = field(default_factory=list)  # what the server changed to fit, in sentences

    @property
    def note(self) -> str:
        return " ".join(self.notes)


Sample = Callable[[Any, "int | None", JobControl], Any]


@dataclass
class VideoJob:
    """One mode's part of the generic job: how to load, how to sample, what to record."""

    mode: str  # the output folder's tag and params.json's "mode"
    request: Any  # validated, seed resolved: params.json's "request"
    load: Callable[[ModelManager], Any]  # on the worker, outside the GPU function (may download)
    sample: Sample  # (loaded, chunk_size, control) -> frames, or (frames, control maps); on the GPU
    fps: float
    estimate_s: float = PREVIEW_ESTIMATE_S  # GPU seconds of sampling (what ZeroGPU is asked for)
    chunk_size: int | None = None  # None: one pass, no smaller-chunk retry
    clip: video_io.VideoClip | None = None  # the uploaded clip as read
    record: dict = field(default_factory=dict)  # more params.json fields
    notes: list[str] = field(default_factory=list)  # what the server changed, for the page and params.json


@dataclass
class CompareResult:
    video: str  # the engines side by side, labelled with their seconds
    seed: int
    engines: dict  # engine -> {"video", "params", "seconds"}


def fast_settings(request, tab: str):
    """Fast mode's steps, guidance and scheduler: the request's where they suit the fast weights
    (LCM-LoRA; AnimateDiff-Lightning's 2/4/8-step files on the AnimateDiff engine), else the tab's
    fast defaults, with a note; the request returned is the one that runs (and params.json keeps)."""
    from .engine.fast import FAST_DEFAULTS, LCM_MAX_STEPS, LCM_MIN_STEPS, LIGHTNING_STEPS

    if not request.fast:
        return request, []
    engine_name = getattr(request, "engine", "text2video-zero")
    if engine_name == "modelscope":
        raise UserError("Fast mode has no few-step weights for ModelScope; switch Fast off, or pick "
                        "Text2Video-Zero (LCM-LoRA) or AnimateDiff (AnimateDiff-Lightning).")
    lightning = engine_name == "animatediff"
    defaults = FAST_DEFAULTS["animatediff" if lightning else tab]
    if lightning:
        name, allowed = "AnimateDiff-Lightning", [n for n in LIGHTNING_STEPS if n >= 2]
        steps_text = ", ".join(map(str, allowed[:-1])) + f" or {allowed[-1]}"
    else:
        name, allowed = "LCM-LoRA", range(LCM_MIN_STEPS, LCM_MAX_STEPS + 1)
        steps_text = f"{LCM_MIN_STEPS}-{LCM_MAX_STEPS}"
    changes = {}
    if request.steps not in allowed:
        changes["steps"] = defaults["steps"]
        if hasattr(request, "t0"):
            changes.update(t0=-1, t1=-1)  # the paper's t0/t1, scaled to the fast steps
    if request.guidance_scale > FAST_MAX_GUIDANCE:
        changes["guidance_scale"] = defaults["guidance_scale"]
    if "scheduler" in defaults and getattr(request, "scheduler", defaults["scheduler"]) != defaults["scheduler"]:
        changes["scheduler"] = defaults["scheduler"]
    if not changes:
        return request, []
    used = ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in changes.items() if name not in ("t0", "t1"))
    note = f"Fast mode ({name}) runs {steps_text} steps with guidance up to {FAST_MAX_GUIDANCE:g}: used {used}."
    return replace(request, **changes), [note]


def fast_components(manager: ModelManager, components, fast: bool):
    """In fast mode, the LCM-LoRA attached to the job's UNet (off until `fast_context`) and TAESD to decode."""
    if fast:
        manager.lcm_lora(components.unet)
        components.decoder = manager.tiny_decoder()
    return components


def fast_context(components, fast: bool):
    """The LCM-LoRA on for the sampling of a fast job, and off again after it, whatever happens."""
    return engine.lora_active(components.unet) if fast else nullcontext()


def resolve_seed(seed: int) -> int:
    return random.SystemRandom().randint(0, MAX_SEED) if seed is None or seed < 0 else int(seed)


def estimate_gpu_seconds(unet_calls: int, frames: int, width: int, height: int) -> float:
    return GPU_OVERHEAD_S + unet_calls * frames * (width * height) / 512**2 * GPU_SECONDS_PER_FRAME_STEP


@contextmanager
def user_errors(what: str = "making your video") -> Iterator[None]:
    """Let UserError and Cancelled through; turn anything else into a UserError (logged)."""
    try:
        yield
    except (UserError, Cancelled):
        raise
    except Exception as error:
        raise unexpected(error, what) from error


class Studio:
    def __init__(self, settings: Settings, pool: WorkerPool | None = None):
        self.settings = settings
        self.pool = pool or WorkerPool(settings)
        self.outputs = Outputs(settings.outputs_dir, settings.outputs_ttl_s)

    @property
    def manager(self) -> ModelManager:
        return self.pool.manager

    # ------------------------------------------------------------------ endpoints
    def text2video(self, request: Text2VideoRequest, control: JobControl | None = None) -> VideoResult:
        return self._run(lambda: self._text2video_job(request), control)

    def control_preview(self, request: ControlVideoRequest, control: JobControl | None = None) -> VideoResult:
        """The control maps alone, to check them before a slow generation."""
        return self._run(lambda: self._control_job(request, preview=True), control)

    def control_video(self, request: ControlVideoRequest, control: JobControl | None = None) -> VideoResult:
        return self._run(lambda: self._control_job(request), control)

    def edit_video(self, request: EditVideoRequest, control: JobControl | None = None) -> VideoResult:
        return self._run(lambda: self._edit_job(request), control)

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

    # ------------------------------------------------------------------ the generic job
    def _run(self, make_job: Callable[[], VideoJob], control: JobControl | None) -> VideoResult:
        control = control or JobControl()
        with user_errors():
            job = make_job()  # validation and reading: the user's mistakes surface here
            ran_with: list[int | None] = []  # the chunk size of each attempt; the last one made the result

            def attempt(chunk_size: int | None):
                def load(manager: ModelManager):
                    ran_with.append(chunk_size)  # here, not in sample: on ZeroGPU that runs in a child
                    loaded = job.load(manager)
                    return lambda: job.sample(loaded, chunk_size, control)

                return load

            fallback = None
            if job.chunk_size is not None and job.chunk_size // 2 >= MIN_CHUNK:
                fallback = attempt(job.chunk_size // 2)
            output = self.pool.run(attempt(job.chunk_size), control, fallback=fallback, estimate_s=job.estimate_s)
            frames, maps = output if isinstance(output, tuple) else (output, None)
            return self._save(job, frames, maps, chunk_size=ran_with[-1])

    def _save(self, job: VideoJob, frames: np.ndarray, maps: np.ndarray | None, *, chunk_size: int | None) -> VideoResult:
        request, notes, record = job.request, list(job.notes), dict(job.record)
        if job.clip is not None:
            record["window_used"] = asdict(job.clip.used)
            if job.clip.used.note:
                notes.append(job.clip.used.note)
        if chunk_size is not None:
            record["chunk_size_used"] = chunk_size
            if chunk_size != job.chunk_size:
                # The request as it ran: loading this params.json repeats the run that made the video.
                record["chunk_size_requested"] = job.chunk_size
                request = replace(request, chunk_size=chunk_size)
                notes.append(
                    f"The GPU ran out of memory with chunks of {job.chunk_size} frames, so this video was made "
                    f"with chunks of {chunk_size}; params.json records that."
                )
        folder = self.outputs.new_folder(job.mode)
        frames = video_io.to_uint8(frames)
        video = video_io.write_mp4(frames, folder / "video.mp4", job.fps)
        gif = video_io.write_gif(frames, folder / "video.gif", job.fps)
        control = video_io.write_mp4(maps, folder / "control.mp4", job.fps) if maps is not None else None
        manager = self.manager
        seed = getattr(request, "seed", None)
        params = write_params(
            folder,
            {
                "mode": job.mode,
                "request": asdict(request),
                "seed": seed,
                "fps": job.fps,
                "frames": int(frames.shape[0]),
                "width": int(frames.shape[2]),
                "height": int(frames.shape[1]),
                "preset": self.settings.preset,
                "device": str(manager.device),
                "dtype": str(manager.dtype),
                "notes": notes,
                **record,
            },
        )
        return VideoResult(
            video=str(video),
            gif=str(gif),
            params=str(params),
            seed=int(seed or 0),
            fps=float(job.fps),
            num_frames=int(frames.shape[0]),
            width=int(frames.shape[2]),
            height=int(frames.shape[1]),
            control=control,
            notes=notes,
        )

    # ------------------------------------------------------------------ the modes
    def _text2video_job(self, request: Text2VideoRequest) -> VideoJob:
        request = self._validated(request)
        request, notes = fast_settings(request, "text2video")
        if request.engine != "text2video-zero":
            return self._trained_video_job(request, notes)
        scheduler = "lcm" if request.fast else "ddim"
        t0, t1 = resolve_t0_t1(request.steps, request.t0, request.t1)
        chunks = len(chunk_frame_ids(request.num_frames, request.chunk_size))
        prompt = engine.parse_storyboard(request.prompt)  # text, or {frame: text} key frames
        first_frame = video_io.read_image(request.image, request.width, request.height) if request.image else None

        def sample(components, chunk_size: int, control: JobControl) -> np.ndarray:
            with fast_context(components, request.fast):
                return engine.generate_text2video(
                    components,
                    prompt=prompt,
                    first_frame=first_frame,
                    negative_prompt=request.negative_prompt,
                    num_frames=request.num_frames,
                    height=request.height,
                    width=request.width,
                    steps=request.steps,
                    guidance_scale=request.guidance_scale,
                    motion_x=request.motion_x,
                    motion_y=request.motion_y,
                    t0=t0,
                    t1=t1,
                    seed=request.seed,
                    chunk_size=chunk_size,
                    on_step=control.step,
                )

        return VideoJob(
            mode="text2video",
            request=request,
            load=lambda manager: fast_components(manager, manager.components(request.model, scheduler), request.fast),
            sample=sample,
            fps=request.fps,
            chunk_size=request.chunk_size,
            estimate_s=estimate_gpu_seconds(request.steps * chunks, request.chunk_size, request.width, request.height),
            record={"t0": t0, "t1": t1, "model": request.model, "scheduler": scheduler, "engine": request.engine},
            notes=notes,
        )

    def _trained_video_job(self, request: Text2VideoRequest, notes: list[str]) -> VideoJob:
        """AnimateDiff (a motion adapter on the tab's SD 1.5 base; in fast mode AnimateDiff-Lightning's)
        or ModelScope (its own 3D UNet)."""
        common = dict(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt,
            num_frames=request.num_frames,
            height=request.height,
            width=request.width,
            steps=request.steps,
            guidance_scale=request.guidance_scale,
            seed=request.seed,
        )
        scheduler = "ddim"
        if request.engine == "animatediff":
            record = {"model": request.model, "motion_adapter": self._motion_adapter_name(request)}
            scheduler = "lightning" if request.fast else "ddim"

            def load(manager: ModelManager):
                return self._animatediff_parts(manager, request)

            def sample(loaded, _chunk, control: JobControl) -> np.ndarray:
                components, adapter = loaded
                return engine.generate_animatediff(
                    components, adapter, on_step=control.step, scheduler=self._animatediff_scheduler(request, components),
                    **common,
                )
        else:
            record = {"model": self.settings.modelscope_model, "licence": "CC BY-NC 4.0 (non-commercial use only)"}

            def load(manager: ModelManager):
                return manager.modelscope_components(scheduler="ddim")

            def sample(components, _chunk, control: JobControl) -> np.ndarray:
                return engine.generate_modelscope(components, on_step=control.step, **common)

        return VideoJob(
            mode=f"text2video-{request.engine}",
            request=request,
            load=load,
            sample=sample,
            fps=request.fps,
            estimate_s=estimate_gpu_seconds(request.steps, request.num_frames, request.width, request.height),
            record={**record, "engine": request.engine, "scheduler": scheduler},
            notes=notes,
        )

    def _motion_adapter_name(self, request) -> str:
        from .engine.fast import LIGHTNING_REPO, lightning_file

        return f"{LIGHTNING_REPO}/{lightning_file(request.steps)}" if request.fast else self.settings.motion_adapter

    @staticmethod
    def _animatediff_parts(manager: ModelManager, request):
        """The base and the motion adapter; in fast mode AnimateDiff-Lightning's for the step count and TAESD."""
        components = manager.components(request.model, scheduler="ddim")
        if request.fast:
            components.decoder = manager.tiny_decoder()
        return components, manager.motion_adapter(lightning_steps=request.steps if request.fast else None)

    @staticmethod
    def _animatediff_scheduler(request, components):
        """None (AnimateDiff's own DDIM recipe), or in fast mode the Lightning recipe."""
        return engine.lightning_scheduler(components.scheduler.config) if request.fast else None

    def _control_job(self, request: ControlVideoRequest, *, preview: bool = False) -> VideoJob:
        if preview:
            request = request.validate(self.settings, preview=True)
        else:
            request = self._validated(request)
        clip = self._read(request.window, request.video)
        frames, fps = clip

        if preview:
            return VideoJob(
                mode="control-preview",
                request=request,
                load=lambda manager: self._detector(manager, request),
                sample=lambda detector, _chunk, control: self._control_maps(detector, request, frames, control),
                fps=fps,
                clip=clip,
                record={"kind": request.kind},
            )

        request, notes = fast_settings(request, "control")
        animatediff = request.engine == "animatediff"
        scheduler = ("lightning" if animatediff else "lcm") if request.fast else "ddim"

        def load(manager: ModelManager):
            detector = self._detector(manager, request)
            if animatediff:
                components, adapter = self._animatediff_parts(manager, request)
                return detector, components, manager.controlnet(request.kind), adapter
            components = fast_components(manager, manager.components(request.model, scheduler=scheduler), request.fast)
            return detector, components, manager.controlnet(request.kind)

        def sample(loaded, chunk_size: int, control: JobControl):
            with fast_context(loaded[1], request.fast and not animatediff):
                return sample_control(loaded, chunk_size, control)

        def sample_control(loaded, chunk_size: int, control: JobControl):
            detector, components, controlnet, *adapter = loaded
            maps = self._control_maps(detector, request, frames, control)
            if adapter:  # AnimateDiff: the same ControlNet and maps under a trained motion prior
                height, width = maps.shape[1:3]
                video = engine.generate_animatediff(
                    components, adapter[0], prompt=request.prompt, negative_prompt=request.negative_prompt,
                    num_frames=len(maps), height=height, width=width, steps=request.steps,
                    guidance_scale=request.guidance_scale, seed=request.seed, on_step=control.step,
                    controlnet=controlnet, control=maps, conditioning_scale=request.conditioning_scale,
                    scheduler=self._animatediff_scheduler(request, components),
                )
                return video, maps
            video = engine.generate_control_video(
                components,
                controlnet,
                control=maps,
                prompt=request.prompt,
                negative_prompt=request.negative_prompt,
                steps=request.steps,
                guidance_scale=request.guidance_scale,
                conditioning_scale=request.conditioning_scale,
                seed=request.seed,
                chunk_size=chunk_size,
                on_step=control.step,
            )
            return video, maps

        height, width = frames.shape[1:3]
        return VideoJob(
            mode=f"{request.kind}2video",
            request=request,
            load=load,
            sample=sample,
            fps=fps,
            chunk_size=request.chunk_size if request.engine == "text2video-zero" else None,
            estimate_s=estimate_gpu_seconds(request.steps, len(frames), width, height),
            clip=clip,
            record={"model": request.model, "controlnet": self.settings.controlnets[request.kind],
                    "scheduler": scheduler, "engine": request.engine,
                    **({"motion_adapter": self._motion_adapter_name(request)} if animatediff else {})},
            notes=notes,
        )

    def _edit_job(self, request: EditVideoRequest) -> VideoJob:
        request, notes = fast_settings(self._validated(request), "edit")
        clip = self._read(request.window, request.video)
        frames, fps = clip

        def sample(components, chunk_size: int, control: JobControl) -> np.ndarray:
            with fast_context(components, request.fast):
                return engine.generate_edit_video(
                    components,
                    frames=frames,
                    prompt=request.prompt,
                    negative_prompt=request.negative_prompt,
                    steps=request.steps,
                    guidance_scale=request.guidance_scale,
                    image_guidance_scale=request.image_guidance_scale,
                    seed=request.seed,
                    chunk_size=chunk_size,
                    on_step=control.step,
                    skip_unused_guidance=request.fast,
                )

        height, width = frames.shape[1:3]
        return VideoJob(
            mode="edit",
            request=request,
            load=lambda manager: fast_components(manager, manager.edit_components(request.scheduler), request.fast),
            sample=sample,
            fps=fps,
            chunk_size=request.chunk_size,
            estimate_s=estimate_gpu_seconds(request.steps, len(frames), width, height),
            clip=clip,
            record={"model": self.settings.edit_model, "scheduler": request.scheduler},
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

    @staticmethod
    def _detector(manager: ModelManager, request: ControlVideoRequest):
        """The annotator a request needs (loaded outside the GPU slot), or None (edges, skeletons)."""
        if request.kind == "depth" or (request.kind == "pose" and not request.is_skeleton):
            return manager.annotator(request.kind)
        return None

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
