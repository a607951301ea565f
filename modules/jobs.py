"""The one generic video job every endpoint runs: validate and read, load, sample, save.

1. `make_job()` validates the request (and resolves its seed) and reads the upload, so a user's
   mistake surfaces before any model loads; it returns a `VideoJob` (what to load, how to
   sample, what to record).
2. The worker loads what the job needs (outside the GPU function: it may download), then
   samples on the GPU, in chunks; after an out-of-memory, once more with fewer frames per pass.
3. `video.mp4`, `video.gif` (and the control maps' mp4) and `params.json`, which records what
   actually ran (the chunk size used, the window read, the worker's device and dtype, the
   engine's record) so that it makes the same video again.

Progress: loading, sampling and writing each fill their share of the job's bar (`JobControl.within`),
so it rises monotonically; the runner says "writing the video". Costs: after each job the runner
logs the seconds its stages took (sampling, detection, writing: `VideoJob.costs`, `CostLog`), which
the estimates scale (modules/estimates.py).

Errors: everything a user should read comes out as `UserError` with a sentence meant for them;
any other failure becomes one (logged with its traceback, see `errors.unexpected`). `Cancelled`
passes through: the caller asked for it.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from . import video_io
from .errors import UserError, unexpected
from .job_control import WRITING, Cancelled, JobControl
from .outputs import Outputs, write_params
from .settings import Settings
from .worker import WorkerPool, retry_chunk_size

if TYPE_CHECKING:
    from .models import ModelManager

PREVIEW_ESTIMATE_S = 60.0
MIN_CHUNK = 2  # an anchor and one frame: fewer frames per pass after an OOM would not help
# Each stage's share of a job's progress bar: loading (downloads), sampling (control maps, steps,
# decoding), writing the video.
LOADING, SAMPLING, WRITING_SHARE = (0.0, 0.05), (0.05, 0.95), (0.95, 1.0)
MEASUREMENTS_KEPT = 64


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


@dataclass(frozen=True)
class Cost:
    """What one timed stage of a job ran, for the cost log.

    `what` says which kind of work it was, e.g. ("sampling", engine, tab, fast), ("detection",
    kind, extras) or ("writing", tab); `work` is its size in the unit its seconds scale by (the
    engine's frame-steps, or frames x 512x512 pixels); `prior_s` what the estimate said before any
    measurement.
    """

    what: tuple
    work: float
    prior_s: float


@dataclass(frozen=True)
class Measurement:
    """A finished stage: what it was, where it ran, and how long it took."""

    cost: Cost
    device: str
    seconds: float


class CostLog:
    """The last measured stages of this server's jobs, in memory, newest last (each says its device)."""

    def __init__(self, kept: int = MEASUREMENTS_KEPT):
        self._measurements: deque[Measurement] = deque(maxlen=kept)
        self._lock = threading.Lock()

    def add(self, measurement: Measurement) -> None:
        with self._lock:
            self._measurements.append(measurement)

    def latest(self, what: Callable[[tuple], bool]) -> Measurement | None:
        """The newest measurement whose `cost.what` passes `what`."""
        with self._lock:
            return next((m for m in reversed(self._measurements) if what(m.cost.what)), None)

    def latest_of(self, what: Callable[[tuple], bool], count: int) -> list[Measurement]:
        """The newest `count` measurements whose `cost.what` passes `what`, newest first."""
        with self._lock:
            return [m for m in reversed(self._measurements) if what(m.cost.what)][:count]

    def nearest(self, cost: Cost, count: int = 3) -> list[Measurement]:
        """Up to `count` measurements of the same kind of work, nearest `cost.work` in size (by ratio;
        the newest of equals first): a job's fixed costs weigh least when scaled from jobs of its size."""
        if cost.work <= 0:
            return []
        with self._lock:
            same = [m for m in reversed(self._measurements) if m.cost.what == cost.what and m.cost.work > 0]
        return sorted(same, key=lambda m: abs(math.log(m.cost.work / cost.work)))[:count]


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
    too_long_hint: str = ""  # how to ask for less, where a job past ZeroGPU's per-call limit is refused (training)
    clip: video_io.VideoClip | None = None  # the uploaded clip as read
    record: dict = field(default_factory=dict)  # more params.json fields
    notes: list[str] = field(default_factory=list)  # what the server changed, for the page and params.json
    costs: dict[str, Cost] = field(default_factory=dict)  # timed stage (JobControl.timings) -> what it ran
    keep: Callable[[np.ndarray, np.ndarray | None], None] | None = None  # given (frames, maps) in this process
    # What params.json records of the loaded objects (the scheduler's class and config), read where they load:
    # on the worker, a Ray replica or (ZeroGPU) the parent, so it travels back with `control.ran_on`.
    ran_with: Callable[[Any], dict] | None = None


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
        self.costs = CostLog()
        self._active: dict[int, tuple[str, JobControl]] = {}  # id(control) -> (mode, control) of jobs under way
        self._active_lock = threading.Lock()

    def run(self, make_job: Callable[[], VideoJob], control: JobControl | None) -> VideoResult:
        control = control or JobControl()
        with user_errors():
            job = make_job()  # validation and reading: the user's mistakes surface here
            ran_with: list[int | None] = []  # the chunk size of each attempt; the last one made the result

            def attempt(chunk_size: int | None):
                def load(manager: ModelManager):
                    ran_with.append(chunk_size)  # here, not in sample: on ZeroGPU that runs in a child
                    with control.within(*LOADING):
                        loaded = job.load(manager)
                    if job.ran_with is not None:
                        control.ran_on.update(job.ran_with(loaded))

                    def sample():  # on ZeroGPU in a forked child: its timings travel back with the frames
                        control.timings.clear()
                        with control.within(*SAMPLING):
                            output = job.sample(loaded, chunk_size, control)
                        return output, dict(control.timings)

                    return sample

                return load

            smaller = retry_chunk_size(job.chunk_size, job.frames, MIN_CHUNK)
            with self._tracking(job.mode, control):
                output, timings = self.pool.run(attempt(job.chunk_size), control,
                                                fallback=attempt(smaller) if smaller else None,
                                                estimate_s=job.estimate_s, needs_gpu=job.needs_gpu,
                                                too_long_hint=job.too_long_hint)
            frames, maps = output if isinstance(output, tuple) else (output, None)
            if job.keep is not None:
                job.keep(frames, maps)
            with control.within(*WRITING_SHARE), control.timed("writing"):
                control.report(0.0, WRITING)
                result = self._save(job, frames, maps, chunk_size=ran_with[-1], ran_on=control.ran_on)
            self._log_costs(job, {**timings, "writing": control.timings["writing"]}, control.ran_on.get("device", ""))
            return result

    def activity(self) -> list[tuple[str, str]]:
        """(mode, last progress text) of each job that holds a device now, oldest first."""
        with self._active_lock:
            jobs = list(self._active.values())
        return [(mode, control.last_text or "starting") for mode, control in jobs if control.running]

    @contextmanager
    def _tracking(self, mode: str, control: JobControl) -> Iterator[None]:
        with self._active_lock:
            self._active[id(control)] = (mode, control)
        try:
            yield
        finally:
            with self._active_lock:
                self._active.pop(id(control), None)

    def _log_costs(self, job: VideoJob, timings: dict[str, float], device: str) -> None:
        for stage, cost in job.costs.items():
            if stage in timings and cost.work > 0:
                self.costs.add(Measurement(cost=cost, device=device, seconds=timings[stage]))

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

