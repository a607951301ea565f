"""Contents for the Hub stand-in: the app's repos with their real paths, tiny random weights inside.

Every file of a real listing (layouts.py) is served. The files the app may load get real content
in the real format: configs with the real class names, safetensors or pickled state dicts (fp16
where the name says `.fp16.`), tokenizer files, the annotators' checkpoints. The rest (root
single-file checkpoints, safety checkers, READMEs) get a short placeholder: the tests assert
they are never fetched, so their content doesn't matter. Sizes served are those of this
content; the real sizes stay in layouts.py (the README's download table comes from there).
"""

from __future__ import annotations

import io
import json
from functools import lru_cache
from pathlib import Path, PurePosixPath

import torch

from safetensors.torch import save as safetensors_bytes

from modules import tiny
from modules.annotators import MIDAS_FILE, OPENPOSE_FILES
from modules.parts import tiny_seed

from .layouts import LAYOUTS

PLACEHOLDER = b"stand-in: the app never fetches this file\n"
COMPONENT_FOLDERS = ("text_encoder", "unet", "vae")
OLD_VAE_ATTENTION_KEYS = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}


def engine_spec(repo: str):
    """The registered engines' ModelSpec whose default repo this is, or None (a shared SD 1.5 part)."""
    from modules.engines import model_specs

    return next((spec for _, spec in model_specs() if spec.default_repo == repo), None)


def repo_contents(repo: str, layout: dict | None = None) -> dict[str, object]:
    """{path: bytes or a zero-argument callable} for one repo of LAYOUTS (callables build lazily)."""
    layout = layout or LAYOUTS[repo]
    files = layout["files"]
    contents: dict[str, object] = {}
    spec = engine_spec(repo)  # an engine's own model: its ModelSpec builds the tiny stand-in
    root_model = {"controlnet" in repo.split("/")[-1]: "controlnet", spec is not None and spec.kind == "module": "spec",
                  repo == "madebyollin/taesd": "taesd"}.get(True)
    if "config.json" not in files or "unet/config.json" in files:
        root_model = None
    for path in files:
        pure = PurePosixPath(path)
        folder = str(pure.parent).strip(".")
        if repo == "lllyasviel/Annotators" and path in {*OPENPOSE_FILES.values(), MIDAS_FILE}:
            contents[path] = lambda path=path: annotator_checkpoint(path)
        elif spec is not None and spec.kind == "components" and folder in spec.components:
            # an engine's model folder of its own components: its ModelSpec's tiny parts, sharded as the real files
            contents[path] = lambda path=path: _spec_component_file(repo, path, tuple(files))
        elif root_model and folder == "" and (path == "config.json" or _is_weights(pure.name)):
            contents[path] = lambda path=path: _component_file(repo, root_model, path)
        elif folder in COMPONENT_FOLDERS and (pure.name == "config.json" or _is_weights(pure.name)):
            contents[path] = lambda path=path, folder=folder: _component_file(repo, folder, path)
        elif spec is not None and spec.kind == "file" and folder == "" and pure.suffix == ".safetensors":
            # a bare state dict, as the real files (no config.json): the engine's tiny module's
            contents[path] = lambda path=path: safetensors_bytes(
                {k: v.contiguous() for k, v in spec.build_tiny(tiny_seed(f"{repo}/{path}")).state_dict().items()})
        elif path == "pytorch_lora_weights.safetensors":
            contents[path] = lambda: safetensors_bytes(tiny.build_lcm_lora(tiny.build_unet(seed=1), seed=tiny_seed(repo)))
        elif folder == "tokenizer":
            contents[path] = lambda name=pure.name: _tokenizer_files().get(name, PLACEHOLDER)
        elif path == "scheduler/scheduler_config.json":
            contents[path] = json.dumps({"_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0",
                                         **tiny.SD15_SCHEDULER_CONFIG, "skip_prk_steps": True}).encode()
        elif path == "model_index.json":
            contents[path] = json.dumps(layout.get("class_names") or {"_class_name": "StableDiffusionPipeline"}).encode()
        else:
            contents[path] = PLACEHOLDER
    return contents


def all_repos() -> dict[str, dict[str, object]]:
    return {repo: repo_contents(repo) for repo in LAYOUTS}


def _is_weights(name: str) -> bool:
    return name.endswith((".safetensors", ".bin")) and name.split(".")[0] in ("diffusion_pytorch_model", "model", "pytorch_model")


# --------------------------------------------------------------------------- components


def _added_token(content: str) -> dict:
    return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": True,
            "rstrip": False, "single_word": False}


