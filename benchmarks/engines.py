"""The trained engines' cases (animatediff, modelscope): ours against diffusers' own pipelines, same
weights; and `--mode animatediff --fast` (AnimateDiff-Lightning against the default mode).

- animatediff: `generate_animatediff` (the motion UNet built on the base UNet's own layers,
  FreeNoise with split inference past 16 frames) against `AnimateDiffPipeline` built as diffusers
  documents it: `AnimateDiffPipeline(unet=<the SD 1.5 UNet>, motion_adapter=...)`, which copies
  the base UNet into a `UNetMotionModel` (`enable_free_noise()` past 16 frames, as its docs do).
  The adapter has guoyww/animatediff-motion-adapter-v1-5-3's shape at `--arch sd15`.
- modelscope: `generate_modelscope` on `UNet3DConditionModel` against the deprecated
  `TextToVideoSDPipeline`, started from our initial latents (`latents=`), as the reference test.
  `--arch sd15` builds ModelScope 1.7B's real architecture: its 3D UNet, its OpenCLIP-H text
  tower, SD's VAE.

`weights_mb` says what each side holds in memory for the engine: the AnimateDiff reference
holds a second copy of the UNet's 2D weights beside the base the app keeps loaded anyway.
"""

from __future__ import annotations

import numpy as np
import torch

from modules.engines.animatediff import tiny as animatediff_tiny
from modules.engines.modelscope import tiny as modelscope_tiny

from .harness import NEGATIVE, PROMPT, Case, CallCounter, placer, run_once, run_sides

ANIMATEDIFF_GUIDANCE = 7.5
MODELSCOPE_GUIDANCE = 9.0
FREE_NOISE_FROM = 17  # frames: the engine turns FreeNoise on past one 16-frame window


def _mb(modules) -> float:
    from modules.residency import unique_bytes

    return unique_bytes(modules) / 2**20


def _check(mode: str, expected: str) -> None:
    if mode != expected:
        raise ValueError(f"this builder makes the {expected} case, not {mode!r}")


