"""Which benchmark each registered engine has, and the `--mode` values that follow from it.

The engines are the registry's (`modules.engines.all_engines()`); `BENCHMARKS` says, per engine
name, which modes benchmark which of its tabs, where the case is built (ours against diffusers'
reference on the same weights) and where `--fast` is measured. `--mode <engine name>` runs the
engine's first mode (text2video-zero: text2video). An engine registered without an entry here is
still a `--mode` value, and says "no benchmark for engine X yet" instead of running.

Builders are named as "module:function" of this package and imported when a run needs them, so
parsing the flags imports neither torch nor diffusers.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module

from modules.engines.base import CONTROL_KINDS

SWITCHING = "switching"  # the zero-shot engine's mode switching (ModelManager), benchmarks/switching.py
TUNE = "tune"  # Tune-A-Video's one-shot training steps (modules/engines/tune_a_video), benchmarks/tune.py
BACKEND = "backend"  # the Ray backend's per-job overhead against the local one (tiny preset), benchmarks/backend.py
ESTIMATES = "estimates"  # the tiny preset's cost figures for the page's estimates, benchmarks/estimates.py
# Modes of their own (no ours-vs-reference case): tied to no engine, unless an engine's benchmark lists one.
SPECIAL = (SWITCHING, TUNE, BACKEND, ESTIMATES)


@dataclass(frozen=True)
class EngineBenchmark:
    """One engine's benchmark. `case`: "module:function" taking (mode, *, arch, size, steps,
    device, dtype, seed[, chunk_size, compile]) and returning a `harness.Case`; `fast`:
    ("module:function", "module:table") for `--fast`, the function taking (args, device, dtype,
    log, engine) and returning the result dict; None where the engine has no fast benchmark."""

    tabs: dict[str, tuple[str, ...]]  # the engine's tab -> the --mode values that benchmark it
    case: str
    fast: tuple[str, str] | None = None
    chunks_and_compile: bool = False  # --chunk-size and --compile apply (our zero-shot loops)
    # "module:table": `case` is then a benchmark of its own, taking (args, log) and returning the result dict.
    table: str | None = None

    @property
    def modes(self) -> tuple[str, ...]:
        return tuple(mode for modes in self.tabs.values() for mode in modes)


BENCHMARKS: dict[str, EngineBenchmark] = {
    "text2video-zero": EngineBenchmark(
        tabs={"text2video": ("text2video",), "control": CONTROL_KINDS, "edit": ("edit",)},
        case="cases:build_case", fast=("fast:fast_benchmark", "fast:table"), chunks_and_compile=True,
    ),
    "animatediff": EngineBenchmark(
        tabs={"text2video": ("animatediff",)}, case="engines:build_animatediff_case",
        fast=("engines:lightning_benchmark", "engines:lightning_table"),
    ),
    "modelscope": EngineBenchmark(tabs={"text2video": ("modelscope",)}, case="engines:build_modelscope_case"),
    "wan": EngineBenchmark(tabs={"text2video": ("wan",)}, case="wan:build_wan_case",
                           fast=("wan:anyflow_benchmark", "wan:anyflow_table")),
    "cogvideox": EngineBenchmark(tabs={"text2video": ("cogvideox",)}, case="cogvideox:build_cogvideox_case"),
    "tune-a-video": EngineBenchmark(tabs={"tune": (TUNE,)}, case="tune:benchmark", table="tune:table"),
}


def load(name: str):
    """The function "module:function" names, in this package."""
    module, function = name.split(":")
    return getattr(import_module(f".{module}", __package__), function)


def engine_names() -> tuple[str, ...]:
    from modules.engines import all_engines

    return tuple(engine.name for engine in all_engines())


def mode_engines() -> dict[str, str]:
    """Every `--mode` value but the special ones -> the name of the engine it benchmarks: each registered
    engine's own name, and the modes of its benchmark."""
    mapping = {}
    for name in engine_names():
        mapping[name] = name
        if name in BENCHMARKS:
            mapping.update({mode: name for mode in BENCHMARKS[name].modes})
    return mapping


def special_modes() -> tuple[str, ...]:
    """The modes of SPECIAL that no registered engine's benchmark claims: they run tied to no engine."""
    claimed = mode_engines()
    return tuple(mode for mode in SPECIAL if mode not in claimed)


def choices() -> tuple[str, ...]:
    return (*mode_engines(), *special_modes())


def missing() -> tuple[str, ...]:
    """Registered engines that have no benchmark yet."""
    return tuple(name for name in engine_names() if name not in BENCHMARKS)


def resolve_mode(mode: str) -> tuple[str, str, EngineBenchmark | None]:
    """(the mode to run, its engine's name, the engine's benchmark or None): an engine's name runs
    its first mode. KeyError for a mode no registered engine has."""
    engine = mode_engines()[mode]
    spec = BENCHMARKS.get(engine)
    if spec is None:
        return mode, engine, None
    return (spec.modes[0] if mode == engine else mode), engine, spec


def help_text() -> str:
    parts = []
    for name in engine_names():
        spec = BENCHMARKS.get(name)
        if spec is None:
            parts.append(f"{name}: no benchmark yet")
            continue
        modes = list(spec.modes)
        if modes[0] != name:
            modes[0] += f" (also --mode {name})"
        parts.append(f"{name}: {', '.join(modes)}")
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------- runs
def run(args, log) -> tuple[dict, object]:
    """Run the benchmark `args` ask for (after `cli.parse_args`): (the result dict, its table function)."""
    from . import harness

    if args.engine is None and args.mode == SWITCHING:
        from . import switching

        return switching.benchmark(args, log), switching.table
    if args.engine is None and args.mode == TUNE:
        from . import tune

        return tune.benchmark(args, log), tune.table
    if args.engine is None and args.mode == BACKEND:
        from . import backend

        return backend.benchmark(args, log), backend.table
    if args.engine is None and args.mode == ESTIMATES:
        from . import estimates

        return estimates.benchmark(args, log), estimates.table
    from modules.engines import get

    spec = BENCHMARKS[args.engine]
    if spec.table is not None:
        result = load(spec.case)(args, log)
        result["engine"] = args.engine
        return result, load(spec.table)
    if args.fast:
        bench, table_of = (load(name) for name in spec.fast)
        device, dtype = harness.resolve(args)
        load_before = harness.loadavg()
        result = bench(args, device, dtype, log, get(args.engine))
        result = harness.finish(result, device, load_before)
        result["engine"] = args.engine
        return result, table_of
    build = load(spec.case)

    def build_case(device, dtype):
        options = dict(arch=args.arch, size=args.size, steps=args.steps, device=device, dtype=dtype, seed=args.seed)
        if spec.chunks_and_compile:
            options.update(chunk_size=args.chunk_size, compile=args.compile)
        return build(args.mode, **options)

    breakdown = None
    if args.breakdown:
        from .breakdown import Breakdown as breakdown
    result = harness.compare(args, build_case, log, breakdown=breakdown)
    result["engine"] = args.engine
    return result, harness.table
