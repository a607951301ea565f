"""Our engine against diffusers' reference pipelines on the same tiny weights, seed and settings.

Our engine draws every frame's noise from that frame's own stream (`frame_generators`: frame 0
from the seed itself, frame k from a seed hashed from (seed, k)), so that chunking changes no
frame. The references are handed the same streams through diffusers' own per-sample generator
lists (`generator=[...]`, one per frame: `randn_tensor` then draws frame i's initial latent and
every stochastic step's noise for frame i from generators[i]). Text2Video-Zero's pipeline takes
one generator for its initial latent and its re-noising alike, so `FramewiseTextToVideoZero`
passes the frames' streams to its re-noising (`forward_loop`) and nothing else; all sampling
arithmetic stays diffusers'. So each reference sees exactly our random numbers, ancestral step
noise included, and the tolerance stays 1e-4.
"""

import warnings

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import StableDiffusionControlNetPipeline, StableDiffusionInstructPix2PixPipeline
from diffusers.pipelines.deprecated.text_to_video_synthesis.pipeline_text_to_video_zero import (
    CrossFrameAttnProcessor2_0,
)

from modules import tiny
from benchmarks.references import FramewiseTextToVideoZero
from modules.engine import (
    Components,
    frame_generator,
    frame_generators,
    generate_control_video,
    generate_edit_video,
    generate_text2video,
    make_scheduler,
)

TOLERANCE = 1e-4


def reference_video(pipe, *, seed, frame_ids, **kwargs):
    """The reference for `frame_ids` with our noise: the anchor's stream for the initial latent."""
    pipe.renoise_generators = frame_generators(seed, frame_ids[1:])
    return pipe(
        video_length=len(frame_ids), frame_ids=list(frame_ids), generator=frame_generator(seed, 0),
        output_type="np", **kwargs,
    ).images  # fmt: skip


@pytest.fixture(scope="module")
def t2vz_pipe(tiny_parts):
    p = tiny_parts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = FramewiseTextToVideoZero(
            vae=p["vae"], text_encoder=p["text_encoder"], tokenizer=p["tokenizer"], unet=p["unet"],
            scheduler=tiny.build_scheduler(), safety_checker=None, feature_extractor=None,
            requires_safety_checker=False,
        )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize(
    "steps, t0, t1, height, width",
    [(6, 2, 4, 64, 64), (9, 4, 7, 48, 80)],  # two step counts, and a non-square size
)
def test_text2video_matches_reference(t2vz_pipe, components, steps, t0, t1, height, width):
    kwargs = dict(prompt="a horse galloping", negative_prompt="blurry")
    reference = reference_video(
        t2vz_pipe, **kwargs, seed=3, frame_ids=range(5), height=height, width=width, num_inference_steps=steps,
        t0=t0, t1=t1, motion_field_strength_x=12, motion_field_strength_y=-8,
    )  # fmt: skip
    ours = generate_text2video(
        components, **kwargs, num_frames=5, height=height, width=width, steps=steps, t0=t0, t1=t1,
        motion_x=12, motion_y=-8, seed=3,
    )
    assert ours.shape == reference.shape == (5, height, width, 3)
    assert np.abs(ours - reference).max() < TOLERANCE
    assert ours.std() > 0.01 and np.abs(ours[1:] - ours[:1]).max() > 1e-3  # frames are real and move


def test_text2video_chunk_matches_reference_frame_ids(t2vz_pipe, components, tiny_parts):
    """A later chunk ([0] + ids) equals the reference called with the same frame ids and seed."""
    ids = [0, 5, 6, 7]
    reference = reference_video(
        t2vz_pipe, prompt="a boat", seed=9, frame_ids=ids, height=64, width=64, num_inference_steps=6, t0=2, t1=4,
    )
    ours = generate_text2video(
        components, prompt="a boat", num_frames=len(ids), height=64, width=64, steps=6, t0=2, t1=4, seed=9,
        frame_ids=ids,
    )
    assert np.abs(ours - reference).max() < TOLERANCE


def test_chunked_video_is_the_one_chunk_reference(t2vz_pipe, components, tiny_parts):
    """10 frames in chunks of 4 equal the reference's 10 frames made in one go (same noise per frame)."""
    video = generate_text2video(
        components, prompt="a boat", num_frames=10, height=64, width=64, steps=6, t0=2, t1=4, seed=9, chunk_size=4,
    )
    reference = reference_video(
        t2vz_pipe, prompt="a boat", seed=9, frame_ids=range(10), height=64, width=64, num_inference_steps=6, t0=2,
        t1=4,
    )  # fmt: skip
    assert video.shape == reference.shape == (10, 64, 64, 3)
    assert np.abs(video - reference).max() < TOLERANCE


