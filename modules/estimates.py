"""What a job would take on this server before it runs: the priors, how they scale, and when a figure
may say "measured here".

A job's time is the sum of its timed stages (`jobs.Cost`: sampling, detection of control maps, writing
the mp4 and GIF); loading models is not counted. Each stage's prior is a `Prior`: fixed seconds per job,
per frame, per 512x512 frame, and per unit of the engine's `work` (512x512 frame-steps), so small jobs
keep their fixed costs and large ones scale by frames, size and steps.

The figures, per engine x tab x device kind ("cuda", "cpu") and preset ("real", "tiny"):
- real preset on a CPU: the README's performance sections (benchmarks run on 2-core CPUs);
- real preset on a GPU: the per-step figures the engines declare (`Engine.gpu_seconds_per_frame_step`,
  from published timings), plus fixed and decoding costs of the same origin: published or derived,
  none measured here;
- tiny preset: measured here by `python -m benchmarks --mode estimates` (the date and machine are beside
  the table). On a GPU the tiny models are no faster than on a CPU's cores (their calls are too small),
  so the same figures serve both (not measured on a GPU).

"Measured here": a stage is measured once this server logged a job of exactly its kind (`Cost.what`:
stage, engine, tab, fast; detection kind; writing's tab); the estimate is "measured" when all its stages
are. Until then it is an estimate: the prior, scaled by how this server ran the other kinds of the same
stage (its speed against the priors' machine), but still called an estimate.

Cheap: called on every form change, so no torch import and no decoding (an upload's header is probed once).
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import engines, video_io
from .engines.base import UNIT, Prior  # noqa: F401 - Prior: the figures' type, for callers
from .forms import frame_cap, tab_frame_cap
from .jobs import Cost
from .request_types import CompareRequest, ControlVideoRequest, EditVideoRequest, Text2VideoRequest
from .tune_requests import HUB_REPO_ID, RunTunedRequest, TuneRequest
from .zerogpu import zerogpu_spaces

if TYPE_CHECKING:
    from .studio import Studio

log = logging.getLogger(__name__)

# How far this server's speed on other kinds of a stage may move a prior (a slow first job is no reason
# to promise ten times more).
SPEED_BOUNDS = (1 / 3, 3.0)
SPEED_SAMPLES = 5  # the latest measurements of the stage that the speed is the median of


@dataclass(frozen=True)
class Estimate:
    """What a job would take on this server: `seconds` of sampling, decoding and writing (and finding
    control maps); `measured` is True when every stage was scaled from jobs of its own kind timed here."""

    seconds: float
    measured: bool


# ---------------------------------------------------------------------------------------------- the priors
# Real preset, CPU: each engine's `cpu_priors` (from the README's benchmarks; see each engine's module).
# Real preset, GPU: the engine's declared per-step figure (published timings; see each engine), decoding
# and per-job costs derived from SD 1.5 on an A100-class card (~0.1 s a 512² VAE decode, ~1 s of text
# encoding and set-up). Published or derived: not measured here.
GPU_FIXED_S, GPU_PIXEL_S = 1.0, 0.1

# Tiny preset: each engine's `tiny_priors`, measured 2026-12-07 (again after the GIF writer and the random
# annotators got faster) with `nice -n -10 python -m benchmarks --mode estimates` on this project's 2-core AMD EPYC
# (one torch thread, load average under 1). The figures are each stage's CPU seconds (its seconds x the job's CPU
# share) x 1.2: in the test suite a job has a core to itself only part of the time (two processes on 2 cores).

# Control maps, per kind and extras (pose's hands and face): the real controlnet-aux networks in both presets,
# run at the frames' own size. Tiny preset (random weights; the same run as the tiny priors, CPU seconds x 1.2):
# OpenPose ~1.2 s a frame at 64-96² (random weights find nobody, so hands and face add little), DPT-Hybrid 24 s a
# 512² frame, edges free. Real preset, CPU: 1 s a 512² frame for OpenPose's body, 3x with hands and
# face, 1.5 s for DPT-Hybrid (derived from the networks' FLOPs against SD 1.5's measured UNet; not measured);
# GPU: derived (a 512² OpenPose body pass ~50 ms, DPT-Hybrid ~30 ms on an A100-class card).
DETECTION = {
    ("pose", False): {"cpu": Prior(frame_s=1.0), "cuda": Prior(fixed_s=0.5, frame_s=0.05)},
    ("pose", True): {"cpu": Prior(frame_s=3.0), "cuda": Prior(fixed_s=0.5, frame_s=0.15)},
    ("depth", False): {"cpu": Prior(frame_s=1.5), "cuda": Prior(fixed_s=0.5, frame_s=0.03)},
    ("edge", False): {"cpu": Prior(frame_s=0.003), "cuda": Prior(frame_s=0.003)},
}
TINY_DETECTION = {("pose", False): Prior(frame_s=1.3, pixel_s=3.7), ("pose", True): Prior(frame_s=1.4, pixel_s=0.23),
                  ("depth", False): Prior(frame_s=0.05, pixel_s=23), ("edge", False): Prior(fixed_s=0.00024, pixel_s=0.006)}
# Writing the mp4 and the GIF (and the control maps' mp4): CPU work whatever the device. Tiny preset (the same
# run): 0.05-0.14 s for 1-16 frames of 64-96² (ffmpeg's start dominates; GIF palettes by fast octree).
WRITING = Prior(fixed_s=0.065, pixel_s=0.14)


# ---------------------------------------------------------------------------------------------- the figures
def sampling_prior(engine: engines.Engine, tab: str, fast: bool, device: str, preset: str) -> Prior:
    """The prior of a sampling stage of `engine` in `tab` (fast or not) on a `device` kind, for `preset`."""
    if preset == "tiny":
        prior = engine.tiny_priors.get((tab, fast)) or engine.tiny_priors.get((tab, False))
        if prior is not None:
            return prior
    if device == "cuda":
        return Prior(fixed_s=GPU_FIXED_S, pixel_s=GPU_PIXEL_S, step_s=engine.gpu_seconds_per_frame_step)
    prior = engine.cpu_priors.get((tab, fast)) or engine.cpu_priors.get((tab, False))
    # An engine without figures here: its own declared per-step seconds.
    return prior or Prior(fixed_s=1.0, pixel_s=13.5, step_s=engine.cpu_seconds_per_frame_step)


def detection_prior(kind: str, extras: bool, device: str, preset: str) -> Prior:
    key = (kind, extras and kind == "pose")
    return TINY_DETECTION[key] if preset == "tiny" else DETECTION[key][device]


class Estimator:
    """A Studio's estimates: the stages a request's job would run, and their seconds on this server."""

    def __init__(self, studio: Studio):
        self.studio = studio

    @property
    def costs(self):
        return self.studio.runner.costs

    def estimate(self, request, *, preview: bool = False) -> Estimate | None:
        """What the job of `request` would take on this server, before it runs; None if it can't be told.

        `request` is a Text2VideoRequest, ControlVideoRequest (`preview`: the control maps alone),
        EditVideoRequest, TuneRequest, RunTunedRequest or CompareRequest (each engine's text-to-video job, one
        after the other) as the form holds it, unvalidated: None when it is not valid (yet) or its video cannot
        be read. The seconds cover sampling, decoding and writing the video, plus finding the control maps
        unless a Preview (or run) of the same clip and options made them already; not loading models.
        """
        try:
            if isinstance(request, CompareRequest):
                request = request.validate(self.studio.settings)
                parts = [self.estimate(request.for_engine(name, self.studio.settings)) for name in request.engines]
                if any(part is None for part in parts):
                    return None
                return Estimate(seconds=sum(part.seconds for part in parts),
                                measured=all(part.measured for part in parts))
            costs = self.costs_of(request, preview)
        except Exception as error:  # noqa: BLE001 - a form being filled in is often no valid request yet
            log.debug("no estimate: %s", error)
            return None
        parts = [self.seconds(cost) for cost in costs]
        return Estimate(seconds=sum(seconds for seconds, _ in parts),
                        measured=bool(parts) and all(measured for _, measured in parts))

    def costs_of(self, request, preview: bool) -> list[Cost]:
        """The timed stages the job of `request` would run (the same `Cost`s its job logs)."""
        studio, settings = self.studio, self.studio.settings
        if isinstance(request, Text2VideoRequest):
            request = request.validate(settings)
            engine = engines.get(request.engine)
            request, _ = engine.fast_settings(request, "text2video")
            shape = (request.num_frames, request.width, request.height)
            return [self.sampling_cost(engine, request, "text2video", *shape),
                    self.writing_cost("text2video", *shape)]
        if isinstance(request, ControlVideoRequest):
            request = request.validate(settings, preview=preview)
            shape = self.window_shape(request.video, request.window, max_frames=studio._control_cap(request))  # noqa: SLF001
            costs = []
            if studio.control_maps.get(studio._maps_key(request)) is None:  # noqa: SLF001
                costs.append(self.detection_cost(request, *shape))
            if preview:
                costs.append(self.writing_cost("control-preview", *shape))
            else:
                engine = engines.get(request.engine)
                request, _ = engine.fast_settings(request, "control")
                costs += [self.sampling_cost(engine, request, "control", *shape),
                          self.writing_cost("control", *shape)]
            return [cost for cost in costs if cost is not None]
        if isinstance(request, EditVideoRequest):
            request = request.validate(settings)
            engine = engines.default("edit")
            request, _ = engine.fast_settings(request, "edit")
            shape = self.window_shape(request.video, request.window, max_frames=frame_cap(engine, "edit", settings))
            return [self.sampling_cost(engine, request, "edit", *shape), self.writing_cost("edit", *shape)]
        if isinstance(request, TuneRequest):
            request = request.validate(settings)
            engine = engines.default("tune")
            _, width, height = self.window_shape(request.video, request.window, engine.rules.size_multiple)
            shape = (request.num_frames, width, height)
            return [self.sampling_cost(engine, request, "tune", *shape), self.writing_cost("tune", *shape)]
        if isinstance(request, RunTunedRequest):
            request = request.validate(settings)
            if HUB_REPO_ID.fullmatch(request.tuned):
                raise TypeError("a Hub model's size is known once it is fetched")  # no download for an estimate
            info = studio.tuned.find(request.tuned).info
            shape = (request.num_frames or int(info["frames"]), int(info["width"]), int(info["height"]))
            engine = engines.default("tuned")
            return [self.sampling_cost(engine, request, "tuned", *shape), self.writing_cost("tuned", *shape)]
        raise TypeError(f"no estimate for a {type(request).__name__}")

    # ------------------------------------------------------------------ each stage's cost
    def sampling_cost(self, engine: engines.Engine, request, tab: str, frames: int, width: int, height: int) -> Cost:
        fast = bool(getattr(request, "fast", False))
        work = engine.work(request, tab, frames, width, height)
        prior = sampling_prior(engine, tab, fast, self.device_kind(), self.studio.settings.preset)
        return Cost(what=("sampling", engine.name, tab, fast), work=work,
                    prior_s=prior.seconds(frames, width, height, work))

    def detection_cost(self, request: ControlVideoRequest, frames: int, width: int, height: int) -> Cost | None:
        """Finding the control maps of `frames` frames (None for a skeleton video: its frames are the maps)."""
        if request.kind == "pose" and request.is_skeleton:
            return None
        extras = bool(request.kind == "pose" and (request.pose_hands or request.pose_face))
        prior = detection_prior(request.kind, extras, self.device_kind(), self.studio.settings.preset)
        return Cost(what=("detection", request.kind, extras), work=frames * width * height / UNIT,
                    prior_s=prior.seconds(frames, width, height))

    @staticmethod
    def writing_cost(kind: str, frames: int, width: int, height: int) -> Cost:
        """Writing the video (mp4 and GIF, and the control maps' mp4 where there are maps) of `kind` of job."""
        return Cost(what=("writing", kind), work=frames * width * height / UNIT,
                    prior_s=WRITING.seconds(frames, width, height))

    # ------------------------------------------------------------------ seconds, and "measured"
    def seconds(self, cost: Cost) -> tuple[float, bool]:
        """(seconds, measured): the jobs of the same kind measured here nearest in size, each scaled by the
        prior's shape (fixed and per-size parts); else the prior times this server's speed on the stage's
        other kinds (not "measured": no job of this kind ran here); else the prior."""
        same = self.costs.nearest(cost)
        if same and cost.prior_s > 0:  # the median of a few: one job slowed by something else moves it little
            return statistics.median(_rate(m) for m in same) * cost.prior_s, True
        if same:
            return statistics.median(m.seconds / m.cost.work for m in same) * cost.work, True
        others = self.costs.latest_of(lambda what: what[0] == cost.what[0], SPEED_SAMPLES)
        rates = [_rate(m) for m in others if m.cost.prior_s > 0]
        if rates:
            low, high = SPEED_BOUNDS
            return cost.prior_s * min(max(statistics.median(rates), low), high), False
        return cost.prior_s, False

    def device_kind(self) -> str:
        """"cuda" or "cpu": where this server's jobs run, found without importing torch for it."""
        studio = self.studio
        for worker in studio.pool.workers:
            if worker.loaded_manager is not None:
                return "cuda" if worker.loaded_manager.device.type == "cuda" else "cpu"
        name = (studio.settings.devices or (studio.settings.device,))[0]
        if name != "auto":
            return "cuda" if name.startswith("cuda") else "cpu"
        cuda = getattr(sys.modules.get("torch"), "cuda", None)  # None while another thread is still importing torch
        if cuda is not None:
            return "cuda" if cuda.is_available() else "cpu"
        on_zerogpu = "spaces" in sys.modules and zerogpu_spaces() is not None
        return "cuda" if on_zerogpu or os.path.exists("/dev/nvidiactl") else "cpu"

    # ------------------------------------------------------------------ an upload's shape, from its header
    def window_shape(self, path: str, window, multiple: int = 8, max_frames: int | None = None
                     ) -> tuple[int, int, int]:
        """(frames, width, height) that `Studio._read` would give, from the upload's header (probed once per file)."""
        studio = self.studio
        identity = upload_identity(path)
        probed = studio._probes.get(identity)  # noqa: SLF001
        if probed is None:
            try:
                probed = video_io.probe_video(path, studio._source_limits())  # noqa: SLF001
            except video_io.VideoError:
                probed = UNREADABLE
            studio._probes.put(identity, probed)  # noqa: SLF001
        if probed is UNREADABLE:
            raise video_io.VideoError("The video cannot be read.")
        limits = studio.settings.limits
        largest = max(tab_frame_cap(tab, studio.settings) for tab in engines.TABS)
        start, end, fps, _ = video_io.fit_window(  # read_video's own fitting, without decoding
            probed, window.start, window.end or None, window.fps or None, max_frames=max_frames or largest,
            max_seconds=limits.max_video_seconds, min_auto_fps=video_io.MIN_AUTO_FPS)
        width, height = video_io.output_size(probed.width, probed.height, long_side=window.resolution,
                                             max_pixels=limits.max_pixels, multiple=multiple)
        return video_io.frame_count(start, end, fps), width, height


UNREADABLE = "unreadable"  # a probe's answer for an upload that is no video


def upload_identity(path: str) -> tuple:
    """An upload as the caches know it: its path, size and modification time (a new file is a new key)."""
    stat = os.stat(path)
    return (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)


def _rate(measurement) -> float:
    """How much longer than its prior a measured stage took."""
    return measurement.seconds / measurement.cost.prior_s
