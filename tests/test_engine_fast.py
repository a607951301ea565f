"""Fast mode (modules/engine/fast.py): LCM-LoRA on the shared UNet, LCM sampling, TAESD decoding,
AnimateDiff-Lightning's scheduler and file format.

The LoRA tests build their own UNets: attaching a LoRA wraps the UNet's layers, and the
session's `tiny_parts` UNet is shared with every other test.
"""

from dataclasses import replace

import numpy as np
import pytest
import torch

from modules.engines.animatediff import tiny as animatediff_tiny

from modules import tiny
from modules.engine import (
    Components,
    attach_lora,
    detach_lora,
    generate_control_video,
    generate_edit_video,
    generate_text2video,
    has_lora,
    lora_active,
    make_scheduler,
)
from modules.engine.common import decode_latents
from modules.engine.fast import FAST_DEFAULTS, LCM_LORA_TARGETS, lcm_scheduler, lora_enabled
from modules.engines.animatediff.lightning import lightning_scheduler

SIZE = 32
T2V = dict(prompt="a boat", negative_prompt="blurry", num_frames=3, height=SIZE, width=SIZE, seed=3)


def _maps(frames=3, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((frames, SIZE, SIZE, 3)) * 255).astype(np.uint8)


def _components(parts, unet, scheduler="ddim", decoder=None):
    config = tiny.build_scheduler().config
    scheduler = make_scheduler(scheduler, config)
    return Components(parts["tokenizer"], parts["text_encoder"], unet, parts["vae"], scheduler, decoder=decoder)


def _normal(parts, unet):
    return generate_text2video(_components(parts, unet), steps=4, guidance_scale=7.5, **T2V)


def _fast(parts, unet, decoder=None):
    d = FAST_DEFAULTS["text2video"]
    c = _components(parts, unet, d["scheduler"], decoder)
    return generate_text2video(c, steps=d["steps"], guidance_scale=d["guidance_scale"], **T2V)


@pytest.fixture
def unet():
    return tiny.build_unet(seed=1)


# ---------------------------------------------------------------- the LoRA file and attaching it
def test_lcm_lora_keys_are_the_real_files_format(unet):
    state = tiny.build_lcm_lora(unet)
    assert state and all(k.startswith("lora_unet_") for k in state)
    suffixes = {k.split(".", 1)[1] for k in state}
    assert suffixes == {"lora_down.weight", "lora_up.weight", "alpha"}
    modules = {k.split(".", 1)[0] for k in state}
    assert "lora_unet_conv_in" not in modules and "lora_unet_conv_out" not in modules
    assert all(state[f"{m}.alpha"].ndim == 0 for m in modules)
    kinds = {t: any(m.endswith("_" + t.replace(".", "_")) for m in modules) for t in LCM_LORA_TARGETS}
    assert all(kinds[t] for t in ("to_q", "to_out.0", "ff.net.0.proj", "conv1", "time_emb_proj", "proj_in")), kinds


def test_attach_wraps_exactly_the_targets_inactive_and_is_idempotent(unet):
    from peft.tuners.tuners_utils import BaseTunerLayer

    state = tiny.build_lcm_lora(unet)
    targets = {k.split(".", 1)[0] for k in state}
    assert attach_lora(unet, state) is True
    wrapped = {"lora_unet_" + n.replace(".", "_") for n, m in unet.named_modules() if isinstance(m, BaseTunerLayer)}
    assert wrapped == targets
    assert has_lora(unet, "lcm") and not lora_enabled(unet)
    count = sum(p.numel() for p in unet.parameters())
    assert attach_lora(unet, state) is False  # idempotent: nothing added
    assert sum(p.numel() for p in unet.parameters()) == count


def test_lora_takes_the_unets_dtype():
    unet = tiny.build_unet(seed=1).to(torch.bfloat16)
    attach_lora(unet, tiny.build_lcm_lora(unet))
    assert {p.dtype for p in unet.parameters()} == {torch.bfloat16}


