"""What each endpoint does, start to end: validate, read input, run on the worker, write outputs.

The UI calls exactly one method of `Studio` per event; so do scripts and tests that skip the UI.
Errors a user can act on come out as `StudioError` with a message meant for them.
"""

from __future__ import annotations

import logging
import random
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import engine, video_io
from .engine import chunk_frame_ids, resolve_t0_t1
from .errors import UserError
from .outputs import Outputs, write_params
from .request_types import (
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

log = logging.getLogger(__name__)

# Seconds of GPU per UNet call per 512x512 frame on a ZeroGPU slice, and fixed overhead.
GPU_SECONDS_PER_FRAME_STEP = 0.05
GPU_OVERHEAD_S = 20.0


class StudioError(RuntimeError):
    """A failure the user can act on; the message says how."""


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


def resolve_seed(seed: int) -> int:
    return random.SystemRandom().randint(0, MAX_SEED) if seed is None or seed < 0 else int(seed)


def estimate_gpu_seconds(unet_calls: int, frames: int, width: int, height: int) -> float:
    return GPU_OVERHEAD_S + unet_calls * frames * (width * height) / 512**2 * GPU_SECONDS_PER_FRAME_STEP


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
        control = control or JobControl()
        with _user_errors():
            request = replace(request.validate(self.settings), seed=resolve_seed(request.seed))
            t0, t1 = resolve_t0_t1(request.steps, request.t0, request.t1)
            chunks = len(chunk_frame_ids(request.num_frames, request.chunk_size))

            def job(manager: ModelManager, chunk_size: int = request.chunk_size):
                components = manager.components(request.model, scheduler="ddim")
                return lambda: engine.generate_text2video(
                    components,
                    prompt=request.prompt,
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

            frames = self.pool.run(
                job,
                control,
                fallback=_smaller_chunks(job, request.chunk_size),
                estimate_s=estimate_gpu_seconds(
                    request.steps * chunks, request.chunk_size, request.width, request.height
                ),
            )
            return self._save(
                "text2video",
                frames,
                request.fps,
                request=request,
                extra={"t0": t0, "t1": t1, "model": request.model, "scheduler": "ddim"},
            )

    def control_preview(self, request: ControlVideoRequest, control: JobControl | None = None) -> VideoResult:
        """The control maps alone, to check them before a slow generation."""
        control = control or JobControl()
        with _user_errors():
            request = request.validate(self.settings, preview=True)
            clip = self._read(request.window, request.video)
            frames, fps = clip
            def job(manager: ModelManager):
                detector = self._detector(manager, request)
                return lambda: self._control_maps(detector, request, frames, control)

            maps = self.pool.run(job, control)
            return self._save("control-preview", maps, fps, request=request, extra={"window_used": asdict(clip.used)})

    def control_video(self, request: ControlVideoRequest, control: JobControl | None = None) -> VideoResult:
        control = control or JobControl()
        with _user_errors():
            request = replace(request.validate(self.settings), seed=resolve_seed(request.seed))
            clip = self._read(request.window, request.video)
            frames, fps = clip
            controlnet_id = self.settings.controlnets[request.kind]

            def job(manager: ModelManager, chunk_size: int = request.chunk_size):
                detector = self._detector(manager, request)
                components = manager.components(request.model, scheduler="ddim")
                controlnet = manager.controlnet(request.kind)
                return lambda: sample(detector, components, controlnet, chunk_size)

            def sample(detector, components, controlnet, chunk_size):
                maps = self._control_maps(detector, request, frames, control)
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
            video, maps = self.pool.run(
                job,
                control,
                fallback=_smaller_chunks(job, request.chunk_size),
                estimate_s=estimate_gpu_seconds(request.steps, len(frames), width, height),
            )
            result = self._save(
                f"{request.kind}2video",
                video,
                fps,
                request=request,
                extra={"model": request.model, "controlnet": controlnet_id, "scheduler": "ddim",
                       "window_used": asdict(clip.used)},
            )
            folder = Path(result.video).parent
            result.control = video_io.write_mp4(maps, folder / "control.mp4", fps)
            return result

    def edit_video(self, request: EditVideoRequest, control: JobControl | None = None) -> VideoResult:
        control = control or JobControl()
        with _user_errors():
            request = replace(request.validate(self.settings), seed=resolve_seed(request.seed))
            clip = self._read(request.window, request.video)
            frames, fps = clip

            def job(manager: ModelManager, chunk_size: int = request.chunk_size):
                components = manager.edit_components(request.scheduler)
                return lambda: engine.generate_edit_video(
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
                )

            height, width = frames.shape[1:3]
            video = self.pool.run(
                job,
                control,
                fallback=_smaller_chunks(job, request.chunk_size),
                estimate_s=estimate_gpu_seconds(request.steps, len(frames), width, height),
            )
            return self._save(
                "edit", video, fps, request=request,
                extra={"model": self.settings.edit_model, "window_used": asdict(clip.used)},
            )

    # ------------------------------------------------------------------ helpers
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

    def _save(self, mode: str, frames: np.ndarray, fps: float, *, request, extra: dict) -> VideoResult:
        folder = self.outputs.new_folder(mode)
        frames = video_io.to_uint8(frames)
        video = video_io.write_mp4(frames, folder / "video.mp4", fps)
        gif = video_io.write_gif(frames, folder / "video.gif", fps)
        manager = self.manager
        params = write_params(
            folder,
            {
                "mode": mode,
                "request": asdict(request),
                "seed": getattr(request, "seed", None),
                "fps": fps,
                "frames": int(frames.shape[0]),
                "width": int(frames.shape[2]),
                "height": int(frames.shape[1]),
                "preset": self.settings.preset,
                "device": str(manager.device),
                "dtype": str(manager.dtype),
                **extra,
            },
        )
        return VideoResult(
            video=str(video),
            gif=str(gif),
            params=str(params),
            seed=int(getattr(request, "seed", 0) or 0),
            fps=float(fps),
            num_frames=int(frames.shape[0]),
            width=int(frames.shape[2]),
            height=int(frames.shape[1]),
        )


def _smaller_chunks(job, chunk_size: int):
    """The retry after an out-of-memory: half the chunk, where that still leaves a chunk."""
    if chunk_size // 2 < 2:
        return None
    return lambda manager: job(manager, chunk_size=chunk_size // 2)


@contextmanager
def _user_errors():
    """Turn failures a user can act on into StudioError; let Cancelled through; log the rest."""
    try:
        yield
    except (StudioError, Cancelled):
        raise
    except UserError as error:
        raise StudioError(str(error)) from error
    except Exception as error:
        log.exception("job failed")
        raise StudioError(
            f"The job failed ({type(error).__name__}: {error}). The server is ready for the next one."
        ) from error
