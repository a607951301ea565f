"""The engine contract: what every registered engine must do, in every tab it serves (tiny preset).

A new engine gets these tests by registering (modules/engines/__init__.py): frames and size
follow its own rules, a seed fixes the frames, progress comes every step, a cancel stops within
one step, the bfloat16 path runs, and a run's params.json loads back in its tab and remakes it.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from modules import engines, video_io
from modules.job_control import Cancelled, JobControl
from modules.request_types import ControlVideoRequest, EditVideoRequest, Text2VideoRequest, VideoWindow
from modules.settings import Settings
from modules.studio import Studio
from tests.tuning_tabs import TUNING_TABS, run_tuning, tuning_request

SIDE = 64
STEPS = 3
CASES = [pytest.param(engine, tab, id=f"{engine.name}-{tab}") for engine in engines.all_engines()
         for tab in engines.TABS if tab in engine.tabs]


class RecordingControl(JobControl):
    """A JobControl that records every step call and can cancel after a given step."""

    def __init__(self, cancel_after: int | None = None):
        super().__init__()
        self.steps: list[tuple[int, int]] = []
        self.cancel_after = cancel_after

    def step(self, done: int, total: int, phase: str = "", **options) -> None:
        self.steps.append((done, total))
        super().step(done, total, phase, **options)
        if self.cancel_after is not None and len(self.steps) >= self.cancel_after:
            self.cancel()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A small moving clip for the tabs that read a video."""
    frames = np.zeros((6, SIDE, SIDE, 3), np.uint8)
    for i in range(len(frames)):
        frames[i, 10:40, 8 + 4 * i: 30 + 4 * i] = (200, 120, 40)
    return str(video_io.write_mp4(frames, tmp_path_factory.mktemp("clip") / "clip.mp4", 6))


@pytest.fixture(scope="module")
def studios(tmp_path_factory):
    made = {}

    def studio(dtype: str = "float32") -> Studio:
        if dtype not in made:
            folder = tmp_path_factory.mktemp(f"outputs-{dtype}")
            made[dtype] = Studio(Settings.from_env(preset="tiny", device="cpu", dtype=dtype, outputs_dir=str(folder)))
        return made[dtype]

    return studio


def contract_frames(engine) -> int:
    """The fewest frames of at least 4 that the engine's rule takes (4; 5 for 4k+1; 9 for 8k+1)."""
    return next(n for n in range(4, 1000) if engine.rules.frames.fits(n))


def make_request(engine, tab: str, clip: str, seed: int, studio: Studio | None = None):
    frames = contract_frames(engine)
    if tab in TUNING_TABS:  # a tuned model's clip from noise: with DDIM inversion the seed changes nothing
        more = {"inversion": False} if tab == "tuned" else {}
        return tuning_request(studio, tab, clip, frames=frames, steps=STEPS, seed=seed, side=SIDE, **more)
    if tab == "text2video":
        return Text2VideoRequest(prompt="a red ball rolling", engine=engine.name, num_frames=frames, width=SIDE,
                                 height=SIDE, steps=STEPS, seed=seed, chunk_size=frames, fps=4)
    window = VideoWindow(resolution=SIDE, fps=frames)  # about `frames` frames of the 1 s clip
    if tab == "control":
        return ControlVideoRequest(kind="edge", video=clip, prompt="a golden box", engine=engine.name, steps=STEPS,
                                   seed=seed, window=window)
    return EditVideoRequest(video=clip, prompt="make it snow", steps=STEPS, seed=seed, window=window)


def run(studio: Studio, tab: str, request, control: JobControl | None = None):
    if tab in TUNING_TABS:
        return run_tuning(studio, tab, request, control)
    method = {"text2video": studio.text2video, "control": studio.control_video, "edit": studio.edit_video}[tab]
    return method(request, control)


def frames_of(result) -> np.ndarray:
    return video_io.read_video(result.video).frames


@pytest.fixture(scope="module")
def first_runs(studios, clip):
    """Each case's seed-1 run and the step calls it made (shared by the tests below)."""
    runs = {}

    def first(engine, tab):
        key = (engine.name, tab)
        if key not in runs:
            control = RecordingControl()
            request = make_request(engine, tab, clip, seed=1, studio=studios())
            runs[key] = (run(studios(), tab, request, control), control.steps)
        return runs[key]

    return first