def test_peft_format_gives_the_same_lora_as_kohya_format(tiny_parts):
    """The loader reads any format diffusers reads; the kohya keys and PEFT keys of the same
    weights give the same frames."""
    kohya_unet, peft_unet = tiny.build_unet(seed=1), tiny.build_unet(seed=1)
    state = tiny.build_lcm_lora(kohya_unet)
    peft_state = {}
    for key, value in state.items():
        module, suffix = key.split(".", 1)
        name = next(n for n, _ in peft_unet.named_modules() if "lora_unet_" + n.replace(".", "_") == module)
        if suffix == "lora_down.weight":
            peft_state[f"{name}.lora_A.weight"] = value
        elif suffix == "lora_up.weight":
            peft_state[f"{name}.lora_B.weight"] = value
    attach_lora(kohya_unet, state)
    attach_lora(peft_unet, peft_state)  # alpha defaults to the rank: the same scale 1
    with lora_active(kohya_unet), lora_active(peft_unet):
        np.testing.assert_allclose(_fast(tiny_parts, kohya_unet), _fast(tiny_parts, peft_unet), atol=1e-6)


def test_attach_rejects_a_lora_for_another_model(unet):
    other = tiny.build_unet("tiny", seed=1)
    state = {k.replace("down_blocks_0", "down_blocks_7"): v for k, v in tiny.build_lcm_lora(other).items()}
    state = {k: v for k, v in state.items() if "down_blocks_7" in k}
    with pytest.raises(ValueError):
        attach_lora(unet, state)
    assert not has_lora(unet, "lcm")


# ---------------------------------------------------------------- a normal job after a fast one
def test_normal_frames_are_exactly_the_same_before_and_after_a_fast_run(tiny_parts, unet):
    pristine = _normal(tiny_parts, unet)
    lcm_without_lora = _fast(tiny_parts, unet)
    attach_lora(unet, tiny.build_lcm_lora(unet))
    attached = _normal(tiny_parts, unet)  # adapter attached but inactive
    with lora_active(unet):
        assert lora_enabled(unet)
        fast = _fast(tiny_parts, unet)
    assert not lora_enabled(unet)
    after = _normal(tiny_parts, unet)
    np.testing.assert_array_equal(attached, pristine)
    np.testing.assert_array_equal(after, pristine)
    assert fast.shape == pristine.shape and np.isfinite(fast).all()
    assert np.abs(fast - lcm_without_lora).max() > 0.05  # the LoRA changes the frames
    assert np.abs(fast - pristine).max() > 0.05


def test_fused_lora_gives_the_same_frames_and_puts_the_original_weights_back(tiny_parts, unet):
    attach_lora(unet, tiny.build_lcm_lora(unet))
    pristine = _normal(tiny_parts, unet)
    weights = {n: p for n, p in unet.named_parameters()}
    values = {n: p.detach().clone() for n, p in weights.items()}
    with lora_active(unet):
        runtime = _fast(tiny_parts, unet)
    with lora_active(unet, fuse=True):
        assert not lora_enabled(unet)  # the update is in the weights, the LoRA branch is off
        fused = _fast(tiny_parts, unet)
    np.testing.assert_allclose(fused, runtime, atol=1e-5)
    assert np.abs(fused - pristine).max() > 0.05
    for n, p in unet.named_parameters():  # the very same tensors, never written to
        assert p is weights[n] and torch.equal(p, values[n]), n
    np.testing.assert_array_equal(_normal(tiny_parts, unet), pristine)


def test_lora_is_off_again_after_an_exception(tiny_parts, unet):
    attach_lora(unet, tiny.build_lcm_lora(unet))
    pristine = _normal(tiny_parts, unet)

    class Stop(Exception):
        pass

    def stop(done, total, phase):
        raise Stop

    for fuse in (False, True):
        with pytest.raises(Stop), lora_active(unet, fuse=fuse):
            generate_text2video(_components(tiny_parts, unet, "lcm"), steps=4, on_step=stop, **T2V)
        assert not lora_enabled(unet)
        np.testing.assert_array_equal(_normal(tiny_parts, unet), pristine)


def test_lora_active_needs_an_attached_adapter(unet):
    with pytest.raises(KeyError):
        with lora_active(unet):
            pass


def test_detach_puts_the_original_layers_back(tiny_parts, unet):
    layers = dict(unet.named_modules())
    pristine = _normal(tiny_parts, unet)
    attach_lora(unet, tiny.build_lcm_lora(unet))
    detach_lora(unet)
    assert not has_lora(unet, "lcm")
    assert {n: id(m) for n, m in unet.named_modules()} == {n: id(m) for n, m in layers.items()}
    np.testing.assert_array_equal(_normal(tiny_parts, unet), pristine)
    detach_lora(unet)  # nothing attached: a no-op


