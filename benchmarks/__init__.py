"""Benchmarks: our Text2Video-Zero engine against diffusers' reference pipelines.

    python -m benchmarks --mode text2video --arch sd15 --size 128 --frames 8 --steps 4
    python -m benchmarks --mode pose --frames-sweep 8,32,64 --chunk-size 8

Both sides run on the same random-weight components (`modules.tiny`: "tiny", or "sd15", the
real SD 1.5 architecture), seed, dtype and device, alternately after a warm-up. Reported:
median seconds per video, UNet steps per second (UNet forward calls counted by a hook), peak
memory (CUDA allocator peak, or sampled RSS on the CPU, above the run's start) and the largest
difference between the two sides' frames. The last line printed is one JSON object.

Layout (imports point one way; `harness` imports no other module of the package):
- harness.py: argument defaults, device/dtype placement, peak memory, the runner of warm-up and
  timed runs, `Case` and `compare`, the result's environment, tables and printing;
- modes.py: the benchmark of each engine of `modules.engines` (and the `--mode` values);
- cases.py (text2video-zero), engines.py (animatediff, modelscope, AnimateDiff-Lightning),
  fast.py (LCM-LoRA fast mode), switching.py, breakdown.py: the benchmarks, on the harness;
- references.py: diffusers' reference pipelines as the tests and cases use them;
- cli.py: the flags, checked against the engine's benchmark; it dispatches to modes.run.
"""

from .cli import main

__all__ = ["main"]