@pytest.mark.parametrize("engine, tab", CASES)
def test_contract_frames_and_size_follow_the_engines_rules(engine, tab, first_runs):
    result, _ = first_runs(engine, tab)
    assert engine.rules.frames.fits(result.num_frames)
    assert result.width % engine.rules.size_multiple == 0 and result.height % engine.rules.size_multiple == 0
    frames = frames_of(result)
    assert frames.shape[0] == result.num_frames and frames.shape[1:3] == (result.height, result.width)
    if tab == "text2video":
        assert (result.num_frames, result.width, result.height) == (contract_frames(engine), SIDE, SIDE)


@pytest.mark.parametrize("engine, tab", CASES)
def test_contract_same_seed_same_frames_other_seed_other_frames(engine, tab, first_runs, remade_runs, studios, clip):
    result, _ = first_runs(engine, tab)
    other = run(studios(), tab, make_request(engine, tab, clip, seed=2, studio=studios()))
    assert np.array_equal(frames_of(remade_runs(engine, tab)), frames_of(result))  # seed 1 again, from params.json
    assert not np.array_equal(frames_of(other), frames_of(result))


@pytest.mark.parametrize("engine, tab", CASES)
def test_contract_progress_is_reported_every_step(engine, tab, first_runs):
    _, steps = first_runs(engine, tab)
    assert len(steps) >= STEPS
    totals = {total for _, total in steps}
    assert len(totals) == 1 and [done for done, _ in steps] == list(range(1, len(steps) + 1)), steps
    assert steps[-1][0] == steps[-1][1]  # the last step says it is the last


@pytest.mark.parametrize("engine, tab", CASES)
def test_contract_a_cancel_stops_within_one_step(engine, tab, studios, clip):
    control = RecordingControl(cancel_after=1)
    with pytest.raises(Cancelled):
        run(studios(), tab, make_request(engine, tab, clip, seed=3, studio=studios()), control)
    assert len(control.steps) <= 2  # the step that saw the cancel raised: no step ran after it


@pytest.mark.parametrize("engine, tab", CASES)
def test_contract_the_bfloat16_path_runs(engine, tab, studios, clip):
    studio = studios("bfloat16")
    result = run(studio, tab, make_request(engine, tab, clip, seed=1, studio=studio))
    record = json.loads(open(result.params).read())
    assert record["dtype"] == "torch.bfloat16"
    frames = frames_of(result)
    assert frames.shape[0] == result.num_frames and frames.std() > 0


@pytest.fixture(scope="module")
def remade_runs(first_runs, studios, clip):
    """Each case's seed-1 run made again from its params.json, loaded as its tab loads it."""
    runs = {}

    def remade(engine, tab):
        from modules.tune_requests import RunTunedRequest, TuneRequest
        from modules.ui import controlnet, edit, text2video, tune
        from modules.ui.params_files import read_params_file, request_from_params

        if (engine.name, tab) in runs:
            return runs[engine.name, tab]
        result, _ = first_runs(engine, tab)
        data = read_params_file(result.params)
        settings = studios().settings
        if tab == "text2video":
            text2video.form_from_params(settings, data)  # the tab accepts it (raises otherwise)
            request = request_from_params(Text2VideoRequest, data, settings)
        elif tab == "tune":
            tune.tune_form_from_params(settings, data, clip)
            request = replace(request_from_params(TuneRequest, data, settings, video_stand_in=clip), video=clip)
        elif tab == "tuned":
            tune.run_form_from_params(settings, data)
            request = request_from_params(RunTunedRequest, data, settings)
        elif tab == "control":
            controlnet.form_from_params(settings, "edge", data, clip)
            request = replace(request_from_params(ControlVideoRequest, data, settings, video_stand_in=clip), video=clip)
        else:
            edit.form_from_params(settings, data, clip)
            request = request_from_params(EditVideoRequest, data, settings, video_stand_in=clip)
        assert data["mode"] == engine.mode(tab, "edge") and data.get("engine", engine.name) == engine.name
        assert getattr(request, "engine", engine.name) == engine.name
        runs[engine.name, tab] = run(studios(), tab, request)
        return runs[engine.name, tab]

    return remade


@pytest.mark.parametrize("engine, tab", CASES)
def test_contract_params_json_loads_back_in_its_tab_and_remakes_the_frames(engine, tab, first_runs, remade_runs):
    result, _ = first_runs(engine, tab)
    assert np.array_equal(frames_of(remade_runs(engine, tab)), frames_of(result))


def test_contract_covers_every_registered_engine():
    covered = {case.values[0].name for case in CASES}
    assert covered == set(engines.names("text2video")) | {e.name for e in engines.all_engines()}
    assert len(CASES) * 6 >= 12
