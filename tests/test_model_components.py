"""ModelSpec kind "components": a diffusers model folder with components of its own.

A toy spec (tiny SD-shaped parts under their class names, not registered) goes through the same
paths an engine's does: the tiny source, the model manager (cached, per-role dtypes and offload
stages, counted in the budget, evicted as an extra), and the Hub source reading a local folder in
the diffusers layout with sharded weights (`*.index.json`) and a T5-style tokenizer folder.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from modules import hub
from modules.engines.base import ModelComponents, ModelSpec
from modules.models import ModelManager
from modules.residency import role_dtype
from modules.settings import Settings

CLASSES = {"tokenizer": "CLIPTokenizer", "text_encoder": "CLIPTextModel", "unet": "UNet2DConditionModel",
           "vae": "AutoencoderKL", "scheduler": "DDIMScheduler"}


def build_toy(seed: int) -> dict:
    from modules import tiny

    tokenizer = tiny.build_tokenizer()
    return {"tokenizer": tokenizer, "text_encoder": tiny.build_text_encoder(tokenizer, seed=seed),
            "unet": tiny.build_unet(seed=seed), "vae": tiny.build_vae(seed=seed), "scheduler": tiny.build_scheduler()}


TOY = ModelSpec(key="toy_model", kind="components", default_repo="toy/toy-model", components=CLASSES,
                dtypes={"vae": "float32"}, half_dtype="bfloat16", build_tiny=build_toy, group="video")


def manager_of(tmp_path, **overrides) -> ModelManager:
    return ModelManager(Settings.from_env(preset="tiny", device="cpu", outputs_dir=str(tmp_path), **overrides))


def test_role_dtypes_pin_the_vae_and_run_half_precision_as_the_spec_says():
    assert role_dtype(TOY, "vae", torch.float16) == torch.float32  # pinned whatever the app runs
    assert role_dtype(TOY, "transformer", torch.float16) == torch.bfloat16  # float16 overflows: bfloat16
    assert role_dtype(TOY, "text_encoder", torch.bfloat16) == torch.bfloat16
    assert role_dtype(TOY, "text_encoder", torch.float32) == torch.float32
    assert role_dtype(replace(TOY, half_dtype="float16"), "unet", torch.float16) == torch.float16
    assert TOY.stage_of("text_encoder") == "text_encoder" and replace(TOY, stages={"unet": "x"}).stage_of("unet") == "x"


def test_manager_loads_components_once_with_a_fresh_scheduler_per_job(tmp_path):
    manager = manager_of(tmp_path, dtype="bfloat16")
    first = manager.model(TOY)
    assert isinstance(first, ModelComponents) and set(first.modules) == set(CLASSES)
    again = manager.model(TOY)
    assert all(first[role] is again[role] for role in ("tokenizer", "text_encoder", "unet", "vae"))
    assert first["scheduler"] is not again["scheduler"] and type(first["scheduler"]).__name__ == "DDIMScheduler"
    assert first["vae"].dtype == torch.float32 and first["unet"].dtype == torch.bfloat16  # per role
    assert first.device == torch.device("cpu") and "unet" in first
    assert manager.loads["toy_model:unet"] == 1 and manager.loads["toy_model:vae"] == 1
    assert manager.resident()["video"] == ["toy/toy-model"]
    # Counted in the memory budget like any extra, and evicted as one.
    held = manager.memory_bytes()
    assert held >= sum(p.numel() * p.element_size() for p in first["unet"].parameters())
    manager.evict("toy_model")
    assert manager.resident()["video"] == [] and manager.memory_bytes() == 0


def test_offload_gives_each_role_its_own_stage(tmp_path):
    """With CPU offload the text encoder leaves the device once the prompt is encoded."""
    manager = manager_of(tmp_path, cpu_offload=True)
    parts = manager.model(TOY)
    assert manager.on_device() == []
    ids = torch.tensor([[1, 2, 3]])
    parts["text_encoder"](ids)
    assert manager.on_device() == [parts["text_encoder"]]
    parts["unet"](torch.zeros(1, 4, 8, 8), 1, encoder_hidden_states=torch.zeros(1, 3, 32))
    assert manager.on_device() == [parts["unet"]]
    parts["vae"].decode(torch.zeros(1, 4, 8, 8))
    assert manager.on_device() == [parts["vae"]]
    assert parts["vae"]._hf_hook.execution_device == manager.device  # diffusers' pipelines read it
    manager.release_device()
    assert manager.on_device() == []


def test_choose_weights_takes_a_sharded_models_index_and_its_shards():
    files = ["transformer/config.json", "transformer/diffusion_pytorch_model-00001-of-00002.safetensors",
             "transformer/diffusion_pytorch_model-00002-of-00002.safetensors",
             "transformer/diffusion_pytorch_model.safetensors.index.json",
             "text_encoder/model-00001-of-00002.safetensors", "text_encoder/model-00002-of-00002.safetensors",
             "text_encoder/model.safetensors.index.json", "text_encoder/pytorch_model.bin",
             "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16-00001-of-00001.safetensors",
             "unet/diffusion_pytorch_model.safetensors.index.fp16.json"]
    weights = hub.choose_weights(files, "transformer", None)
    assert weights.path == "transformer/diffusion_pytorch_model.safetensors.index.json" and weights.is_safetensors
    assert weights.shards == ("transformer/diffusion_pytorch_model-00001-of-00002.safetensors",
                              "transformer/diffusion_pytorch_model-00002-of-00002.safetensors")
    assert hub.choose_weights(files, "text_encoder", None).files == (
        "text_encoder/model.safetensors.index.json", "text_encoder/model-00001-of-00002.safetensors",
        "text_encoder/model-00002-of-00002.safetensors")  # safetensors shards before one pickle
    fp16 = hub.choose_weights(files, "unet", "fp16")
    assert fp16.variant == "fp16" and fp16.shards == ("unet/diffusion_pytorch_model.fp16-00001-of-00001.safetensors",)
    assert hub.choose_weights(files, "unet", None).files == ("unet/diffusion_pytorch_model.safetensors",)


def test_a_tokenizer_json_makes_the_sentencepiece_model_unneeded():
    listing = hub.RepoFiles("r", {f"tokenizer/{n}": 1 for n in (
        "spiece.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")})
    files, weights = hub.component_files(listing, "tokenizer", "tokenizer", None)
    assert weights is None and "tokenizer/spiece.model" not in files and "tokenizer/tokenizer.json" in files
    no_json = hub.RepoFiles("r", {"tokenizer/spiece.model": 1, "tokenizer/tokenizer_config.json": 1})
    assert "tokenizer/spiece.model" in hub.component_files(no_json, "tokenizer", "tokenizer", None)[0]


def test_hub_source_loads_a_folder_with_sharded_weights_in_each_roles_dtype(tmp_path):
    from modules.parts import HubSource

    folder = tmp_path / "toy"
    built = build_toy(3)
    for role, thing in built.items():
        if role in ("text_encoder", "unet"):
            thing.save_pretrained(folder / role, max_shard_size="100KB")  # sharded, with an index
        else:
            thing.save_pretrained(folder / role)
    saved = hub.list_files(str(folder)).sizes
    assert any(".index.json" in name for name in saved if name.startswith("unet/"))
    assert any(".index.json" in name for name in saved if name.startswith("text_encoder/"))
    spec = replace(TOY, default_repo=str(folder))
    parts = HubSource(torch.float16).components(str(folder), spec, reuse=lambda fingerprint: None)
    assert parts["unet"].module.dtype == torch.bfloat16 and parts["vae"].module.dtype == torch.float32
    assert parts["text_encoder"].module.dtype == torch.bfloat16
    assert parts["scheduler"].module["_class_name"] == "DDIMScheduler"
    assert parts["unet"].fingerprint.startswith("shards:")
    state = built["unet"].state_dict()
    for key, value in parts["unet"].module.state_dict().items():
        assert torch.equal(value, state[key].to(torch.bfloat16)), key
    assert parts["tokenizer"].module("a cat").input_ids == built["tokenizer"]("a cat").input_ids


# A second toy model whose folder carries TOY's text encoder, tokenizer and VAE again (as a distilled or control
# variant's does): its `shared_roles` say they are TOY's, so they come from TOY's repo, once.
SHARING = ModelSpec(key="toy_variant", kind="components", default_repo="toy/toy-variant", components=CLASSES,
                    dtypes={"vae": "float32"}, half_dtype="bfloat16", build_tiny=build_toy, group="video",
                    shared_roles={"tokenizer": TOY, "text_encoder": TOY, "vae": TOY})


def test_shared_roles_are_read_from_the_other_specs_repo_and_held_once(tmp_path):
    assert SHARING.own_roles == ["unet", "scheduler"] and TOY.own_roles == list(CLASSES)
    manager = manager_of(tmp_path, dtype="bfloat16")
    variant = manager.model(SHARING)  # first: its shared parts are loaded as TOY's (TOY's dtypes, TOY's key)
    assert variant["vae"].dtype == torch.float32 and variant["text_encoder"].dtype == torch.bfloat16
    toy = manager.model(TOY)
    for role in ("tokenizer", "text_encoder", "vae"):
        assert variant[role] is toy[role], role
    assert variant["unet"] is not toy["unet"]  # its own
    assert variant["scheduler"] is not toy["scheduler"]
    assert manager.loads["toy_model:text_encoder"] == manager.loads["toy_model:vae"] == 1
    assert "toy_variant:text_encoder" not in manager.loads and manager.loads["toy_variant:unet"] == 1
    from modules.residency import module_bytes as size

    # Counted once in the budget: the two models hold one text encoder and one VAE.
    assert manager.memory_bytes() == sum(size(toy[r]) for r in ("text_encoder", "unet", "vae")) + size(variant["unet"])
    manager.evict("toy_model")  # the variant keeps the shared parts it holds; TOY finds them again
    assert manager.model(TOY)["text_encoder"] is variant["text_encoder"] and manager.loads["toy_model:text_encoder"] == 1


def test_a_role_shared_with_a_spec_no_engine_declares_is_a_clear_error(tmp_path):
    from modules.models import ModelLoadError

    broken = replace(SHARING, key="toy_broken", shared_roles={"vae": "no_such_model"})
    with pytest.raises(ModelLoadError, match="toy_broken shares its vae with 'no_such_model', which declares no vae"):
        manager_of(tmp_path).model(broken)


def test_download_skips_the_shared_roles_which_the_other_spec_fetches(monkeypatch):
    """`--download all`: the Wan 2.1 VACE and AnyFlow folders' own files only (their text encoder, tokenizer and
    VAE are the T2V model's, which the list fetches)."""
    from modules import download
    from modules.parts import HubSource
    from tests.hub_standin.layouts import LAYOUTS

    monkeypatch.setattr(hub, "list_files", lambda repo: hub.RepoFiles(repo, dict(LAYOUTS[repo]["files"])))
    source = HubSource(torch.float32)
    _, fast = download.files_of(source, "nvidia/AnyFlow-Wan2.1-T2V-1.3B-Diffusers", "components:wan_fast_model")
    assert sorted(fast) == ["scheduler/scheduler_config.json", "transformer/config.json",
                            "transformer/diffusion_pytorch_model.safetensors"]
    _, vace = download.files_of(source, "Wan-AI/Wan2.1-VACE-1.3B-diffusers", "components:wan_vace_model")
    assert {f.split("/")[0] for f in vace} == {"scheduler", "transformer"}
    _, t2v = download.files_of(source, "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "components:wan_model")
    assert {f.split("/")[0] for f in t2v} == {"scheduler", "text_encoder", "tokenizer", "transformer", "vae"}
    planned = [item.repo for item in download.plan(Settings(), "all", dtype=torch.float32)]
    assert {"Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "Wan-AI/Wan2.1-VACE-1.3B-diffusers",
            "nvidia/AnyFlow-Wan2.1-T2V-1.3B-Diffusers"} <= set(planned)
