"""`python -m benchmarks` runs end to end on the tiny components and ends with one JSON line.

No timing asserts (CI machines are noisy); only that the report is complete and that our
engine made the reference pipeline's frames.

The benchmark runs (`run_benchmark`) call `benchmarks.cli.main(argv)` in this test process, with
the argv `python -m benchmarks` would get (flag parsing and checks included), and read its stdout:
a subprocess per run spent 7-10 s of its 10-20 s importing torch, diffusers and transformers again.
What a run changes in the process (warnings filters, diffusers/transformers logging and progress
bars, os.environ, torch's threads, default dtype, grad mode and RNG) is put back after it, so the
tests after it in the same (xdist) worker see the process as it was. Two runs stay subprocesses:
the --json-only case of `test_benchmark_reports_and_matches_reference`, which keeps the real
`python -m benchmarks` entry point covered and checks that nothing else in the process writes to
its stdout, and the --compile experiment (not in CI), whose inductor state outlives a run.
"""

import ast
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from benchmarks import cli, harness, modes
from modules import engines

SLOW = pytest.mark.slow  # end-to-end benchmark runs (in this process, or `python -m benchmarks` in a subprocess)
ROOT = Path(__file__).resolve().parents[1]
NUMBERS = (
    "size", "frames", "steps", "seconds_ours", "seconds_reference", "speedup", "unet_steps_per_s_ours",
    "unet_steps_per_s_reference", "peak_mem_mb_ours", "peak_mem_mb_reference",
)  # fmt: skip
STRINGS = ("mode", "arch", "device", "dtype", "torch", "diffusers", "date")


def run_benchmark(*args: str, timeout: int = 120, subprocess_run: bool = False) -> tuple[dict, str]:
    """The benchmark with these flags (after the tiny, CPU, one-repeat defaults): (its last stdout line as
    JSON, all of stdout). In this process (`cli.main`), or with `subprocess_run` as `python -m benchmarks`
    in a subprocess, where `timeout` applies."""
    argv = ["--arch", "tiny", "--device", "cpu", "--repeats", "1", "--warmup", "0", "--steps", "3", *args]
    if subprocess_run:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
        proc = subprocess.run([sys.executable, "-m", "benchmarks", *argv], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=timeout)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        stdout = proc.stdout
    else:
        stdout = run_cli_in_process(argv)
    lines = stdout.strip().splitlines()
    return json.loads(lines[-1]), stdout


def run_cli_in_process(argv: list[str]) -> str:
    """`cli.main(argv)` here, its stdout captured (its progress lines on stderr go to pytest's capture); then
    the process-wide state a run changes is put back, whether it passed or failed."""
    import torch
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    environ = dict(os.environ)  # cli.main: HF_HUB_OFFLINE (setdefault); --mode backend: OMP_NUM_THREADS
    threads = torch.get_num_threads()  # --mode backend: 1
    dtype, grad = torch.get_default_dtype(), torch.is_grad_enabled()  # CogVideoX's builders; training
    # cli.main: diffusers logs errors only; --mode switching: no transformers progress bars
    libs = (diffusers_logging, transformers_logging)
    logs = [(lib, lib.get_verbosity(), lib.is_progress_bar_enabled()) for lib in libs]
    stdout = io.StringIO()
    try:
        # catch_warnings: cli.main's filterwarnings; fork_rng: the builders' torch.manual_seed (CPU generator)
        with warnings.catch_warnings(), torch.random.fork_rng(devices=[]), contextlib.redirect_stdout(stdout):
            try:
                code = cli.main(argv)
            except SystemExit as exit_info:  # a flag refused (argparse), or a run's own check
                code = exit_info.code
    finally:
        torch.set_num_threads(threads)
        torch.set_default_dtype(dtype)
        torch.set_grad_enabled(grad)
        for lib, verbosity, bars in logs:
            lib.set_verbosity(verbosity)
            (lib.enable_progress_bar if bars else lib.disable_progress_bar)()
        for name in set(os.environ) - set(environ):
            del os.environ[name]
        for name, value in environ.items():
            if os.environ.get(name) != value:
                os.environ[name] = value
    # `python -m benchmarks` exits 0 on a return of 0 or SystemExit(None)
    assert code in (0, None), f"python -m benchmarks {' '.join(argv)}: exit {code!r}\n{stdout.getvalue()[-3000:]}"
    return stdout.getvalue()


