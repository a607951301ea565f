"""`python -m benchmarks --fast`: fast mode against the default mode, on the same weights.

- fast: LCM-LoRA active on the UNet (random weights in the real file's format and, on the sd15
  architecture, its rank 64: `tiny.build_lcm_lora`), LCMScheduler at 4 steps, guidance as the
  engine's fast recipe, `modules.engines.get("text2video-zero").fast.for_tab(tab)` (1.0 = no
  classifier-free guidance; editing 2.0 with image guidance 1.0 on 2 UNet groups), TAESD
  decoding (`tiny.build_taesd`, the real TAESD architecture). Timed end to end (text encoding
  to frames) after a warm-up, median of `--repeats`; attaching the LoRA is timed on its own
  (once per process in the app).
- default: what the app runs without fast mode (text-to-video: 50 DDIM steps, guidance 7.5, the
  full VAE; ControlNet: 20 DDIM steps, guidance 9; editing: 50 Euler-ancestral steps, three-way
  guidance), and diffusers' reference pipeline at its own default step count (50; 20 for
  ControlNet as the original demo). At 50 steps the real architecture takes a quarter of an hour
  on 2 CPU cores, so both are SCALED: one run at `--steps` steps is timed with a hook on the UNet
  (and ControlNet) that times each call by batch size; the step-independent rest (text encoder,
  VAE, motion warp) is taken as measured, and the UNet/ControlNet calls are the count the
  default step count makes (`calls_by_batch`, checked against the counted calls of the measured
  run) times the median seconds of a call of that batch size. The JSON says so:
  `seconds_default_scaled: true`.

Fast mode runs first (its warm-up warms the process); then the LoRA is detached (the original
layers are put back), and the default and the reference run on the plain UNet.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter, defaultdict

import numpy as np
import torch

from . import cases
from .harness import CallCounter, device_text, header, load_warning, run_once, run_sides, synchronize

DEFAULT_STEPS = {"text2video": 50, "pose": 20, "edge": 20, "depth": 20, "edit": 50}


class BatchTimer:
    """Seconds of each forward call of the hooked modules, by (module name, batch size)."""

    def __init__(self, modules: dict[str, torch.nn.Module | None], device: torch.device):
        self.device = torch.device(device)
        self.calls: dict[tuple[str, int], list[float]] = defaultdict(list)
        self._started: dict[str, tuple[float, int]] = {}
        self._handles = []
        for name, module in modules.items():
            if module is not None:
                self._handles.append(module.register_forward_pre_hook(self._pre(name), with_kwargs=True))
                self._handles.append(module.register_forward_hook(self._post(name)))

    def _pre(self, name):
        def hook(_module, args, kwargs):
            sample = args[0] if args else next(iter(kwargs.values()))
            synchronize(self.device)
            self._started[name] = (time.perf_counter(), int(sample.shape[0]))

        return hook

    def _post(self, name):
        def hook(*_):
            synchronize(self.device)
            start, batch = self._started.pop(name)
            self.calls[(name, batch)].append(time.perf_counter() - start)

        return hook

    def take(self) -> dict[tuple[str, int], list[float]]:
        calls, self.calls = dict(self.calls), defaultdict(list)
        return calls

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def calls_by_batch(mode: str, steps: int, frames: int, chunk_size: int, groups: int) -> Counter:
    """UNet calls (per batch size) one video makes: for text-to-video the anchor's steps alone,
    then each chunk's t1+1 steps; for the other modes every step of every chunk. A ControlNet is
    called exactly as often as the UNet."""
    from modules.engine import chunk_frame_ids, default_t0_t1

    chunks = chunk_frame_ids(frames, chunk_size)
    calls: Counter = Counter()
    if mode == "text2video":
        t0, t1 = default_t0_t1(steps)
        if (steps - 1 - t1) + (t1 - t0):
            calls[groups] += (steps - 1 - t1) + (t1 - t0)
        for ids in chunks:
            calls[len(ids) * groups] += t1 + 1
    else:
        for ids in chunks:
            calls[len(ids) * groups] += steps
    return calls


def scaled_seconds(total: float, timed: dict, counts: dict[str, Counter], measured: dict[str, Counter]) -> float:
    """`total` with its hooked calls replaced by `counts` calls at each (module, batch)'s median."""
    for name, by_batch in measured.items():
        seen = Counter({batch: len(times) for (module, batch), times in timed.items() if module == name})
        if seen != by_batch:
            raise RuntimeError(f"{name} made calls {dict(seen)}, expected {dict(by_batch)}: the call model is wrong")
    fixed = total - sum(sum(times) for times in timed.values())
    denoising = 0.0
    for name, by_batch in counts.items():
        for batch, n in by_batch.items():
            denoising += n * statistics.median(timed[(name, batch)])
    return max(0.0, fixed) + denoising


