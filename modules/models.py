"""The one owner of weights: loads lazily, caches, shares, evicts, and hands out components.

- The base (tokenizer, text encoder, UNet, VAE of an SD 1.5 model) stays resident and is
  shared by text-to-video and every ControlNet tab; a different base replaces it.
- ControlNets, the editing model and annotators load on first use and live in LRU caches.
- Parts are keyed by a fingerprint of their weights (the Hub blob's sha256, or the seed of a
  tiny build), so a text encoder or VAE that two models share is in memory once.
- A memory budget evicts least-recently-used extras; the base is never evicted mid-job.

Presets: `real` downloads Hub ids on first use (safetensors only, fp16 on CUDA); `tiny` builds
every part with random weights in code. Both go through the same methods.
"""

from __future__ import annotations

import gc
import hashlib
import os
import socket
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch

from . import engine
from .errors import UserError
from .settings import Settings

TINY_SHARED_SEED = 0  # tiny text encoders and VAEs are one model, as SD 1.5 fine-tunes mostly share them
HUB_PROBE_TIMEOUT_S = 3.0


class ModelLoadError(UserError, RuntimeError):
    """A model could not be loaded; the message says what to do."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def module_bytes(module) -> int:
    if not isinstance(module, torch.nn.Module):
        return 0
    return sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))


# One lock per device for the whole process: two generations never share a device at once,
# whichever manager or thread starts them.
_DEVICE_LOCKS: dict[str, threading.Lock] = {}
_DEVICE_LOCKS_GUARD = threading.Lock()


def device_lock(device: torch.device) -> threading.Lock:
    with _DEVICE_LOCKS_GUARD:
        return _DEVICE_LOCKS.setdefault(str(device), threading.Lock())


@dataclass
class Part:
    """A loaded module and the fingerprint of its weights."""

    fingerprint: str
    module: object


def _tiny_seed(name: str) -> int:
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)


class ModelManager:
    def __init__(self, settings: Settings, device: str | None = None):
        self.settings = settings
        self.device = resolve_device(device or settings.device)
        self.dtype = resolve_dtype(settings.dtype, self.device)
        self.lock = device_lock(self.device)
        self.loads: Counter[str] = Counter()  # how often each role was built or read from disk
        self._guard = threading.RLock()
        self._base_id: str | None = None
        self._base: dict[str, Part] = {}
        self._edit: dict[str, Part] = {}
        self._controlnets: OrderedDict[str, Part] = OrderedDict()
        self._annotators: OrderedDict[str, object] = OrderedDict()
        self._tokenizer = None
        self._usage: dict[str, float] = {}  # extra's name -> last use, for LRU eviction
        self._on_device: dict[int, torch.nn.Module] = {}  # with cpu_offload: moved in for this job

    # ------------------------------------------------------------------ public API
    @property
    def is_tiny(self) -> bool:
        return self.settings.preset == "tiny"

    def components(self, model_id: str | None = None, scheduler: str = "ddim") -> Components:
        """The base model's parts with a fresh scheduler, ready for one generation."""
        with self._guard:
            parts = self._ensure_base(model_id or self.settings.default_base_model)
            self._activate(parts["text_encoder"].module, parts["unet"].module, parts["vae"].module)
            return engine.Components(
                tokenizer=parts["tokenizer"].module,
                text_encoder=parts["text_encoder"].module,
                unet=parts["unet"].module,
                vae=parts["vae"].module,
                scheduler=engine.make_scheduler(scheduler, parts["scheduler"].module),
                vae_decode_batch=self.settings.vae_decode_batch,
            )

    def controlnet(self, kind: str):
        """The ControlNet for `kind` (pose, edge, depth), loaded on first use, LRU-cached."""
        from . import tiny

        if kind not in self.settings.controlnets:
            raise ModelLoadError(f"No ControlNet configured for {kind!r}.")
        with self._guard:
            self._touch(f"controlnet:{kind}")
            if kind in self._controlnets:
                self._controlnets.move_to_end(kind)
                return self._activate(self._controlnets[kind].module)
            repo = self.settings.controlnets[kind]
            if self.is_tiny:
                base_unet = self._ensure_base(self._base_id or self.settings.default_base_model)["unet"].module
                module = tiny.build_controlnet(base_unet, seed=_tiny_seed(repo))
                part = Part(f"tiny:{repo}", self._place(module))
            else:
                part = self._load_real(repo, None, "controlnet")
            self.loads["controlnet"] += 1
            self._controlnets[kind] = part
            self._trim(self._controlnets, self.settings.controlnet_cache_size)
            self.enforce_budget(keep={id(part.module)})
            return self._activate(part.module)

    def edit_components(self, scheduler: str = "euler_ancestral") -> Components:
        """Instruct-Pix2Pix's parts; text encoder and VAE are the base's when their weights are."""
        with self._guard:
            if not self._edit:
                self._edit = self._load_model(self.settings.edit_model, unet_in_channels=8)
            self._touch("edit")
            self.enforce_budget(keep={id(p.module) for p in self._edit.values()})
            self._activate(*(self._edit[role].module for role in ("text_encoder", "unet", "vae")))
            return engine.Components(
                tokenizer=self._edit["tokenizer"].module,
                text_encoder=self._edit["text_encoder"].module,
                unet=self._edit["unet"].module,
                vae=self._edit["vae"].module,
                scheduler=engine.make_scheduler(scheduler, self._edit["scheduler"].module),
                vae_decode_batch=self.settings.vae_decode_batch,
            )

    def annotator(self, kind: str):
        """OpenPose or MiDaS detector (random-weight nets in the tiny preset), LRU-cached."""
        from . import annotators  # controlnet-aux takes seconds to import: only when needed

        loaders = {"pose": annotators.load_openpose, "depth": annotators.load_midas}
        if kind not in loaders:
            raise ModelLoadError(f"No annotator for {kind!r}.")
        with self._guard:
            self._touch(f"annotator:{kind}")
            if kind in self._annotators:
                self._annotators.move_to_end(kind)
                return self._annotators[kind]
            source = "random" if self.is_tiny else self.settings.annotators
            try:
                detector = loaders[kind](source, self.device)
            except annotators.AnnotatorError as error:
                raise ModelLoadError(str(error)) from error
            self.loads[f"annotator:{kind}"] += 1
            self._annotators[kind] = detector
            self._trim(self._annotators, self.settings.annotator_cache_size)
            return detector

    def on_device(self) -> list[torch.nn.Module]:
        """With cpu_offload: the models this job moved onto the device."""
        return list(self._on_device.values())

    def release_device(self) -> None:
        """With cpu_offload: after a job, every model goes back to the CPU and the GPU is free."""
        with self._guard:
            for module in self._on_device.values():
                module.to("cpu")
            self._on_device.clear()
        free_memory()

    def resident(self) -> dict[str, list[str]]:
        """What is loaded now, by role (for the UI's status line and for tests)."""
        with self._guard:
            return {
                "base": [self._base_id] if self._base_id else [],
                "controlnets": list(self._controlnets),
                "edit": [self.settings.edit_model] if self._edit else [],
                "annotators": list(self._annotators),
            }

    def memory_bytes(self) -> int:
        """Bytes of weights held, each shared module counted once."""
        seen, total = set(), 0
        for module in self._all_modules():
            if id(module) not in seen:
                seen.add(id(module))
                total += module_bytes(module)
        return total

    def budget_bytes(self) -> int | None:
        if self.settings.memory_budget_gb > 0:
            return int(self.settings.memory_budget_gb * 2**30)
        if self.device.type == "cuda":
            return int(torch.cuda.get_device_properties(self.device).total_memory * 0.8)
        return None

    def enforce_budget(self, keep: set[int] = frozenset()) -> list[str]:
        """Evict least-recently-used extras (never the base, never `keep`) until under budget."""
        budget = self.budget_bytes()
        evicted: list[str] = []
        if budget is None:
            return evicted
        with self._guard:
            while self.memory_bytes() > budget:
                victim = self._lru_victim(keep)
                if victim is None:
                    break
                evicted.append(victim)
                self.evict(victim)
        return evicted

    def evict(self, name: str) -> None:
        """Drop one extra: 'edit', 'controlnet:<kind>', 'annotator:<kind>', or 'all-extras'."""
        with self._guard:
            if name in ("edit", "all-extras"):
                self._edit = {}
            if name == "all-extras":
                self._controlnets.clear()
                self._annotators.clear()
            elif name.startswith("controlnet:"):
                self._controlnets.pop(name.split(":", 1)[1], None)
            elif name.startswith("annotator:"):
                self._annotators.pop(name.split(":", 1)[1], None)
            self._usage.pop(name, None)
        free_memory()

    # ------------------------------------------------------------------ loading
    def _touch(self, name: str) -> None:
        self._usage[name] = time.monotonic()

    def _lru_victim(self, keep: set[int]) -> str | None:
        """The least recently used ControlNet or editing model outside `keep`.

        Annotators are not candidates: their own LRU cache (`annotator_cache_size`) bounds them.
        """
        candidates = [
            (self._usage.get(f"controlnet:{kind}", 0.0), f"controlnet:{kind}")
            for kind, part in self._controlnets.items()
            if id(part.module) not in keep
        ]
        if self._edit and not any(id(part.module) in keep for part in self._edit.values()):
            candidates.append((self._usage.get("edit", 0.0), "edit"))
        return min(candidates)[1] if candidates else None

    def _all_modules(self):
        for parts in (self._base, self._edit):
            for part in parts.values():
                yield part.module
        for part in self._controlnets.values():
            yield part.module

    def _trim(self, cache: OrderedDict, size: int) -> None:
        while len(cache) > max(1, size):
            cache.popitem(last=False)
        free_memory()

    def _ensure_base(self, model_id: str) -> dict[str, Part]:
        allowed = set(self.settings.base_models) | set(self.settings.edge_style_models)
        if model_id not in allowed:
            raise ModelLoadError(f"Model {model_id!r} is not offered here; choose one of: {', '.join(sorted(allowed))}.")
        if self._base_id != model_id:
            old = self._base
            self._base = self._load_model(model_id, unet_in_channels=4)
            self._base_id = model_id
            if old:
                # ControlNets were made for SD 1.5 and stay valid; only the old base goes.
                del old
                free_memory()
        self._touch("base")
        return self._base

    def _shared(self, fingerprint: str):
        for parts in (self._base, self._edit):
            for part in parts.values():
                if part.fingerprint == fingerprint:
                    return part
        return None

    def _load_model(self, repo: str, unet_in_channels: int) -> dict[str, Part]:
        """tokenizer, text_encoder, unet, vae, scheduler (config) of one SD 1.5-family model."""
        from . import tiny

        parts: dict[str, Part] = {}
        if self.is_tiny:
            self._tokenizer = self._tokenizer or tiny.build_tokenizer()
            parts["tokenizer"] = Part("tiny:tokenizer", self._tokenizer)
            for role in ("text_encoder", "vae"):
                fingerprint = f"tiny:{role}:{TINY_SHARED_SEED}"
                part = self._shared(fingerprint)
                if part is None:
                    build = tiny.build_text_encoder if role == "text_encoder" else tiny.build_vae
                    args = (self._tokenizer,) if role == "text_encoder" else ()
                    part = Part(fingerprint, self._place(build(*args, seed=TINY_SHARED_SEED)))
                    self.loads[role] += 1
                parts[role] = part
            unet = tiny.build_unet(in_channels=unet_in_channels, seed=_tiny_seed(repo))
            parts["unet"] = Part(f"tiny:unet:{repo}", self._place(unet))
            self.loads["unet"] += 1
            parts["scheduler"] = Part("tiny:scheduler", dict(tiny.build_scheduler().config))
            return parts
        for role in ("tokenizer", "scheduler", "text_encoder", "vae", "unet"):
            parts[role] = self._load_real(repo, role, role)
        return parts

    def _load_real(self, repo: str, subfolder: str | None, role: str) -> Part:
        from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        root = snapshot(repo, subfolder)
        folder = Path(root) / subfolder if subfolder else Path(root)
        fingerprint = weights_fingerprint(folder) or f"{repo}/{subfolder}"
        shared = self._shared(fingerprint)
        if shared is not None:
            return shared
        try:
            if role == "tokenizer":
                module = CLIPTokenizer.from_pretrained(folder)
            elif role == "scheduler":
                module = dict(DDIMScheduler.load_config(folder))
            else:
                cls = {
                    "text_encoder": CLIPTextModel,
                    "vae": AutoencoderKL,
                    "unet": UNet2DConditionModel,
                    "controlnet": ControlNetModel,
                }[role]
                module = self._place(cls.from_pretrained(folder, torch_dtype=self.dtype, use_safetensors=True))
        except (OSError, ValueError) as error:
            raise ModelLoadError(f"Could not load {role} of {repo}: {error}") from error
        self.loads[role] += 1
        return Part(fingerprint, module)

    def _activate(self, *modules):
        """With cpu_offload, move what a job is about to use onto the device (until release)."""
        if self.settings.cpu_offload:
            for module in modules:
                if id(module) not in self._on_device:
                    self._on_device[id(module)] = module.to(self.device)
        return modules[0] if len(modules) == 1 else modules

    def _place(self, module):
        """Move to the device and dtype (to the CPU when offloading; the worker moves it in)."""
        target = "cpu" if self.settings.cpu_offload else self.device
        if module.dtype != self.dtype:
            module = module.to(dtype=self.dtype)
        module = module.to(target).eval()
        module.requires_grad_(False)
        return module


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _hub_reachable() -> bool:
    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=HUB_PROBE_TIMEOUT_S).close()
        return True
    except OSError:
        return False


