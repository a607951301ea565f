"""The one owner of loaded models: what is kept, shared and evicted, and what a job gets.

- The base (tokenizer, text encoder, UNet, VAE of an SD 1.5 model) stays loaded and is shared
  by text-to-video and every ControlNet tab; another base replaces it.
- ControlNets, the editing model and annotators load on first use and live in LRU caches.
- Parts are keyed by a fingerprint of their weights, so a text encoder or VAE that two models
  share is in memory once.
- A memory budget (device bytes against device memory) evicts least-recently-used extras; the
  base is never evicted mid-job, and a base switch drops the old base first when both won't fit.

Where parts come from is `parts` (tiny: built in code; real: fetched from the Hub by `hub`);
where they live (device, offload) is `residency`. The presets differ only in the source.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from contextlib import contextmanager

import torch

from . import engine
from .hub import ModelLoadError, Report
from .parts import Part, source_for
from .residency import Residency, choose_dtype, device_lock, free_memory, module_bytes, resolve_device, resolve_dtype
from .settings import Settings

__all__ = ["ModelLoadError", "ModelManager", "free_memory", "module_bytes", "resolve_device", "resolve_dtype"]

CUDA_BUDGET_FRACTION = 0.8  # of the GPU's memory, when T2VZ_MEMORY_BUDGET_GB is 0


class ModelManager:
    def __init__(self, settings: Settings, device: str | None = None):
        self.settings = settings
        self.device = resolve_device(device or settings.device)
        self.dtype, self.dtype_reason = choose_dtype(settings.dtype, self.device, probe_cpu=settings.preset != "tiny")
        self.lock = device_lock(self.device)
        self.residency = Residency(self.device, self.dtype, offload=settings.cpu_offload)
        self.source = source_for(settings.preset, self.dtype)
        self.loads: Counter[str] = Counter()  # how often each role was built or read from disk
        self.loading: str | None = None  # what is being fetched or loaded now (status line)
        self._report: Report | None = None
        self._guard = threading.RLock()
        self._base_id: str | None = None
        self._base: dict[str, Part] = {}
        self._edit: dict[str, Part] = {}
        self._video: dict[str, Part] = {}  # ModelScope's parts (a model of its own, evictable)
        self._adapters: OrderedDict[str, Part] = OrderedDict()  # AnimateDiff motion adapters
        self._fast: dict[str, Part] = {}  # fast mode: the tiny decoder (TAESD)
        self._lora: dict | None = None  # the LCM-LoRA's state dict, attached to UNets on demand
        self._controlnets: OrderedDict[str, Part] = OrderedDict()
        self._annotators: OrderedDict[str, object] = OrderedDict()
        self._usage: dict[str, float] = {}  # extra's name -> last use, for LRU eviction

    # ------------------------------------------------------------------ public API
    @property
    def is_tiny(self) -> bool:
        return self.settings.preset == "tiny"

    @contextmanager
    def reporting(self, report: Report | None):
        """Download and load progress of the calls inside go to `report(fraction, text)`."""
        previous, self._report = self._report, report
        try:
            yield self
        finally:
            self._report = previous

    def components(self, model_id: str | None = None, scheduler: str = "ddim") -> engine.Components:
        """The base model's parts with a fresh scheduler, ready for one generation."""
        with self._guard:
            parts = self._ensure_base(model_id or self.settings.default_base_model)
            return self._components(parts, scheduler)

    def edit_components(self, scheduler: str = "euler_ancestral") -> engine.Components:
        """Instruct-Pix2Pix's parts; text encoder and VAE are the base's when their weights are."""
        with self._guard:
            if not self._edit:
                self._edit = self._load_model(self.settings.edit_model, unet_in_channels=8)
            self._touch("edit")
            self.enforce_budget(keep={id(p.module) for p in self._edit.values()})
            return self._components(self._edit, scheduler)

    def modelscope_components(self, scheduler: str = "ddim") -> engine.Components:
        """ModelScope's text-to-video parts (3D UNet), loaded on first use, evicted like the editing model."""
        with self._guard:
            if not self._video:
                repo = self.settings.modelscope_model
                with self._loading(repo):
                    parts = self.source.video_model(repo, reuse=self._shared, report=self._report)
                self._video = self._adopt_model(parts)
            self._touch("modelscope")
            self.enforce_budget(keep={id(p.module) for p in self._video.values()})
            return self._components(self._video, scheduler)

    def motion_adapter(self, lightning_steps: int | None = None) -> torch.nn.Module:
        """The AnimateDiff motion adapter, adopted beside the UNet it runs with (same stage); with
        `lightning_steps`, AnimateDiff-Lightning's adapter distilled for that many steps instead.
        The last two used stay loaded (normal and fast jobs alternate), within the memory budget."""
        from .engine.fast import LIGHTNING_REPO, lightning_file

        repo = self.settings.motion_adapter
        key = repo if lightning_steps is None else f"{LIGHTNING_REPO}/{lightning_file(lightning_steps)}"
        with self._guard:
            self._touch("motion_adapter")
            if key not in self._adapters:
                with self._loading(key):
                    if lightning_steps is None:
                        part = self.source.motion_adapter(repo, reuse=self._shared, report=self._report)
                    else:
                        part = self.source.lightning_adapter(
                            LIGHTNING_REPO, lightning_file(lightning_steps), reuse=self._shared, report=self._report
                        )
                part.module = self.residency.adopt(part.module, stage="unet")
                self.loads["motion_adapter"] += 1
                self._adapters[key] = part
                self._trim(self._adapters, 2)
            self._adapters.move_to_end(key)
            self.enforce_budget(keep={id(self._adapters[key].module)})
            return self._adapters[key].module

    def lcm_lora(self, unet) -> None:
        """Attach the LCM-LoRA to `unet` (inactive until `engine.lora_active`); read once, kept attached."""
        from .engine.fast import LCM_LORA_FILE, LCM_LORA_REPO, attach_lora

        with self._guard:
            if self._lora is None:
                with self._loading(LCM_LORA_REPO):
                    self._lora = self.source.lora(LCM_LORA_REPO, LCM_LORA_FILE, unet=unet, report=self._report)
                self.loads["lora"] += 1
            attach_lora(unet, self._lora)

    def tiny_decoder(self):
        """TAESD (AutoencoderTiny): fast decoding of SD latents, loaded on first use."""
        from .engine.fast import TAESD_REPO

        with self._guard:
            if "taesd" not in self._fast:
                with self._loading(TAESD_REPO):
                    part = self.source.tiny_decoder(TAESD_REPO, reuse=self._shared, report=self._report)
                part.module = self.residency.adopt(part.module, stage="vae")
                self.loads["taesd"] += 1
                self._fast["taesd"] = part
            return self._fast["taesd"].module

    def controlnet(self, kind: str):
        """The ControlNet for `kind` (pose, edge, depth), loaded on first use, LRU-cached."""
        if kind not in self.settings.controlnets:
            raise ModelLoadError(f"No ControlNet configured for {kind!r}.")
        with self._guard:
            self._touch(f"controlnet:{kind}")
            if kind not in self._controlnets:
                repo = self.settings.controlnets[kind]
                base_unet = self._ensure_base(self._base_id or self.settings.default_base_model)["unet"].module
                with self._loading(repo):
                    part = self.source.controlnet(repo, base_unet=base_unet, reuse=self._shared, report=self._report)
                part.module = self.residency.adopt(part.module, stage="unet")  # runs beside the UNet
                self.loads["controlnet"] += 1
                self._controlnets[kind] = part
                self._trim(self._controlnets, self.settings.controlnet_cache_size)
                self.enforce_budget(keep={id(part.module)})
            self._controlnets.move_to_end(kind)
            return self._controlnets[kind].module

    def annotator(self, kind: str):
        """OpenPose or MiDaS detector (random-weight nets in the tiny preset), LRU-cached."""
        from . import annotators  # controlnet-aux takes seconds to import: only when needed

        loaders = {"pose": annotators.load_openpose, "depth": annotators.load_midas}
        if kind not in loaders:
            raise ModelLoadError(f"No annotator for {kind!r}.")
        with self._guard:
            self._touch(f"annotator:{kind}")
            if kind not in self._annotators:
                repo = self.settings.annotators
                with self._loading(f"{repo} ({kind})"):
                    source = self.source.annotator_source(repo, kind, report=self._report)
                    try:
                        detector = loaders[kind](source)
                    except annotators.AnnotatorError as error:
                        raise ModelLoadError(str(error)) from error
                self.loads[f"annotator:{kind}"] += 1
                self._annotators[kind] = detector
                self._trim(self._annotators, self.settings.annotator_cache_size)
            self._annotators.move_to_end(kind)
            detector = self._annotators[kind]
            # Annotators are not offloaded: they run first, then the job's models take the device.
            return detector.to(self.device)

    def on_device(self) -> list[torch.nn.Module]:
        """Models on the device now (with cpu_offload: those the running job moved in)."""
        return self.residency.on_device()

    def release_device(self) -> None:
        """After a job, with cpu_offload: every model goes back to the CPU and the device is free."""
        with self._guard:
            self.residency.release()
            if self.residency.offloading:
                for detector in self._annotators.values():
                    detector.to("cpu")

    def resident(self) -> dict[str, list[str]]:
        """What is loaded now, by role. Never waits for a load in progress (the status line calls it)."""
        return {
            "base": [self._base_id] if self._base_id and self._base else [],
            "controlnets": list(self._controlnets.copy()),
            "edit": [self.settings.edit_model] if self._edit else [],
            "video": [self.settings.modelscope_model] if self._video else [],
            "motion_adapters": list(self._adapters.copy()),
            "annotators": list(self._annotators.copy()),
        }

    def memory_bytes(self) -> int:
        """Bytes of weights held, wherever they are, each shared module counted once."""
        return self.residency.device_bytes(list(self._all_modules()))

    def device_bytes(self) -> int:
        """Bytes of weights on the device now: what the budget is compared with."""
        return self.residency.device_bytes()

    def budget_bytes(self) -> int | None:
        if self.settings.memory_budget_gb > 0:
            return int(self.settings.memory_budget_gb * 2**30)
        if self.device.type == "cuda":
            return int(torch.cuda.get_device_properties(self.device).total_memory * CUDA_BUDGET_FRACTION)
        return None

    def enforce_budget(self, keep: set[int] = frozenset(), extra_bytes: int = 0) -> list[str]:
        """Evict least-recently-used extras (never the base, never `keep`) until under budget."""
        budget = self.budget_bytes()
        evicted: list[str] = []
        if budget is None:
            return evicted
        with self._guard:
            while self.device_bytes() + extra_bytes > budget:
                victim = self._lru_victim(keep)
                if victim is None:
                    break
                evicted.append(victim)
                self.evict(victim)
        return evicted

    def make_room(self) -> list[str]:
        """After an out-of-memory: evict the least recently used extra, not everything."""
        with self._guard:
            victim = self._lru_victim(keep=set())
            if victim is not None:
                self.evict(victim)
            free_memory()
            return [victim] if victim else []

    def evict(self, name: str) -> None:
        """Drop one extra: 'edit', 'modelscope', 'motion_adapter' (all of them), 'motion_adapter:<key>',
        'controlnet:<kind>', 'annotator:<kind>', or 'all-extras'."""
        with self._guard:
            if name in ("edit", "all-extras"):
                self._edit = {}
            if name in ("modelscope", "all-extras"):
                self._video = {}
            if name in ("motion_adapter", "all-extras"):
                self._adapters.clear()
            if name == "all-extras":
                self._controlnets.clear()
                self._annotators.clear()
            elif name.startswith("controlnet:"):
                self._controlnets.pop(name.split(":", 1)[1], None)
            elif name.startswith("annotator:"):
                self._annotators.pop(name.split(":", 1)[1], None)
            elif name.startswith("motion_adapter:"):
                self._adapters.pop(name.split(":", 1)[1], None)
            self._usage.pop(name, None)
        free_memory()

    # ------------------------------------------------------------------ internals
    def _components(self, parts: dict[str, Part], scheduler: str) -> engine.Components:
        return engine.Components(
            tokenizer=parts["tokenizer"].module,
            text_encoder=parts["text_encoder"].module,
            unet=parts["unet"].module,
            vae=parts["vae"].module,
            scheduler=engine.make_scheduler(scheduler, parts["scheduler"].module),
            vae_decode_batch=self.settings.vae_decode_batch,
            execution_device=self.device,
        )

    @contextmanager
    def _loading(self, what: str):
        self.loading = what
        if self._report is not None:
            self._report(0.0, f"loading {what}")
        try:
            yield
        finally:
            self.loading = None

    def _touch(self, name: str) -> None:
        self._usage[name] = time.monotonic()

    def _lru_victim(self, keep: set[int]) -> str | None:
        """The least recently used ControlNet, editing/ModelScope model or motion adapter outside `keep`.

        Annotators are not candidates: their own LRU cache (`annotator_cache_size`) bounds them.
        """
        candidates = [
            (self._usage.get(f"controlnet:{kind}", 0.0), f"controlnet:{kind}")
            for kind, part in self._controlnets.items()
            if id(part.module) not in keep
        ]
        for name, parts in (("edit", self._edit), ("modelscope", self._video)):
            if parts and not any(id(part.module) in keep for part in parts.values()):
                candidates.append((self._usage.get(name, 0.0), name))
        adapters = [key for key, part in self._adapters.items() if id(part.module) not in keep]
        if adapters:  # the least recent of them (the cache is in order of use)
            candidates.append((self._usage.get("motion_adapter", 0.0), f"motion_adapter:{adapters[0]}"))
        return min(candidates)[1] if candidates else None

    def _all_modules(self):
        for parts in (self._base, self._edit, self._video, self._adapters, self._fast):
            for part in parts.values():
                if isinstance(part.module, torch.nn.Module):
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
            if self._base and not self._fits_beside_base(model_id):
                self._drop_base()  # never two bases on the device when the budget can't hold both
            old = self._base
            self._base = self._load_model(model_id, unet_in_channels=4)
            self._base_id = model_id
            if old:
                # ControlNets were made for SD 1.5 and stay valid; only the old base goes.
                del old
                free_memory()
        self._touch("base")
        return self._base

    def _fits_beside_base(self, model_id: str) -> bool:
        budget = self.budget_bytes()
        if budget is None or self.residency.offloading:
            return True  # no device budget, or models wait on the CPU between runs
        held = self.residency.device_bytes([p.module for p in self._base.values()])
        new = self.source.estimate_bytes(model_id) or held
        self.enforce_budget(keep={id(p.module) for p in self._base.values()}, extra_bytes=new)
        return self.device_bytes() + new <= budget

    def _drop_base(self) -> None:
        self._base = {}
        self._base_id = None
        free_memory()

    def _shared(self, fingerprint: str) -> Part | None:
        for parts in (self._base, self._edit, self._video):
            for part in parts.values():
                if part.fingerprint == fingerprint:
                    return part
        return None

    def _load_model(self, repo: str, unet_in_channels: int) -> dict[str, Part]:
        """tokenizer, text_encoder, unet, vae, scheduler (config) of one SD 1.5-family model."""
        with self._loading(repo):
            parts = self.source.model(repo, unet_in_channels=unet_in_channels, reuse=self._shared, report=self._report)
        return self._adopt_model(parts)

    def _adopt_model(self, parts: dict[str, Part]) -> dict[str, Part]:
        """Place a model's modules (those not already held for another model) with their stages."""
        stages = {"text_encoder": "text", "unet": "unet", "vae": "vae"}
        for role, stage in stages.items():
            part = parts[role]
            if self._shared(part.fingerprint) is part:
                continue  # already held (and placed) for the other model
            part.module = self.residency.adopt(part.module, stage=stage)
            self.loads[role] += 1
        return parts