def fast_benchmark(args, device: torch.device, dtype: torch.dtype, log, engine) -> dict:
    """`--fast` for the zero-shot engine's modes: `engine` is the registry's text2video-zero, whose
    fast recipe gives each tab's steps and guidance."""
    from modules import tiny
    from modules.engine import (
        Components,
        attach_lora,
        detach_lora,
        generate_control_video,
        generate_edit_video,
        generate_text2video,
        lcm_scheduler,
        lora_active,
    )
    from modules.engine.fast import LCM_LORA_RANK
    from modules.request_types import CONTROL_KINDS

    mode = args.mode
    kind = "control" if mode in CONTROL_KINDS else mode
    default_steps = args.default_steps or DEFAULT_STEPS[mode]
    started = time.perf_counter()
    case = cases.build_case(
        mode, arch=args.arch, size=args.size, steps=args.steps, chunk_size=args.chunk_size, device=device,
        dtype=dtype, seed=args.seed,
    )  # fmt: skip
    parts = case.components
    unet, controlnet = parts["unet"], parts.get("controlnet")
    taesd = parts["place"](tiny.build_taesd())
    build_s = time.perf_counter() - started
    log(f"built {args.arch} components on {device} ({args.dtype}) in {build_s:.1f} s")
    hooked = dict(unet=unet, controlnet=controlnet)
    counter = CallCounter(unet)

    # Fast mode.
    attach_started = time.perf_counter()
    rank = LCM_LORA_RANK if args.arch == "sd15" else 4  # the real file's rank: its real cost
    attach_lora(unet, tiny.build_lcm_lora(unet, seed=args.seed, rank=rank))
    attach_s = time.perf_counter() - attach_started
    settings = {k: v for k, v in engine.fast.for_tab(kind).items() if k != "scheduler"}
    steps = settings.pop("steps")

    def components():
        return Components(
            parts["tokenizer"], parts["text_encoder"], unet, parts["vae"], lcm_scheduler(parts["scheduler_config"]),
            decoder=taesd,
        )  # fmt: skip

    def fast(frames: int) -> np.ndarray:
        with lora_active(unet):
            if mode == "text2video":
                return generate_text2video(
                    components(), prompt=cases.PROMPT, negative_prompt=cases.NEGATIVE, num_frames=frames,
                    height=args.size, width=args.size, steps=steps, motion_x=cases.MOTION, motion_y=cases.MOTION,
                    seed=args.seed, chunk_size=args.chunk_size, **settings,
                )  # fmt: skip
            if kind == "control":
                return generate_control_video(
                    components(), controlnet, control=cases.control_maps(frames, args.size, mode),
                    prompt=cases.PROMPT, negative_prompt=cases.NEGATIVE, steps=steps,
                    conditioning_scale=cases.CONTROL_SCALE, seed=args.seed, chunk_size=args.chunk_size, **settings,
                )  # fmt: skip
            return generate_edit_video(
                components(), frames=cases.input_video(frames, args.size), prompt=cases.EDIT_PROMPT,
                negative_prompt=cases.NEGATIVE, steps=steps, seed=args.seed, chunk_size=args.chunk_size, **settings,
            )  # fmt: skip

    fast_runs = run_sides({"fast": fast}, args.frames, device, counter, warmup=args.warmup, repeats=args.repeats,
                          log=log)
    runs, video = fast_runs.timed["fast"], fast_runs.videos.get("fast")
    detach_lora(unet)  # the original layers back: default and reference run on the plain UNet

    # Default mode and the reference, at --steps, on the plain UNet; scaled to their step count.
    groups = 3 if mode == "edit" else 2  # all default guidances are > 1: classifier-free guidance on
    measured = calls_by_batch(mode, args.steps, args.frames, args.chunk_size, groups)
    at_default = calls_by_batch(mode, default_steps, args.frames, args.chunk_size, groups)
    names = [n for n, m in hooked.items() if m is not None]
    timer = BatchTimer(hooked, device)
    sides = {}
    for side, fn in (("default", case.ours), ("reference", case.reference)):
        timer.take()
        run = run_once(fn, args.frames, device, counter)
        timed = timer.take()
        seconds = scaled_seconds(run["seconds"], timed, {n: at_default for n in names}, {n: measured for n in names})
        sides[side] = dict(measured=run["seconds"], scaled=seconds, calls=run["calls"], timed=timed)
        log(f"{side} at {args.steps} steps: {run['seconds']:.2f} s ({run['calls']} UNet calls) -> "
            f"{seconds:.1f} s scaled to {default_steps} steps ({sum(at_default.values())} UNet calls)")
    timer.remove()
    counter.remove()

    seconds_fast = fast_runs.seconds("fast")
    default, reference = sides["default"], sides["reference"]
    scheduler_default = "euler_ancestral" if mode == "edit" else "ddim"
    return dict(
        mode=mode, arch=args.arch, device=args.device, dtype=args.dtype, size=args.size, frames=args.frames,
        chunk_size=args.chunk_size, fast=True, repeats=args.repeats, warmup=args.warmup,
        steps_fast=steps, steps_default=default_steps, steps=args.steps, measured_default_steps=args.steps,
        scheduler_fast="lcm", scheduler_default=scheduler_default, decoder_fast="taesd", decoder_default="vae",
        guidance_fast=settings["guidance_scale"],
        guidance_default={"text2video": cases.GUIDANCE, "edit": cases.GUIDANCE}.get(mode, cases.CONTROL_GUIDANCE),
        seconds_fast=seconds_fast, all_seconds_fast=[r["seconds"] for r in runs],
        cpu_seconds_fast=statistics.median(r["cpu"] for r in runs),
        peak_mem_mb_fast=max(r["peak"] for r in runs),
        unet_calls_fast=runs[0]["calls"],
        seconds_default=default["scaled"], seconds_default_scaled=True,
        seconds_default_measured=default["measured"], unet_calls_default=sum(at_default.values()),
        unet_calls_default_measured=default["calls"],
        seconds_reference=reference["scaled"], seconds_reference_scaled=True,
        seconds_reference_measured=reference["measured"], unet_calls_reference_measured=reference["calls"],
        speedup_fast=default["scaled"] / seconds_fast,
        speedup_fast_vs_reference=reference["scaled"] / seconds_fast,
        unet_call_seconds_default={
            f"{name} x{batch}": statistics.median(times) for (name, batch), times in sorted(default["timed"].items())
        },
        lora_rank=rank, lora_attach_seconds=attach_s, build_seconds=build_s,
        fast_frames_ok=bool(video is not None and np.isfinite(video).all() and video.shape[0] == args.frames),
        other_cpu_share=fast_runs.other_cpu_share(),
    )  # fmt: skip


