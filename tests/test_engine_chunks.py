"""Same request, same video: chunking (and so an out-of-memory retry, which halves the chunk)
changes no frame, in any mode, because every frame draws its noise from its own stream.

Two levels:
- the noise itself is compared exactly (`assert_array_equal`): a frame's starting noise and its
  stochastic step noise are bit for bit the same whatever batch or chunk it is drawn in;
- whole videos made with chunks of 8, 4, 3 and 2 are compared with the one-chunk video within
  `CHUNK_TOLERANCE`, not exactly. The noise is identical, but the UNet's float32 kernels
  (matmuls, convolutions) round differently for different batch sizes: the tiny UNet alone,
  given the same input, differs by ~1.2e-6 between a batch of 8 and a batch of 3, and a few
  steps and the VAE carry that to ~5e-6 in the frames. That is float rounding, not a
  different sample: a frame drawn with other noise differs by 1e-2 to 1 (the old per-chunk
  noise did), so 2e-5 separates the two by three orders of magnitude.
"""

import numpy as np
import pytest
import torch
from diffusers.utils.torch_utils import randn_tensor

from modules import tiny
from modules.engine import (
    Components,
    chunk_frame_ids,
    frame_generator,
    frame_generators,
    generate_control_video,
    generate_edit_video,
    generate_text2video,
    make_scheduler,
)

