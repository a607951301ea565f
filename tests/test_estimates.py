"""The page's cost estimates (modules/estimates.py): the tiny preset's priors against its real runs, when an
estimate may say "measured here", and Compare's estimate."""

from __future__ import annotations

import numpy as np
import pytest

from modules import engines, video_io
from modules.estimates import Estimate, Prior, sampling_prior
from modules.jobs import Cost, Measurement
from modules.request_types import CompareRequest, ControlVideoRequest, Text2VideoRequest, VideoWindow
from modules.settings import Settings
from modules.studio import Studio
from modules.ui import running

SIDE = 64


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> str:
    """A 1 s clip of 8 frames at 64²: a window at 5 fps reads 5 of them."""
    frames = np.zeros((8, SIDE, SIDE, 3), np.uint8)
    for i in range(len(frames)):
        frames[i, 12:40, 4 + 4 * i: 28 + 4 * i] = (200, 120, 40)
    return str(video_io.write_mp4(frames, tmp_path_factory.mktemp("clip") / "clip.mp4", 8))


def fresh_studio(tmp_path) -> Studio:
    return Studio(Settings.from_env(preset="tiny", device="cpu", outputs_dir=str(tmp_path)))


def text2video(engine: str, **more) -> Text2VideoRequest:
    frames = engines.get(engine).rules.frames.nearest(9)
    return Text2VideoRequest(**{**dict(prompt="a red ball rolling", engine=engine, num_frames=frames, width=SIDE,
                                       height=SIDE, steps=4, seed=1), **more})


def job_seconds(studio: Studio, run) -> float:
    """The seconds of the stages the job's estimate covers (sampling, detection, writing; not loading models),
    as the job logged them."""
    before = studio.runner.costs.latest_of(lambda what: True, 1000)
    run()
    logged = studio.runner.costs.latest_of(lambda what: True, 1000)
    return sum(m.seconds for m in logged[: len(logged) - len(before)])


@pytest.fixture
def one_thread():
    """One torch thread, as the tiny figures were measured: two threads on a shared 2-core machine wait on each
    other thousands of times a job (benchmarks/estimates.py)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_fresh_tiny_server_estimates_within_twice_and_says_measured_only_after_that_kind_ran(tmp_path, clip,
                                                                                                 one_thread):
    """Each kind's estimate before anything ran is within 2x of its run, says "estimate" until a job of that same
    engine, tab and mode ran here, and "measured here" after; another engine's stays an estimate."""
    studio = fresh_studio(tmp_path)
    control = ControlVideoRequest(kind="edge", video=clip, prompt="a dancer", engine="wan", steps=4, seed=1,
                                  window=VideoWindow(resolution=SIDE, fps=5))
    kinds = {"wan": (text2video("wan"), studio.text2video),
             "cogvideox": (text2video("cogvideox"), studio.text2video),
             "wan edge": (control, studio.control_video)}
    before = {name: studio.estimate(request) for name, (request, _) in kinds.items()}
    assert all(estimate is not None and estimate.measured is False for estimate in before.values()), before
    for done, (name, (request, run)) in enumerate(kinds.items()):
        assert studio.estimate(request).measured is False, name
        took = job_seconds(studio, lambda: run(request))
        assert studio.estimate(request).measured is True, name
        if took > before[name].seconds * 2:  # a load spike on a shared machine (CI runs tests side by side): once more
            took = min(took, job_seconds(studio, lambda: run(request)))
        assert before[name].seconds / 2 <= took <= before[name].seconds * 2, (name, before[name], took)
        for later, (other, _) in list(kinds.items())[done + 1:]:
            assert studio.estimate(other).measured is False, (name, later)  # its engine or tab has not run yet
    # The same kind at another size is measured too (scaled by the prior's shape); Fast is another kind.
    assert studio.estimate(text2video("wan", steps=8)).measured is True
    assert studio.estimate(text2video("wan", fast=True)).measured is False


