"""Tune-A-Video core (modules/engines/tune_a_video) on the app's tiny SD parts: each test runs in about a second."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modules import tiny
from modules.engines.tune_a_video.attention import SparseCausalAttnProcessor, TemporalAttention, add_video_layers
from modules.engines.tune_a_video.inference import ddim_invert, ddim_sample, generate
from modules.engines.tune_a_video.train import tune
from modules.engines.tune_a_video.weights import CARD_NAME, WEIGHTS_NAME, applied_to, load_tuned, save_tuned

TIMESTEP = torch.tensor(500)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny tensors run faster on one thread


@pytest.fixture(scope="module")
def parts():
    tokenizer = tiny.build_tokenizer()
    return {
        "tokenizer": tokenizer,
        "text_encoder": tiny.build_text_encoder(tokenizer),
        "unet": tiny.build_unet(seed=1),
        "vae": tiny.build_vae(),
    }


def per_frame_unet(unet, latents, text):
    """The image UNet on each frame of `latents` (B, C, F, H, W): what the video UNet must equal."""
    batch, channels, frames, height, width = latents.shape
    folded = latents.permute(0, 2, 1, 3, 4).reshape(batch * frames, channels, height, width)
    out = unet(folded, TIMESTEP, encoder_hidden_states=text.repeat_interleave(frames, 0)).sample
    return out.reshape(batch, frames, channels, height, width).permute(0, 2, 1, 3, 4)


def clip_inputs(frames=3, batch=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(batch, 4, frames, 8, 8, generator=generator)
    text = torch.randn(batch, tiny.MAX_TOKENS, 32, generator=generator)
    return latents, text


def tiny_clip(frames=3, side=32, seed=0):
    """A random uint8 clip; 32 px is the smallest side the tiny VAE + UNet take (multiple of 16)."""
    return (np.random.default_rng(seed).random((frames, side, side, 3)) * 255).astype(np.uint8)


def run_tune(parts, **kwargs):
    options = dict(steps=2, learning_rate=1e-3, seed=0)
    options.update(kwargs)
    frames = options.pop("frames", None)
    frames = tiny_clip() if frames is None else frames
    return tune(
        parts["unet"], parts["vae"], parts["text_encoder"], parts["tokenizer"], frames, "a cat jumps", **options
    )


def unet_fingerprint(unet):
    """Everything about the UNet a Tune-A-Video job could leave changed."""
    return (
        {k: v.clone() for k, v in unet.state_dict().items()},
        {n: id(p) for n, p in unet.named_parameters()},
        {n: p.requires_grad for n, p in unet.named_parameters()},
        dict(unet.attn_processors),
        unet.is_gradient_checkpointing,
        unet.training,
    )


def assert_unchanged(unet, fingerprint):
    state, ids, grads, processors, checkpointing, training = fingerprint
    now = unet.state_dict()
    assert set(now) == set(state)
    assert all(torch.equal(now[k], state[k]) for k in state)
    assert {n: id(p) for n, p in unet.named_parameters()} == ids
    assert {n: p.requires_grad for n, p in unet.named_parameters()} == grads
    assert all(unet.attn_processors[k] is v for k, v in processors.items())
    assert unet.is_gradient_checkpointing == checkpointing and unet.training == training
    assert not unet._forward_hooks and all(not m._forward_hooks for m in unet.modules())


# -- attention ------------------------------------------------------------------------------


@torch.no_grad()
def test_temporal_layers_are_identity_at_init(parts):
    unet = parts["unet"]
    latents, text = clip_inputs()
    base = per_frame_unet(unet, latents, text)
    layers = add_video_layers(unet, sparse_causal=False)
    try:
        assert torch.equal(layers(latents, TIMESTEP, text), base)
    finally:
        layers.remove()


@torch.no_grad()
def test_sparse_causal_frame_zero_is_plain_self_attention_and_later_frames_look_back_only(parts):
    unet = parts["unet"]
    latents, text = clip_inputs(frames=4)
    base = per_frame_unet(unet, latents, text)
    layers = add_video_layers(unet)
    try:
        video = layers(latents, TIMESTEP, text)
        torch.testing.assert_close(video[:, :, 0], base[:, :, 0], rtol=0, atol=1e-5)
        assert not torch.allclose(video[:, :, 1:], base[:, :, 1:], atol=1e-3)  # frames now read frame 0 / i-1
        changed_last = latents.clone()
        changed_last[:, :, -1] += 1.0
        after = layers(changed_last, TIMESTEP, text)
        torch.testing.assert_close(after[:, :, :-1], video[:, :, :-1], rtol=0, atol=1e-5)  # causal
    finally:
        layers.remove()


@torch.no_grad()
def test_sparse_causal_processor_reads_frames_zero_and_previous():
    """Frame i's output is plain attention of its queries over [frame 0 ; frame i-1] tokens."""
    from diffusers.models.attention_processor import Attention

    torch.manual_seed(0)
    attn = Attention(query_dim=16, heads=2, dim_head=8)  # as SD's attn1

    class Frames:
        num_frames = 3

    hidden = torch.randn(3, 5, 16)  # 3 frames of 5 tokens
    out = SparseCausalAttnProcessor(Frames())(attn, hidden)
    for i, keys_from in enumerate([(0, 0), (0, 0), (0, 1)]):
        context = torch.cat([hidden[keys_from[0]], hidden[keys_from[1]]])
        q = attn.to_q(hidden[i]).view(5, 2, 8).transpose(0, 1)
        k = attn.to_k(context).view(10, 2, 8).transpose(0, 1)
        v = attn.to_v(context).view(10, 2, 8).transpose(0, 1)
        weights = torch.softmax(q @ k.transpose(1, 2) / 8**0.5, dim=-1)
        expected = attn.to_out[0]((weights @ v).transpose(0, 1).reshape(5, 16))
        torch.testing.assert_close(out[i], expected, rtol=0, atol=1e-5)


