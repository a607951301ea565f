"""ModelScope text-to-video engine: equal to diffusers' deprecated TextToVideoSDPipeline (with the repo's
DDIM and with the model card's DPM-Solver++), seeded, stoppable, and the UNet calls a video costs."""

import numpy as np
import pytest
import torch

from modules.engines.modelscope import tiny as modelscope_tiny

from diffusers import DPMSolverMultistepScheduler

from modules import tiny
from modules.engine import Components, make_scheduler
from modules.engines.modelscope import ENGINE
from modules.engines.modelscope.sampling import SCHEDULER, generate_modelscope, initial_latents, reference_pipeline
from modules.models import ModelManager
from modules.settings import Settings

PROMPT = "a panda playing guitar"


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny tensors run faster on one thread


@pytest.fixture(scope="module")
def unet3d():
    return modelscope_tiny.build_unet3d(seed=4)


def make_components(tiny_parts, unet3d, scheduler: str = "ddim") -> Components:
    """The tiny parts with a fresh scheduler `scheduler` made from the repo's (DDIM) scheduler config."""
    p = tiny_parts
    scheduler = make_scheduler(scheduler, dict(tiny.build_scheduler().config))
    return Components(p["tokenizer"], p["text_encoder"], unet3d, p["vae"], scheduler, vae_decode_batch=3)


class CallCounter:
    def __init__(self, module):
        self.calls = 0
        self.batches = []
        self.handle = module.register_forward_pre_hook(self)

    def __call__(self, module, args):
        self.calls += 1
        self.batches.append(args[0].shape)


@pytest.mark.parametrize(
    "scheduler, steps, height, width, guidance, negative",
    [
        ("ddim", 2, 64, 48, 9.0, "blurry"), ("ddim", 3, 48, 72, 1.0, ""),  # with and without guidance
        # The model card's recipe: DPM-Solver++ (2M), 25 steps (second order throughout), and short
        # runs where `lower_order_final` makes the last step first order.
        (SCHEDULER, 25, 64, 48, 9.0, "blurry"), (SCHEDULER, 4, 64, 48, 9.0, ""), (SCHEDULER, 3, 48, 72, 1.0, ""),
    ],
)
def test_modelscope_matches_reference_pipeline(tiny_parts, unet3d, scheduler, steps, height, width, guidance, negative):
    frames, seed = 4, 7
    c = make_components(tiny_parts, unet3d, scheduler)
    ours = generate_modelscope(
        c, prompt=PROMPT, negative_prompt=negative, num_frames=frames, height=height, width=width,
        steps=steps, guidance_scale=guidance, seed=seed,
    )
    ref_c = make_components(tiny_parts, unet3d)  # the repo's DDIMScheduler, as the pipeline loads it
    pipe = reference_pipeline(ref_c)
    if scheduler == SCHEDULER:  # the model card's line, on the pipeline's (the repo's) scheduler config
        pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    reference = pipe(
        PROMPT, negative_prompt=negative or None, num_frames=frames, height=height, width=width,
        num_inference_steps=steps, guidance_scale=guidance,
        latents=initial_latents(ref_c, seed, frames, height, width), output_type="np",
    ).frames[0]

    assert ours.shape == reference.shape == (frames, height, width, 3)
    assert ours.dtype == np.float32 and 0.0 <= ours.min() and ours.max() <= 1.0
    assert np.abs(ours - reference).max() < 1e-4
    assert ours.std() > 0.01 and np.abs(ours[0] - ours[-1]).max() > 1e-3  # not blank, frames differ


