"""The engine registry: every engine the app serves, one line each, in the order the UI offers them.

Adding an engine is a module (or folder) here that defines `ENGINE` (an `Engine` subclass's
instance, see base.py) and one line in `ENGINE_MODULES`. Validation, the UI, Studio, the model
manager, `--download`, the docs test and the benchmarks read the registry; none names an engine.
"""

from __future__ import annotations

from importlib import import_module

from .base import CONTROL_KINDS, TABS, Engine, JobInputs, ModelComponents, ModelSpec, Registry

ENGINE_MODULES = (
    "text2video_zero",
    "animatediff",
    "modelscope",
    "wan",
    "cogvideox",
    "tune_a_video",
)

REGISTRY = Registry()
for _module in ENGINE_MODULES:
    REGISTRY.register(import_module(f".{_module}", __name__).ENGINE)

__all__ = ["REGISTRY", "TABS", "Engine", "JobInputs", "ModelComponents", "ModelSpec", "all_engines", "default", "find",
           "for_tab", "get", "model_specs", "names", "with_fast"]


def all_engines() -> list[Engine]:
    return list(REGISTRY.engines.values())


def for_tab(tab: str) -> list[Engine]:
    return [engine for engine in REGISTRY.engines.values() if tab in engine.tabs]


def names(tab: str = "text2video") -> tuple[str, ...]:
    return tuple(engine.name for engine in for_tab(tab))


def default(tab: str = "text2video") -> Engine:
    """The tab's default engine: the first registered that serves it."""
    return for_tab(tab)[0]


def get(name: str) -> Engine:
    return REGISTRY.engines[name]


def find(name) -> Engine | None:
    """The engine called `name`, whatever its case and surrounding spaces; None if there is none."""
    if not isinstance(name, str):
        return None
    wanted = name.strip().lower()
    return next((engine for engine in REGISTRY.engines.values() if engine.name == wanted), None)


def with_fast(tab: str) -> list[Engine]:
    """The tab's engines whose few-step weights serve it (a recipe may serve some of its engine's tabs only)."""
    return [engine for engine in for_tab(tab) if engine.fast is not None and engine.fast.serves(tab)]


def model_specs() -> list[tuple[Engine, ModelSpec]]:
    """Every engine's own model parts (the shared SD 1.5 parts are the manager's)."""
    return [(engine, spec) for engine in REGISTRY.engines.values() for spec in engine.models]


def mode_tab(mode) -> str | None:
    """Which tab made a params.json of `mode` ("text2video", "text2video-<engine>", "pose2video", "edit", ...)."""
    if not isinstance(mode, str):
        return None
    for engine in REGISTRY.engines.values():
        for tab in engine.tabs:
            kinds = CONTROL_KINDS if tab == "control" else ("",)
            if any(engine.mode(tab, kind) == mode for kind in kinds):
                return tab
    return None
