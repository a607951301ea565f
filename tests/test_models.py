"""ModelManager: lazy, cached, shared, LRU-evicting; real loads fail fast offline."""

import time

import pytest

from modules.models import ModelLoadError, ModelManager
from modules.settings import Settings


@pytest.fixture
def settings(tmp_path):
    return Settings.from_env(preset="tiny", outputs_dir=str(tmp_path))


def test_nothing_loads_until_asked(settings):
    manager = ModelManager(settings)
    assert sum(manager.loads.values()) == 0
    assert manager.memory_bytes() == 0
    assert manager.resident() == {"base": [], "controlnets": [], "edit": [], "video": [], "motion_adapters": [], "annotators": []}


def test_base_is_loaded_once_and_shared_by_every_mode(settings):
    manager = ModelManager(settings)
    first = manager.components()
    again = manager.components()
    assert first.unet is again.unet and first.vae is again.vae and first.text_encoder is again.text_encoder
    assert first.scheduler is not again.scheduler  # schedulers carry state: one per job
    assert manager.loads["unet"] == 1
    # ControlNet tabs reuse the same base objects; switching between them loads no base part.
    loads_before = dict(manager.loads)
    for kind in ("edge", "depth", "pose", "edge"):
        manager.controlnet(kind)
        assert manager.components().unet is first.unet
    assert manager.loads["unet"] == loads_before["unet"]
    assert manager.loads["text_encoder"] == loads_before["text_encoder"]
    assert manager.loads["controlnet"] == 3  # each ControlNet once, the second "edge" from cache


def test_edit_model_shares_identical_text_encoder_and_vae(settings):
    manager = ModelManager(settings)
    base = manager.components()
    memory_before = manager.memory_bytes()
    edit = manager.edit_components()
    assert edit.text_encoder is base.text_encoder and edit.vae is base.vae
    assert edit.unet is not base.unet and edit.unet.config.in_channels == 8
    # Only the editing UNet was added to memory.
    assert manager.memory_bytes() - memory_before == sum(
        p.numel() * p.element_size() for p in edit.unet.parameters()
    ) + sum(b.numel() * b.element_size() for b in edit.unet.buffers())
    # Back to text-to-video: still the same base, nothing reloaded.
    assert manager.components().unet is base.unet and manager.loads["unet"] == 2


def test_controlnet_cache_is_lru(settings):
    from dataclasses import replace

    manager = ModelManager(replace(settings, controlnet_cache_size=2))
    manager.controlnet("pose")
    manager.controlnet("edge")
    manager.controlnet("pose")  # pose is now the most recent
    manager.controlnet("depth")  # evicts edge
    assert manager.resident()["controlnets"] == ["pose", "depth"]


def test_memory_budget_evicts_least_recently_used_extras(settings):
    from dataclasses import replace

    manager = ModelManager(settings)
    manager.components()
    base_bytes = manager.memory_bytes()
    manager.controlnet("pose")
    one_controlnet = manager.memory_bytes() - base_bytes
    budget_gb = (base_bytes + 1.5 * one_controlnet) / 2**30
    manager.settings = replace(settings, memory_budget_gb=budget_gb)
    manager.controlnet("edge")  # over budget: pose (least recently used) goes
    assert manager.resident()["controlnets"] == ["edge"]
    assert manager.resident()["base"]  # the base is never evicted
    assert manager.memory_bytes() <= manager.budget_bytes()


def test_unknown_model_is_refused(settings):
    with pytest.raises(ModelLoadError, match="not offered"):
        ModelManager(settings).components("someone/unknown-model")


def test_real_preset_offline_fails_fast_with_advice(tmp_path):
    manager = ModelManager(Settings.from_env(preset="real", outputs_dir=str(tmp_path)))
    started = time.monotonic()
    with pytest.raises(ModelLoadError, match="--preset tiny"):
        manager.components()
    assert time.monotonic() - started < 5


def test_cpu_offload_moves_each_model_in_only_while_it_runs(settings):
    """As diffusers' enable_model_cpu_offload: one stage on the device at a time, all home after."""
    from dataclasses import replace

    import numpy as np

    from modules import engine
    from modules.residency import module_bytes
    from modules.job_control import JobControl
    from modules.worker import Worker

    worker = Worker(replace(settings, cpu_offload=True))
    manager = worker.manager
    components = manager.components()
    controlnet = manager.controlnet("edge")
    assert manager.on_device() == []  # loaded models wait on the CPU
    names = {id(components.text_encoder): "text_encoder", id(components.unet): "unet",
             id(controlnet): "controlnet", id(components.vae): "vae"}
    seen = []

    def on_device_now():
        return frozenset(names[id(m)] for m in manager.on_device())

    for module in (components.text_encoder, components.unet, controlnet):  # after the offload hook
        module.register_forward_pre_hook(lambda m, args: seen.append((names[id(m)], on_device_now())))
    offload_hook = components.vae._hf_hook

    class Spy:  # the VAE runs through decode(), which calls _hf_hook.pre_forward
        def pre_forward(self, module, *args, **kwargs):
            offload_hook.pre_forward(module)
            seen.append(("vae", on_device_now()))
            return args, kwargs

    components.vae._hf_hook = Spy()
    maps = np.zeros((3, 64, 64, 3), dtype=np.uint8)

    def job(manager):
        return lambda: engine.generate_control_video(components, controlnet, control=maps, prompt="a", steps=2, seed=1)

    frames = worker.run(job, JobControl())
    assert frames.shape == (3, 64, 64, 3)
    # A ControlNet and its UNet share a stage: the first ControlNet call finds the UNet still out.
    expected = {"text_encoder": [{"text_encoder"}], "unet": [{"unet", "controlnet"}],
                "controlnet": [{"controlnet"}, {"unet", "controlnet"}], "vae": [{"vae"}]}
    assert {name for name, _ in seen} == set(expected)
    for name, on_device in seen:
        assert on_device in expected[name], (name, on_device)
    stages = [module_bytes(components.text_encoder), module_bytes(components.unet) + module_bytes(controlnet),
              module_bytes(components.vae)]
    assert manager.residency.peak_device_bytes == max(stages) < sum(stages)
    assert manager.on_device() == []  # released after the job