def test_control_job_with_lora_on_the_unet_only(tiny_parts, unet):
    from peft.tuners.tuners_utils import BaseTunerLayer

    controlnet = tiny.build_controlnet(unet, seed=2)
    control = ((_maps() > 180) * 255).astype(np.uint8)

    def run(scheduler, guidance, steps):
        c = _components(tiny_parts, unet, scheduler)
        return generate_control_video(
            c, controlnet, control=control, prompt="a dancer", negative_prompt="ugly", steps=steps,
            guidance_scale=guidance, seed=5, chunk_size=3,
        )  # fmt: skip

    pristine = run("ddim", 9.0, 3)
    plain_lcm = run("lcm", 1.0, 4)
    attach_lora(unet, tiny.build_lcm_lora(unet))
    assert not any(isinstance(m, BaseTunerLayer) for m in controlnet.modules())
    with lora_active(unet):
        fast = run("lcm", FAST_DEFAULTS["control"]["guidance_scale"], FAST_DEFAULTS["control"]["steps"])
    np.testing.assert_array_equal(run("ddim", 9.0, 3), pristine)
    assert np.abs(fast - plain_lcm).max() > 0.05


# ---------------------------------------------------------------- Instruct-Pix2Pix (8 input channels)
def _edit(parts, unet, scheduler, **settings):
    return generate_edit_video(
        _components(parts, unet, scheduler), frames=_maps(seed=1), prompt="make it snow", negative_prompt="bad",
        seed=5, chunk_size=3, **settings,
    )  # fmt: skip


def test_lcm_lora_applies_to_the_pix2pix_unet_without_conv_in(tiny_parts):
    from peft.tuners.tuners_utils import BaseTunerLayer

    unet = tiny.build_unet(in_channels=8, seed=3)
    state = tiny.build_lcm_lora(unet)
    normal = dict(steps=3, guidance_scale=7.5, image_guidance_scale=1.5)
    fast = {k: v for k, v in FAST_DEFAULTS["edit"].items() if k != "scheduler"}
    pristine = _edit(tiny_parts, unet, "euler_ancestral", **normal)
    plain_lcm = _edit(tiny_parts, unet, "lcm", **fast)
    attach_lora(unet, state)
    assert not isinstance(unet.conv_in, BaseTunerLayer) and unet.conv_in.in_channels == 8
    with lora_active(unet):
        edited = _edit(tiny_parts, unet, "lcm", **fast)
    np.testing.assert_array_equal(_edit(tiny_parts, unet, "euler_ancestral", **normal), pristine)
    assert edited.shape == pristine.shape and np.abs(edited - plain_lcm).max() > 0.05


@pytest.mark.parametrize(
    "guidance, image_guidance, groups", [(2.0, 1.0, 2), (1.0, 1.0, 1), (3.0, 3.0, 2), (7.5, 1.5, 3)]
)
def test_skipping_zero_weight_guidance_branches_is_the_same_prediction(
    tiny_parts, monkeypatch, guidance, image_guidance, groups
):
    import modules.engine.pix2pix as pix2pix

    unet = tiny_parts["pix2pix_unet"]
    seen = []
    real = pix2pix.cross_frame_attention

    def recording(*models, groups):
        seen.append(groups)
        return real(*models, groups=groups)

    monkeypatch.setattr(pix2pix, "cross_frame_attention", recording)
    settings = dict(steps=3, guidance_scale=guidance, image_guidance_scale=image_guidance)
    three_way = _edit(tiny_parts, unet, "ddim", **settings)
    skipped = _edit(tiny_parts, unet, "ddim", skip_unused_guidance=True, **settings)
    assert seen == [3, groups]
    np.testing.assert_allclose(skipped, three_way, atol=2e-5)


# ---------------------------------------------------------------- LCM sampling and t0/t1
@pytest.mark.parametrize("steps", [2, 3, 4, 6, 8])
def test_text2video_runs_with_lcm_at_every_fast_step_count(tiny_parts, steps):
    from modules.engine import default_t0_t1

    calls = []
    c = _components(tiny_parts, tiny_parts["unet"], "lcm")
    frames = generate_text2video(c, steps=steps, guidance_scale=1.0, on_step=lambda d, t, p: calls.append(t), **T2V)
    t0, t1 = default_t0_t1(steps)
    assert calls and calls[-1] == (steps - 1 - t1) + (t1 - t0) + (t1 + 1) == len(calls)
    assert frames.shape == (3, SIZE, SIZE, 3) and np.isfinite(frames).all()