@pytest.mark.parametrize(
    "mode, frames, json_only",
    [("text2video", 4, False), ("pose", 3, False), ("edit", 3, True)],
)
@SLOW
def test_benchmark_reports_and_matches_reference(mode, frames, json_only):
    # The --json-only case runs `python -m benchmarks` in a subprocess: the module entry point (as .ci/run runs it),
    # and a check that nothing else in the process writes to its stdout; the others run in this process.
    result, stdout = run_benchmark("--mode", mode, "--frames", str(frames), *(["--json-only"] if json_only else []),
                                   subprocess_run=json_only)
    for key in STRINGS:
        assert isinstance(result[key], str) and result[key], key
    for key in NUMBERS:
        value = result[key]
        assert isinstance(value, (int, float)) and not isinstance(value, bool), key
        # A peak RSS delta can be 0 when the allocator reuses memory it already holds.
        assert value > 0 or (key.startswith("peak_mem") and value >= 0), (key, value)
    assert (result["mode"], result["arch"], result["device"], result["dtype"]) == (mode, "tiny", "cpu", "float32")
    assert (result["frames"], result["steps"], result["size"]) == (frames, 3, 64)
    assert result["unet_calls_ours"] == result["unet_calls_reference"] > 0
    assert 0 <= result["max_abs_diff"] < 1e-4
    if json_only:
        assert len(stdout.strip().splitlines()) == 1
    else:
        assert "s/video" in stdout  # the table came before the JSON


@SLOW
def test_mode_switching_benchmark_runs_and_reports_both_engines():
    result, _ = run_benchmark("--mode", "switching", "--arch", "tiny", "--json-only")
    rows = result["rows"]
    assert [r["mode"] for r in rows if r["engine"] == "ours"] == [
        "text2video", "edge", "depth", "pose", "edit", "text2video", "edge", "depth", "pose", "edit", "text2video",
    ]
    assert {r["engine"] for r in rows} == {"ours", "naive"}
    assert result["switch_seconds_ours"] > 0 and result["switch_seconds_naive"] > 0


@SLOW
@pytest.mark.experiment  # 1.5 min of inductor on 2 cores for an experiment: `-m experiment` runs it, CI does not
@pytest.mark.skipif(shutil.which("g++") is None, reason="inductor on CPU needs a C++ compiler")
def test_compiled_engine_makes_the_reference_frames():
    """--compile (an experiment the README reports on): torch.compile'd UNet, same frames. The editing mode
    runs one UNet shape (text to video runs two: the first frame alone, then all), so inductor compiles one
    graph: about 2 min instead of 3 on 2 cores with a cold inductor cache."""
    # A subprocess: the run sets inductor's global config (freezing) and leaves dynamo's caches and inductor's
    # compile workers behind in its process; an experiment outside CI, so the imports it repeats cost CI nothing.
    result, stdout = run_benchmark("--mode", "edit", "--frames", "2", "--steps", "2", "--warmup", "1", "--compile",
                                   timeout=600, subprocess_run=True)
    assert result["compile"] is True and "torch.compile'd" in stdout
    assert result["unet_calls_ours"] == result["unet_calls_reference"] > 0
    assert 0 <= result["max_abs_diff"] < 1e-4


@SLOW
@pytest.mark.parametrize("mode, calls_fast, calls_default", [("text2video", 5, 53), ("pose", 4, 20), ("edit", 4, 50)])
def test_fast_benchmark_reports_fast_and_scaled_default(mode, calls_fast, calls_default):
    """--fast: LCM-LoRA + LCM at 4 steps + TAESD against the default mode, scaled to its step count
    from a run at --steps 3 (tiny components; no timing asserts)."""
    result, stdout = run_benchmark("--mode", mode, "--frames", "3", "--fast")
    assert result["fast"] is True and result["mode"] == mode and result["fast_frames_ok"] is True
    for key in ("seconds_fast", "seconds_default", "seconds_default_measured", "seconds_reference", "speedup_fast",
                "speedup_fast_vs_reference", "lora_attach_seconds"):  # fmt: skip
        assert isinstance(result[key], float) and result[key] > 0, key
    assert result["seconds_default_scaled"] is True and result["seconds_reference_scaled"] is True
    assert (result["steps_fast"], result["measured_default_steps"]) == (4, 3)
    assert (result["unet_calls_fast"], result["unet_calls_default"]) == (calls_fast, calls_default)
    assert result["unet_calls_default_measured"] == result["unet_calls_reference_measured"] > 0
    assert (result["scheduler_fast"], result["decoder_fast"], result["decoder_default"]) == ("lcm", "taesd", "vae")
    assert "speed-up fast vs default" in stdout


