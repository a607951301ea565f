"""Wan 2.1 through VACE: control maps (Pose, Edge, Depth) and a first frame, on diffusers' own
WanVACEPipeline (tiny preset): the same frames as the plain pipeline, progress, Stop without decoding,
the window fitted to Wan's rules, and what the first frame conditions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from modules import engines, video_io
from modules.engines.base import ModelComponents
from modules.engines.wan import WAN_MODEL, WAN_VACE_MODEL, tiny as wan_tiny
from modules.engines.wan.vace import fit_maps, fitted_shape, generate_wan_vace
from modules.job_control import Cancelled, JobControl
from modules.request_types import Text2VideoRequest
from modules.settings import Settings

PROMPT = "a golden box on a table"
WAN = engines.get("wan")


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny tensors run faster on one thread


@pytest.fixture(scope="module")
def built():
    return wan_tiny.build_vace_components(seed=5)


def components(built) -> ModelComponents:
    return ModelComponents({**built, "scheduler": wan_tiny.build_scheduler()}, torch.device("cpu"), torch.float32)


def edge_maps(frames: int, height: int, width: int) -> np.ndarray:
    """White outlines of a box moving right on black, uint8 (F, H, W, 3): what the Edge tab's annotator gives."""
    maps = np.zeros((frames, height, width, 3), np.uint8)
    for i in range(frames):
        left = 4 + 2 * i
        maps[i, 6:height - 6, left] = maps[i, 6:height - 6, left + 12] = 255
        maps[i, 6, left:left + 13] = maps[i, height - 7, left:left + 13] = 255
    return maps


def test_wan_serves_the_control_tabs_and_a_first_frame_through_vace():
    assert WAN.serves("control") and WAN.serves("text2video", "image")
    assert WAN.models[:2] == (WAN_MODEL, WAN_VACE_MODEL)
    assert WAN_VACE_MODEL.kind == "components" and WAN_VACE_MODEL.env == "WAN_VACE_MODEL"
    assert WAN_VACE_MODEL.components["transformer"] == "WanVACETransformer3DModel"
    assert WAN_VACE_MODEL.dtypes == {"vae": "float32"} and WAN_VACE_MODEL.half_dtype == "bfloat16"
    assert WAN.download_models(Settings())[1] == ("components:wan_vace_model", "Wan-AI/Wan2.1-VACE-1.3B-diffusers")
    assert WAN.mode("control", "pose") == "pose2video" and WAN.mode("text2video") == "text2video-wan"


def test_ftfy_is_not_needed():
    import importlib.util

    assert importlib.util.find_spec("ftfy") is None  # diffusers' VACE pipeline would call it unchecked


@pytest.mark.parametrize("guidance, negative", [(5.0, "blurry"), (1.0, "")])
def test_a_control_job_matches_diffusers_wan_vace_pipeline(built, guidance, negative):
    from diffusers import WanPipeline, WanVACEPipeline

    seed, steps, maps = 11, 3, edge_maps(5, 32, 48)
    seen = []
    ours = generate_wan_vace(components(built), prompt=PROMPT, negative_prompt=negative, maps=maps, steps=steps,
                             guidance_scale=guidance, conditioning_scale=0.8, seed=seed,
                             on_step=lambda *a: seen.append(a))
    # diffusers' own pipeline on the same parts; the prompt encoded beforehand (its own encoder needs ftfy).
    encoder = WanPipeline(tokenizer=built["tokenizer"], text_encoder=built["text_encoder"], vae=built["vae"],
                          transformer=None, scheduler=wan_tiny.build_scheduler())
    positive, negative_embeds = encoder.encode_prompt(PROMPT, negative or None, guidance > 1.0,
                                                      max_sequence_length=512, device=torch.device("cpu"))
    pipe = WanVACEPipeline(tokenizer=built["tokenizer"], text_encoder=built["text_encoder"], vae=built["vae"],
                           transformer=built["transformer"], scheduler=wan_tiny.build_scheduler())
    pipe.set_progress_bar_config(disable=True)
    reference = pipe(prompt_embeds=positive, negative_prompt_embeds=negative_embeds,
                     video=[Image.fromarray(m) for m in maps], conditioning_scale=0.8, num_frames=5, height=32,
                     width=48, num_inference_steps=steps, guidance_scale=guidance,
                     generator=torch.Generator().manual_seed(seed), output_type="np").frames[0]
    assert ours.shape == reference.shape == (5, 32, 48, 3)
    assert ours.dtype == np.float32 and 0.0 <= ours.min() and ours.max() <= 1.0
    assert np.abs(ours - reference).max() < 1e-5
    assert ours.std() > 0.01
    assert seen == [(1, steps, ""), (2, steps, ""), (3, steps, "")]


def test_the_maps_steer_the_frames(built):
    kwargs = dict(prompt=PROMPT, steps=2, seed=1)
    maps = edge_maps(5, 32, 32)
    first = generate_wan_vace(components(built), maps=maps, **kwargs)
    assert np.array_equal(first, generate_wan_vace(components(built), maps=maps, **kwargs))
    assert not np.array_equal(first, generate_wan_vace(components(built), maps=maps[:, :, ::-1], **kwargs))


def test_a_cancel_raises_within_the_step_and_nothing_is_decoded(built, monkeypatch):
    calls = {"transformer": 0, "decode": 0}
    handle = built["transformer"].register_forward_pre_hook(
        lambda *a: calls.__setitem__("transformer", calls["transformer"] + 1))
    monkeypatch.setattr(built["vae"], "decode", lambda *a, **k: calls.__setitem__("decode", 1))
    control = JobControl()

    def step(done, total, place=""):
        control.cancel()
        control.step(done, total, place)

    try:
        with pytest.raises(Cancelled):
            generate_wan_vace(components(built), prompt=PROMPT, maps=edge_maps(5, 32, 32), steps=4,
                              guidance_scale=5.0, on_step=step)
    finally:
        handle.remove()
    assert calls == {"transformer": 2, "decode": 0}  # one step (two calls with guidance), then stopped