@lru_cache(maxsize=None)
def _tokenizer_files() -> dict[str, bytes]:
    """The slow-tokenizer files SD 1.5 repos ship (vocab.json, merges.txt, ...), for our byte-level vocab.

    transformers 5 would save a tokenizer.json instead; the Hub repos predate it, so the files
    are written here in the old format (AddedToken dicts included) that users download.
    """
    vocab = tiny.build_tokenizer().get_vocab()
    special = {"bos_token": _added_token("<|startoftext|>"), "eos_token": _added_token("<|endoftext|>"),
               "pad_token": "<|endoftext|>", "unk_token": _added_token("<|endoftext|>")}
    config = {"add_prefix_space": False, "do_lower_case": True, "errors": "replace", "model_max_length": tiny.MAX_TOKENS,
              "name_or_path": "openai/clip-vit-large-patch14", "special_tokens_map_file": "./special_tokens_map.json",
              "tokenizer_class": "CLIPTokenizer", **special}
    return {
        "vocab.json": json.dumps(dict(sorted(vocab.items(), key=lambda item: item[1]))).encode(),
        "merges.txt": b"#version: 0.2\n",
        "special_tokens_map.json": json.dumps(special).encode(),
        "tokenizer_config.json": json.dumps(config).encode(),
    }


@lru_cache(maxsize=None)
def _model(repo: str, role: str):
    """The tiny module a repo's component stands for (seeded by repo, so repos differ)."""
    if role == "text_encoder":
        return tiny.build_text_encoder(tiny.build_tokenizer(), seed=tiny_seed(repo + role))
    if role == "vae":
        return tiny.build_vae(seed=tiny_seed(repo + role))
    spec = engine_spec(repo)
    if role == "unet" and spec is not None and spec.kind == "pipeline":
        return spec.build_tiny(tiny_seed(repo + role))
    if role == "unet":
        return tiny.build_unet(in_channels=8 if "pix2pix" in repo else 4, seed=tiny_seed(repo + role))
    if role == "spec":
        return spec.build_tiny(tiny_seed(repo))
    if role == "taesd":
        return tiny.build_taesd(seed=tiny_seed(repo))
    if role == "controlnet":
        return tiny.build_controlnet(tiny.build_unet(seed=1), seed=tiny_seed(repo))
    raise KeyError(role)


@lru_cache(maxsize=None)
def _spec_components(repo: str) -> dict:
    return engine_spec(repo).build_tiny(tiny_seed(repo))


@lru_cache(maxsize=None)
def _saved_tokenizer(repo: str, sentencepiece: bool = False) -> dict[str, bytes]:
    """The tiny tokenizer's files as `save_pretrained` writes them (transformers 5: tokenizer.json and its config).

    `sentencepiece`: the real folder has spiece.model and no tokenizer.json (CogVideoX's T5), so the app
    reads spiece.model: it is written from the tiny tokenizer's unigram vocabulary instead of tokenizer.json,
    with added_tokens.json naming the tokens added after it (T5's extra ids)."""
    import tempfile

    tokenizer = _spec_components(repo)["tokenizer"]
    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save_pretrained(folder)
        saved = {path.name: path.read_bytes() for path in Path(folder).iterdir()}
    saved.setdefault("special_tokens_map.json", json.dumps(tokenizer.special_tokens_map).encode())
    if sentencepiece:
        fast = json.loads(saved.pop("tokenizer.json"))
        saved["spiece.model"] = _spiece_model(fast)
        size = len(fast["model"]["vocab"])
        saved["added_tokens.json"] = json.dumps({t["content"]: t["id"] for t in fast["added_tokens"]
                                                 if t["id"] >= size}).encode()
    return saved


def _spiece_model(fast: dict) -> bytes:
    """A sentencepiece model file of a tokenizer.json's unigram model (its pieces, scores, unknown and special ids)."""
    from sentencepiece import sentencepiece_model_pb2

    model = fast["model"]
    if model["type"] != "Unigram":
        raise ValueError(f"a sentencepiece model file needs a unigram tokenizer, not {model['type']}")
    special = {t["content"] for t in fast["added_tokens"] if t["special"]}
    proto = sentencepiece_model_pb2.ModelProto()
    for index, (piece, score) in enumerate(model["vocab"]):
        entry = proto.pieces.add()
        entry.piece, entry.score = piece, score
        entry.type = 2 if index == model["unk_id"] else 3 if piece in special else 1  # unknown, control, normal
    proto.trainer_spec.model_type, proto.trainer_spec.unk_id = 1, model["unk_id"]  # unigram
    normalizer = proto.normalizer_spec
    normalizer.name, normalizer.add_dummy_prefix = "identity", True
    normalizer.remove_extra_whitespaces = normalizer.escape_whitespaces = True
    return proto.SerializeToString()