def test_temporal_attention_mixes_frames_per_position_only():
    torch.manual_seed(0)
    layer = TemporalAttention(dim=8, heads=2, head_dim=4)
    hidden = torch.randn(2 * 3, 4, 8)  # batch 2, 3 frames, 4 positions
    assert torch.equal(layer(hidden, 3), hidden)
    torch.nn.init.normal_(layer.attn_temp.to_out[0].weight)
    out = layer(hidden, 3)
    changed = hidden.clone()
    changed[1, 2] += 1.0  # clip 0, frame 1, position 2
    diff = (layer(changed, 3) - out).abs().sum(-1).view(2, 3, 4)
    assert (diff[0, :, 2] > 0).all()  # every frame of that position sees it
    assert diff[1].sum() == 0 and diff[0, :, [0, 1, 3]].sum() == 0  # nothing else does


@torch.no_grad()
def test_removing_the_video_layers_restores_the_base_unet_bit_for_bit(parts):
    unet = parts["unet"]
    latents, text = clip_inputs()
    before = per_frame_unet(unet, latents, text)
    fingerprint = unet_fingerprint(unet)
    layers = add_video_layers(unet)
    trained = {k: v + 0.01 for k, v in layers.state_dict().items()}  # non-zero temporal output too
    layers.load_state_dict(trained)
    assert not torch.allclose(layers(latents, TIMESTEP, text), before, atol=1e-4)
    layers.remove()
    layers.remove()  # idempotent
    assert_unchanged(unet, fingerprint)
    assert torch.equal(per_frame_unet(unet, latents, text), before)


def test_trained_parameter_names_follow_tune_a_video(parts):
    layers = add_video_layers(parts["unet"])
    try:
        keys = set(layers.state_dict())
    finally:
        layers.remove()
    block = "down_blocks.1.attentions.0.transformer_blocks.0"
    assert {f"{block}.attn1.to_q.weight", f"{block}.attn2.to_q.weight", f"{block}.norm_temp.weight"} <= keys
    assert f"{block}.attn_temp.to_out.0.weight" in keys
    assert all(".to_q." in k or "_temp." in k for k in keys)
    with pytest.raises(ValueError, match="missing"):
        add_video_layers(parts["unet"], {k: torch.zeros(1) for k in list(keys)[:3]})
    assert not any(m._forward_hooks for m in parts["unet"].modules())  # a failed add leaves nothing


def test_video_layers_swap_the_base_layer_under_the_apps_inactive_fast_lora():
    """Fast mode leaves a PEFT LoRA attached (off) on the shared UNet: to_q is then a wrapper."""
    from modules.engine.fast import attach_lora, detach_lora

    unet = tiny.build_unet(seed=1)
    attach_lora(unet, tiny.build_lcm_lora(unet))
    try:
        latents, text = clip_inputs(batch=1)
        with torch.no_grad():
            before = per_frame_unet(unet, latents, text)
            fingerprint = unet_fingerprint(unet)
            layers = add_video_layers(unet, sparse_causal=False)
            keys = set(layers.state_dict())
            assert not any("base_layer" in k or "lora" in k for k in keys)
            layers.load_state_dict({k: torch.zeros_like(v) for k, v in layers.state_dict().items()})
            assert not torch.equal(layers(latents, TIMESTEP, text), before)  # zero queries are in use
            layers.remove()
            assert_unchanged(unet, fingerprint)
            assert torch.equal(per_frame_unet(unet, latents, text), before)
    finally:
        detach_lora(unet)


