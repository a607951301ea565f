"""The offload contract: every registered engine, in every tab it serves, runs with its models resting away from
the device they run on (T2VZ_CPU_OFFLOAD=1 on a GPU: weights wait on the CPU, tensors go to the GPU).

On a CPU-only machine the resting place and the device are both the CPU, so an input placed on a module's own
`.device` would run anyway. Here a model at rest says it is on the `meta` device while its weights stay on the
CPU (`RestingElsewhere`): the residency's hooks bring it in when it runs, as they move a model onto the GPU. An
input put on a resting module's `.device` becomes a meta tensor and the model's first op fails, as it would
with a CPU tensor against GPU weights; inputs put on the job's execution device run.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modules import engines, video_io
from modules.request_types import ControlVideoRequest, EditVideoRequest, Text2VideoRequest, VideoWindow
from modules.residency import Residency
from modules.settings import Settings
from modules.studio import Studio
from tests.tuning_tabs import TUNING_TABS, run_tuning, tuning_request

SIDE = 64
STEPS = 2
CASES = [pytest.param(engine, tab, id=f"{engine.name}-{tab}") for engine in engines.all_engines()
         for tab in engines.TABS if tab in engine.tabs]
META = torch.device("meta")
_TENSOR_DEVICE = torch.Tensor.device  # the tensor's own answer (a C descriptor)

pytestmark = pytest.mark.usefixtures("one_thread")


_MODULE_TO = torch.nn.Module.to


def _reported_device(parameter) -> torch.device:
    return META if getattr(parameter, "_resting_elsewhere", False) else _TENSOR_DEVICE.__get__(parameter)


def _module_to(module, *args, **kwargs):
    """A module sent to `meta` goes where resting modules are (their weights stay on the CPU): the code that
    moves a module to another's `.device` follows it, as it would to the CPU where models rest on a GPU server."""
    device, dtype, _, _ = torch._C._nn._parse_to(*args, **kwargs)
    if device is not None and device.type == "meta":
        return _MODULE_TO(module, dtype) if dtype is not None else module
    return _MODULE_TO(module, *args, **kwargs)


class RestingElsewhere(Residency):
    """CPU offload whose models, at rest, report the meta device (their weights stay on the CPU, untouched)."""

    def __init__(self, device: torch.device, dtype: torch.dtype):
        super().__init__(device, dtype, offload=True)

    def adopt(self, module, stage: str, dtype: torch.dtype | None = None):
        module = super().adopt(module, stage, dtype)
        self._mark()
        return module

    def activate(self, *modules) -> None:
        super().activate(*modules)
        self._mark()

    def release(self) -> None:
        super().release()
        self._mark()

    def _mark(self) -> None:
        """Each parameter rests unless a model on the device holds it (models may share layers)."""
        with self._lock:
            running = {id(p) for module in self.on_device() for p in module.parameters()}
            for module in list(self._modules.values()):
                for p in module.parameters():
                    p._resting_elsewhere = id(p) not in running


@pytest.fixture(scope="module", autouse=True)
def parameters_report_where_they_rest():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.nn.Parameter, "device", property(_reported_device), raising=False)
        patch.setattr(torch.nn.Module, "to", _module_to)
        yield


@pytest.fixture(scope="module")
def studio(tmp_path_factory) -> Studio:
    root = tmp_path_factory.mktemp("offload")
    studio = Studio(Settings.from_env(preset="tiny", device="cpu", dtype="float32", cpu_offload=True,
                                      outputs_dir=str(root / "outputs"), tuned_dir=str(root / "tuned")))
    manager = studio.manager
    manager.residency = RestingElsewhere(manager.device, manager.dtype)  # before any model loads
    return studio


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> str:
    frames = np.zeros((4, SIDE, SIDE, 3), np.uint8)
    for i in range(len(frames)):
        frames[i, 10:40, 8 + 4 * i: 30 + 4 * i] = (200, 120, 40)
    return str(video_io.write_mp4(frames, tmp_path_factory.mktemp("clip") / "clip.mp4", 4))


def make_request(engine, tab: str, clip: str, studio: Studio):
    frames = next(n for n in range(2, 1000) if engine.rules.frames.fits(n))
    if tab in TUNING_TABS:
        return tuning_request(studio, tab, clip, frames=frames, steps=STEPS, seed=1, side=SIDE)
    if tab == "text2video":
        return Text2VideoRequest(prompt="a red ball", engine=engine.name, num_frames=frames, width=SIDE, height=SIDE,
                                 steps=STEPS, seed=1, chunk_size=frames, fps=4)
    window = VideoWindow(resolution=SIDE, fps=frames)  # `frames` frames of the 1 s clip
    if tab == "control":
        return ControlVideoRequest(kind="edge", video=clip, prompt="a golden box", engine=engine.name, steps=STEPS,
                                   seed=1, window=window)
    return EditVideoRequest(video=clip, prompt="make it snow", steps=STEPS, seed=1, window=window)


@pytest.mark.parametrize("engine, tab", CASES)
def test_offload_every_input_goes_to_the_execution_device(engine, tab, studio, clip):
    request = make_request(engine, tab, clip, studio)
    residency = studio.manager.residency
    if tab in TUNING_TABS:
        result = run_tuning(studio, tab, request)
    else:
        method = {"text2video": studio.text2video, "control": studio.control_video, "edit": studio.edit_video}[tab]
        result = method(request)
    frames = video_io.read_video(result.video).frames
    assert frames.shape[0] == result.num_frames and frames.std() > 0
    # The models rested away from the device and were brought in to run; after the job all rest again.
    assert residency.moves > 0 and not residency.on_device()
    assert all(p.device == META for module in residency._modules.values() for p in module.parameters())