@pytest.mark.parametrize("scheduler", ["ddim", "euler_ancestral"])  # the app's, and a stochastic one
def test_controlnet_video_matches_reference(tiny_parts, scheduler):
    """Every frame starts from the anchor stream's latent; each frame's stream then feeds its step noise."""
    p = tiny_parts
    rng = np.random.default_rng(0)
    frames, height, width = 5, 48, 80
    control = ((rng.random((frames, height, width, 3)) > 0.7) * 255).astype(np.uint8)
    config = tiny.build_scheduler().config
    pipe = StableDiffusionControlNetPipeline(
        vae=p["vae"], text_encoder=p["text_encoder"], tokenizer=p["tokenizer"], unet=p["unet"],
        controlnet=p["controlnet"], scheduler=make_scheduler(scheduler, config), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    generators = frame_generators(7, range(frames))
    latent = torch.randn((1, 4, height // 8, width // 8), generator=generators[0])
    saved = p["unet"].attn_processors, p["controlnet"].attn_processors
    p["unet"].set_attn_processor(CrossFrameAttnProcessor2_0(batch_size=2))
    p["controlnet"].set_attn_processor(CrossFrameAttnProcessor2_0(batch_size=2))
    try:
        reference = pipe(
            prompt=["a dancer"] * frames, negative_prompt=["ugly"] * frames,
            image=[PIL.Image.fromarray(x) for x in control], height=height, width=width,
            latents=latent.repeat(frames, 1, 1, 1), generator=generators, num_inference_steps=6, guidance_scale=9.0,
            controlnet_conditioning_scale=0.8, output_type="np",
        ).images
    finally:
        p["unet"].set_attn_processor(saved[0])
        p["controlnet"].set_attn_processor(saved[1])
    components = Components(p["tokenizer"], p["text_encoder"], p["unet"], p["vae"], make_scheduler(scheduler, config))
    ours = generate_control_video(
        components, p["controlnet"], control=control, prompt="a dancer", negative_prompt="ugly", steps=6,
        guidance_scale=9.0, conditioning_scale=0.8, seed=7, chunk_size=8,
    )
    assert ours.shape == reference.shape == (5, height, width, 3)
    assert np.abs(ours - reference).max() < TOLERANCE


@pytest.fixture(scope="module")
def pix2pix(tiny_parts):
    p = tiny_parts
    pipe = StableDiffusionInstructPix2PixPipeline(
        vae=p["vae"], text_encoder=p["text_encoder"], tokenizer=p["tokenizer"], unet=p["pix2pix_unet"],
        scheduler=tiny.build_scheduler(), safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    frames = (np.random.default_rng(1).random((5, 48, 80, 3)) * 255).astype(np.uint8)
    return pipe, frames


def _pix2pix_pair(tiny_parts, pix2pix, image_guidance, scheduler="euler_ancestral"):
    """Ours and the reference, given each frame's stream (initial latent, then ancestral step noise)."""
    pipe, frames = pix2pix
    config = tiny.build_scheduler().config
    pipe.scheduler = make_scheduler(scheduler, config)
    unet = tiny_parts["pix2pix_unet"]
    saved = unet.attn_processors
    unet.set_attn_processor(CrossFrameAttnProcessor2_0(batch_size=3))
    try:
        reference = pipe(
            prompt=["make it snow"] * len(frames), negative_prompt=["bad"] * len(frames),
            image=[PIL.Image.fromarray(x) for x in frames], num_inference_steps=5, guidance_scale=7.5,
            image_guidance_scale=image_guidance, generator=frame_generators(11, range(len(frames))), output_type="np",
        ).images
    finally:
        unet.set_attn_processor(saved)
    p = tiny_parts
    components = Components(
        p["tokenizer"], p["text_encoder"], unet, p["vae"], make_scheduler(scheduler, config),
    )
    ours = generate_edit_video(
        components, frames=frames, prompt="make it snow", negative_prompt="bad", steps=5, guidance_scale=7.5,
        image_guidance_scale=image_guidance, seed=11, chunk_size=8,
    )
    return ours, reference


@pytest.mark.parametrize("scheduler", ["euler_ancestral", "ddim"])  # the app's default (stochastic), and DDIM
def test_pix2pix_video_matches_reference(tiny_parts, pix2pix, scheduler):
    ours, reference = _pix2pix_pair(tiny_parts, pix2pix, image_guidance=1.5, scheduler=scheduler)
    assert ours.shape == reference.shape == (5, 48, 80, 3)
    assert np.abs(ours - reference).max() < TOLERANCE


def test_pix2pix_differs_from_reference_on_purpose_below_unit_image_guidance(tiny_parts, pix2pix):
    """diffusers turns all guidance off when image guidance < 1; we keep three-way guidance."""
    ours, reference = _pix2pix_pair(tiny_parts, pix2pix, image_guidance=0.5)
    assert np.abs(ours - reference).max() > 1e-2