# -- tuning -----------------------------------------------------------------------------------


def test_tuning_trains_only_the_query_projections_and_temporal_layers_and_leaves_the_base_alone(parts):
    unet = parts["unet"]
    fingerprint = unet_fingerprint(unet)
    initial = add_video_layers(unet)
    fresh = initial.state_dict()
    initial.remove()
    progress = []
    trained = run_tune(parts, steps=3, on_step=lambda step, total, loss: progress.append((step, total, loss)))

    assert [(step, total) for step, total, _ in progress] == [(1, 3), (2, 3), (3, 3)]
    assert all(np.isfinite(loss) and loss > 0 for _, _, loss in progress)
    assert set(trained) == set(fresh)  # only Tune-A-Video's trained parameters
    assert all(t.dtype == torch.float32 and t.device.type == "cpu" for t in trained.values())
    for key in trained:
        if key.endswith((".to_q.weight", "attn_temp.to_out.0.weight")):  # moved by the first step already
            assert not torch.equal(trained[key], fresh[key]), key
    assert_unchanged(unet, fingerprint)
    again = run_tune(parts, steps=3)
    assert all(torch.equal(again[k], trained[k]) for k in trained)  # same seed, same result


def test_tuning_lowers_the_denoising_loss_on_the_clip(parts):
    """A fixed set of (noise, timestep) draws scores the model before and after 8 steps."""
    from diffusers import DDPMScheduler

    from modules.engines.tune_a_video.encoding import encode_frames, encode_prompt

    unet, vae = parts["unet"], parts["vae"]
    clip = tiny_clip(frames=4, side=64)
    mean, _ = encode_frames(vae, clip)
    latents = mean * vae.config.scaling_factor
    text = encode_prompt(parts["text_encoder"], parts["tokenizer"], "a cat jumps")
    scheduler = DDPMScheduler.from_config(tiny.SD15_SCHEDULER_CONFIG)
    generator = torch.Generator().manual_seed(123)
    draws = [(torch.randn(latents.shape, generator=generator), torch.tensor([t])) for t in (100, 300, 500, 700, 900)]

    @torch.no_grad()
    def loss_of(parameters):
        layers = add_video_layers(unet, parameters)
        try:
            losses = [F.mse_loss(layers(scheduler.add_noise(latents, n, t), t, text), n) for n, t in draws]
            return float(torch.stack(losses).mean())
        finally:
            layers.remove()

    fresh = add_video_layers(unet)
    before = loss_of(fresh.state_dict())
    fresh.remove()
    after = loss_of(run_tune(parts, frames=clip, steps=8, learning_rate=1e-2))
    assert after < before - 0.005, (before, after)


def test_stopping_ends_within_the_step_and_keeps_the_last_completed_state(parts):
    unet = parts["unet"]
    fingerprint = unet_fingerprint(unet)
    steps_seen, checkpoints = [], []

    class Stop(Exception):
        pass

    def on_step(step, total, loss):
        steps_seen.append(step)
        if step == 2:
            raise Stop

    with pytest.raises(Stop):
        run_tune(parts, steps=50, on_step=on_step, on_checkpoint=lambda step, p: checkpoints.append((step, p)))
    assert steps_seen == [1, 2]
    assert [step for step, _ in checkpoints] == [2]
    assert set(checkpoints[0][1]) == set(run_tune(parts, steps=1))
    two_steps = run_tune(parts, steps=2)
    assert all(torch.equal(checkpoints[0][1][k], two_steps[k]) for k in two_steps)
    assert_unchanged(unet, fingerprint)


def test_periodic_checkpoints_and_bfloat16_autocast(parts):
    checkpoints = []
    trained = run_tune(
        parts, steps=2, dtype=torch.bfloat16, checkpoint_every=1, on_checkpoint=lambda s, p: checkpoints.append(s)
    )
    assert checkpoints == [1, 2]
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in trained.values())

    half_unet = tiny.build_unet(seed=1).to(torch.bfloat16)  # float32 master weights all the same
    fingerprint = unet_fingerprint(half_unet)
    trained = run_tune({**parts, "unet": half_unet}, steps=2, dtype=torch.bfloat16)
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in trained.values())
    assert_unchanged(half_unet, fingerprint)


