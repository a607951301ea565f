"""Wan 2.1's Fast mode: NVIDIA's AnyFlow (flow-map distilled Wan 2.1 T2V 1.3B) on diffusers' own
AnyFlowPipeline (tiny preset): its recipe (4 steps, guidance 1) through Studio with notes, the same
frames as the plain pipeline, progress every step, Stop without decoding; no few-step weights for VACE
(the control tabs, a first frame), said in a sentence; the AnyFlow folder shares the T2V model's text
encoder, tokenizer and VAE (held once); a transformer folder as NVIDIA's converter writes it loads."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from modules import engines, video_io
from modules.engines.base import ModelComponents
from modules.engines.wan import FAST, FAST_MODEL_ID, WAN_FAST_MODEL, WAN_MODEL, WAN_VACE_MODEL, tiny as wan_tiny
from modules.engines.wan.fast import generate_wan_fast
from modules.job_control import Cancelled, JobControl
from modules.models import ModelManager
from modules.request_types import ControlVideoRequest, RequestError, Text2VideoRequest
from modules.settings import Settings

PROMPT = "a paper boat on a pond"
WAN = engines.get("wan")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny tensors run faster on one thread


@pytest.fixture(scope="module")
def built():
    return wan_tiny.build_anyflow_components(seed=7)


def components(built) -> ModelComponents:
    return ModelComponents({**built, "scheduler": wan_tiny.build_anyflow_scheduler()}, torch.device("cpu"),
                           torch.float32)


def settings(tmp_path, **overrides) -> Settings:
    return Settings.from_env(preset="tiny", device="cpu", outputs_dir=str(tmp_path), **overrides)


def test_the_recipe_and_the_anyflow_model_are_declared():
    assert WAN.fast is FAST and FAST.name == "AnyFlow" and FAST.for_tab("text2video") == {"steps": 4, "guidance_scale": 1.0}
    assert FAST.serves("text2video") and not FAST.serves("control") and FAST.max_guidance == 1.0
    assert WAN_FAST_MODEL.default_repo == FAST_MODEL_ID == "nvidia/AnyFlow-Wan2.1-T2V-1.3B-Diffusers"
    assert WAN_FAST_MODEL.env == "WAN_FAST_MODEL" and WAN_FAST_MODEL.half_dtype == "bfloat16"
    assert WAN_FAST_MODEL.components["transformer"] == "AnyFlowTransformer3DModel"
    assert WAN_FAST_MODEL.components["scheduler"] == "FlowMapEulerDiscreteScheduler"
    shared = {"tokenizer": "wan_model", "text_encoder": "wan_model", "vae": "wan_model"}
    assert WAN_FAST_MODEL.shared_roles == WAN_VACE_MODEL.shared_roles == shared
    assert WAN_FAST_MODEL.own_roles == ["transformer", "scheduler"]
    assert ("components:wan_fast_model", FAST_MODEL_ID) in WAN.download_models(Settings())
    assert "T2VZ_WAN_FAST_MODEL" in dict(__import__("modules.settings", fromlist=["ENV_VARS"]).ENV_VARS)
    assert WAN.form_defaults("text2video", fast=True)["steps"] == 4
    assert WAN.form_defaults("control", fast=True)["steps"] == WAN.defaults.steps  # no recipe there


def test_fast_matches_diffusers_anyflow_pipeline_and_reports_every_step(built):
    from diffusers import AnyFlowPipeline

    seen = []
    ours = generate_wan_fast(components(built), prompt=PROMPT, num_frames=5, height=32, width=48, steps=4, seed=3,
                             on_step=lambda *a: seen.append(a))
    pipe = AnyFlowPipeline(tokenizer=built["tokenizer"], text_encoder=built["text_encoder"], vae=built["vae"],
                           transformer=built["transformer"], scheduler=wan_tiny.build_anyflow_scheduler())
    pipe.set_progress_bar_config(disable=True)
    reference = pipe(PROMPT, num_frames=5, height=32, width=48, num_inference_steps=4, guidance_scale=1.0,
                     generator=torch.Generator().manual_seed(3), output_type="np").frames[0]
    assert ours.shape == reference.shape == (5, 32, 48, 3) and ours.dtype == np.float32
    assert np.abs(ours - reference).max() < 1e-5 and ours.std() > 0.01
    assert seen == [(n, 4, "") for n in range(1, 5)]


def test_a_stop_raises_within_the_step_and_nothing_is_decoded(built, monkeypatch):
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
            generate_wan_fast(components(built), prompt=PROMPT, num_frames=5, height=32, width=32, steps=4, on_step=step)
    finally:
        handle.remove()
    assert calls == {"transformer": 1, "decode": 0}  # one call a step (guidance folded in), then stopped


def test_fast_through_studio_runs_the_recipe_on_anyflow_and_says_so(tmp_path):
    from modules.studio import Studio

    studio = Studio(settings(tmp_path))
    result = studio.text2video(Text2VideoRequest(prompt=PROMPT, engine="wan", fast=True, num_frames=5, width=64,
                                                 height=64, steps=30, guidance_scale=5.0, seed=2))
    assert video_io.read_video(result.video).frames.shape == (5, 64, 64, 3)
    record = json.load(open(result.params))
    assert (record["request"]["steps"], record["request"]["guidance_scale"]) == (4, 1.0)  # what ran
    assert record["model"] == FAST_MODEL_ID and record["scheduler"] == "flowmap_euler (shift 5)"
    assert record["text_encoder_and_vae"] == WAN_MODEL.default_repo and "NVIDIA" in record["licence"]
    assert result.notes == ["Fast mode (AnyFlow) runs 2, 4, 8 or 16 steps with guidance up to 1: used steps 4, "
                            "guidance scale 1.0."]
    assert record["notes"] == result.notes
    # A recipe's step count is kept: 2 steps run 2.
    again = studio.text2video(Text2VideoRequest(prompt=PROMPT, engine="wan", fast=True, num_frames=5, width=64,
                                                height=64, steps=2, guidance_scale=1.0, seed=2))
    assert json.load(open(again.params))["request"]["steps"] == 2 and again.notes == []


def test_fast_has_no_few_step_weights_for_vace_and_says_so(tmp_path):
    """The control tabs and a first frame run VACE: Fast refuses in a sentence naming the case and the engines
    that have few-step weights there."""
    from modules.errors import UserError

    config = settings(tmp_path)
    control = ControlVideoRequest(kind="edge", video=str(tmp_path / "clip.mp4"), prompt=PROMPT, engine="wan", fast=True)
    with pytest.raises(UserError, match=re.escape(
            "Fast mode has no few-step weights for Wan 2.1 in the Pose, Edge and Depth tabs (AnyFlow is for text to "
            "video only); switch Fast off, or pick ")) as caught:
        WAN.fast_settings(control, "control")  # what validation and the job apply
    assert "AnimateDiff (AnimateDiff-Lightning)" in str(caught.value) and "Wan 2.1 (AnyFlow)" not in str(caught.value)
    picture = tmp_path / "first.png"
    from PIL import Image

    Image.new("RGB", (64, 64), (200, 20, 20)).save(picture)
    with pytest.raises(RequestError, match=re.escape(
            "Fast mode has no few-step weights for Wan 2.1 with a first frame (a picture goes through VACE; AnyFlow "
            "is for text to video only); switch Fast off")):
        Text2VideoRequest(prompt=PROMPT, engine="wan", fast=True, image=str(picture), num_frames=5, width=64,
                          height=64, steps=4).validate(config)


def test_the_anyflow_folder_shares_the_t2v_text_encoder_tokenizer_and_vae(tmp_path):
    """Loaded once, held once: the fast, VACE and T2V models hand out the same objects, read from the T2V repo."""
    manager = ModelManager(settings(tmp_path, dtype="float16"))
    fast = manager.model(WAN_FAST_MODEL)
    assert type(fast["transformer"]).__name__ == "AnyFlowTransformer3DModel"
    assert fast["transformer"].dtype == torch.bfloat16 and fast["vae"].dtype == torch.float32
    assert type(fast["scheduler"]).__name__ == "FlowMapEulerDiscreteScheduler" and fast["scheduler"].config.shift == 5.0
    t2v, vace = manager.model(WAN_MODEL), manager.model(WAN_VACE_MODEL)
    for role in ("tokenizer", "text_encoder", "vae"):
        assert fast[role] is t2v[role] is vace[role], role
    assert fast["transformer"] is not t2v["transformer"] is not vace["transformer"]
    assert {key: n for key, n in manager.loads.items() if key.endswith(("text_encoder", "vae"))} == {
        "wan_model:text_encoder": 1, "wan_model:vae": 1}
    assert manager.memory_bytes() < sum(
        sum(p.numel() * p.element_size() for p in parts[role].parameters())
        for parts in (fast, t2v, vace) for role in ("text_encoder", "transformer", "vae"))
    manager.evict("wan_model")  # the T2V model goes; the shared parts stay with the models that hold them
    assert manager.model(WAN_FAST_MODEL)["text_encoder"] is fast["text_encoder"]
    assert manager.model(WAN_MODEL)["text_encoder"] is fast["text_encoder"]  # found again, not loaded again
    assert manager.loads["wan_model:text_encoder"] == 1


def test_a_transformer_folder_as_nvidias_converter_writes_it_loads_as_anyflow(tmp_path):
    """The NVlabs converter's config names its own classes (FAR_Wan_Transformer3DModel with FAR keys,
    FlowMapDiscreteScheduler with a training weight); the parameter names are diffusers' AnyFlow ones, so
    the app's loader reads them as AnyFlowTransformer3DModel and FlowMapEulerDiscreteScheduler."""
    from modules.parts import HubSource

    made = wan_tiny.build_anyflow_transformer(seed=9)
    made.save_pretrained(tmp_path / "transformer")
    config_path = tmp_path / "transformer" / "config.json"
    config = json.loads(config_path.read_text())
    config.update({"_class_name": "FAR_Wan_Transformer3DModel", "_diffusers_version": "0.35.1",
                   "chunk_partition": None, "compressed_patch_size": [1, 4, 4], "full_chunk_limit": 3,
                   "init_far_model": False, "init_flowmap_model": True, "qk_norm": "rms_norm_across_heads"})
    config_path.write_text(json.dumps(config))
    (tmp_path / "scheduler").mkdir()
    (tmp_path / "scheduler" / "scheduler_config.json").write_text(json.dumps(
        {"_class_name": "FlowMapDiscreteScheduler", "_diffusers_version": "0.35.1", "num_train_timesteps": 1000,
         "shift": 5, "weight_type": "gaussian"}))
    from dataclasses import replace

    own = replace(WAN_FAST_MODEL, components={r: WAN_FAST_MODEL.components[r] for r in WAN_FAST_MODEL.own_roles},
                  shared_roles={})
    parts = HubSource(torch.float32).components(str(tmp_path), own, reuse=lambda fingerprint: None)
    loaded = parts["transformer"].module
    assert type(loaded).__name__ == "AnyFlowTransformer3DModel"
    assert all(torch.equal(v, made.state_dict()[k]) for k, v in loaded.state_dict().items())
    from diffusers import FlowMapEulerDiscreteScheduler

    assert FlowMapEulerDiscreteScheduler.from_config(parts["scheduler"].module).config.shift == 5