def build_animatediff_case(mode="animatediff", *, arch, size, steps, device, dtype, seed=0) -> Case:
    from diffusers import AnimateDiffPipeline

    from modules import tiny
    from modules.engine import Components
    from modules.engines.animatediff.sampling import FREE_NOISE_DEFAULTS, animatediff_scheduler, generate_animatediff

    _check(mode, "animatediff")
    place = placer(device, dtype)

    tokenizer = tiny.build_tokenizer()
    text_encoder = place(tiny.build_text_encoder(tokenizer, arch))
    vae = place(tiny.build_vae(arch))
    unet = place(tiny.build_unet(arch, seed=1))
    adapter = place(animatediff_tiny.build_motion_adapter(arch, seed=4))
    scheduler = tiny.build_scheduler()

    pipe = AnimateDiffPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                               motion_adapter=adapter, scheduler=animatediff_scheduler(scheduler))
    pipe.unet.to(device=device, dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    settings = dict(prompt=PROMPT, negative_prompt=NEGATIVE, height=size, width=size, guidance_scale=ANIMATEDIFF_GUIDANCE)

    def ours(frames: int) -> np.ndarray:
        c = Components(tokenizer, text_encoder, unet, vae, tiny.build_scheduler(), execution_device=device)
        return generate_animatediff(c, adapter, num_frames=frames, steps=steps, seed=seed, **settings)

    def reference(frames: int) -> np.ndarray:
        pipe.scheduler = animatediff_scheduler(scheduler)
        if frames >= FREE_NOISE_FROM:
            pipe.enable_free_noise(**FREE_NOISE_DEFAULTS)
        elif pipe.free_noise_enabled:
            pipe.disable_free_noise()
        out = pipe(num_frames=frames, num_inference_steps=steps, generator=torch.Generator("cpu").manual_seed(seed),
                   output_type="np", **settings)
        return np.asarray(out.frames[0], dtype=np.float32)

    # Calls are counted by a pre-hook on the base UNet (our motion UNet fires it) and on the copy.
    base_only = [text_encoder, vae, unet]
    weights = {"ours": _mb([*base_only, adapter]), "reference": _mb([*base_only, adapter, pipe.unet])}
    parts = dict(text_encoder=text_encoder, vae_decoder=vae.decoder)
    components = dict(tokenizer=tokenizer, text_encoder=text_encoder, unet=unet, vae=vae, adapter=adapter)
    return Case("animatediff", unet, ours, reference, True, parts, components, counted=[unet, pipe.unet],
                weights_mb=weights)


def build_modelscope_case(mode="modelscope", *, arch, size, steps, device, dtype, seed=0) -> Case:
    from modules import tiny
    from modules.engine import Components
    from modules.engines.modelscope.sampling import generate_modelscope, initial_latents, reference_pipeline

    _check(mode, "modelscope")
    place = placer(device, dtype)

    tokenizer = tiny.build_tokenizer()
    if arch == "sd15":  # ModelScope 1.7B: its own UNet and text tower, SD's VAE
        text_encoder, unet = modelscope_tiny.build_text_encoder_ms17(tokenizer), modelscope_tiny.build_unet3d("ms17", seed=1)
        vae = tiny.build_vae("sd15")
    else:
        text_encoder, unet, vae = tiny.build_text_encoder(tokenizer), modelscope_tiny.build_unet3d("tiny", seed=1), tiny.build_vae()
    text_encoder, unet, vae = place(text_encoder), place(unet), place(vae)

    def components() -> Components:
        return Components(tokenizer, text_encoder, unet, vae, tiny.build_scheduler(), execution_device=device)

    pipe = reference_pipeline(components())
    settings = dict(prompt=PROMPT, negative_prompt=NEGATIVE, height=size, width=size, guidance_scale=MODELSCOPE_GUIDANCE)

    def ours(frames: int) -> np.ndarray:
        return generate_modelscope(components(), num_frames=frames, steps=steps, seed=seed, **settings)

    def reference(frames: int) -> np.ndarray:
        c = components()
        pipe.scheduler = c.scheduler
        latents = initial_latents(c, seed, frames, size, size)
        out = pipe(num_frames=frames, num_inference_steps=steps, latents=latents, output_type="np", **settings)
        return np.asarray(out.frames[0], dtype=np.float32)

    weights = {side: _mb([text_encoder, vae, unet]) for side in ("ours", "reference")}
    parts = dict(text_encoder=text_encoder, unet=unet, vae_decoder=vae.decoder)
    return Case("modelscope", unet, ours, reference, True, parts, counted=[unet], weights_mb=weights)


def lightning_benchmark(args, device: torch.device, dtype: torch.dtype, log, engine) -> dict:
    """`--mode animatediff --fast`: AnimateDiff-Lightning (the 4-step adapter with its Euler recipe,
    guidance 1, TAESD: `engine.fast`) against AnimateDiff's default (`engine.defaults.steps` DDIM
    steps, 25; guidance 7.5; the full VAE) on the same base. AnimateDiff makes one UNet call per
    step, so the default is timed at --steps steps with the end of every step stamped, and scaled:
    the time outside the steps (text encoder, VAE) as measured plus the default step count times
    the median step."""
    import statistics
    import time

    from modules import tiny
    from modules.engine import Components
    from modules.engines.animatediff.lightning import lightning_adapter, lightning_scheduler
    from modules.engines.animatediff.sampling import generate_animatediff

    started = time.perf_counter()
    case = build_animatediff_case(arch=args.arch, size=args.size, steps=args.steps, device=device, dtype=dtype,
                                  seed=args.seed)
    tokenizer, text_encoder, unet, vae = (case.components[k] for k in ("tokenizer", "text_encoder", "unet", "vae"))
    adapter = case.components["adapter"]
    fast_adapter = lightning_adapter(animatediff_tiny.build_lightning_adapter_state(
        animatediff_tiny.build_motion_adapter(args.arch, seed=6, mid_block=True))).to(device=device, dtype=dtype)
    taesd = tiny.build_taesd().to(device=device, dtype=dtype)
    log(f"built {args.arch} components on {device} ({args.dtype}) in {time.perf_counter() - started:.1f} s")
    counter = CallCounter(unet)
    fast_settings = engine.fast.for_tab("text2video")
    default_steps = engine.defaults.steps
    common = dict(prompt=PROMPT, negative_prompt=NEGATIVE, height=args.size, width=args.size, seed=args.seed)

    def fast(frames: int) -> np.ndarray:
        c = Components(tokenizer, text_encoder, unet, vae, tiny.build_scheduler(), execution_device=device,
                       decoder=taesd)
        return generate_animatediff(c, fast_adapter, num_frames=frames, steps=fast_settings["steps"],
                                    guidance_scale=fast_settings["guidance_scale"],
                                    scheduler=lightning_scheduler(c.scheduler.config), **common)

    stamps: list[float] = []

    def default(frames: int) -> np.ndarray:
        c = Components(tokenizer, text_encoder, unet, vae, tiny.build_scheduler(), execution_device=device)
        return generate_animatediff(c, adapter, num_frames=frames, steps=args.steps,
                                    guidance_scale=ANIMATEDIFF_GUIDANCE,
                                    on_step=lambda *_: stamps.append(time.perf_counter()), **common)

    runs = run_sides({"fast": fast}, args.frames, device, counter, warmup=args.warmup, repeats=args.repeats, log=log)
    stamps.clear()
    before = time.perf_counter()
    run = run_once(default, args.frames, device, counter)
    run.pop("video")
    step_seconds = [b - a for a, b in zip([before, *stamps], stamps)][1:]  # steps 2.. (the first holds the text encoder)
    step = statistics.median(step_seconds)
    fixed = run["seconds"] - step * args.steps
    scaled = fixed + step * default_steps
    log(f"default at {args.steps} steps: {run['seconds']:.2f} s ({run['calls']} UNet calls, {step:.2f} s a step) -> "
        f"{scaled:.1f} s scaled to {default_steps} steps")
    counter.remove()
    fast_runs = runs.timed["fast"]
    seconds_fast = runs.seconds("fast")
    return dict(
        mode="animatediff", arch=args.arch, device=args.device, dtype=args.dtype, size=args.size, frames=args.frames,
        fast=True, repeats=args.repeats, warmup=args.warmup, steps_fast=fast_settings["steps"],
        steps_default=default_steps, measured_default_steps=args.steps, scheduler_fast="lightning",
        scheduler_default="ddim", decoder_fast="taesd", decoder_default="vae",
        guidance_fast=fast_settings["guidance_scale"], guidance_default=ANIMATEDIFF_GUIDANCE,
        seconds_fast=seconds_fast, all_seconds_fast=[r["seconds"] for r in fast_runs],
        peak_mem_mb_fast=max(r["peak"] for r in fast_runs), unet_calls_fast=fast_runs[0]["calls"],
        seconds_default=scaled, seconds_default_scaled=True, seconds_default_measured=run["seconds"],
        seconds_per_default_step=step, unet_calls_default=default_steps,
        unet_calls_default_measured=run["calls"], speedup_fast=scaled / seconds_fast,
        other_cpu_share=max((r["others"] for r in [*fast_runs, run] if r["others"] is not None), default=None),
    )  # fmt: skip


def lightning_table(r: dict) -> str:
    return "\n".join([
        f"mode animatediff, {r['arch']}, {r['device']} ({r['device_name']}), {r['dtype']}, "
        f"{r['frames']} frames {r['size']}x{r['size']}",
        f"fast     (AnimateDiff-Lightning {r['steps_fast']} steps, guidance {r['guidance_fast']}, TAESD): "
        f"{r['seconds_fast']:8.2f} s  ({r['unet_calls_fast']} UNet calls, median of {r['repeats']})",
        f"default  ({r['steps_default']} DDIM steps, guidance {r['guidance_default']}, VAE): {r['seconds_default']:8.2f} s"
        f"  (scaled from {r['seconds_default_measured']:.2f} s at {r['measured_default_steps']} steps)",
        f"speed-up fast vs default: {r['speedup_fast']:.1f}x",
    ])
