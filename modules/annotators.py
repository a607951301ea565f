"""Control maps (pose skeletons, Canny edges, MiDaS depth) for ControlNet video.

Built on controlnet-aux 0.0.10. The detectors are plain controlnet-aux objects, so a
model manager can cache them; the map functions run them frame by frame and always
return uint8 (F, H, W, 3) maps of the input's size, because ControlNet wants the control
video aligned pixel for pixel with the frames it conditions.

A source is a folder holding the checkpoints (the model manager fetches them from the Hub) or
"random": the real controlnet-aux networks with random weights, for the tiny preset and the
tests. Both go through the same constructors; random maps are meaningless, their code paths real.
"""

from __future__ import annotations

import copy
import functools
import io
import warnings
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np
import torch
from .errors import UserError
from .request_types import CONTROL_KINDS
from .safe_pickle import UnsafePickleError, load_weights
from .video_io import to_rgb

with warnings.catch_warnings():
    # controlnet-aux imports all its annotators: mediapipe-missing and timm registry noise.
    warnings.simplefilter("ignore", UserWarning)
    warnings.simplefilter("ignore", FutureWarning)
    from controlnet_aux import MidasDetector, OpenposeDetector
    from controlnet_aux.midas.api import MiDaSInference, disabled_train
    from controlnet_aux.midas.midas import vit as midas_vit
    from controlnet_aux.midas.midas.dpt_depth import DPTDepthModel
    from controlnet_aux.open_pose.body import Body
    from controlnet_aux.open_pose.face import Face, FaceNet
    from controlnet_aux.open_pose.hand import Hand
    from controlnet_aux.open_pose.model import bodypose_model, handpose_model

RANDOM_SOURCE = "random"
RANDOM_SEED = 0  # random detectors are reproducible, and leave the global RNG alone

CANNY_LOW = 100
CANNY_HIGH = 200
POSE_DETECT_RESOLUTION = 512
DEPTH_DETECT_RESOLUTION = 384
MIN_DETECT_RESOLUTION = 64  # controlnet-aux rounds sides to multiples of 64; below that they hit 0

# The only MiDaS type usable offline: DPT builds its timm backbone with pretrained=False,
# while midas_v21 / midas_v21_small fetch their backbones through torch.hub (GitHub).
MIDAS_MODEL_TYPE = "dpt_hybrid"
MIDAS_BACKBONE = "vitb_rn50_384"  # what controlnet-aux's load_model uses for dpt_hybrid

OnFrame = Optional[Callable[[int, int], None]]
ShouldStop = Optional[Callable[[], object]]


class AnnotatorError(UserError, RuntimeError):
    """A control map could not be made: bad options, bad frames or missing weights."""


# --------------------------------------------------------------------------- loading

# The files controlnet-aux's OpenposeDetector / MidasDetector("dpt_hybrid") read from lllyasviel/Annotators.
OPENPOSE_FILES = {"body": "body_pose_model.pth", "hand": "hand_pose_model.pth", "face": "facenet.pth"}
MIDAS_FILE = "dpt_hybrid-midas-501f0c75.pt"
ANNOTATOR_FILES = {"pose": tuple(OPENPOSE_FILES.values()), "depth": (MIDAS_FILE,)}


def load_openpose(source: str | Path, device=None) -> OpenposeDetector:
    """OpenPose body+hand+face detector from a folder holding its checkpoints, or "random".

    Checkpoints are read by the weights-only unpickler (safe_pickle), never by a plain torch.load.
    """
    if source == RANDOM_SOURCE:
        detector = copy.deepcopy(_random_detector("pose"))
    else:
        states = {part: _read_checkpoint(Path(source) / name, "OpenPose") for part, name in OPENPOSE_FILES.items()}
        detector = _openpose(states)
    return detector.to(device) if device is not None else detector


def _openpose(states: dict[str, dict]) -> OpenposeDetector:
    return OpenposeDetector(
        Body(_state_buffer(states["body"])), Hand(_state_buffer(states["hand"])), Face(_state_buffer(states["face"]))
    )


@functools.lru_cache(maxsize=None)
def _random_detector(kind: str):
    """The tiny preset's random detector of `kind`, made once a process: each load is a copy of it (the same
    weights), not a new random init (seconds of a core: OpenPose's ~100M parameters, initialised twice)."""
    return _openpose(_random_openpose_states()) if kind == "pose" else _midas(None)


