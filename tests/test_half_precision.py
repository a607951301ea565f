"""Half precision on a CPU: bfloat16 runs every mode through the Studio, so dtype mismatches of the
fp16 GPU path (an input left in float32, a scheduler tensor in the wrong dtype) fail here first."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from modules import video_io
from modules.request_types import ControlVideoRequest, EditVideoRequest, Text2VideoRequest, VideoWindow
from modules.settings import Settings
from modules.studio import Studio

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    settings = Settings.from_env(preset="tiny", device="cpu", dtype="bfloat16", cpu_offload=True,
                                 outputs_dir=str(tmp_path_factory.mktemp("bf16")))
    return Studio(settings)


def check(result, dtype="torch.bfloat16"):
    frames, _ = video_io.read_video(result.video)
    assert frames.shape[0] >= 2 and frames.dtype == np.uint8
    assert json.load(open(result.params))["dtype"] == dtype


def test_half_precision_text2video_and_every_part_in_bfloat16(studio):
    check(studio.text2video(Text2VideoRequest(prompt="a horse", num_frames=3, width=64, height=64, steps=2, seed=1)))
    components = studio.manager.components()
    for module in (components.text_encoder, components.unet, components.vae):
        assert module.dtype == torch.bfloat16
    assert studio.manager.on_device() == []  # offloaded after the job


@pytest.mark.parametrize("kind", ["edge", "depth", "pose"])
def test_half_precision_control_video(studio, kind):
    window = VideoWindow(start=0, end=1, fps=2, resolution=64)
    request = ControlVideoRequest(kind=kind, video=str(ASSETS / "edge_box.mp4"), prompt="a robot", steps=2,
                                  seed=1, chunk_size=2, window=window, allow_empty_maps=kind == "pose")  # nobody found
    check(studio.control_video(request))
    assert studio.manager.controlnet(kind).dtype == torch.bfloat16


def test_half_precision_edit_video(studio):
    window = VideoWindow(start=0, end=1, fps=2, resolution=64)
    request = EditVideoRequest(video=str(ASSETS / "edit_sea.mp4"), prompt="make it snow", steps=2, seed=1,
                               chunk_size=2, window=window)
    check(studio.edit_video(request))
