"""`python -m benchmarks`: parse the flags, check them against the chosen engine's benchmark, run it.

Prints a table, then as its last line one JSON object with the results. The `--mode` values come
from the engine registry (benchmarks/modes.py); the runs and the result's format, from
benchmarks/harness.py.
"""

from __future__ import annotations

import argparse
import os
import warnings

from . import modes
from .harness import ARCHS, DEFAULTS, DEVICES, DTYPES, emit, logger


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time our engines against diffusers' reference pipelines on identical random-weight "
        "components (tiny or the real architectures), and check they make the same frames.",
    )
    parser.add_argument("--mode", choices=modes.choices(), default="text2video",
                        help="per registered engine: " + modes.help_text() + ". pose/edge/depth: ControlNet "
                        "video on random control maps (no annotator); animatediff / modelscope: those engines "
                        "against diffusers' AnimateDiffPipeline / TextToVideoSDPipeline (with --frames-sweep "
                        "16,32,64: FreeNoise's memory); switching: text2video -> edge -> depth -> pose -> edit -> "
                        "text2video, ours vs a full reload per switch; tune: Tune-A-Video training steps "
                        "(modules/engines/tune_a_video) on a random clip, bf16 or fp32, gradient checkpointing: s/step, peak "
                        "memory, trained parameters and their safetensors size, 300 steps at 8 x 512x512 scaled "
                        "beside the published GPU figures; backend: the Ray backend's per-job overhead against the "
                        "local one on the tiny preset (--frames, --size, --steps, --repeats jobs per side); estimates: "
                        "the tiny preset's cost figures for the page's estimates (modules/estimates.py), every engine "
                        "and tab through Studio, fitted per stage")
    parser.add_argument("--arch", choices=ARCHS, default=DEFAULTS["arch"])
    parser.add_argument("--size", type=int, default=DEFAULTS["size"],
                        help="square frame size in pixels (default 64 tiny, 128 sd15)")
    parser.add_argument("--frames", type=int, default=DEFAULTS["frames"])
    parser.add_argument("--steps", type=int, default=DEFAULTS["steps"],
                        help="denoising steps (--mode tune: training steps, --warmup of them untimed)")
    parser.add_argument("--dtype", choices=DTYPES, default=DEFAULTS["dtype"],
                        help="default float32 on CPU, float16 on CUDA")
    parser.add_argument("--device", choices=DEVICES, default=DEFAULTS["device"])
    parser.add_argument("--repeats", type=int, default=DEFAULTS["repeats"],
                        help="timed runs per side (default 3; 2 for sd15 on CPU)")
    parser.add_argument("--warmup", type=int, default=DEFAULTS["warmup"], help="untimed runs per side first")
    parser.add_argument("--chunk-size", type=int, default=DEFAULTS["chunk_size"],
                        help="our engine's chunk size (default = frames)")
    parser.add_argument("--frames-sweep", default=None, metavar="N,N,...",
                        help="also run our engine alone at these frame counts with --chunk-size, reporting "
                        "peak memory per count (chunking should keep it flat)")
    parser.add_argument("--breakdown", action="store_true",
                        help="also report seconds inside the text encoder, UNet, ControlNet and VAE per side "
                        "(hooks; on CUDA they synchronize, which adds a little time)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile our side's UNet and ControlNet (inductor; with freezing on CPU); "
                        "the warm-up pays the compile, so keep --warmup >= 1")
    parser.add_argument("--fast", action="store_true",
                        help="fast mode (LCM-LoRA + LCMScheduler at 4 steps + TAESD; with --mode animatediff "
                        "AnimateDiff-Lightning's 4-step adapter; random weights in the real files' formats) against "
                        "the default mode (e.g. 50 DDIM steps, guidance, the full VAE) and diffusers' reference at "
                        "their default step count, scaled from one run at --steps steps")
    parser.add_argument("--default-steps", type=int, default=None,
                        help="with --fast: the default mode's step count the scaled figures are for "
                        "(default 50; 20 for pose/edge/depth)")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    parser.add_argument("--json-only", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    if args.frames < 2:
        parser.error("--frames must be at least 2 (the anchor frame and one more)")
    if args.steps < 2:
        parser.error("--steps must be at least 2")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")
    if args.chunk_size is not None and args.chunk_size < 2:
        parser.error("--chunk-size must be at least 2")
    if args.size is not None and (args.size < 8 or args.size % 8):
        parser.error("--size must be a positive multiple of 8")
    if args.fast and (args.mode == modes.SWITCHING or args.frames_sweep or args.compile or args.breakdown):
        parser.error("--fast runs alone: not with --mode switching, --frames-sweep, --compile or --breakdown")
    if args.default_steps is not None and args.default_steps < 2:
        parser.error("--default-steps must be at least 2")
    if args.frames_sweep:
        try:
            args.frames_sweep = [int(n) for n in args.frames_sweep.split(",") if n.strip()]
        except ValueError:
            parser.error("--frames-sweep takes comma-separated integers, e.g. 8,32,64")
        if not args.frames_sweep or min(args.frames_sweep) < 2:
            parser.error("--frames-sweep counts must be at least 2")
    args.engine = None
    if args.mode not in modes.special_modes():
        args.mode, args.engine, spec = modes.resolve_mode(args.mode)
        if spec is None:
            parser.error(f"no benchmark for engine {args.engine} yet (registered in modules/engines/, but "
                         f"benchmarks/modes.py has no entry for it in BENCHMARKS)")
        unsupported = [flag for flag, given, allowed in (
            ("--compile", args.compile, spec.chunks_and_compile),
            ("--chunk-size", args.chunk_size, spec.chunks_and_compile),
            ("--fast", args.fast, spec.fast is not None),
        ) if given and not allowed]  # fmt: skip
        if unsupported:
            parser.error(f"--mode {args.mode} runs without {' and '.join(unsupported)} "
                         f"(engine {args.engine}'s benchmark has no such option)")
    if args.mode == modes.TUNE:
        extra = [flag for flag, given in (("--fast", args.fast), ("--frames-sweep", args.frames_sweep),
                                          ("--compile", args.compile), ("--breakdown", args.breakdown),
                                          ("--chunk-size", args.chunk_size)) if given]  # fmt: skip
        if extra:
            parser.error(f"--mode tune runs without {' and '.join(extra)}")
        if args.steps <= args.warmup:
            parser.error("--mode tune times the steps after the --warmup ones: give --steps > --warmup")
    return args


def main(argv=None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="Default grid_sample")
    warnings.filterwarnings("ignore", message="torch.meshgrid")
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    result, table_of = modes.run(args, logger(args.json_only))
    emit(result, table_of, args.json_only)
    return 0
