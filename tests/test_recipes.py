"""Each engine runs its authors' recipe in every tab (issue 28): RECIPES.md is the table, with its sources.

Three checks, `-k recipe`:
- the registry's declared recipes equal the table, row by row (an engine x tab without a row fails);
- what reaches the pipeline or our loop, for a request that names the engine and leaves every value at its
  default, equals the row: the scheduler's class and config, steps, guidance, negative prompt, frames, size
  (where the tab makes them) and the clip's fps. The spy stops the job before any denoising, so the
  published sizes (832x480, 81 frames) cost nothing on the tiny weights; the tiny preset's smaller form
  (fewer steps, 128-pixel sides) is switched off here, so the values are the published ones;
- the README's engine table agrees with the table's text-to-video rows.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from modules import engines, forms, video_io
from modules.engines.base import Recipe
from modules.errors import UserError
from modules.request_types import ControlVideoRequest, EditVideoRequest, Text2VideoRequest, VideoWindow
from modules.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
CLIP = str(ROOT / "assets" / "edge_box.mp4")
COLUMNS = ("engine", "tab", "steps", "guidance", "negative", "frames", "cap", "fps", "size", "scheduler", "config",
           "other")


def _value(text: str):
    """A table cell's value: numbers, True/False, or the text."""
    if text in ("True", "False"):
        return text == "True"
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _pairs(cell: str) -> dict:
    return {} if cell == "—" else {k: _value(v) for k, v in (item.split("=", 1) for item in cell.split(", "))}


def table() -> dict[tuple[str, str], Recipe]:
    """RECIPES.md's first table as `Recipe`s ("clip" is 0: the input's frames or rate)."""
    text = (ROOT / "RECIPES.md").read_text()
    rows = {}
    for line in text.split("## Sources")[0].splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != len(COLUMNS) or cells[0] in ("engine", "---"):
            continue
        row = dict(zip(COLUMNS, cells))
        width, height = (int(side) for side in row["size"].split("×"))
        rows[(row["engine"], row["tab"])] = Recipe(
            steps=int(row["steps"]), guidance_scale=float(row["guidance"]),
            negative_prompt="" if row["negative"] == "—" else row["negative"].strip("`"),
            frames=0 if row["frames"] == "clip" else int(row["frames"]), max_frames=int(row["cap"]),
            fps=0.0 if row["fps"] == "clip" else float(row["fps"]), width=width, height=height,
            scheduler=row["scheduler"], scheduler_config=_pairs(row["config"]), extra=_pairs(row["other"]))
    return rows


ROWS = table()
SERVED = sorted((engine.name, tab) for engine in engines.all_engines() for tab in engine.tabs)


def test_recipe_table_has_a_row_and_a_source_for_every_engine_and_tab():
    assert sorted(ROWS) == SERVED
    sources = (ROOT / "RECIPES.md").read_text().split("## Sources")[1]
    for engine, tab in SERVED:
        assert re.search(rf"^\| {re.escape(engine)} \| {tab} \| \S", sources, re.M), (engine, tab)


@pytest.mark.parametrize("engine, tab", SERVED)
def test_recipe_declared_equals_the_table(engine, tab):
    assert engines.get(engine).recipe(tab) == ROWS[(engine, tab)]