@SLOW
@pytest.mark.parametrize("mode", ["animatediff", "modelscope"])
def test_engine_benchmarks_match_diffusers_pipelines(mode):
    """--mode animatediff|modelscope: ours against AnimateDiffPipeline / TextToVideoSDPipeline on the
    same weights, same frames; AnimateDiff's reference holds a second copy of the UNet, ours doesn't;
    --frames-sweep reports FreeNoise's peak memory per frame count."""
    sweep = ["--frames-sweep", "8,20"] if mode == "animatediff" else []
    result, stdout = run_benchmark("--mode", mode, "--frames", "4", *sweep, timeout=300)
    assert result["mode"] == mode and "s/video" in stdout and "weights MB" in stdout
    assert result["unet_calls_ours"] == result["unet_calls_reference"] == 3
    assert 0 <= result["max_abs_diff"] < 1e-4
    if mode == "animatediff":
        assert result["weights_mb_reference"] > result["weights_mb_ours"] * 1.1  # the copied 2D UNet
        assert [s["frames"] for s in result["frames_sweep"]] == [8, 20]
        assert all(s["unet_calls"] == 3 and s["peak_mem_mb"] >= 0 for s in result["frames_sweep"])
    else:
        assert result["weights_mb_reference"] == result["weights_mb_ours"]


@SLOW
def test_wan_benchmark_matches_diffusers_wan_pipeline():
    """--mode wan: ours against a plain WanPipeline on the same weights: the same frames, two
    transformer calls a step (guidance), 8 frames fitted to 4k+1."""
    result, stdout = run_benchmark("--mode", "wan", "--frames", "8", "--steps", "2", timeout=300)
    assert result["mode"] == "wan" and "s/video" in stdout
    assert result["unet_calls_ours"] == result["unet_calls_reference"] == 4
    assert result["max_abs_diff"] < 1e-5


@SLOW
def test_cogvideox_benchmark_matches_diffusers_cogvideox_pipeline():
    """--mode cogvideox: ours against a plain CogVideoXPipeline on the same weights: the same frames, one
    transformer call a step (guidance is batched), 8 frames fitted to the nearest 8k+1."""
    result, stdout = run_benchmark("--mode", "cogvideox", "--frames", "8", "--steps", "2", timeout=300)
    assert result["mode"] == "cogvideox" and "s/video" in stdout
    assert result["unet_calls_ours"] == result["unet_calls_reference"] == 2
    assert result["max_abs_diff"] < 1e-5


def test_cogvideox_case_keeps_the_text_encoder_apart_and_matches_the_pipeline_in_process():
    """The --mode cogvideox case at --arch tiny, built in this process (no subprocess): ours and the plain
    CogVideoXPipeline make the same frames from the same weights (held once), the transformer's calls are
    the counted ones, and --breakdown's parts time the text encoder apart from the steps and the decoder."""
    import numpy as np
    import torch

    from benchmarks.cogvideox import build_cogvideox_case

    case = build_cogvideox_case(arch="tiny", size=32, steps=2, device=torch.device("cpu"), dtype=torch.float32)
    assert set(case.parts) == {"text_encoder", "unet", "vae_decoder"} and case.counted == [case.unet]
    assert type(case.unet).__name__ == "CogVideoXTransformer3DModel" and case.parts["text_encoder"].config.num_layers == 2
    with torch.no_grad():  # as the harness runs both sides
        ours, reference = case.ours(8), case.reference(8)  # 8 frames: the nearest 8k+1 is 9
    assert ours.shape == reference.shape == (9, 32, 32, 3) and np.abs(ours - reference).max() < 1e-5
    assert case.weights_mb["ours"] == case.weights_mb["reference"] > 0


@SLOW
def test_animatediff_fast_benchmark_times_lightning_against_the_scaled_default():
    result, stdout = run_benchmark("--mode", "animatediff", "--frames", "4", "--fast", timeout=300)
    assert result["fast"] is True and result["scheduler_fast"] == "lightning" and result["decoder_fast"] == "taesd"
    assert (result["unet_calls_fast"], result["unet_calls_default"], result["unet_calls_default_measured"]) == (4, 25, 3)
    assert result["seconds_default_scaled"] is True and result["measured_default_steps"] == 3
    for key in ("seconds_fast", "seconds_default", "seconds_default_measured", "seconds_per_default_step", "speedup_fast"):
        assert isinstance(result[key], float) and result[key] > 0, key
    assert "speed-up fast vs default" in stdout