def _unique_state(module) -> dict:
    """The module's state dict with each tensor once (tied weights are saved once, as save_pretrained does)."""
    state, seen = {}, set()
    for key, value in module.state_dict().items():
        pointer = (value.untyped_storage().data_ptr(), value.storage_offset(), tuple(value.shape))
        if pointer not in seen:
            seen.add(pointer)
            state[key] = value.detach().clone().contiguous()
    return state


def _spec_component_file(repo: str, path: str, files: tuple[str, ...]) -> bytes:
    """A file of a "components" ModelSpec's repo: tokenizer files, the scheduler's config, a module's
    config, its weights in one safetensors file, or sharded as the real listing is (the shards it
    names, and the index mapping every tensor to its shard)."""
    from modules.hub import _SHARD
    from modules.parts import component_kind

    spec = engine_spec(repo)
    pure = PurePosixPath(path)
    role, name = str(pure.parent), pure.name
    thing = _spec_components(repo)[role]
    kind = component_kind(spec.components[role])
    if kind == "tokenizer":
        # With a tokenizer.json the app never fetches spiece.model; without one it reads spiece.model.
        return _saved_tokenizer(repo, "tokenizer/tokenizer.json" not in files).get(name, PLACEHOLDER)
    if kind == "scheduler":
        return thing.to_json_string().encode() if name == "scheduler_config.json" else PLACEHOLDER
    if name == "config.json":
        config = thing.config
        return (config.to_json_string() if hasattr(config, "to_json_string") else thing.to_json_string()).encode()
    state = _unique_state(thing)
    shards = sorted(PurePosixPath(f).name for f in files if f.startswith(f"{role}/") and _SHARD.match(PurePosixPath(f).name))
    if not shards:
        return safetensors_bytes(state, metadata={"format": "pt"})
    keys = sorted(state)
    per_shard = -(-len(keys) // len(shards))
    owner = {key: shards[i // per_shard] for i, key in enumerate(keys)}
    if name.endswith(".index.json"):
        total = sum(v.numel() * v.element_size() for v in state.values())
        return json.dumps({"metadata": {"total_size": total}, "weight_map": owner}, indent=2).encode()
    return safetensors_bytes({k: v for k, v in state.items() if owner[k] == name}, metadata={"format": "pt"})


def _component_file(repo: str, role: str, path: str) -> bytes:
    module = _model(repo, role)
    name = PurePosixPath(path).name
    if name == "config.json":
        return module.config.to_json_string().encode() if role == "text_encoder" else module.to_json_string().encode()
    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    if ".fp16." in name:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    if name.endswith(".safetensors"):
        return safetensors_bytes(state, metadata={"format": "pt"})
    if role == "vae" and repo.startswith("PAIR/"):
        state = _old_vae_attention_keys(state)  # as diffusers 0.14 saved them (Mar 2023)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _old_vae_attention_keys(state: dict) -> dict:
    renamed = {}
    for key, value in state.items():
        if ".attentions." in key:
            for new, old in OLD_VAE_ATTENTION_KEYS.items():
                if f".{new}." in key:
                    key = key.replace(f".{new}.", f".{old}.")
                    break
        renamed[key] = value
    return renamed


# --------------------------------------------------------------------------- annotators


@lru_cache(maxsize=None)
def annotator_checkpoint(name: str) -> bytes:
    """A real-format checkpoint with random values, a few MB: every tensor views one shared storage."""
    from modules import annotators

    if name == MIDAS_FILE:
        state = annotators.load_midas(annotators.RANDOM_SOURCE).model.model.state_dict()
    else:
        part = {file: part for part, file in OPENPOSE_FILES.items()}[name]
        state = annotators._random_openpose_states()[part]
    floats = [v for v in state.values() if v.is_floating_point()]
    pool = torch.rand(max(v.numel() for v in floats), generator=torch.Generator().manual_seed(0)) * 0.02
    shared = {}
    for key, value in state.items():
        if value.is_floating_point() and value.abs().sum() > 0:  # keep zeroed heads zero (fast detection)
            shared[key] = pool[: value.numel()].view(value.shape)
        else:
            shared[key] = value.clone()
    buffer = io.BytesIO()
    torch.save(shared, buffer)
    return buffer.getvalue()


def malicious_pickle(marker: Path) -> bytes:
    """A `.bin` that creates `marker` when unpickled by a plain (not weights-only) torch.load."""

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    buffer = io.BytesIO()
    torch.save({"conv_in.weight": Payload()}, buffer)
    return buffer.getvalue()