def test_recipe_engine_table_in_readme_agrees():
    """The README's engine table gives each text-to-video engine's steps, guidance, frames and size."""
    readme = (ROOT / "README.md").read_text()
    for (engine, tab), recipe in ROWS.items():
        if tab != "text2video":
            continue
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{engine}`"))
        size = f"{recipe.width}²" if recipe.width == recipe.height else f"{recipe.width}×{recipe.height}"
        for shown in (f"{recipe.frames} frames", size, f"{recipe.steps} steps", f"guidance {recipe.guidance_scale:g}"):
            assert shown in row, (engine, shown)


# ------------------------------------------------------------------------------------------------ the calls
class Captured(Exception):
    """Raised by a spy once the call is recorded: the job stops before any denoising."""


def _pipeline(target: str, names: dict):
    """A spy on a diffusers pipeline's __call__: its keyword arguments (named as the table's) and scheduler."""
    def spy(self, *args, **kwargs):
        seen.update({ours: kwargs.get(theirs) for ours, theirs in names.items()}, scheduler=self.scheduler)
        raise Captured
    seen: dict = {}
    return target, spy, seen


def _loop(target: str, names: dict, scheduler):
    """A spy on one of our loops: its keyword arguments and the scheduler `scheduler(args)` picks."""
    def spy(*args, **kwargs):
        seen.update({ours: kwargs.get(theirs) for ours, theirs in names.items()}, scheduler=scheduler(args, kwargs))
        raise Captured
    seen: dict = {}
    return target, spy, seen


PIPE = dict(steps="num_inference_steps", guidance_scale="guidance_scale", negative_prompt="negative_prompt",
            num_frames="num_frames", height="height", width="width")
LOOP = dict(steps="steps", guidance_scale="guidance_scale", negative_prompt="negative_prompt",
            num_frames="num_frames", height="height", width="width")
CONTROL = dict(LOOP, conditioning_scale="conditioning_scale")
PIPE_CONTROL = dict(PIPE, conditioning_scale="conditioning_scale")


def spy_for(engine: str, tab: str):
    first_scheduler = lambda args, kwargs: args[0].scheduler  # noqa: E731 - Components first
    return {
        ("text2video-zero", "text2video"): lambda: _loop("modules.engine.generate_text2video", LOOP, first_scheduler),
        ("text2video-zero", "control"): lambda: _loop("modules.engine.generate_control_video", CONTROL,
                                                      first_scheduler),
        ("text2video-zero", "edit"): lambda: _loop("modules.engine.generate_edit_video",
                                                   dict(LOOP, image_guidance_scale="image_guidance_scale"),
                                                   first_scheduler),
        ("animatediff", "text2video"): lambda: _pipeline(
            "modules.engines.animatediff.sampling._AnimateDiffPipeline.__call__", PIPE),
        ("animatediff", "control"): lambda: _pipeline(
            "modules.engines.animatediff.sampling._AnimateDiffControlNetPipeline.__call__",
            dict(PIPE, conditioning_scale="controlnet_conditioning_scale")),
        ("modelscope", "text2video"): lambda: _loop("modules.engines.modelscope.sampling.generate_modelscope", LOOP,
                                                    first_scheduler),
        ("wan", "text2video"): lambda: _pipeline("modules.engines.wan.sampling._WanPipeline.__call__", PIPE),
        ("wan", "control"): lambda: _pipeline("modules.engines.wan.vace._WanVACEPipeline.__call__", PIPE_CONTROL),
        ("cogvideox", "text2video"): lambda: _pipeline("modules.engines.cogvideox.sampling._Pipeline.__call__", PIPE),
        ("tune-a-video", "tune"): lambda: _loop("modules.engines.tune_a_video.train.tune",
                                                dict(training_steps="steps", learning_rate="learning_rate"),
                                                lambda args, kwargs: None),
        ("tune-a-video", "tuned"): lambda: _loop("modules.engines.tune_a_video.inference.generate", LOOP,
                                                 lambda args, kwargs: None),
    }[(engine, tab)]()


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    from modules.studio import Studio

    return Studio(Settings.from_env(preset="tiny", device="cpu", outputs_dir=str(tmp_path_factory.mktemp("out")),
                                    tuned_dir=str(tmp_path_factory.mktemp("tuned"))))


@pytest.fixture
def published(monkeypatch):
    """The form at the published values: no tiny-preset scaling of steps and sizes."""
    monkeypatch.setattr(Settings, "default_steps", lambda self, steps: steps)
    monkeypatch.setattr(forms, "engine_size", lambda settings, engine, size: size)


def request_for(studio, engine: str, tab: str):
    """The tab's request naming `engine`, every other value left at its default."""
    if tab == "text2video":
        return Text2VideoRequest(prompt="a red fox in the snow", engine=engine)
    if tab == "control":
        return ControlVideoRequest(kind="edge", video=CLIP, prompt="a golden box", engine=engine)
    if tab == "edit":
        return EditVideoRequest(video=CLIP, prompt="make it snow")
    from tests.tuning_tabs import tuned_model

    from modules.tune_requests import RunTunedRequest, TuneRequest

    if tab == "tune":
        return TuneRequest(video=CLIP, prompt="a box slides", window=VideoWindow(resolution=64))
    return RunTunedRequest(tuned=tuned_model(studio, CLIP, 64), prompt="a blue box slides")


def run(studio, tab: str, request):
    return {"text2video": studio.text2video, "control": studio.control_video, "edit": studio.edit_video,
            "tune": studio.tune_video, "tuned": studio.run_tuned}[tab](request)


def job_fps(studio, tab: str, request) -> float:
    """The frame rate the job of `request` writes its clip at."""
    make = {"text2video": studio._text2video_job, "control": studio._control_job, "edit": studio._edit_job}  # noqa: SLF001
    return make[tab](request).fps


@pytest.mark.parametrize("engine, tab", SERVED)
def test_recipe_reaches_the_pipeline(studio, published, monkeypatch, engine, tab):
    expected = ROWS[(engine, tab)]
    request = request_for(studio, engine, tab)  # (a tuned model is made before the spy goes in)
    target, spy, seen = spy_for(engine, tab)
    monkeypatch.setattr(target, spy)
    with pytest.raises(UserError):  # the spy's Captured, answered as an unexpected error
        run(studio, tab, request)
    assert seen, f"{target} was not called"
    if tab == "tune":
        assert (seen["training_steps"], seen["learning_rate"]) == (expected.extra["training_steps"],
                                                                   expected.extra["learning_rate"])
        validated = request.validate(studio.settings)
        assert (validated.sample_steps, validated.guidance_scale) == (expected.steps, expected.guidance_scale)
        return
    assert seen["steps"] == expected.steps
    assert seen["guidance_scale"] == expected.guidance_scale
    assert (seen["negative_prompt"] or "") == expected.negative_prompt
    for name, value in expected.extra.items():
        assert seen[name] == value, name
    if expected.frames:
        assert (seen["num_frames"], seen["width"], seen["height"]) == (expected.frames, expected.width,
                                                                        expected.height)
    if seen["scheduler"] is not None:
        scheduler = seen["scheduler"]
        assert type(scheduler).__name__ == expected.scheduler
        for key, value in expected.scheduler_config.items():
            assert scheduler.config[key] == value, key
    if tab != "tuned":  # (a tuned model's clip plays at its model's rate: test_tune_studio)
        clip_fps = video_io.probe_video(CLIP, video_io.SourceLimits()).fps  # "clip": the upload's own rate
        assert job_fps(studio, tab, request) == (expected.fps or clip_fps)


@pytest.mark.parametrize("engine", [e.name for e in engines.for_tab("control")])
def test_recipe_caps_a_control_window_at_the_engines_clip(studio, engine):
    request = ControlVideoRequest(kind="edge", video=CLIP, prompt="x", engine=engine)
    assert studio._control_cap(request) == ROWS[(engine, "control")].max_frames  # noqa: SLF001


def test_recipe_an_explicit_value_wins_and_a_call_without_engine_keeps_its_results(studio):
    settings = studio.settings
    explicit = Text2VideoRequest(prompt="x", engine="wan", steps=7, guidance_scale=3.0, negative_prompt="",
                                 num_frames=13, width=96, height=64, fps=12).validate(settings)
    assert (explicit.steps, explicit.guidance_scale, explicit.negative_prompt, explicit.num_frames,
            explicit.width, explicit.height, explicit.fps) == (7, 3.0, "", 13, 96, 64, 12.0)
    plain = Text2VideoRequest(prompt="x").validate(settings)
    assert plain == replace(Text2VideoRequest(prompt="x"), engine="text2video-zero",  # the old defaults, unchanged
                            model=settings.default_base_model)
    control = ControlVideoRequest(kind="edge", video=CLIP, prompt="x").validate(settings)
    assert (control.steps, control.guidance_scale) == (20, 9.0)


def test_recipe_params_json_records_the_loaded_schedulers_config(studio):
    """params.json's scheduler settings are read from the scheduler that ran, not from a constant."""
    import json

    result = studio.text2video(Text2VideoRequest(prompt="x", engine="wan", num_frames=5, width=64, height=64,
                                                 steps=2))
    recorded = json.loads(Path(result.params).read_text())["scheduler_config"]
    assert recorded["class"] == "UniPCMultistepScheduler"
    assert (recorded["flow_shift"], recorded["prediction_type"]) == (3.0, "flow_prediction")
    assert np.isfinite(recorded["flow_shift"])
