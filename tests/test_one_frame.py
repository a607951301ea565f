"""One-frame inputs and outputs work end to end: a 1-frame clip, a still picture renamed .mp4."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from modules import video_io
from modules.request_types import ControlVideoRequest, EditVideoRequest, Text2VideoRequest, VideoWindow
from modules.settings import Settings
from modules.studio import Studio


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    return Studio(Settings.from_env(preset="tiny", device="cpu", outputs_dir=str(tmp_path_factory.mktemp("one"))))


@pytest.fixture(scope="module")
def uploads(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uploads")
    frame = np.random.default_rng(0).integers(0, 255, (72, 96, 3), dtype=np.uint8)
    still = folder / "still.mp4"
    iio.imwrite(folder / "still.png", frame)
    still.write_bytes((folder / "still.png").read_bytes())  # a picture renamed .mp4
    return {"clip": video_io.write_mp4(frame[None], folder / "one.mp4", 8), "still": str(still)}


def test_one_frame_text_to_video(studio):
    result = studio.text2video(Text2VideoRequest(prompt="a horse", num_frames=1, width=64, height=64, steps=2, seed=1))
    assert video_io.read_video(result.video)[0].shape == (1, 64, 64, 3)
    assert len(video_io.read_video(result.gif)[0]) == 1


@pytest.mark.parametrize("upload", ["clip", "still"])
def test_one_frame_uploads_in_the_video_tabs(studio, uploads, upload):
    window = VideoWindow(resolution=64)
    edge = studio.control_video(ControlVideoRequest(kind="edge", video=uploads[upload], prompt="a robot", steps=2,
                                                    seed=1, window=window))
    assert video_io.read_video(edge.video)[0].shape[0] == 1
    edit = studio.edit_video(EditVideoRequest(video=uploads[upload], prompt="snow", steps=2, seed=1, window=window))
    assert video_io.read_video(edit.video)[0].shape[0] == 1
