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
    assert manager.resident() == {"base": [], "controlnets": [], "edit": [], "annotators": []}


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


def test_cpu_offload_moves_models_in_for_a_job_and_out_after(settings):
    from dataclasses import replace

    from modules.worker import JobControl, Worker

    worker = Worker(replace(settings, cpu_offload=True))
    seen = {}

    def job(manager):
        components = manager.components()
        manager.controlnet("edge")
        seen["during"] = {id(m) for m in manager.on_device()}
        return components

    components = worker.run(job, JobControl())
    assert {id(components.unet), id(components.vae), id(components.text_encoder)} <= seen["during"]
    assert len(seen["during"]) == 4
    assert worker.manager.on_device() == []  # released after the job
    assert components.unet.device.type == "cpu"


def test_outputs_are_per_request_and_swept_after_the_ttl(tmp_path):
    import os

    from modules.outputs import Outputs

    outputs = Outputs(tmp_path / "outputs", ttl_s=60)
    first, second = outputs.new_folder("text2video"), outputs.new_folder("text2video")
    assert first != second and first.parent == second.parent == outputs.root
    old = time.time() - 120
    os.utime(first, (old, old))
    assert outputs.sweep() == [first]
    assert not first.exists() and second.exists()
