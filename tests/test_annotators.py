"""Control-map extraction, offline: random-weight controlnet-aux detectors through their real __call__."""

import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

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


# One standing person, as (x, y) fractions of the frame, in OpenPose's 18-part body order: nose, neck,
# right shoulder/elbow/wrist, left shoulder/elbow/wrist, right hip/knee/ankle, left hip/knee/ankle,
# right eye, left eye, right ear, left ear. Arms long and head wide enough for controlnet-aux's
# hand boxes and face box (20 px at least) at 256 px.
PERSON = [
    (0.50, 0.20), (0.50, 0.32), (0.38, 0.33), (0.30, 0.50), (0.25, 0.68), (0.62, 0.33), (0.70, 0.50),
    (0.75, 0.68), (0.43, 0.62), (0.42, 0.80), (0.42, 0.93), (0.57, 0.62), (0.58, 0.80), (0.58, 0.93),
    (0.46, 0.17), (0.54, 0.17), (0.38, 0.19), (0.62, 0.19),
]
# controlnet-aux's body.py: the limbs (1-based parts) and the PAF channels (minus 19) of each.
LIMBS = [[2, 3], [2, 6], [3, 4], [4, 5], [6, 7], [7, 8], [2, 9], [9, 10], [10, 11], [2, 12], [12, 13], [13, 14],
         [2, 1], [1, 15], [15, 17], [1, 16], [16, 18], [3, 17], [6, 18]]
PAF_CHANNELS = [[31, 32], [39, 40], [33, 34], [35, 36], [41, 42], [43, 44], [19, 20], [21, 22], [23, 24],
                [25, 26], [27, 28], [29, 30], [47, 48], [49, 50], [53, 54], [51, 52], [55, 56], [37, 38], [45, 46]]
HAND = [(0.5 + 0.3 * np.cos(a), 0.5 + 0.3 * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 21, endpoint=False)]
FACE = [(0.5 + 0.35 * np.cos(a), 0.5 + 0.4 * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 70, endpoint=False)]


def _blobs(points, height: int, width: int, channels: int) -> torch.Tensor:
    """Heat maps (1, channels, H, W): a unit Gaussian per point, at (x, y) fractions of the map."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    maps = torch.zeros(1, channels, height, width)
    for channel, (x, y) in enumerate(points):
        maps[0, channel] = torch.exp(-((xs - x * (width - 1)) ** 2 + (ys - y * (height - 1)) ** 2) / 2.0)
    return maps


class _Net(torch.nn.Module):
    """Stands in for one of OpenPose's networks: what a trained one would output for `PERSON`.

    Everything around the network is controlnet-aux's own: resizing, peak finding, limb
    association, hand and face boxes, the hand and face estimators' peak extraction, drawing.
    """

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self.device_probe = torch.nn.Parameter(torch.zeros(1))  # the estimators read .parameters() for a device
        self.calls = 0

    def forward(self, data):
        self.calls += 1
        height, width = data.shape[2] // 8, data.shape[3] // 8  # OpenPose nets output at stride 8
        if self.kind == "hand":
            return _blobs(HAND, height, width, 22)
        if self.kind == "face":
            return [_blobs(FACE, height, width, 71)]
        heat = _blobs(PERSON, height, width, 19)
        pafs = torch.zeros(1, 38, height, width)
        for (a, b), channels in zip(LIMBS, PAF_CHANNELS):
            (xa, ya), (xb, yb) = PERSON[a - 1], PERSON[b - 1]
            direction = np.array([(xb - xa) * width, (yb - ya) * height])
            direction /= np.linalg.norm(direction)
            pafs[0, channels[0] - 19], pafs[0, channels[1] - 19] = float(direction[0]), float(direction[1])
        return pafs, heat


@pytest.fixture
def one_person(openpose, monkeypatch):
    """The random detector with its three nets replaced by ones that 'see' PERSON, HAND and FACE."""
    nets = {kind: _Net(kind) for kind in ("body", "hand", "face")}
    monkeypatch.setattr(openpose.body_estimation, "model", nets["body"])
    monkeypatch.setattr(openpose.hand_estimation, "model", nets["hand"])
    monkeypatch.setattr(openpose.face_estimation, "model", nets["face"])
    return nets


def test_pose_maps_with_hands_and_face_run_the_hand_and_face_estimators(openpose, one_person):
    """With a person found, hands and face are estimated (two hand boxes, one face box) and drawn."""
    import importlib.util

    from controlnet_aux.open_pose import util

    assert importlib.util.find_spec("matplotlib"), (
        "controlnet-aux draws hands with matplotlib (open_pose/util.py draw_handpose): without it "
        "'Detect hands' fails on every frame with a person; add matplotlib to requirements.txt"
    )

    size = 256
    frame = np.full((1, size, size, 3), 127, np.uint8)
    body = annotators.pose_maps(frame, openpose, detect_resolution=size)[0]
    assert one_person["body"].calls == 1 and one_person["hand"].calls == 0 and one_person["face"].calls == 0

    # The person's skeleton is drawn where PERSON is: the neck-to-hips region is coloured.
    assert body.any() and body[int(0.32 * size), int(0.5 * size)].any()
    poses = openpose.detect_poses(frame[0][..., ::-1].copy())
    assert len(poses) == 1 and all(keypoint is not None for keypoint in poses[0].body.keypoints)

    full = annotators.pose_maps(frame, openpose, hands=True, face=True, detect_resolution=size)[0]
    assert one_person["hand"].calls == 2 * 4  # two hands, controlnet-aux's four scales each
    assert one_person["face"].calls == 1
    changed = np.abs(full.astype(int) - body.astype(int)).sum(axis=-1) > 0
    keypoints = poses[0].body.keypoints
    scaled = [util.Keypoint(x=k.x * size, y=k.y * size) for k in keypoints]
    body_px = util.BodyResult(keypoints=scaled, total_score=0, total_parts=18)
    for x, y, width, _ in util.handDetect(body_px, frame[0]):  # each hand's box gets the hand's drawing
        assert changed[y : y + width, x : x + width].sum() > 20
    x, y, width = util.faceDetect(body_px, frame[0])
    face_box = full[y : y + width, x : x + width]
    assert (face_box == 255).all(axis=-1).sum() > 20  # face keypoints are drawn as white dots
    assert not (body == 255).all(axis=-1).any()  # ... and only with the face on

    hands_only = annotators.pose_maps(frame, openpose, hands=True, detect_resolution=size)[0]
    assert one_person["face"].calls == 1  # unchanged: the face is opt-in
    assert not (hands_only == 255).all(axis=-1).any() and (hands_only != body).any()


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
