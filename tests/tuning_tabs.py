"""Requests and runs of the tabs that train and run tuned models ("tune", "tuned"), for the tests that go
over every registered engine's tabs (test_engine_contract, test_job_progress)."""

from __future__ import annotations

from modules.request_types import VideoWindow
from modules.tune_requests import RunTunedRequest, TuneRequest

TRAINING_STEPS = 2
TUNING_TABS = ("tune", "tuned")
_TUNED: dict = {}  # (tuned-models folder, clip, side, dtype) -> the model's name


def tuning_request(studio, tab: str, clip: str, *, frames: int, steps: int, seed: int, side: int, **more):
    """A "tune" request on `clip`, or a "tuned" request for a model tuned once on it (per studio)."""
    if tab == "tune":
        return TuneRequest(video=clip, prompt="an orange box slides", steps=TRAINING_STEPS, learning_rate=1e-3,
                           sample_steps=steps, num_frames=frames, seed=seed,
                           window=VideoWindow(resolution=side, fps=frames), **more)
    return RunTunedRequest(tuned=tuned_model(studio, clip, side), prompt="a blue box slides", steps=steps, seed=seed,
                           num_frames=frames, **more)


def run_tuning(studio, tab: str, request, control=None):
    """The tab's job; the video result (a training run's is its sample clip)."""
    if tab == "tune":
        return studio.tune_video(request, control).video
    return studio.run_tuned(request, control)


def tuned_model(studio, clip: str, side: int) -> str:
    key = (studio.settings.tuned_dir, clip, side, studio.settings.dtype)
    if key not in _TUNED:
        request = tuning_request(studio, "tune", clip, frames=4, steps=2, seed=7, side=side, name="tuned-for-tests")
        _TUNED[key] = studio.tune_video(request).model
    return _TUNED[key]