def test_budget_counts_device_bytes_and_a_base_switch_never_holds_two_bases(settings):
    from dataclasses import replace

    manager = ModelManager(settings)
    manager.components()
    base_bytes = manager.memory_bytes()
    manager.settings = replace(settings, memory_budget_gb=1.5 * base_bytes / 2**30)
    manager.residency.peak_device_bytes = 0
    other = settings.base_models[1]
    assert manager.components(other).unet is not None
    assert manager.resident()["base"] == [other]
    assert manager.residency.peak_device_bytes <= manager.budget_bytes()
    # With room for both, the old base stays until the new one is loaded (no reload gap).
    manager.settings = replace(settings, memory_budget_gb=3 * base_bytes / 2**30)
    manager.residency.peak_device_bytes = 0
    manager.components(settings.base_models[0])
    assert manager.residency.peak_device_bytes > manager.memory_bytes()


def test_budget_with_offload_counts_only_what_is_on_the_device(settings):
    from dataclasses import replace

    manager = ModelManager(replace(settings, cpu_offload=True))
    manager.components()
    manager.controlnet("pose")
    assert manager.memory_bytes() > 0 and manager.device_bytes() == 0
    manager.settings = replace(manager.settings, memory_budget_gb=1e-6)
    assert manager.enforce_budget() == []  # nothing on the device: nothing to evict
    assert manager.resident()["controlnets"] == ["pose"]


def test_status_never_waits_for_a_load_in_progress(settings):
    import threading

    manager = ModelManager(settings)
    with manager._guard:  # a load in progress holds the manager
        answer = {}
        thread = threading.Thread(target=lambda: answer.setdefault("resident", manager.resident()))
        thread.start()
        thread.join(timeout=2)
    assert answer.get("resident") == {"base": [], "controlnets": [], "edit": [], "video": [], "motion_adapters": [], "annotators": []}


def test_outputs_are_per_request_and_swept_after_the_ttl(tmp_path):
    import os

    from modules.outputs import Outputs, mark_output_folder

    outputs = Outputs(tmp_path / "outputs", ttl_s=60)
    first, second = outputs.new_folder("text2video"), outputs.new_folder("text2video")
    assert first != second and first.parent == second.parent == outputs.root
    old = time.time() - 120
    mark_output_folder(first, created=old)
    assert outputs.sweep() == [first]
    assert not first.exists() and second.exists()


def test_modelscope_and_motion_adapter_are_evictable_extras(settings):
    from dataclasses import replace

    manager = ModelManager(settings)
    base = manager.components()
    from modules.engines.animatediff import MOTION_ADAPTER
    from modules.engines.modelscope import VIDEO_MODEL

    video = manager.model(VIDEO_MODEL)
    assert type(video.unet).__name__ == "UNet3DConditionModel"
    assert video.text_encoder is base.text_encoder  # the tiny ModelScope shares the tiny text encoder
    adapter = manager.part(MOTION_ADAPTER)
    assert manager.part(MOTION_ADAPTER) is adapter and manager.loads["motion_adapter"] == 1
    resident = manager.resident()
    assert resident["video"] == [VIDEO_MODEL.repo(settings)]
    assert resident["motion_adapters"] == [MOTION_ADAPTER.repo(settings)]
    manager.settings = replace(settings, memory_budget_gb=1e-9)
    manager.enforce_budget()
    resident = manager.resident()
    assert resident["video"] == [] and resident["motion_adapters"] == [] and resident["base"]


def test_memory_counts_a_shared_tensor_once(settings):
    from modules.residency import unique_bytes

    manager = ModelManager(settings)
    unet = manager.components().unet
    assert unique_bytes([unet, unet]) == unique_bytes([unet]) == manager.residency.device_bytes([unet])


def test_one_cache_counts_annotators_in_the_budget_and_evicts_them_least_recently_used(settings):
    from dataclasses import replace

    manager = ModelManager(settings)
    manager.components()
    before = manager.device_bytes()
    manager.annotator("depth")
    assert manager.device_bytes() > before  # MiDaS's nets are on the device and counted
    manager.controlnet("pose")  # used after the annotator: the annotator is the older extra
    manager.settings = replace(settings, memory_budget_gb=(manager.device_bytes() - 1) / 2**30)
    assert manager.enforce_budget() == ["annotator:depth"]
    assert manager.resident()["annotators"] == [] and manager.resident()["controlnets"] == ["pose"]
    assert list(manager._cache) == ["base", "controlnet:pose"]  # one cache, in order of use