@SLOW
def test_wan_fast_benchmark_times_anyflow_against_the_scaled_default():
    result, stdout = run_benchmark("--mode", "wan", "--frames", "5", "--size", "32", "--steps", "2", "--fast",
                                   "--repeats", "1", timeout=300)
    assert result["fast"] is True and result["scheduler_fast"] == "flowmap_euler" and result["steps_fast"] == 4
    assert (result["transformer_calls_fast"], result["transformer_calls_default"],
            result["transformer_calls_default_measured"]) == (4, 100, 4)  # guidance: two calls a default step
    assert result["seconds_default_scaled"] is True and result["speedup_fast"] > 0
    assert "speed-up fast vs default" in stdout


@SLOW
def test_tune_benchmark_reports_step_time_memory_and_the_saved_parameters(tmp_path):
    """--mode tune (tiny, 2 steps, the first a warm-up): Tune-A-Video training steps; the table with the
    scaled 8 x 512x512 row beside the published GPU figures, then the JSON line with its fields."""
    result, stdout = run_benchmark("--mode", "tune", "--steps", "2", "--warmup", "1", "--frames", "4")
    assert (result["mode"], result["arch"], result["dtype"], result["steps"], result["frames"]) == (
        "tune", "tiny", "float32", 2, 4)
    assert result["gradient_checkpointing"] is True and len(result["step_seconds"]) == len(result["losses"]) == 2
    assert result["seconds_per_step"] == result["step_seconds"][1] > 0
    assert result["peak_mem_mb"] >= 0 and result["peak_mem_total_mb"] > 0
    assert result["trained_parameters"] > 0
    # The file save_tuned writes for these parameters: float32 tensors plus the safetensors header.
    from modules import tiny
    from modules.engines.tune_a_video.attention import add_video_layers
    from modules.engines.tune_a_video.weights import WEIGHTS_NAME, save_tuned

    layers = add_video_layers(tiny.build_unet(seed=1))
    try:
        parameters = layers.state_dict()
    finally:
        layers.remove()
    assert sum(t.numel() for t in parameters.values()) == result["trained_parameters"]
    save_tuned(tmp_path, parameters, base_model="random-weights tiny", training_prompt=harness.PROMPT, steps=2,
               learning_rate=result["learning_rate"])
    assert (tmp_path / WEIGHTS_NAME).stat().st_size == result["weights_file_bytes"]
    assert result["weights_file_bytes"] > 4 * result["trained_parameters"]
    assert result["scale_factor"] == 512 * 512 * 8 / (64 * 64 * 4) and result["scaled"] is True
    assert result["scaled_seconds_300_steps"] == pytest.approx(300 * result["seconds_per_step"] * result["scale_factor"])
    assert {(p["hardware"], p["minutes"]) for p in result["published"]} >= {("A100", "≈ 4"), ("T4", "≈ 20")}
    for row in ("measured here", "SCALED to 8 frames x 512x512", "not measured", "published: Tune-A-Video Space, A100",
                "published: Tune-A-Video Space, T4", "published: Tune-A-Video paper", "trained parameters",
                "tune_a_video.safetensors", "peak memory"):  # fmt: skip
        assert row in stdout, row


def test_tune_mode_is_the_tuning_engines_benchmark_or_a_special_mode_and_refuses_other_flags(capsys, monkeypatch):
    """`--mode tune` is listed once and runs benchmarks/tune.py: as the benchmark of the engine whose
    BENCHMARKS entry lists it (`--mode <that engine>` too), or, with none, tied to no engine like switching.
    Flags it has no use for are refused."""
    def tune_engine():
        return next((name for name, spec in modes.BENCHMARKS.items() if modes.TUNE in spec.modes), None)

    for claimed in (True, False):
        if not claimed:
            monkeypatch.setattr(modes, "BENCHMARKS", {k: v for k, v in modes.BENCHMARKS.items() if k != tune_engine()})
        choices = modes.choices()
        assert {"tune", "switching"} <= set(choices) and len(set(choices)) == len(choices)
        assert ("tune" in modes.special_modes()) == (tune_engine() is None)
        args = cli.parse_args(["--mode", "tune", "--arch", "sd15", "--dtype", "bfloat16", "--steps", "3"])
        assert (args.mode, args.engine, args.steps) == ("tune", tune_engine(), 3)
        if tune_engine() is not None:
            assert cli.parse_args(["--mode", tune_engine()]).mode == "tune"
            assert modes.BENCHMARKS[tune_engine()].table == "tune:table"
        for argv, message in ((["--fast"], "--mode tune runs without --fast"),
                              (["--chunk-size", "4"], "--mode tune runs without --chunk-size"),
                              (["--breakdown"], "--mode tune runs without --breakdown"),
                              (["--steps", "2", "--warmup", "2"], "give --steps > --warmup")):  # fmt: skip
            with pytest.raises(SystemExit):
                cli.parse_args(["--mode", "tune", *argv])
            assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.parse_args(["--help"])
    assert "tune" in capsys.readouterr().out