def test_lcm_timesteps_at_t0_t1_and_the_renoise_alphas():
    from modules.engine import default_t0_t1

    s = lcm_scheduler(tiny.build_scheduler().config)
    s.set_timesteps(4)
    assert s.timesteps.tolist() == [999, 759, 499, 259] and s.init_noise_sigma == 1.0
    t0, t1 = default_t0_t1(4)
    assert (t0, t1) == (2, 3)
    assert (int(s.timesteps[-t0 - 1]), int(s.timesteps[-t1 - 1])) == (759, 999)


def test_text2video_refuses_a_sigma_scaled_sampler(tiny_parts):
    with pytest.raises(ValueError, match="variance-preserving"):
        generate_text2video(_components(tiny_parts, tiny_parts["unet"], "euler"), steps=4, **T2V)


# ---------------------------------------------------------------- TAESD
def test_taesd_decodes_sd_latents_to_frames(tiny_parts):
    taesd = tiny.build_taesd()
    assert taesd.config.scaling_factor == 1.0 and taesd.config.latent_channels == 4
    latents = torch.randn(5, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    c = _components(tiny_parts, tiny_parts["unet"], decoder=taesd)
    c.vae_decode_batch = 2
    frames = decode_latents(c, latents)
    assert frames.shape == (5, 64, 64, 3) and frames.dtype == np.float32
    assert frames.min() >= 0 and frames.max() <= 1 and frames.std() > 0.01
    with torch.no_grad():  # what diffusers' pipelines do with vae=AutoencoderTiny: latents / 1.0, then [-1, 1]
        expected = (taesd.decode(latents).sample / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(frames, expected, atol=1e-6)
    vae_frames = decode_latents(_components(tiny_parts, tiny_parts["unet"]), latents)
    assert np.abs(vae_frames - frames).max() > 0.05


def test_without_a_decoder_the_vae_decodes_as_before(tiny_parts):
    vae = tiny_parts["vae"]
    latents = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    c = _components(tiny_parts, tiny_parts["unet"])
    assert c.decoder is None
    with torch.no_grad():
        expected = (vae.decode(latents / vae.config.scaling_factor).sample / 2 + 0.5).clamp(0, 1)
    np.testing.assert_array_equal(decode_latents(c, latents), expected.permute(0, 2, 3, 1).numpy())


def test_fast_text2video_with_taesd(tiny_parts, unet):
    attach_lora(unet, tiny.build_lcm_lora(unet))
    with lora_active(unet):
        frames = _fast(tiny_parts, unet, decoder=tiny.build_taesd())
    assert frames.shape == (3, SIZE, SIZE, 3) and 0 <= frames.min() and frames.max() <= 1


# ---------------------------------------------------------------- AnimateDiff-Lightning
def test_lightning_scheduler_is_the_published_recipe():
    from diffusers import EulerDiscreteScheduler

    s = lightning_scheduler(tiny.build_scheduler().config)
    assert isinstance(s, EulerDiscreteScheduler)
    assert (s.config.timestep_spacing, s.config.beta_schedule) == ("trailing", "linear")
    s.set_timesteps(4)
    assert [round(float(t)) for t in s.timesteps] == [999, 749, 499, 249]
    from modules.engines import get

    assert get("animatediff").fast.for_tab("text2video")["guidance_scale"] == 1.0


def test_lightning_state_is_a_plain_motion_adapter_state_dict():
    from diffusers import MotionAdapter

    adapter = animatediff_tiny.build_motion_adapter("tiny", seed=4, mid_block=True)
    state = animatediff_tiny.build_lightning_adapter_state(adapter)
    assert any(k.startswith("mid_block.motion_modules.") for k in state)
    loaded = MotionAdapter(**adapter.config)
    loaded.load_state_dict(state, strict=True)
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    state[next(iter(state))].add_(1)  # a copy: the adapter itself is untouched
    assert not torch.equal(adapter.state_dict()[next(iter(state))], state[next(iter(state))])


def test_lightning_adapter_config_is_read_from_the_file_shapes():
    """The real files load into MotionAdapter() (the card's defaults): reading the shapes gives
    exactly that config; a tiny adapter's file gives the tiny adapter's config back."""
    from diffusers import MotionAdapter

    from modules.engines.animatediff.lightning import lightning_adapter, lightning_adapter_config

    with torch.device("meta"):
        default = MotionAdapter()
    config = lightning_adapter_config(default.state_dict())
    assert {**default.config, **config} == dict(default.config)
    small = animatediff_tiny.build_motion_adapter("tiny", seed=2, mid_block=True)
    loaded = lightning_adapter(animatediff_tiny.build_lightning_adapter_state(small))
    assert {k: v for k, v in loaded.config.items() if not k.startswith("_")} == {
        k: v for k, v in small.config.items() if not k.startswith("_")
    }
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), small.state_dict().values()))
    with pytest.raises(ValueError, match="not an AnimateDiff motion adapter"):
        lightning_adapter_config({"unet.conv_in.weight": torch.zeros(1)})


