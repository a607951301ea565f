"""The one generic video job every endpoint runs: validate and read, load, sample, save.

1. `make_job()` validates the request (and resolves its seed) and reads the upload, so a user's
   mistake surfaces before any model loads; it returns a `VideoJob` (what to load, how to
   sample, what to record).
2. The worker loads what the job needs (outside the GPU function: it may download), then
   samples on the GPU, in chunks; after an out-of-memory, once more with fewer frames per pass.
3. `video.mp4`, `video.gif` (and the control maps' mp4) and `params.json`, which records what
   actually ran (the chunk size used, the window read, the worker's device and dtype, the
   engine's record) so that it makes the same video again.

Errors: everything a user should read comes out as `UserError` with a sentence meant for them;
any other failure becomes one (logged with its traceback, see `errors.unexpected`). `Cancelled`
passes through: the caller asked for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from . import video_io
from .errors import UserError, unexpected
from .job_control import Cancelled, JobControl
from .outputs import Outputs, write_params
from .settings import Settings
from .worker import WorkerPool, retry_chunk_size

if TYPE_CHECKING:
    from .models import ModelManager

PREVIEW_ESTIMATE_S = 60.0
MIN_CHUNK = 2  # an anchor and one frame: fewer frames per pass after an OOM would not help


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
    frames: int = 0  # frames the job makes (a chunk larger than this is one pass)
    needs_gpu: bool = True  # False: CPU work (edge maps, given skeletons) that asks ZeroGPU for no slot
    clip: video_io.VideoClip | None = None  # the uploaded clip as read
    record: dict = field(default_factory=dict)  # more params.json fields
    notes: list[str] = field(default_factory=list)  # what the server changed, for the page and params.json


@contextmanager
def user_errors(what: str = "making your video") -> Iterator[None]:
    """Let UserError and Cancelled through; turn anything else into a UserError (logged)."""
    try:
        yield
    except (UserError, Cancelled):
        raise
    except Exception as error:
        raise unexpected(error, what) from error


class JobRunner:
    """Runs `VideoJob`s on the worker pool and saves their outputs in per-request folders."""

    def __init__(self, settings: Settings, pool: WorkerPool, outputs: Outputs):
        self.settings = settings
        self.pool = pool
        self.outputs = outputs

    def run(self, make_job: Callable[[], VideoJob], control: JobControl | None) -> VideoResult:
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

            smaller = retry_chunk_size(job.chunk_size, job.frames, MIN_CHUNK)
            output = self.pool.run(attempt(job.chunk_size), control, fallback=attempt(smaller) if smaller else None,
                                   estimate_s=job.estimate_s, needs_gpu=job.needs_gpu)
            frames, maps = output if isinstance(output, tuple) else (output, None)
            return self._save(job, frames, maps, chunk_size=ran_with[-1], ran_on=control.ran_on)

    def _save(self, job: VideoJob, frames: np.ndarray, maps: np.ndarray | None, *, chunk_size: int | None,
              ran_on: dict) -> VideoResult:
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
                **ran_on,  # the device and dtype of the worker that ran it
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