CHUNK_TOLERANCE = 2e-5
FRAMES = 10  # chunks of 8 and 3 leave a short last chunk ([0, 8, 9] and [0, 9])
CHUNK_SIZES = (8, 4, 3, 2)
SIZE = 32
LATENT = (4, SIZE // 8, SIZE // 8)


def _components(unet, tiny_parts, scheduler: str) -> Components:
    p = tiny_parts
    config = tiny.build_scheduler().config
    return Components(p["tokenizer"], p["text_encoder"], unet, p["vae"], make_scheduler(scheduler, config))


def _maps(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((FRAMES, SIZE, SIZE, 3)) * 255).astype(np.uint8)


def _run(mode: str, scheduler: str, tiny_parts, chunk_size: int) -> np.ndarray:
    p = tiny_parts
    if mode == "text2video":
        c = _components(p["unet"], p, scheduler)
        return generate_text2video(
            c, prompt="a boat", negative_prompt="blurry", num_frames=FRAMES, height=SIZE, width=SIZE, steps=4,
            t0=1, t1=2, motion_x=40, motion_y=-24, seed=5, chunk_size=chunk_size,
        )  # fmt: skip
    if mode == "control":
        c = _components(p["unet"], p, scheduler)
        control = ((_maps(0) > 180) * 255).astype(np.uint8)  # edge-like binary maps
        return generate_control_video(
            c, p["controlnet"], control=control, prompt="a dancer", negative_prompt="ugly", steps=3,
            guidance_scale=9.0, conditioning_scale=0.8, seed=5, chunk_size=chunk_size,
        )  # fmt: skip
    c = _components(p["pix2pix_unet"], p, scheduler)
    return generate_edit_video(
        c, frames=_maps(1), prompt="make it snow", negative_prompt="bad", steps=3, guidance_scale=7.5,
        image_guidance_scale=1.5, seed=5, chunk_size=chunk_size,
    )  # fmt: skip


@pytest.mark.parametrize(
    "mode, scheduler",
    [
        ("text2video", "ddim"),  # Text2Video-Zero needs DDIM (the app always uses it)
        # pose / edge / depth are one sampler fed different maps: one kind of map is enough.
        ("control", "ddim"),  # what the app uses
        ("control", "euler_ancestral"),  # a stochastic step: per-frame step noise
        ("edit", "euler_ancestral"),  # the app's default for editing
        ("edit", "ddim"),
        # Fast mode's sampler: every LCM step but the last re-noises with the frame's own stream.
        ("text2video", "lcm"),
        ("control", "lcm"),
        ("edit", "lcm"),
    ],
)
def test_chunk_size_changes_no_frame(tiny_parts, mode, scheduler):
    whole = _run(mode, scheduler, tiny_parts, chunk_size=FRAMES)
    assert whole.shape == (FRAMES, SIZE, SIZE, 3)
    # Real frames that differ (tiny ControlNet + DDIM moves them least: ~3e-3, still 100x the tolerance).
    assert whole.std() > 0.01 and np.abs(whole[1:] - whole[:1]).max() > 50 * CHUNK_TOLERANCE
    for chunk_size in CHUNK_SIZES:
        chunked = _run(mode, scheduler, tiny_parts, chunk_size)
        assert chunked.shape == whole.shape
        diff = np.abs(chunked - whole).max()
        assert diff < CHUNK_TOLERANCE, (chunk_size, diff)


@pytest.mark.parametrize(
    "mode, scheduler", [("edit", "euler_ancestral"), ("control", "euler_ancestral"), ("edit", "lcm")]
)
def test_anchor_is_the_same_in_every_chunk(tiny_parts, monkeypatch, mode, scheduler):
    """The anchor (frame 0, re-made by each chunk) comes out the same in every chunk, short last one included."""
    import modules.engine.controlnet as controlnet_module
    import modules.engine.pix2pix as pix2pix_module

    module = pix2pix_module if mode == "edit" else controlnet_module
    anchors = []
    real_decode = module.decode_latents

    def recording_decode(c, latents):
        anchors.append(latents[0].clone())
        return real_decode(c, latents)

    monkeypatch.setattr(module, "decode_latents", recording_decode)
    _run(mode, scheduler, tiny_parts, chunk_size=8)  # chunks [0..7] and [0, 8, 9]
    assert len(anchors) == 2
    # Latents reach about 40 here: float32 rounding of a batch of 8 against one of 3 is relative (it depends
    # on how many threads split the work), so the tolerance scales with the values.
    scale = max(1.0, anchors[0].abs().max().item())
    assert (anchors[1] - anchors[0]).abs().max() < CHUNK_TOLERANCE * scale


# ---------------------------------------------------------------- the noise itself, exactly
def test_frame_zero_draws_from_the_seed_itself_and_frames_differ():
    first = torch.randn((1, *LATENT), generator=frame_generator(7, 0))
    assert torch.equal(first, torch.randn((1, *LATENT), generator=torch.Generator().manual_seed(7)))
    draws = [torch.randn((1, *LATENT), generator=g) for g in frame_generators(7, range(6))]
    assert all(not torch.equal(a, b) for i, a in enumerate(draws) for b in draws[i + 1 :])
    assert not torch.equal(draws[3], torch.randn((1, *LATENT), generator=frame_generator(8, 3)))  # seed matters
    assert not torch.equal(draws[1], torch.randn((1, *LATENT), generator=frame_generator(8, 0)))  # no shifted seeds
    with pytest.raises(ValueError):
        frame_generator(7, -1)


def test_starting_noise_of_a_frame_does_not_depend_on_its_batch():
    whole = randn_tensor((FRAMES, *LATENT), generator=frame_generators(3, range(FRAMES)))
    for chunk_size in CHUNK_SIZES:
        for ids in chunk_frame_ids(FRAMES, chunk_size):
            part = randn_tensor((len(ids), *LATENT), generator=frame_generators(3, ids))
            np.testing.assert_array_equal(part.numpy(), whole[ids].numpy())


@pytest.mark.parametrize(
    "scheduler, config",
    [
        ("euler_ancestral", {}),
        ("ddim", {}),  # stochastic with eta > 0
        ("dpm++_2m", {"algorithm_type": "sde-dpmsolver++"}),
        ("lcm", {}),  # fast mode: noise drawn at every step but the last
    ],
)
def test_stochastic_steps_draw_each_frames_noise_from_its_own_stream(scheduler, config):
    """Several scheduler steps on a batch of all frames and on each chunk: identical per frame.

    A step's arithmetic is elementwise, so with the same per-frame noise the results are equal
    bit for bit; with one generator for the batch (the old way) they were not.
    """
    from modules.engine.common import step_kwargs

    latents = torch.randn((FRAMES, *LATENT), generator=torch.Generator().manual_seed(0))
    outputs = torch.randn((FRAMES, *LATENT), generator=torch.Generator().manual_seed(1))

    def sample(ids, generators=None):
        s = make_scheduler(scheduler, {**tiny.build_scheduler().config, **config})
        s.set_timesteps(4)
        generators = generators or frame_generators(11, ids)
        x = latents[ids] * s.init_noise_sigma
        extra = step_kwargs(s, generators, eta=1.0)
        for t in s.timesteps:
            x = s.step(outputs[ids] * 0.1 + s.scale_model_input(x, t) * 0.01, t, x, **extra, return_dict=False)[0]
        return x.numpy()

    whole = sample(list(range(FRAMES)))
    for chunk_size in CHUNK_SIZES:
        for ids in chunk_frame_ids(FRAMES, chunk_size):
            np.testing.assert_array_equal(sample(ids), whole[ids])
    # One generator for a chunk's batch, re-seeded per chunk (the old way), changes the frames.
    one_stream = sample([0, 8, 9], generators=[torch.Generator().manual_seed(11)] * 3)
    assert np.abs(one_stream[1:] - whole[[8, 9]]).max() > 1e-2