def test_tuning_checks_its_inputs(parts):
    from modules.engines.tune_a_video.encoding import frames_to_pixels

    clip = tiny_clip()
    torch.testing.assert_close(frames_to_pixels(clip), frames_to_pixels(clip / 255.0))  # uint8 or float in [0, 1]
    with pytest.raises(ValueError, match="multiples of 16"):
        run_tune(parts, frames=tiny_clip(side=40))
    with pytest.raises(ValueError, match="frames must be"):
        run_tune(parts, frames=np.zeros((3, 32, 32), np.uint8))
    with pytest.raises(ValueError, match="in its own dtype"):
        run_tune({**parts, "unet": tiny.build_unet().to(torch.bfloat16)}, steps=1)
    with pytest.raises(ValueError, match="steps"):
        run_tune(parts, steps=0)


def test_gradient_checkpointing_gives_the_same_training(parts):
    with_checkpointing = run_tune(parts, steps=2, gradient_checkpointing=True)
    without = run_tune(parts, steps=2, gradient_checkpointing=False)
    for key in without:
        torch.testing.assert_close(with_checkpointing[key], without[key], rtol=0, atol=1e-6)


# -- weights ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(parts):
    return run_tune(parts, steps=2, learning_rate=1e-2)


def test_saved_model_is_safetensors_with_only_the_trained_parameters_and_a_model_card(parts, trained, tmp_path):
    import json
    import struct

    folder = save_tuned(
        tmp_path / "tuned",
        trained,
        base_model="stable-diffusion-v1-5/stable-diffusion-v1-5",
        training_prompt='a cat jumps: "high"',
        steps=2,
        learning_rate=1e-2,
    )
    assert sorted(p.name for p in folder.iterdir()) == sorted([CARD_NAME, WEIGHTS_NAME])
    raw = (folder / WEIGHTS_NAME).read_bytes()
    header = json.loads(raw[8 : 8 + struct.unpack("<Q", raw[:8])[0]])  # safetensors: length + JSON, no pickle
    assert header["__metadata__"]["format"] == "tune-a-video"
    assert set(header) - {"__metadata__"} == set(trained)

    parameters, card = load_tuned(folder)
    assert set(parameters) == set(trained) and all(torch.equal(parameters[k], trained[k]) for k in trained)
    assert card["base_model"] == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert card["training_prompt"] == 'a cat jumps: "high"'
    assert card["training_steps"] == 2 and card["learning_rate"] == 1e-2
    assert card["license"] == "creativeml-openrail-m"
    assert card["tags"] == ["text-to-video", "tune-a-video"]
    assert (folder / CARD_NAME).read_text().startswith("---\n")


def test_only_trained_parameters_are_saved_or_loaded(trained, tmp_path):
    from safetensors.torch import save_file

    options = dict(base_model="b", training_prompt="p", steps=1, learning_rate=1e-5)
    with pytest.raises(ValueError, match="not Tune-A-Video"):
        save_tuned(tmp_path / "x", {**trained, "conv_in.weight": torch.zeros(1)}, **options)
    (tmp_path / "y").mkdir()
    save_file({"conv_in.weight": torch.zeros(1)}, str(tmp_path / "y" / WEIGHTS_NAME))
    with pytest.raises(ValueError, match="not a Tune-A-Video weights file"):
        load_tuned(tmp_path / "y")
    with pytest.raises(FileNotFoundError):
        load_tuned(tmp_path / "nothing")


def test_applying_trained_parameters_for_a_job_leaves_the_base_bit_for_bit(parts, trained):
    unet = parts["unet"]
    latents, text = clip_inputs(batch=1)
    with torch.no_grad():
        before = per_frame_unet(unet, latents, text)
    fingerprint = unet_fingerprint(unet)
    with torch.no_grad(), applied_to(unet, trained) as layers:
        applied = layers.state_dict()
        assert all(torch.equal(applied[k], trained[k]) for k in trained)
        assert not torch.allclose(layers(latents, TIMESTEP, text), before, atol=1e-4)
    assert_unchanged(unet, fingerprint)

    with pytest.raises(RuntimeError, match="job failed"), applied_to(unet, trained):
        raise RuntimeError("job failed")
    assert_unchanged(unet, fingerprint)
    with torch.no_grad():
        assert torch.equal(per_frame_unet(unet, latents, text), before)

    wrong_shape = {k: (v[:1] if k.endswith("attn1.to_q.weight") else v) for k, v in trained.items()}
    with pytest.raises(ValueError, match="shape"), applied_to(unet, wrong_shape):
        pass
    assert_unchanged(unet, fingerprint)