def test_seed_repeats_on_step_counts_and_stops(tiny_parts, unet3d):
    kwargs = dict(prompt=PROMPT, num_frames=3, height=48, width=64, steps=3)
    seen = []
    counter = CallCounter(unet3d)
    try:
        first = generate_modelscope(make_components(tiny_parts, unet3d, SCHEDULER), on_step=lambda *a: seen.append(a), **kwargs)
        # One UNet call per timestep, both guidance branches batched into it: on_step's total.
        assert counter.calls == 3 and seen == [(1, 3, ""), (2, 3, ""), (3, 3, "")]
        assert counter.batches[0] == (2, 4, 3, 6, 8)  # ([negative, positive], C, F, h, w)

        again = generate_modelscope(make_components(tiny_parts, unet3d, SCHEDULER), **kwargs)
        other = generate_modelscope(make_components(tiny_parts, unet3d, SCHEDULER), seed=1, **kwargs)
        assert np.array_equal(first, again)
        assert np.abs(first - other).max() > 1e-3

        class Stop(Exception):
            pass

        def stop_at_two(done, total, phase):
            if done == 2:
                raise Stop

        counter.calls = 0
        with pytest.raises(Stop):
            generate_modelscope(make_components(tiny_parts, unet3d, SCHEDULER), on_step=stop_at_two, **kwargs)
        assert counter.calls == 2
    finally:
        counter.handle.remove()


def test_engine_loads_the_model_cards_dpm_solver_fresh_per_job(tmp_path, tiny_parts, unet3d):
    """`load` gives DPMSolverMultistepScheduler.from_config(the repo's scheduler config), options as the
    card leaves them, a new one per job; params.json records "dpm++_2m"."""
    settings = Settings.from_env(preset="tiny", outputs_dir=str(tmp_path))
    manager = ModelManager(settings)
    first, second = ENGINE.load(manager, None, "text2video"), ENGINE.load(manager, None, "text2video")
    card = DPMSolverMultistepScheduler.from_config(tiny.build_scheduler().config)
    for c in (first, second):
        assert type(c.scheduler) is DPMSolverMultistepScheduler and dict(c.scheduler.config) == dict(card.config)
    assert (first.scheduler.config.solver_order, first.scheduler.config.algorithm_type) == (2, "dpmsolver++")
    assert first.scheduler is not second.scheduler and first.unet is second.unet  # fresh state, same weights
    assert ENGINE.record(None, "text2video", settings)["scheduler"] == SCHEDULER == "dpm++_2m"

    # The multistep state (previous model outputs, step index) starts over with every video, so even
    # one scheduler reused gives the same frames again.
    c = make_components(tiny_parts, unet3d, SCHEDULER)
    kwargs = dict(prompt=PROMPT, num_frames=2, height=48, width=64, steps=4, seed=3)
    np.testing.assert_array_equal(generate_modelscope(c, **kwargs), generate_modelscope(c, **kwargs))


def test_initial_noise_is_per_frame_on_cpu(tiny_parts, unet3d):
    c = make_components(tiny_parts, unet3d)
    long = initial_latents(c, 5, 4, 48, 64)
    assert long.shape == (1, 4, 4, 6, 8)
    assert torch.equal(initial_latents(c, 5, 2, 48, 64), long[:, :, :2])  # frame k's noise: the clip length aside
    with pytest.raises(ValueError, match="multiples of 8"):
        initial_latents(c, 5, 2, 50, 64)


def test_ms17_is_the_real_modelscope_architecture():
    """The real text-to-video-ms-1.7b shapes (unet/ and text_encoder/ config.json), built on meta."""
    with torch.device("meta"):
        unet = modelscope_tiny.build_unet3d("ms17")
        text_encoder = modelscope_tiny.build_text_encoder_ms17(tiny.build_tokenizer())
    config = unet.config
    assert tuple(config.block_out_channels) == (320, 640, 1280, 1280)
    assert config.cross_attention_dim == text_encoder.config.hidden_size == 1024
    assert config.attention_head_dim == 64 and config.sample_size * 8 == 256
    assert text_encoder.config.num_hidden_layers == 23
    assert 1.3e9 < sum(p.numel() for p in unet.parameters()) < 1.5e9
    with pytest.raises(ValueError, match="Unknown 3D UNet"):
        modelscope_tiny.build_unet3d("sd15")