def test_lightning_generates_with_its_recipe_on_a_base_that_carries_the_lcm_lora(tiny_parts, unet):
    """AnimateDiff (normal or Lightning) on a base UNet that a fast zero-shot job left the LCM-LoRA
    attached to (off): the motion UNet runs the plain layers, so the frames are those without it."""
    from modules.engines.animatediff.sampling import generate_animatediff
    from modules.engines.animatediff.lightning import lightning_adapter

    adapter = lightning_adapter(animatediff_tiny.build_lightning_adapter_state(animatediff_tiny.build_motion_adapter(seed=5, mid_block=True)))
    steps = []
    args = dict(prompt="a boat", num_frames=4, height=SIZE, width=SIZE, steps=4, guidance_scale=1.0, seed=2)

    def run():
        c = _components(tiny_parts, unet)
        return generate_animatediff(c, adapter, scheduler=lightning_scheduler(c.scheduler.config),
                                    on_step=lambda done, total, _: steps.append((done, total)), **args)

    plain = run()
    assert steps[-1] == (4, 4) and plain.shape == (4, SIZE, SIZE, 3)
    attach_lora(unet, tiny.build_lcm_lora(unet))
    assert np.array_equal(run(), plain)
    c = _components(tiny_parts, unet)
    assert not np.array_equal(generate_animatediff(c, adapter, **args), plain)  # the DDIM recipe differs


def test_fast_settings_follow_the_engines_fast_weights():
    """LCM-LoRA takes 2-8 steps; AnimateDiff-Lightning has 2-, 4- and 8-step files; ModelScope none."""
    from modules.errors import UserError
    from modules.request_types import Text2VideoRequest
    from modules.engines import get

    def fast_settings(request, tab):
        return get(request.engine or "text2video-zero").fast_settings(request, tab)

    def run(**fields):
        return fast_settings(Text2VideoRequest(prompt="a", fast=True, **fields), "text2video")

    request, notes = run(steps=3, guidance_scale=1.0, engine="animatediff")
    assert request.steps == 4 and "AnimateDiff-Lightning" in notes[0] and "2, 4 or 8" in notes[0]
    assert run(steps=8, guidance_scale=1.0, engine="animatediff") == (
        Text2VideoRequest(prompt="a", fast=True, steps=8, guidance_scale=1.0, engine="animatediff"), [])
    request, notes = run(steps=3, guidance_scale=1.0)
    assert request.steps == 3 and not notes  # LCM-LoRA: any of 2-8
    request, notes = run(steps=25, guidance_scale=7.5, engine="animatediff")
    assert (request.steps, request.guidance_scale) == (4, 1.0) and len(notes) == 1
    with pytest.raises(UserError, match="no few-step weights for ModelScope"):
        run(steps=4, engine="modelscope")
    plain = Text2VideoRequest(prompt="a", steps=25, engine="animatediff")
    assert fast_settings(plain, "text2video") == (plain, [])


def test_fast_editing_says_nothing_of_a_scheduler_nobody_chose():
    """The edit tab's own scheduler becomes the fast recipe's without a note; a scheduler the user picked is named."""
    from modules import engines
    from modules.request_types import EditVideoRequest

    engine = engines.default("edit")
    recipe = engine.fast.for_tab("edit")
    left = EditVideoRequest(video="clip.mp4", prompt="p", fast=True, steps=recipe["steps"],
                            guidance_scale=recipe["guidance_scale"])
    ran, notes = engine.fast_settings(left, "edit")
    assert ran.scheduler == recipe["scheduler"] != left.scheduler and notes == []
    chosen = replace(left, scheduler="ddim")
    ran, notes = engine.fast_settings(chosen, "edit")
    assert ran.scheduler == recipe["scheduler"] and "scheduler" in notes[0]
