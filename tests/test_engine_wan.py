"""Wan 2.1 engine: its rules, diffusers' own WanPipeline frames, progress, Stop without decoding,
its dtypes, and the text encoder off the device after encoding (tiny preset)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from modules import engines
from modules.engines.base import ModelComponents
from modules.engines.wan import WAN_MODEL, tiny as wan_tiny
from modules.engines.wan.sampling import generate_wan
from modules.job_control import Cancelled, JobControl
from modules.models import ModelManager
from modules.request_types import RequestError, Text2VideoRequest
from modules.settings import Settings

PROMPT = "a red ball rolling on grass"
WAN = engines.get("wan")


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny tensors run faster on one thread


@pytest.fixture(scope="module")
def built():
    return wan_tiny.build_components(seed=3)


def components(built) -> ModelComponents:
    """The built parts with a fresh scheduler, as the manager hands them out."""
    return ModelComponents({**built, "scheduler": wan_tiny.build_scheduler()}, torch.device("cpu"), torch.float32)


def settings(tmp_path, **overrides) -> Settings:
    return Settings.from_env(preset="tiny", device="cpu", outputs_dir=str(tmp_path), **overrides)


def test_declared_rules_defaults_and_model():
    assert WAN.name == "wan" and WAN.licence == "Apache-2.0" and WAN.fast.name == "AnyFlow"  # test_engine_wan_fast
    assert WAN.defaults.size == (832, 480) and WAN.defaults.frames == 81 and WAN.defaults.fps == 16
    assert (WAN.defaults.steps, WAN.defaults.guidance_scale) == (50, 5.0)
    assert [n for n in range(1, 20) if WAN.rules.frames.fits(n)] == [1, 5, 9, 13, 17]
    assert WAN.rules.size_multiple == 16
    assert WAN_MODEL.kind == "components" and WAN_MODEL.dtypes == {"vae": "float32"}
    assert WAN_MODEL.half_dtype == "bfloat16" and WAN_MODEL.env == "WAN_MODEL"
    assert WAN.download_models(Settings()) == [("components:wan_model", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"),
                                               ("components:wan_vace_model", "Wan-AI/Wan2.1-VACE-1.3B-diffusers"),
                                               ("components:wan_fast_model", "nvidia/AnyFlow-Wan2.1-T2V-1.3B-Diffusers")]


@pytest.mark.parametrize("changes, message", [
    # The nearest count that fits (the larger on a tie), within the engine's cap (issue 28: 4 is nearer 5 than 1).
    (dict(num_frames=12), "Wan 2.1 makes clips of 4k+1 frames, e.g. 13; got 12."),
    (dict(num_frames=4), "Wan 2.1 makes clips of 4k+1 frames, e.g. 5; got 4."),
    (dict(num_frames=83), "Frames must be a whole number from 1 to 81 (Wan 2.1's longest clip here); got 83."),
    (dict(width=72), "Wan 2.1 needs a width that is a multiple of 16; got 72."),
    (dict(height=88), "Wan 2.1 needs a height that is a multiple of 16; got 88."),
    (dict(prompt="0: a cat\n4: a dog", num_frames=9), "Wan 2.1 takes one prompt"),
])
def test_values_that_do_not_fit_are_refused_in_a_sentence(tmp_path, changes, message):
    request = Text2VideoRequest(**{"prompt": PROMPT, "engine": "wan", "num_frames": 5, "width": 64, "height": 64,
                                   "steps": 2, **changes})
    with pytest.raises(RequestError, match=re.escape(message)):
        request.validate(settings(tmp_path))
    assert Text2VideoRequest(prompt=PROMPT, engine="wan", num_frames=9, width=96, height=64,
                             steps=2).validate(settings(tmp_path)).num_frames == 9


@pytest.mark.parametrize("frames, height, width, guidance, negative", [
    (5, 32, 48, 5.0, "blurry"),  # with classifier-free guidance
    (1, 16, 16, 1.0, ""),  # one frame, guidance off
])
def test_wan_matches_diffusers_wan_pipeline(built, frames, height, width, guidance, negative):
    from diffusers import WanPipeline

    seed, steps = 11, 3
    seen = []
    ours = generate_wan(components(built), prompt=PROMPT, negative_prompt=negative, num_frames=frames,
                        height=height, width=width, steps=steps, guidance_scale=guidance, seed=seed,
                        on_step=lambda *a: seen.append(a))
    pipe = WanPipeline(tokenizer=built["tokenizer"], text_encoder=built["text_encoder"], vae=built["vae"],
                       transformer=built["transformer"], scheduler=wan_tiny.build_scheduler())
    pipe.set_progress_bar_config(disable=True)
    reference = pipe(PROMPT, negative_prompt=negative or None, num_frames=frames, height=height, width=width,
                     num_inference_steps=steps, guidance_scale=guidance,
                     generator=torch.Generator().manual_seed(seed), output_type="np").frames[0]
    assert ours.shape == reference.shape == (frames, height, width, 3)
    assert ours.dtype == np.float32 and 0.0 <= ours.min() and ours.max() <= 1.0
    assert np.abs(ours - reference).max() < 1e-5
    assert ours.std() > 0.01
    assert seen == [(1, steps, ""), (2, steps, ""), (3, steps, "")]  # progress after every step


def test_seed_repeats_and_another_seed_differs(built):
    kwargs = dict(prompt=PROMPT, num_frames=5, height=32, width=32, steps=2)
    first = generate_wan(components(built), seed=1, **kwargs)
    assert np.array_equal(first, generate_wan(components(built), seed=1, **kwargs))
    assert not np.array_equal(first, generate_wan(components(built), seed=2, **kwargs))


def test_a_cancel_raises_within_the_step_and_nothing_is_decoded(built, monkeypatch):
    calls = {"transformer": 0, "decode": 0}
    handle = built["transformer"].register_forward_pre_hook(lambda *a: calls.__setitem__("transformer",
                                                                                          calls["transformer"] + 1))
    monkeypatch.setattr(built["vae"], "decode", lambda *a, **k: calls.__setitem__("decode", 1))
    control = JobControl()

    def step(done, total, place=""):
        control.cancel()
        control.step(done, total, place)

    try:
        with pytest.raises(Cancelled):
            generate_wan(components(built), prompt=PROMPT, num_frames=5, height=32, width=32, steps=4,
                         guidance_scale=5.0, on_step=step)
    finally:
        handle.remove()
    assert calls == {"transformer": 2, "decode": 0}  # one step (two calls with guidance), then stopped


def test_float16_runs_bfloat16_and_the_vae_stays_float32(tmp_path):
    parts = ModelManager(settings(tmp_path, dtype="float16")).model(WAN_MODEL)
    assert parts["transformer"].dtype == torch.bfloat16 and parts["text_encoder"].dtype == torch.bfloat16
    assert parts["vae"].dtype == torch.float32
    assert type(parts["scheduler"]).__name__ == "UniPCMultistepScheduler"
    assert parts["scheduler"].config.flow_shift == 3.0 and parts["scheduler"].config.use_flow_sigmas


def test_with_offload_the_text_encoder_leaves_the_device_after_encoding(tmp_path):
    from modules.residency import module_bytes
    from modules.worker import Worker

    worker = Worker(settings(tmp_path, cpu_offload=True))
    manager = worker.manager
    parts = manager.model(WAN_MODEL)
    assert manager.on_device() == []
    names = {id(parts[role]): role for role in ("text_encoder", "transformer", "vae")}
    seen = []

    def on_device_now():
        return frozenset(names[id(m)] for m in manager.on_device())

    parts["transformer"].register_forward_pre_hook(lambda m, args, kwargs: seen.append(("transformer", on_device_now())),
                                                   with_kwargs=True)
    parts["text_encoder"].register_forward_pre_hook(lambda m, args: seen.append(("text_encoder", on_device_now())))
    offload_hook = parts["vae"]._hf_hook

    class Spy:  # the VAE runs through decode(), which calls _hf_hook.pre_forward
        execution_device = offload_hook.execution_device

        def pre_forward(self, module, *args, **kwargs):
            offload_hook.pre_forward(module)
            seen.append(("vae", on_device_now()))
            return args, kwargs

    parts["vae"]._hf_hook = Spy()
    try:
        frames = worker.run(lambda manager: lambda: generate_wan(parts, prompt=PROMPT, num_frames=5, height=32,
                                                                  width=32, steps=2), JobControl())
    finally:
        parts["vae"]._hf_hook = offload_hook
    assert frames.shape == (5, 32, 32, 3)
    assert {role: {on for r, on in seen if r == role} for role in names.values()} == {
        "text_encoder": {frozenset({"text_encoder"})}, "transformer": {frozenset({"transformer"})},
        "vae": {frozenset({"vae"})}}
    sizes = [module_bytes(parts[role]) for role in ("text_encoder", "transformer", "vae")]
    assert manager.residency.peak_device_bytes == max(sizes) < sum(sizes)
    assert manager.on_device() == []  # released after the job


def test_the_estimate_counts_two_transformer_calls_a_step_with_guidance():
    request = Text2VideoRequest(prompt=PROMPT, engine="wan", steps=10, guidance_scale=5.0)
    assert WAN.unet_calls(request, "text2video", 5) == 20
    from dataclasses import replace

    assert WAN.unet_calls(replace(request, guidance_scale=1.0), "text2video", 5) == 10


def test_compare_fits_the_shared_frames_and_size_to_wans_rules_and_says_so(tmp_path):
    import json

    from modules import video_io
    from modules.request_types import CompareRequest
    from modules.studio import Studio

    studio = Studio(settings(tmp_path))
    result = studio.compare(CompareRequest(prompt=PROMPT, engines=("wan",), num_frames=6, width=72, height=64,
                                           steps=2, seed=3))
    run = result.engines["wan"]
    assert video_io.read_video(run["video"]).frames.shape == (5, 64, 64, 3)
    assert run["notes"] == ["Wan 2.1 made 5 frames, not 6: it makes clips of 4k+1 frames.",
                            "Wan 2.1 made 64×64, not 72×64: its sides are multiples of 16."]
    assert json.load(open(run["params"]))["request"]["num_frames"] == 5  # params.json repeats what ran