def test_the_control_window_is_fitted_to_4k_plus_1_frames_and_sides_of_16(built):
    assert fitted_shape(7, 40, 56) == (5, 32, 48) and fitted_shape(9, 64, 64) == (9, 64, 64)
    assert fitted_shape(2, 8, 8) == (1, 16, 16)
    images = fit_maps(edge_maps(7, 40, 56))
    assert len(images) == 5 and images[0].size == (48, 32)
    frames = generate_wan_vace(components(built), prompt=PROMPT, maps=edge_maps(7, 40, 56), steps=1,
                               guidance_scale=1.0)
    assert frames.shape == (5, 32, 48, 3)


def test_a_first_frame_is_vaces_frame_0_kept_and_the_rest_generated(tmp_path, monkeypatch):
    """Through Studio: the picture is `video`'s frame 0 with mask 0 there (keep) and 1 elsewhere
    (generate), the other frames VACE's empty grey; the VACE model runs, params.json says so."""
    from diffusers import WanVACEPipeline

    from modules.studio import Studio

    picture = np.zeros((64, 64, 3), np.uint8)
    picture[:, :32] = (220, 40, 30)
    picture[:, 32:] = (20, 60, 200)
    path = tmp_path / "first.png"
    Image.fromarray(picture).save(path)
    seen = {}
    original = WanVACEPipeline.prepare_video_latents

    def spy(self, video, mask, *args, **kwargs):
        seen.update(video=video.clone(), mask=mask.clone())
        return original(self, video, mask, *args, **kwargs)

    monkeypatch.setattr(WanVACEPipeline, "prepare_video_latents", spy)
    studio = Studio(Settings.from_env(preset="tiny", device="cpu", outputs_dir=str(tmp_path / "out")))
    result = studio.text2video(Text2VideoRequest(prompt=PROMPT, engine="wan", image=str(path), num_frames=5,
                                                 width=64, height=64, steps=2, seed=4))
    video, mask = seen["video"][0], seen["mask"][0]  # (3, F, H, W) in [-1, 1]; (3, F, H, W) in [0, 1]
    assert video.shape == (3, 5, 64, 64)
    kept = ((video[:, 0].permute(1, 2, 0).numpy() + 1) * 127.5)
    assert np.abs(kept - picture).max() <= 1.0
    assert torch.allclose(video[:, 1:], torch.full_like(video[:, 1:], 128 / 127.5 - 1), atol=1e-6)
    assert mask[:, 0].max() == 0 and mask[:, 1:].min() == 1
    assert video_io.read_video(result.video).frames.shape == (5, 64, 64, 3)
    record = json.load(open(result.params))
    assert record["model"] == "Wan-AI/Wan2.1-VACE-1.3B-diffusers"


def test_text_to_video_without_a_picture_stays_on_the_t2v_model(tmp_path):
    request = Text2VideoRequest(prompt=PROMPT, engine="wan", num_frames=5, width=32, height=32, steps=2)
    assert not WAN.uses_vace(request, "text2video")
    assert WAN.record(request, "text2video", Settings())["model"] == "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"


@pytest.mark.parametrize("frames, width, height, notes", [
    (9, 64, 48, []),  # fits: nothing to say
    (8, 64, 48, ["Wan 2.1 used the first 5 of the window's 8 frames: it makes clips of 4k+1 frames."]),
    (9, 72, 56, ["Wan 2.1 made 64×48, not 72×56: its sides are multiples of 16 (the control maps were resized to "
                 "fit)."]),
    (7, 40, 8, ["Wan 2.1 used the first 5 of the window's 7 frames: it makes clips of 4k+1 frames.",
                "Wan 2.1 made 32×16, not 40×8: its sides are multiples of 16 (the control maps were resized to fit)."]),
])
def test_the_control_windows_fitting_is_said_in_sentences(frames, width, height, notes):
    """What `fit_maps` will do to a window of this shape, as the result's notes say it (and only in the control tabs)."""
    assert WAN.fit_notes(None, "control", frames, width, height) == notes
    fitted = fitted_shape(frames, height, width)
    assert (fitted[0] != frames) == any("frames" in n for n in notes)
    assert (fitted[1:] != (height, width)) == any("multiples of 16" in n for n in notes)
    if notes and "made" in notes[-1]:
        assert f"{fitted[2]}×{fitted[1]}," in notes[-1]
    assert WAN.fit_notes(None, "text2video", frames, width, height) == []  # validation refuses such values there


def test_a_control_job_on_wan_says_how_its_window_was_fitted(tmp_path):
    """Through Studio: an Edge clip of 8 frames of 72x56 runs as 5 frames of 64x48, and the result's notes and
    params.json say both changes."""
    from modules.request_types import ControlVideoRequest, VideoWindow
    from modules.studio import Studio

    clip = video_io.write_mp4(edge_maps(8, 56, 72), tmp_path / "clip.mp4", 8)
    studio = Studio(Settings.from_env(preset="tiny", device="cpu", outputs_dir=str(tmp_path / "out")))
    result = studio.control_video(ControlVideoRequest(kind="edge", video=str(clip), prompt=PROMPT, engine="wan",
                                                      steps=2, seed=1, window=VideoWindow(resolution=72)))
    assert (result.num_frames, result.width, result.height) == (5, 64, 48)
    expected = WAN.fit_notes(None, "control", 8, 72, 56)
    assert len(expected) == 2 and all(note in result.notes for note in expected)
    assert json.load(open(result.params))["notes"] == result.notes