def table(r: dict) -> str:
    lines = header([
        ("mode", r["mode"]),
        ("arch", r["arch"]),
        ("device", device_text(r)),
        ("dtype", r["dtype"]),
        ("size", f"{r['size']}x{r['size']}, {r['frames']} frames (chunks of {r['chunk_size']})"),
    ])  # fmt: skip
    lines.append("")
    lines.append(
        f"fast     ({r['steps_fast']} LCM steps, guidance {r['guidance_fast']}, TAESD): {r['seconds_fast']:8.2f} s"
        f"  ({r['unet_calls_fast']} UNet calls, median of {r['repeats']})"
    )
    lines.append(
        f"default  ({r['steps_default']} {r['scheduler_default']} steps, guidance {r['guidance_default']}, VAE): "
        f"{r['seconds_default']:8.2f} s  ({r['unet_calls_default']} UNet calls; scaled from "
        f"{r['seconds_default_measured']:.2f} s at {r['measured_default_steps']} steps)"
    )
    lines.append(
        f"reference (diffusers, {r['steps_default']} steps): {r['seconds_reference']:8.2f} s  (scaled from "
        f"{r['seconds_reference_measured']:.2f} s at {r['measured_default_steps']} steps)"
    )
    lines.append("")
    lines.append(
        f"speed-up fast vs default: {r['speedup_fast']:.1f}x, vs reference: {r['speedup_fast_vs_reference']:.1f}x"
    )
    lines.append(f"LCM-LoRA attach (once per process): {r['lora_attach_seconds']:.2f} s")
    lines.extend(load_warning(r))
    return "\n".join(lines)