def load_midas(source: str | Path, device=None) -> MidasDetector:
    """MiDaS (DPT-Hybrid) depth detector from a folder holding its checkpoint, or "random"."""
    if source == RANDOM_SOURCE:
        # DPT's hooks write into one dict of controlnet-aux's vit module that every MiDaS reads: the copy keeps it.
        detector = copy.deepcopy(_random_detector("depth"), {id(midas_vit.activations): midas_vit.activations})
    else:
        detector = _midas(_read_checkpoint(Path(source) / MIDAS_FILE, "MiDaS depth"))
    return detector.to(device) if device is not None else detector


def _midas(state: dict | None) -> MidasDetector:
    """DPT-Hybrid with `state`'s weights (None: its seeded random init)."""
    if isinstance(state, dict) and "optimizer" in state:  # as controlnet-aux's BaseModel.load
        state = state["model"]
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        # timm maps the old "vit_base_resnet50_384" name that controlnet-aux asks for.
        warnings.filterwarnings("ignore", message=".*deprecated model name.*")
        torch.manual_seed(RANDOM_SEED)
        net = DPTDepthModel(path=None, backbone=MIDAS_BACKBONE, non_negative=True)
    if state is not None:
        try:
            net.load_state_dict(state)
        except RuntimeError as error:
            raise AnnotatorError(f"The MiDaS depth checkpoint {MIDAS_FILE} does not fit DPT-Hybrid: {str(error)[:200]}") from error
    # MiDaSInference's constructor would read (or download) the checkpoint itself: its three-line
    # __init__ is replayed around our net; MidasDetector and MiDaSInference.forward are the real ones.
    inference = MiDaSInference.__new__(MiDaSInference)
    torch.nn.Module.__init__(inference)
    inference.model = net.eval()
    inference.model.train = disabled_train
    return MidasDetector(inference)


def _read_checkpoint(path: Path, what: str) -> dict:
    if not path.is_file():
        raise AnnotatorError(f"The {what} annotator's checkpoint {path.name} is missing from {path.parent}.")
    try:
        return load_weights(path)
    except UnsafePickleError as error:
        raise AnnotatorError(str(error)) from error


def _state_buffer(state: dict) -> io.BytesIO:
    """A state dict as an in-memory checkpoint: torch.load, hence the real constructors, accept it."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer


def _random_openpose_states() -> dict[str, dict]:
    """Random checkpoints for the real Body/Hand/Face estimators, in the CMU files' key layout."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        # Body and Hand load through util.transfer, which drops the first key component
        # ("model0.conv1_1.weight" is stored as "conv1_1.weight" in the CMU checkpoints).
        body = {key.split(".", 1)[1]: value for key, value in _quiet_heads(bodypose_model()).items()}
        hand = {key.split(".", 1)[1]: value for key, value in _quiet_heads(handpose_model()).items()}
        face = FaceNet().state_dict()
    return {"body": body, "hand": hand, "face": face}


def _quiet_heads(model: torch.nn.Module) -> dict:
    """The state dict with the last stage's output convolutions zeroed.

    Random heatmaps put a keypoint candidate on nearly every pixel, and OpenPose's limb
    matching is quadratic in candidates (minutes per frame). Zero heads give empty heatmaps:
    the whole network and the peak search still run, fast, and find nobody.
    """
    state = model.state_dict()
    for key, value in state.items():
        if "Mconv7_stage6" in key:
            state[key] = torch.zeros_like(value)
    return state


# --------------------------------------------------------------------------- maps


