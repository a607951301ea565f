"""Control-map extraction, offline: random-weight controlnet-aux detectors through their real __call__."""

import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from modules import annotators  # noqa: E402
from modules.annotators import AnnotatorError  # noqa: E402

FRAMES, HEIGHT, WIDTH = 2, 96, 128  # not multiples of 64 on purpose: maps must still match
DETECT_RESOLUTION = 128  # small enough for CPU, still through controlnet-aux's resize logic


def _no_download(*args, **kwargs):
    raise AssertionError("a random detector tried to fetch weights")


@pytest.fixture(scope="module")
def no_downloads():
    """Random detectors must never reach for the Hub, timm's pretrained weights or torch.hub."""
    import controlnet_aux.midas
    import controlnet_aux.open_pose
    import timm.models._builder
    import torch.hub

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(controlnet_aux.open_pose, "hf_hub_download", _no_download)
        patch.setattr(controlnet_aux.midas, "hf_hub_download", _no_download)
        patch.setattr(timm.models._builder, "load_pretrained", _no_download)
        patch.setattr(torch.hub, "load", _no_download)
        yield


@pytest.fixture(scope="module")
def openpose(no_downloads):
    return annotators.load_openpose("random", "cpu")


@pytest.fixture(scope="module")
def midas(no_downloads):
    return annotators.load_midas("random", "cpu")


@pytest.fixture
def frames():
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8)
    video[:, 20:70, 40:90] = 255
    return video


def _recorder():
    calls = []
    return calls, lambda done, total: calls.append((done, total))


# --------------------------------------------------------------------------- detectors


def test_random_openpose_uses_real_controlnet_aux_classes(openpose):
    from controlnet_aux import OpenposeDetector
    from controlnet_aux.open_pose.body import Body
    from controlnet_aux.open_pose.face import Face
    from controlnet_aux.open_pose.hand import Hand

    assert isinstance(openpose, OpenposeDetector)
    assert isinstance(openpose.body_estimation, Body)
    assert isinstance(openpose.hand_estimation, Hand)
    assert isinstance(openpose.face_estimation, Face)
    assert next(openpose.body_estimation.model.parameters()).device.type == "cpu"


def test_random_midas_uses_real_controlnet_aux_classes(midas):
    from controlnet_aux import MidasDetector
    from controlnet_aux.midas.api import MiDaSInference
    from controlnet_aux.midas.midas.dpt_depth import DPTDepthModel

    assert isinstance(midas, MidasDetector)
    assert isinstance(midas.model, MiDaSInference)
    assert isinstance(midas.model.model, DPTDepthModel)
    assert not midas.model.model.training


def test_pose_maps_shape_dtype_and_progress(openpose, frames):
    calls, on_frame = _recorder()
    stops = []
    maps = annotators.pose_maps(
        frames, openpose, detect_resolution=DETECT_RESOLUTION, on_frame=on_frame, should_stop=lambda: stops.append(1)
    )
    assert maps.shape == frames.shape and maps.dtype == np.uint8
    assert calls == [(1, FRAMES), (2, FRAMES)]
    assert len(stops) == FRAMES


def test_pose_maps_with_hands_and_face(openpose, frames):
    maps = annotators.pose_maps(frames[:1], openpose, hands=True, face=True, detect_resolution=DETECT_RESOLUTION)
    assert maps.shape == (1, HEIGHT, WIDTH, 3) and maps.dtype == np.uint8


def test_depth_maps_shape_dtype_and_range(midas, frames):
    calls, on_frame = _recorder()
    maps = annotators.depth_maps(frames, midas, detect_resolution=DETECT_RESOLUTION, on_frame=on_frame)
    assert maps.shape == frames.shape and maps.dtype == np.uint8
    assert calls == [(1, FRAMES), (2, FRAMES)]
    assert maps.max() > maps.min()  # normalised per frame, so random weights still give a spread
    assert np.array_equal(maps[..., 0], maps[..., 1]) and np.array_equal(maps[..., 0], maps[..., 2])


def test_should_stop_exception_propagates_and_stops_early(midas, frames):
    class Cancelled(Exception):
        pass

    seen = []
    calls, on_frame = _recorder()

    def should_stop():
        seen.append(1)
        if len(seen) > 1:
            raise Cancelled

    with pytest.raises(Cancelled):
        annotators.depth_maps(frames, midas, detect_resolution=64, on_frame=on_frame, should_stop=should_stop)
    assert calls == [(1, FRAMES)]


