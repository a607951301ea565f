"""The registry is the one place that knows the engines: what it declares, and who may name them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from modules import engines

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
# The app's own name and Hub repo ids carry "text2video-zero" without meaning the engine.
NOT_AN_ENGINE_NAME = re.compile(r"text2video-zero[ -]studio|[\w.-]+/[\w.-]*text2video-zero[\w.-]*", re.I)


def engine_home(engine) -> Path:
    """The engine's own module, or its folder."""
    module = type(engine).__module__.split(".")
    path = ROOT.joinpath(*module)
    return path if path.is_dir() else path.with_suffix(".py")


def files_naming(name: str) -> set[Path]:
    pattern = re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w])", re.I)
    found = set()
    for path in (ROOT / "modules").rglob("*.py"):
        text = NOT_AN_ENGINE_NAME.sub("", path.read_text())
        if pattern.search(text):
            found.add(path)
    return found


@pytest.mark.parametrize("engine", engines.all_engines(), ids=lambda e: e.name)
def test_an_engine_is_named_only_in_its_own_module_and_at_most_two_other_files(engine):
    home = engine_home(engine)
    others = {p for p in files_naming(engine.name) if home not in (p, *p.parents)}
    assert len(others) <= 2, sorted(str(p.relative_to(ROOT)) for p in others)


def test_studio_manager_and_ui_name_no_engine():
    for path in [ROOT / "modules" / "studio.py", ROOT / "modules" / "models.py", *(ROOT / "modules" / "ui").glob("*.py")]:
        text = NOT_AN_ENGINE_NAME.sub("", path.read_text())
        for engine in engines.all_engines():
            if path.name == "__init__.py" and engine.name == "text2video-zero":
                continue  # the page's title is the app's name (the method's)
            assert not re.search(rf"(?<![\w-]){re.escape(engine.name)}(?![\w])", text, re.I), (path.name, engine.name)


def test_every_tab_has_a_default_engine_and_modes_map_back_to_their_tab():
    for tab in engines.TABS:
        assert engines.default(tab).serves(tab)
    for engine in engines.all_engines():
        for tab in engine.tabs:
            kinds = engines.CONTROL_KINDS if tab == "control" else ("",)
            for kind in kinds:
                assert engines.mode_tab(engine.mode(tab, kind)) == tab


@pytest.mark.parametrize("engine", engines.all_engines(), ids=lambda e: e.name)
def test_declarations_are_consistent(engine):
    assert engine.label and engine.title and engine.defaults.steps >= engine.rules.min_steps
    assert engine.rules.frames.fits(engine.rules.frames.nearest(engine.defaults.frames))
    assert engine.defaults.side % engine.rules.size_multiple == 0
    if engine.fast is not None:
        for tab in engine.tabs:
            recipe = engine.fast.for_tab(tab)
            assert recipe["steps"] in engine.fast.steps and recipe["guidance_scale"] <= engine.fast.max_guidance
    for spec in engine.models:
        assert spec.kind in ("pipeline", "components", "module", "file") and spec.build_tiny is not None
        assert spec.kind != "file" or (spec.from_state is not None and spec.default_file)
        assert (spec.kind == "components") == bool(spec.components)
        assert set(spec.dtypes) | set(spec.stages) <= set(spec.components)
    assert engines.find(engine.name.upper()) is engine


@pytest.mark.parametrize("engine", engines.all_engines(), ids=lambda e: e.name)
def test_readme_engine_table_matches_the_registry(engine):
    row = next((line for line in README.splitlines() if line.startswith(f"| `{engine.name}`")), None)
    assert row is not None, f"README's engine table has no row for {engine.name}"
    defaults = row.split("|")[-2]
    assert f"{engine.defaults.steps} " in defaults and f"guidance {engine.defaults.guidance_scale:g}" in defaults, row
    width, height = engine.defaults.size
    assert (f"{width}²" if width == height else f"{width}×{height}") in defaults, row
    for spec in engine.models:
        if spec.env:
            assert f"`T2VZ_{spec.env}`" in README
    if engine.fast is not None:
        assert engine.fast.name in README


def test_registering_an_engine_is_one_line():
    from modules.engines.base import Engine, Recipe, Registry

    class Toy(Engine):
        name = "toy"
        label = "Toy"
        recipes = {"text2video": Recipe(steps=20, guidance_scale=5.0)}

    registry = Registry()
    registry.register(Toy())
    assert list(registry.engines) == ["toy"]
    with pytest.raises(ValueError):
        registry.register(Toy())  # names are unique
    bad = type("Bad", (Engine,), {"name": "bad", "tabs": frozenset({"nowhere"})})
    with pytest.raises(ValueError, match="unknown tabs"):
        registry.register(bad())
    unsourced = type("Unsourced", (Engine,), {"name": "unsourced"})  # an engine declares a recipe for every tab
    with pytest.raises(ValueError, match="declares recipes for"):
        registry.register(unsourced())


def test_an_engine_without_a_capability_is_refused_in_a_sentence():
    from modules.errors import UserError
    from modules.request_types import Text2VideoRequest
    from modules.settings import Settings

    settings = Settings.from_env(preset="tiny")
    for engine in engines.for_tab("text2video"):
        if engine.fast is None:
            with pytest.raises(UserError, match=f"Fast mode has no few-step weights for {engine.title}"):
                engine.fast_settings(Text2VideoRequest(prompt="a", fast=True, engine=engine.name), "text2video")
        if "storyboard" not in engine.inputs:
            with pytest.raises(UserError, match="takes one prompt"):
                Text2VideoRequest(prompt="0: a\n4: b", width=64, height=64, engine=engine.name).validate(settings)


@pytest.mark.parametrize("multiple, offset, cases", [
    (1, 0, {0: 1, 1: 1, 7: 7}),
    (4, 1, {0: 1, 1: 1, 4: 1, 5: 5, 80: 77, 81: 81}),  # Wan's 4k+1
    (8, 1, {48: 41, 49: 49}),  # CogVideoX's 8k+1
    (4, 0, {0: 4, 3: 4, 4: 4, 9: 8}),
])
def test_frame_rule_nearest_is_the_largest_fitting_count_at_most_the_given_one(multiple, offset, cases):
    from modules.engines.base import FrameRule

    rule = FrameRule(multiple, offset)
    for frames, expected in cases.items():
        assert rule.nearest(frames) == expected and rule.fits(expected), (frames, rule.nearest(frames))
    assert not rule.fits(0)


@pytest.mark.parametrize("multiple, offset, maximum, cases", [
    (4, 1, 64, {2: 1, 3: 5, 6: 5, 7: 9, 8: 9, 64: 61}),  # a tie goes up; never past the cap
    (8, 1, 64, {2: 1, 5: 9, 8: 9, 16: 17, 60: 57}),
    (1, 0, 64, {1: 1, 30: 30}),
])
def test_frame_rule_closest_is_the_nearest_fitting_count_within_the_cap(multiple, offset, maximum, cases):
    from modules.engines.base import FrameRule

    rule = FrameRule(multiple, offset)
    for frames, expected in cases.items():
        assert rule.closest(frames, maximum) == expected and rule.fits(expected), (frames, rule.closest(frames, maximum))
