"""What a tab's form starts at for an engine on this server: the engine's published recipe (its `Recipe`),
fitted to the server's settings (its caps; the tiny preset's small sizes and few steps).

The page sets these values when the engine changes; request validation gives them to a call that names an
engine and leaves a value at the tab's default (`with_recipe`), so `client.predict(video, prompt,
engine=..., api_name="/pose2video")` runs that engine's recipe while a call that names no engine runs as before.
No Gradio here: validation and the UI both read it.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, fields, replace

from . import engines
from .settings import Settings

SIZE_MULTIPLE = 8  # the VAE's down-scaling; SD's UNet pads other sizes itself

# The request fields a recipe sets in each tab, and the recipe's value for each ("extra" values by name).
RECIPE_FIELDS = {
    "text2video": ("negative_prompt", "num_frames", "width", "height", "steps", "guidance_scale", "fps"),
    "control": ("negative_prompt", "steps", "guidance_scale", "conditioning_scale"),
}


def floor_to(value: float, multiple: int) -> int:
    return int(value // multiple * multiple)


def ceil_to(value: float, multiple: int) -> int:
    return int(-(-value // multiple) * multiple)


def side_bounds(settings: Settings) -> tuple[int, int]:
    """The sizes a side may take: within min_side..max_side and a multiple of 8."""
    limits = settings.limits
    return ceil_to(limits.min_side, SIZE_MULTIPLE), floor_to(limits.max_side, SIZE_MULTIPLE)


def side_maximum(settings: Settings, other_side) -> int:
    """The largest side that, with `other_side`, stays within max_pixels (and max_side)."""
    low, high = side_bounds(settings)
    try:
        other = max(float(other_side), 1.0)
    except (TypeError, ValueError):
        other = low
    if not math.isfinite(other):
        other = low
    return max(low, min(high, floor_to(settings.limits.max_pixels / other, SIZE_MULTIPLE)))


def frame_cap(engine: engines.Engine, tab: str, settings: Settings) -> int:
    """The most frames `engine` makes in `tab` here: the server's T2VZ_MAX_FRAMES where set, else the
    engine's own (its published clip, or what its windows make: RECIPES.md)."""
    return settings.limits.max_frames or engine.recipe(tab).max_frames


def tab_frame_cap(tab: str, settings: Settings) -> int:
    """The most frames any engine of `tab` makes here (a slider's maximum before an engine is chosen)."""
    return max(frame_cap(engine, tab, settings) for engine in engines.for_tab(tab))


def engine_size(settings: Settings, engine: engines.Engine, size: tuple[int, int]) -> tuple[int, int]:
    """The engine's published (width, height) as the form starts it: in the tiny preset scaled so the
    long side is the preset's small resolution; within the server's limits, multiples of the
    engine's size rule (a square default stays square)."""
    width, height = size
    if settings.preset == "tiny":
        scale = min(1.0, settings.default_resolution / max(width, height))
        width, height = width * scale, height * scale
    multiple = max(SIZE_MULTIPLE, engine.rules.size_multiple)
    low, _ = side_bounds(settings)
    low = ceil_to(low, multiple)
    width, height = max(low, floor_to(width, multiple)), max(low, floor_to(height, multiple))
    width = min(width, floor_to(side_maximum(settings, height), multiple))
    return width, min(height, floor_to(side_maximum(settings, width), multiple))


def form_values(engine: engines.Engine, tab: str, settings: Settings) -> dict:
    """The request fields of `tab` (RECIPE_FIELDS) as the form starts them for `engine` on this server."""
    recipe = engine.recipe(tab)
    width, height = engine_size(settings, engine, recipe.size)
    frames = min(recipe.frames, frame_cap(engine, tab, settings))
    values = dict(
        negative_prompt=recipe.negative_prompt,
        num_frames=engine.rules.frames.nearest(frames) if frames else 0,
        width=width, height=height,
        steps=min(settings.default_steps(recipe.steps), settings.limits.max_steps),
        guidance_scale=recipe.guidance_scale, fps=recipe.fps, **recipe.extra,
    )
    return {name: values[name] for name in RECIPE_FIELDS.get(tab, ())}


def _same(value, default) -> bool:
    """Whether a request's value is the form's default (numbers compare as numbers: 20 and 20.0 and "20")."""
    if isinstance(default, str) or isinstance(value, bool):
        return value == default
    try:
        return float(value) == float(default)
    except (TypeError, ValueError):
        return False


def with_recipe(request, tab: str, settings: Settings):
    """`request` with the chosen engine's recipe for the values it leaves at the tab's defaults (None, the
    request's own default, or what the page starts the tab's default engine at). A request for the tab's
    default engine, or for an engine this tab doesn't serve (validation answers that), is returned as is."""
    engine = engines.find(getattr(request, "engine", None))
    default = engines.default(tab)
    if engine is None or engine is default or tab not in engine.tabs:
        return request
    own = form_values(engine, tab, settings)
    tab_default = form_values(default, tab, settings)
    declared = {f.name: f.default for f in fields(request) if f.default is not MISSING}
    changes = {}
    for name, value in own.items():
        current = getattr(request, name)
        if current is None or _same(current, tab_default[name]) or (name in declared and _same(current, declared[name])):
            changes[name] = value
    return replace(request, **changes)