def canny_maps(
    frames: np.ndarray,
    low: int = CANNY_LOW,
    high: int = CANNY_HIGH,
    *,
    on_frame: OnFrame = None,
    should_stop: ShouldStop = None,
) -> np.ndarray:
    """Canny edges per frame, white on black, as ControlNet's canny model was trained on."""
    _check_canny_thresholds(low, high)

    def edges(frame: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(cv2.Canny(frame, float(low), float(high)), cv2.COLOR_GRAY2RGB)

    return _per_frame(frames, edges, on_frame, should_stop)


def pose_maps(
    frames: np.ndarray,
    detector,
    *,
    hands: bool = False,
    face: bool = False,
    detect_resolution: int = POSE_DETECT_RESOLUTION,
    on_frame: OnFrame = None,
    should_stop: ShouldStop = None,
) -> np.ndarray:
    """OpenPose skeletons per frame; hands and face are opt-in since they cost several extra passes."""
    _check_detector(detector, "pose")
    _check_resolution(detect_resolution)

    def skeleton(frame: np.ndarray) -> np.ndarray:
        return detector(
            frame,
            detect_resolution=detect_resolution,
            image_resolution=detect_resolution,
            include_body=True,
            include_hand=bool(hands),
            include_face=bool(face),
            output_type="np",
        )

    # Nearest when enlarging: ControlNet reads limbs by their exact colours.
    return _per_frame(frames, skeleton, on_frame, should_stop, smooth=False)


def depth_maps(
    frames: np.ndarray,
    detector,
    *,
    detect_resolution: int = DEPTH_DETECT_RESOLUTION,
    on_frame: OnFrame = None,
    should_stop: ShouldStop = None,
) -> np.ndarray:
    """MiDaS relative depth per frame (each frame normalised to 0..255 on its own, as in ControlNet)."""
    _check_detector(detector, "depth")
    _check_resolution(detect_resolution)

    def depth(frame: np.ndarray) -> np.ndarray:
        return detector(
            frame,
            detect_resolution=detect_resolution,
            image_resolution=detect_resolution,
            output_type="np",
        )

    return _per_frame(frames, depth, on_frame, should_stop, smooth=True)


def control_maps(kind: str, frames: np.ndarray, *, detector=None, **options) -> np.ndarray:
    """One entry point for the ControlNet tab: kind picks the map, options go to its function.

    For "pose", is_skeleton=True means the input already is a skeleton video: it is
    returned unchanged, with no detector needed.
    """
    if kind == "edge":
        return canny_maps(frames, **options)
    if kind == "pose":
        if options.pop("is_skeleton", False):
            return _check_frames(frames)
        return pose_maps(frames, detector, **options)
    if kind == "depth":
        return depth_maps(frames, detector, **options)
    raise AnnotatorError(f"Unknown control kind {kind!r}; choose one of {', '.join(CONTROL_KINDS)}.")


# --------------------------------------------------------------------------- helpers


def _per_frame(
    frames: np.ndarray,
    make_map: Callable[[np.ndarray], np.ndarray],
    on_frame: OnFrame,
    should_stop: ShouldStop,
    *,
    smooth: bool = True,
) -> np.ndarray:
    """Run make_map frame by frame, so a long video can report progress and be cancelled."""
    frames = _check_frames(frames)
    total, height, width = frames.shape[:3]
    maps = np.empty_like(frames)
    with torch.inference_mode():
        for index in range(total):
            if should_stop is not None:
                should_stop()  # cancels by raising; its return value means nothing here
            detected = np.asarray(make_map(np.ascontiguousarray(frames[index])), dtype=np.uint8)
            maps[index] = _fit(to_rgb(detected), height, width, smooth=smooth)
            if on_frame is not None:
                on_frame(index + 1, total)
    return maps


def _fit(image: np.ndarray, height: int, width: int, *, smooth: bool) -> np.ndarray:
    """Back to the frame size: detectors work at multiples of 64, which changes the aspect."""
    if image.shape[:2] == (height, width):
        return image
    if image.shape[0] * image.shape[1] > height * width:
        interpolation = cv2.INTER_AREA  # shrinking: keeps thin lines instead of dropping them
    else:
        interpolation = cv2.INTER_LINEAR if smooth else cv2.INTER_NEAREST
    return cv2.resize(image, (width, height), interpolation=interpolation)


def _check_frames(frames) -> np.ndarray:
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
        raise AnnotatorError("Frames must be a uint8 numpy array of shape (F, H, W, 3).")
    if frames.ndim != 4 or frames.shape[3] != 3:
        raise AnnotatorError(f"Frames must have shape (F, H, W, 3) RGB, got {frames.shape}.")
    return frames


def _check_canny_thresholds(low, high) -> None:
    try:
        ok = 0 <= float(low) < float(high) <= 255
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise AnnotatorError(f"Canny thresholds must satisfy 0 <= low < high <= 255, got low={low!r}, high={high!r}.")


def _check_resolution(resolution) -> None:
    if not isinstance(resolution, (int, np.integer)) or resolution < MIN_DETECT_RESOLUTION:
        raise AnnotatorError(
            f"Detection resolution must be an integer >= {MIN_DETECT_RESOLUTION}, got {resolution!r}."
        )


def _check_detector(detector, kind: str) -> None:
    if detector is None:
        raise AnnotatorError(f"The {kind} map needs a detector; load one with load_{'openpose' if kind == 'pose' else 'midas'}().")