def test_control_maps_dispatches_to_detectors(openpose, midas, frames):
    pose = annotators.control_maps("pose", frames, detector=openpose, detect_resolution=DETECT_RESOLUTION)
    depth = annotators.control_maps("depth", frames, detector=midas, detect_resolution=64)
    assert pose.shape == depth.shape == frames.shape


def test_offline_hub_load_fails_fast_with_hint(monkeypatch, tmp_path):
    import huggingface_hub.constants

    from modules.hub import forget_listings
    from modules.models import ModelLoadError, ModelManager
    from modules.settings import Settings

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # nothing cached here
    forget_listings()
    manager = ModelManager(Settings.from_env(preset="real", outputs_dir=str(tmp_path)))
    for kind in ("pose", "depth"):
        start = time.monotonic()
        with pytest.raises(ModelLoadError) as caught:
            manager.annotator(kind)
        assert time.monotonic() - start < 10
        assert "--preset tiny" in str(caught.value)
        assert "lllyasviel/Annotators" in str(caught.value)


def test_annotators_load_from_a_folder_of_checkpoints(tmp_path):
    """The real loading path: checkpoint files in a folder, read by the weights-only unpickler."""
    import torch

    states = annotators._random_openpose_states()
    for part, name in annotators.OPENPOSE_FILES.items():
        torch.save(states[part], tmp_path / name)
    detector = annotators.load_openpose(tmp_path)
    assert isinstance(detector, annotators.OpenposeDetector)
    with pytest.raises(AnnotatorError, match="missing"):
        annotators.load_midas(tmp_path)


# --------------------------------------------------------------------------- no detector


def test_canny_finds_the_square_border():
    image = np.zeros((1, 64, 64, 3), dtype=np.uint8)
    image[0, 16:48, 16:48] = 255
    calls, on_frame = _recorder()
    edges = annotators.canny_maps(image, on_frame=on_frame)[0]

    assert edges.shape == (64, 64, 3) and edges.dtype == np.uint8
    assert np.array_equal(edges[..., 0], edges[..., 1]) and np.array_equal(edges[..., 0], edges[..., 2])
    on = edges[..., 0] > 0
    border = np.zeros_like(on)
    border[14:50, 14:50] = True
    border[18:46, 18:46] = False
    assert on.any() and not on[~border].any()  # nothing away from the square's outline
    for line in (on[14:18, 16:48], on[46:50, 16:48], on[16:48, 14:18], on[16:48, 46:50]):
        assert line.any()  # every side of the square is found
    assert calls == [(1, 1)]


def test_control_maps_edge_passes_thresholds():
    image = np.zeros((2, 32, 48, 3), dtype=np.uint8)
    image[:, 8:24, 8:24] = 255
    maps = annotators.control_maps("edge", image, low=50, high=150)
    assert maps.shape == image.shape and maps.any()


@pytest.mark.parametrize("low, high", [(200, 100), (100, 100), (-1, 100), (100, 256), ("low", 200), (None, 200)])
def test_bad_canny_thresholds(low, high):
    frames = np.zeros((1, 16, 16, 3), dtype=np.uint8)
    with pytest.raises(AnnotatorError, match="0 <= low < high <= 255"):
        annotators.canny_maps(frames, low, high)


def test_skeleton_input_is_returned_unchanged(frames):
    before = frames.copy()
    maps = annotators.control_maps("pose", frames, is_skeleton=True, hands=True)
    assert maps is frames
    assert np.array_equal(maps, before)


def test_pose_without_detector_fails_clearly(frames):
    with pytest.raises(AnnotatorError, match="detector"):
        annotators.control_maps("pose", frames)


def test_unknown_kind_fails_clearly(frames):
    with pytest.raises(AnnotatorError, match="pose, edge, depth"):
        annotators.control_maps("normal", frames)


@pytest.mark.parametrize(
    "bad", [np.zeros((2, 16, 16, 3), np.float32), np.zeros((16, 16, 3), np.uint8), np.zeros((1, 16, 16, 4), np.uint8)]
)
def test_bad_frames_fail_clearly(bad):
    with pytest.raises(AnnotatorError, match="Frames"):
        annotators.canny_maps(bad)


def test_bad_detect_resolution_fails_clearly(frames):
    with pytest.raises(AnnotatorError, match="resolution"):
        annotators.depth_maps(frames, object(), detect_resolution=16)