def test_every_registered_engine_has_a_benchmark_mode():
    """`--mode <engine name>` exists for every engine of the registry and runs its benchmark; each
    benchmark's modes cover tabs the engine serves, and none is left for an engine no longer registered."""
    registered = {engine.name: engine for engine in engines.all_engines()}
    assert modes.missing() == (), f"no benchmark for {modes.missing()}: add one to benchmarks/modes.py BENCHMARKS"
    assert set(modes.BENCHMARKS) <= set(registered)
    for name, engine in registered.items():
        spec = modes.BENCHMARKS[name]
        assert spec.modes and set(spec.tabs) <= set(engine.tabs), name
        args = cli.parse_args(["--mode", name])
        assert (args.engine, args.mode) == (name, spec.modes[0])
        for mode in spec.modes:
            assert cli.parse_args(["--mode", mode]).engine == name
        assert (spec.fast is not None) == (engine.fast is not None), f"{name}: --fast benchmark vs its fast recipe"
    assert cli.parse_args(["--mode", "text2video-zero"]).mode == "text2video"  # what .ci/run and the README run


def test_zero_shot_benchmark_modes_are_the_cases_modes():
    from benchmarks import cases

    assert modes.BENCHMARKS["text2video-zero"].modes == cases.MODES


def test_engine_without_a_benchmark_is_reported_not_crashed(monkeypatch, capsys):
    class NewEngine(engines.Engine):
        name = "new-engine"
        title = "New engine"

    monkeypatch.setitem(engines.REGISTRY.engines, NewEngine.name, NewEngine())
    assert modes.missing() == ("new-engine",)
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args(["--mode", "new-engine"])
    assert exit_info.value.code == 2
    assert "no benchmark for engine new-engine yet" in capsys.readouterr().err
    assert cli.parse_args(["--mode", "text2video"]).engine == "text2video-zero"  # the others still run


@pytest.mark.parametrize("argv, message", [
    (["--mode", "modelscope", "--fast"], "--mode modelscope runs without --fast"),
    (["--mode", "animatediff", "--compile"], "--mode animatediff runs without --compile"),
    (["--mode", "animatediff", "--chunk-size", "4"], "--mode animatediff runs without --chunk-size"),
])  # fmt: skip
def test_flags_an_engine_benchmark_lacks_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit):
        cli.parse_args(argv)
    assert message in capsys.readouterr().err


def test_benchmark_modules_import_without_cycles_and_the_harness_imports_none():
    """harness.py is the shared harness: it imports no other module of the package; cli imports the
    harness and modes only; no module imports cli; the imports form no cycle."""
    package = ROOT / "benchmarks"
    names = {f.stem for f in package.glob("*.py")}
    graph = {}
    for file in package.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level == 1 or (node.module or "").startswith("benchmarks")):
                module = (node.module or "").removeprefix("benchmarks").lstrip(".")
                deps |= {module.split(".")[0]} if module else {a.name for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name.split(".")[1] for a in node.names if a.name.startswith("benchmarks.")}
        graph[file.stem] = deps & names
    for builder in [spec.case for spec in modes.BENCHMARKS.values()] + [
        name for spec in modes.BENCHMARKS.values() for name in spec.fast or ()
    ]:
        graph["modes"].add(builder.split(":")[0])  # imported by name when a run needs it
    assert graph["harness"] == set()
    assert graph["cli"] == {"harness", "modes"}
    assert not [name for name, deps in graph.items() if "cli" in deps and name not in ("__init__", "__main__")]

    def visit(name, path):
        assert name not in path, f"import cycle: {' -> '.join([*path, name])}"
        for dep in graph[name]:
            visit(dep, [*path, name])

    for name in graph:
        visit(name, [])