def test_the_label_needs_the_same_kind_not_the_same_stage(tmp_path):
    """The defect: any engine's job made every engine's estimate "measured on this server"."""
    studio = fresh_studio(tmp_path)
    wan, modelscope = text2video("wan"), text2video("modelscope")
    for cost in studio.estimates.costs_of(wan, preview=False):  # as if a Wan job had taken 3x its prior
        studio.runner.costs.add(Measurement(cost=cost, device="cpu", seconds=3 * cost.prior_s))
    assert studio.estimate(wan).measured is True
    other = studio.estimate(modelscope)
    assert other.measured is False
    prior = sum(cost.prior_s for cost in studio.estimates.costs_of(modelscope, preview=False))
    assert other.seconds == pytest.approx(3 * prior)  # this server's speed still informs it
    text = running.estimate_text(studio, modelscope)
    assert text.endswith("(estimate).") and "measured" not in text
    assert running.estimate_text(studio, wan).endswith("(measured here).")


def test_compare_estimates_the_sum_of_its_engines(tmp_path):
    studio = fresh_studio(tmp_path)
    settings = studio.settings
    chosen = ("wan", "modelscope", "cogvideox")
    request = CompareRequest(prompt="a red ball rolling", engines=chosen, num_frames=8, width=SIDE, height=SIDE,
                             steps=0)
    estimate = studio.estimate(request)
    parts = [studio.estimate(request.validate(settings).for_engine(name, settings)) for name in chosen]
    assert isinstance(estimate, Estimate) and all(parts)
    assert estimate.seconds == pytest.approx(sum(part.seconds for part in parts))
    assert estimate.measured is False
    assert [part.seconds for part in parts] != [parts[0].seconds] * 3  # each engine at its own default steps
    one = studio.estimate(CompareRequest(prompt="a red ball rolling", engines=("wan",), num_frames=8, width=SIDE,
                                         height=SIDE))
    assert one.seconds == pytest.approx(parts[0].seconds)
    assert studio.estimate(CompareRequest(prompt="a red ball rolling", engines=())) is None  # none ticked
    assert running.estimate_text(studio, request).endswith("(estimate).")


def test_every_engine_and_tab_has_figures_for_both_presets_and_devices():
    """A prior per engine x tab x device kind, the tiny preset's measured, none of them zero."""
    for engine in engines.all_engines():
        for tab in engine.tabs:
            assert (tab, False) in engine.tiny_priors, (engine.name, tab)  # declared by the engine itself
            if (tab, False) not in engine.cpu_priors:
                pytest.fail(f"no CPU figures for {engine.name} in {tab}")
            for device in ("cpu", "cuda"):
                for preset in ("real", "tiny"):
                    prior = sampling_prior(engine, tab, False, device, preset)
                    assert isinstance(prior, Prior) and prior.seconds(8, 512, 512, 10.0) > 0


def test_the_writing_and_sampling_costs_keep_their_fixed_part(tmp_path):
    """A small job is not estimated at its size's share of a large one: fixed costs stay."""
    studio = fresh_studio(tmp_path)
    small, large = (studio.estimates.costs_of(text2video("wan", num_frames=n, steps=2), preview=False)
                    for n in (5, 17))
    for short, long in zip(small, large):
        assert isinstance(short, Cost) and short.prior_s > 0
        assert short.prior_s / long.prior_s > short.work / long.work  # not proportional: a fixed part


def test_an_estimate_is_given_while_torch_is_still_being_imported(monkeypatch, tmp_path):
    """The app imports torch in the background at start: a half-imported torch (no `cuda` yet) in sys.modules
    must not make every estimate of the first seconds fail (the page then showed none)."""
    import sys
    import types

    from modules.request_types import Text2VideoRequest
    from modules.settings import Settings
    from modules.studio import Studio

    studio = Studio(Settings.from_env(preset="tiny", outputs_dir=str(tmp_path)))
    monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))  # as a partial import looks
    assert studio.estimate(Text2VideoRequest(prompt="a clip", num_frames=4)) is not None