def snapshot(repo: str, subfolder: str | None) -> str:
    """Local folder of `repo` (config + safetensors only), downloading on first use.

    A local folder (diffusers layout) is used as it is. Fails at once, with what to do, when
    the files are not cached and the Hub can't be reached (HF_HUB_OFFLINE=1, or no network):
    no minute of retries.
    """
    if os.path.isdir(repo):
        return repo
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    prefix = f"{subfolder}/" if subfolder else ""
    patterns = [f"{prefix}*.json", f"{prefix}*.txt", f"{prefix}*.safetensors"]
    try:
        return snapshot_download(repo, allow_patterns=patterns, local_files_only=True)
    except (LocalEntryNotFoundError, OSError, ValueError):
        pass
    advice = (
        f"Model {repo} is not downloaded and the Hugging Face Hub can't be reached. "
        "Connect to the internet (or pre-download it with `huggingface-cli download`), "
        "or run offline with random weights: `python app.py --preset tiny`."
    )
    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE") == "1" or not _hub_reachable():
        raise ModelLoadError(advice)
    try:
        return snapshot_download(repo, allow_patterns=patterns)
    except Exception as error:  # network errors come in many types
        raise ModelLoadError(f"{advice} ({type(error).__name__}: {error})") from error


def weights_fingerprint(folder: Path) -> str | None:
    """sha256 of the weights file, read from the Hub cache's blob name (no hashing of GBs)."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    target = Path(os.path.realpath(files[0]))
    if target.parent.name == "blobs":
        return target.name
    stat = target.stat()
    return f"{target}:{stat.st_size}:{stat.st_mtime_ns}"