# -- inference --------------------------------------------------------------------------------

EMPTY_TEXT = torch.zeros(1, tiny.MAX_TOKENS, 32)


def test_ddim_inversion_is_the_exact_inverse_of_ddim_sampling_for_the_same_noise_prediction():
    """A predictor that ignores its input makes inversion exactly invertible: this pins the
    pairing of the two schedulers' timesteps and alphas (an off-by-one step would show)."""
    clean = torch.randn(1, 4, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    fixed_noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))
    constant = lambda latents, t, text: fixed_noise  # noqa: E731
    progress = []
    inverted = ddim_invert(constant, clean, EMPTY_TEXT, steps=10, on_step=lambda d, t: progress.append((d, t)))
    assert progress == [(i, 10) for i in range(1, 11)]
    back = ddim_sample(constant, inverted, EMPTY_TEXT, steps=10, guidance_scale=1.0)
    torch.testing.assert_close(back, clean, rtol=0, atol=1e-5)


def test_inversion_then_sampling_reconstructs_the_latents_of_a_true_denoiser_more_closely_with_more_steps():
    """For data ~ N(0, s^2) the best noise prediction is known in closed form; DDIM inversion
    with it reaches unit-variance noise, and the round trip's error shrinks with the steps."""
    from diffusers import DDIMScheduler

    alphas = DDIMScheduler.from_config(tiny.SD15_SCHEDULER_CONFIG).alphas_cumprod
    spread = 0.5

    def gaussian_denoiser(latents, t, text):
        alpha = alphas[int(t)]
        return (1 - alpha).sqrt() * latents / (alpha * spread**2 + 1 - alpha)

    clean = spread * torch.randn(1, 4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    errors = []
    for steps in (10, 50):
        inverted = ddim_invert(gaussian_denoiser, clean, EMPTY_TEXT, steps=steps)
        assert 0.9 < inverted.std() < 1.1
        back = ddim_sample(gaussian_denoiser, inverted, EMPTY_TEXT, steps=steps, guidance_scale=1.0)
        errors.append(float((back - clean).norm() / clean.norm()))
    assert errors[1] < 0.05 and errors[1] < errors[0] / 3, errors


def run_generate(layers, parts, prompt="a dog jumps", **options):
    return generate(layers, parts["vae"], parts["text_encoder"], parts["tokenizer"], prompt, **options)


def test_generate_with_inversion_gives_frames_in_range_and_reports_every_step(parts, trained):
    clip = tiny_clip()
    progress = []
    with applied_to(parts["unet"], trained) as layers:
        frames = run_generate(layers, parts, source_frames=clip, steps=3, on_step=lambda *p: progress.append(p))
        again = run_generate(layers, parts, source_frames=clip, steps=3)
        from_noise = run_generate(layers, parts, source_frames=clip, inversion=False, steps=3, seed=1)
    assert progress == [(i, 6) for i in range(1, 7)]  # 3 inversion steps, then 3 sampling steps
    assert frames.shape == clip.shape and frames.dtype == np.float32
    assert frames.min() >= 0.0 and frames.max() <= 1.0
    np.testing.assert_array_equal(frames, again)
    assert not np.allclose(frames, from_noise)


def test_generate_from_noise_on_a_half_precision_unet_and_cancel(parts, trained):
    unet = tiny.build_unet(seed=1).to(torch.bfloat16)
    fingerprint = unet_fingerprint(unet)

    class Cancelled(Exception):
        pass

    def cancel_at_step_2(done, total):
        if done == 2:
            raise Cancelled

    with applied_to(unet, trained) as layers:
        frames = run_generate(layers, parts, inversion=False, num_frames=2, height=32, width=48, steps=2)
        assert frames.shape == (2, 32, 48, 3) and np.isfinite(frames).all()
        with pytest.raises(Cancelled):
            run_generate(layers, parts, source_frames=tiny_clip(), steps=20, on_step=cancel_at_step_2)
        with pytest.raises(ValueError, match="source clip"):
            run_generate(layers, parts, steps=2)
    assert_unchanged(unet, fingerprint)
