"""The one owner of loaded models: what is kept, shared and evicted, and what a job gets.

Every loaded part lives in ONE cache (`_cache`, in order of use) under a key that says what it
is: the base ("base"), the editing model ("edit"), a ControlNet ("controlnet:pose"), an
annotator ("annotator:depth"), fast mode's parts ("lora", "taesd"), and each engine's own parts
as its `ModelSpec`s declare them ("<spec key>:<repo>"). So:

- The base (tokenizer, text encoder, UNet, VAE of an SD 1.5 model) stays loaded and is shared
  by every tab and engine that runs on it; another base replaces it, and a base switch drops the
  old base first when both won't fit the budget ("never two bases").
- Everything else is an extra: loaded on first use, kept up to its own count (ControlNets,
  annotators, a spec's `keep_at_most`), and evicted least-recently-used first when the device
  holds more than the memory budget. The budget counts every module on the device, annotators
  included, each shared tensor once.
- Parts are keyed by a fingerprint of their weights too, so a text encoder or VAE that two models
  share is in memory once. Where two repos publish the same weights as different files (a distilled
  or control variant's folder carrying its base model's text encoder again), a spec's `shared_roles`
  says so: those roles are read from the other spec's repo, and so held (and downloaded) once.

Where parts come from is `parts` (tiny: built in code; real: fetched from the Hub by `hub`);
where they live (device, offload) is `residency`. The presets differ only in the source.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch

from . import engine
from .engines import ModelSpec, model_specs
from .engines.base import ModelComponents
from .hub import ModelLoadError, Report
from .parts import Part, component_class, is_scheduler, source_for
from .residency import (
    Residency,
    choose_dtype,
    device_lock,
    free_memory,
    module_bytes,
    resolve_device,
    resolve_dtype,
    role_dtype,
)
from .settings import Settings

__all__ = ["ModelLoadError", "ModelManager", "free_memory", "module_bytes", "resolve_device", "resolve_dtype"]

CUDA_BUDGET_FRACTION = 0.8  # of the GPU's memory, when T2VZ_MEMORY_BUDGET_GB is 0
MODEL_STAGES = {"text_encoder": "text", "unet": "unet", "vae": "vae"}


@dataclass
class Entry:
    """One loaded thing: a Part, a model (dict of Parts), an annotator, or a LoRA's state dict."""

    value: object
    group: str  # what `resident()` lists it under
    label: str  # how it is listed (the repo, the kind)
    limit_key: str  # entries sharing it are kept up to `limit`
    limit: int
    evictable: bool = True


def _modules_of(value) -> list[torch.nn.Module]:
    """The torch modules an entry holds (an annotator keeps its nets one or two attributes deep)."""
    if isinstance(value, torch.nn.Module):
        return [value]
    if isinstance(value, Part):
        return _modules_of(value.module)
    if isinstance(value, dict):
        return [m for item in value.values() if isinstance(item, Part) for m in _modules_of(item)]
    found = []
    for attribute in vars(value).values() if hasattr(value, "__dict__") else ():
        if isinstance(attribute, torch.nn.Module):
            found.append(attribute)
        elif hasattr(attribute, "__dict__"):
            found.extend(v for v in vars(attribute).values() if isinstance(v, torch.nn.Module))
    return found


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
        self._cache: OrderedDict[str, Entry] = OrderedDict()  # every loaded part, least recently used first
        self._base_id: str | None = None

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
        repo = self.settings.edit_model
        with self._guard:
            parts = self._cached("edit", lambda: self._load_model(repo, unet_in_channels=8), group="edit", label=repo)
            return self._components(parts, scheduler)

    def model(self, spec: ModelSpec, scheduler: str = "ddim") -> engine.Components | ModelComponents:
        """An engine's own model folder: `spec.kind == "pipeline"` (SD-shaped, e.g. a text-to-video
        model with a 3D UNet: `engine.Components` with a fresh `scheduler`), or "components" (its own
        roles: a `ModelComponents`, the repo's scheduler fresh for this job). Loaded once, kept up to
        `spec.keep_at_most`, counted in the memory budget, evicted least recently used like any extra."""
        repo = spec.repo(self.settings)

        def load():
            if spec.kind == "components":
                return self._load_components(spec, repo)
            with self._loading(repo):
                parts = self.source.video_model(repo, spec, reuse=self._shared, report=self._report)
            return self._adopt_model(parts)

        with self._guard:
            parts = self._cached(f"{spec.key}:{repo}", load, group=spec.group or spec.key, label=repo,
                                 limit_key=spec.key, limit=spec.keep_at_most)
            if spec.kind == "components":
                return self._spec_components(spec, parts)
            return self._components(parts, scheduler)

    def part(self, spec: ModelSpec, filename: str | None = None) -> torch.nn.Module:
        """An engine's own module (`spec.kind` "module", or "file" with `filename`), adopted beside
        the stage it runs with; kept up to `spec.keep_at_most` of the spec, within the budget."""
        repo = spec.repo(self.settings)
        label = f"{repo}/{filename}" if filename else repo

        def load():
            return self._load_module(label, spec.stage, spec.key, lambda: self.source.module(
                repo, spec, filename=filename, reuse=self._shared, report=self._report))

        with self._guard:
            return self._cached(f"{spec.key}:{label}", load, group=spec.group or spec.key, label=label,
                                limit_key=spec.key, limit=spec.keep_at_most).module

    def lcm_lora(self, unet) -> None:
        """Attach the LCM-LoRA to `unet` (inactive until `engine.lora_active`); read once, kept attached."""
        from .engine.fast import LCM_LORA_FILE, LCM_LORA_REPO, attach_lora

        def load():
            with self._loading(LCM_LORA_REPO):
                state = self.source.lora(LCM_LORA_REPO, LCM_LORA_FILE, unet=unet, report=self._report)
            self.loads["lora"] += 1
            return state

        with self._guard:
            # The state dict is small and the attached layers belong to the UNet: never evicted.
            state = self._cached("lora", load, group="fast", label=LCM_LORA_REPO, evictable=False)
            attach_lora(unet, state)

    def tiny_decoder(self):
        """TAESD (AutoencoderTiny): fast decoding of SD latents, loaded on first use."""
        from .engine.fast import TAESD_REPO

        def load():
            return self._load_module(TAESD_REPO, "vae", "taesd", lambda: self.source.tiny_decoder(
                TAESD_REPO, reuse=self._shared, report=self._report))

        with self._guard:
            return self._cached("taesd", load, group="fast", label=TAESD_REPO).module

    def controlnet(self, kind: str):
        """The ControlNet for `kind` (pose, edge, depth), loaded on first use, LRU-cached."""
        if kind not in self.settings.controlnets:
            raise ModelLoadError(f"No ControlNet configured for {kind!r}.")
        repo = self.settings.controlnets[kind]

        def load():
            base_unet = self._ensure_base(self._base_id or self.settings.default_base_model)["unet"].module
            return self._load_module(repo, "unet", "controlnet", lambda: self.source.controlnet(  # beside the UNet
                repo, base_unet=base_unet, reuse=self._shared, report=self._report))

        with self._guard:
            return self._cached(f"controlnet:{kind}", load, group="controlnets", label=kind, limit_key="controlnet",
                                limit=self.settings.controlnet_cache_size).module

    def annotator(self, kind: str):
        """OpenPose or MiDaS detector (random-weight nets in the tiny preset), LRU-cached, in the budget."""
        from . import annotators  # controlnet-aux takes seconds to import: only when needed

        loaders = {"pose": annotators.load_openpose, "depth": annotators.load_midas}
        if kind not in loaders:
            raise ModelLoadError(f"No annotator for {kind!r}.")
        repo = self.settings.annotators

        def load():
            with self._loading(f"{repo} ({kind})"):
                source = self.source.annotator_source(repo, kind, report=self._report)
                try:
                    detector = loaders[kind](source)
                except annotators.AnnotatorError as error:
                    raise ModelLoadError(str(error)) from error
            self.loads[f"annotator:{kind}"] += 1
            return detector

        with self._guard:
            detector = self._cached(f"annotator:{kind}", load, group="annotators", label=kind, limit_key="annotator",
                                    limit=self.settings.annotator_cache_size)
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
                for key, entry in self._cache.items():
                    if key.startswith("annotator:"):
                        entry.value.to("cpu")

    def resident(self) -> dict[str, list[str]]:
        """What is loaded now, by group. Never waits for a load in progress (the status line calls it)."""
        groups = ["base", "controlnets", "edit", *dict.fromkeys(s.group or s.key for _, s in model_specs()),
                  "annotators"]
        resident: dict[str, list[str]] = {group: [] for group in groups}
        for entry in list(self._cache.copy().values()):
            if entry.group in resident:
                resident[entry.group].append(entry.label)
        return resident

    def memory_bytes(self) -> int:
        """Bytes of weights held, wherever they are, each shared module counted once."""
        return self.residency.device_bytes(self._all_modules())

    def device_bytes(self) -> int:
        """Bytes of weights on the device now, annotators included: what the budget is compared with."""
        return self.residency.device_bytes([*self.residency.on_device(), *self._annotator_modules_on_device()])

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
        """Drop extras: one cache key ('edit', 'controlnet:pose', 'motion_adapter:<repo>'), every entry
        of a prefix ('controlnet', 'annotator', an engine spec's key), or 'all-extras'."""
        with self._guard:
            for key, entry in list(self._cache.items()):
                if not entry.evictable:
                    continue
                if name == "all-extras" or key == name or key.startswith(f"{name}:"):
                    del self._cache[key]
        free_memory()

    # ------------------------------------------------------------------ internals
    def _cached(self, key: str, load, *, group: str, label: str, limit_key: str | None = None, limit: int = 1,
                evictable: bool = True):
        """The cache's value for `key`, loaded by `load()` on a miss; marked as just used, and the
        cache kept within each kind's count and the memory budget (never evicting this one)."""
        entry = self._cache.get(key)
        if entry is None:
            entry = Entry(load(), group, label, limit_key or key, max(1, limit), evictable)
            self._cache[key] = entry
            same = [k for k, e in self._cache.items() if e.limit_key == entry.limit_key and k != key]
            for old in same[: max(0, len(same) + 1 - entry.limit)]:
                del self._cache[old]  # least recently used first
            if len(same) + 1 > entry.limit:
                free_memory()
        self._cache.move_to_end(key)
        if evictable:
            self.enforce_budget(keep={id(m) for m in _modules_of(entry.value)})
        return entry.value

    def _load_module(self, what: str, stage: str, role: str, read) -> Part:
        """`read()`'s Part (fetched and built while the status line says `what`), placed with its stage."""
        with self._loading(what):
            part = read()
        part.module = self.residency.adopt(part.module, stage=stage)
        self.loads[role] += 1
        return part

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

    def _spec_components(self, spec: ModelSpec, parts: dict[str, Part]) -> ModelComponents:
        modules = {}
        for role, part in parts.items():
            cls = spec.components[role]
            modules[role] = component_class(cls).from_config(part.module) if is_scheduler(cls) else part.module
        return ModelComponents(modules=modules, device=self.device, dtype=self.dtype)

    def _load_components(self, spec: ModelSpec, repo: str) -> dict[str, Part]:
        """A "components" model's parts: its own roles from `repo`; each of its `shared_roles` from the
        repo of the spec it belongs to, as that spec loads it (class, dtype, fingerprint), so a part both
        use is read and held once (the one held already where it is)."""
        owners = {role: self._owner(spec, role) for role in spec.components}
        parts: dict[str, Part] = {}
        for key in dict.fromkeys(owner.key for owner in owners.values()):
            owner = next(o for o in owners.values() if o.key == key)
            roles = {role: owner.components[role] for role, o in owners.items() if o.key == key}
            owner_repo = repo if owner is spec else owner.repo(self.settings)
            with self._loading(owner_repo):
                parts.update(self.source.components(owner_repo, replace(owner, components=roles, shared_roles={}),
                                                    reuse=self._shared, report=self._report))
        return self._adopt_components(spec, parts, owners)

    @staticmethod
    def _owner(spec: ModelSpec, role: str) -> ModelSpec:
        """The spec whose `role` this spec's is: itself, or the one its `shared_roles` names (by key or
        itself), followed to the spec that does not share it in turn."""
        ref = spec.shared_roles.get(role)
        if ref is None:
            return spec
        owner = ref if isinstance(ref, ModelSpec) else next((s for _, s in model_specs() if s.key == ref), None)
        if owner is None or role not in owner.components:
            raise ModelLoadError(f"{spec.key} shares its {role} with {getattr(ref, 'key', ref)!r}, which declares no {role}.")
        return ModelManager._owner(owner, role)

    def _adopt_components(self, spec: ModelSpec, parts: dict[str, Part],
                          owners: dict[str, ModelSpec] | None = None) -> dict[str, Part]:
        """Place a "components" model's modules (those not already held) in their dtypes and stages: a
        shared role's as the spec it belongs to places it (counted in `loads` under that spec's key)."""
        for role, part in parts.items():
            if not isinstance(part.module, torch.nn.Module) or self._shared(part.fingerprint) is part:
                continue  # a tokenizer or scheduler config; or held (and placed) for another model
            owner = (owners or {}).get(role, spec)
            part.module = self.residency.adopt(part.module, stage=owner.stage_of(role),
                                               dtype=role_dtype(owner, role, self.dtype))
            self.loads[f"{owner.key}:{role}"] += 1
        return parts

    @contextmanager
    def _loading(self, what: str):
        self.loading = what
        if self._report is not None:
            self._report(0.0, f"loading {what}")
        try:
            yield
        finally:
            self.loading = None

    def _lru_victim(self, keep: set[int]) -> str | None:
        """The least recently used evictable entry that holds nothing in `keep`."""
        for key, entry in self._cache.items():
            if entry.evictable and not any(id(m) in keep for m in _modules_of(entry.value)):
                return key
        return None

    def _all_modules(self) -> list[torch.nn.Module]:
        return [m for entry in self._cache.values() for m in _modules_of(entry.value)]

    def _annotator_modules_on_device(self) -> list[torch.nn.Module]:
        modules = [m for key, e in self._cache.items() if key.startswith("annotator:") for m in _modules_of(e.value)]
        return [m for m in modules if any(p.device.type == self.device.type for p in m.parameters())]

    def _ensure_base(self, model_id: str) -> dict[str, Part]:
        allowed = set(self.settings.base_models) | set(self.settings.edge_style_models)
        if model_id not in allowed:
            raise ModelLoadError(f"Model {model_id!r} is not offered here; choose one of: {', '.join(sorted(allowed))}.")
        if self._base_id != model_id:
            old = self._cache.get("base")
            if old is not None and not self._fits_beside_base(model_id, old.value):
                self._drop_base()  # never two bases on the device when the budget can't hold both
                old = None
            parts = self._load_model(model_id, unet_in_channels=4)
            self._cache["base"] = Entry(parts, "base", model_id, "base", 1, evictable=False)
            self._base_id = model_id
            if old is not None:
                # ControlNets were made for SD 1.5 and stay valid; only the old base goes.
                del old
                free_memory()
        self._cache.move_to_end("base")
        return self._cache["base"].value

    def _fits_beside_base(self, model_id: str, base: dict[str, Part]) -> bool:
        budget = self.budget_bytes()
        if budget is None or self.residency.offloading:
            return True  # no device budget, or models wait on the CPU between runs
        held = self.residency.device_bytes([p.module for p in base.values()])
        new = self.source.estimate_bytes(model_id) or held
        self.enforce_budget(keep={id(p.module) for p in base.values()}, extra_bytes=new)
        return self.device_bytes() + new <= budget

    def _drop_base(self) -> None:
        self._cache.pop("base", None)
        self._base_id = None
        free_memory()

    def _shared(self, fingerprint: str) -> Part | None:
        """A part already held (by any model) with these weights, to reuse instead of loading again."""
        for entry in list(self._cache.values()):
            parts = entry.value.values() if isinstance(entry.value, dict) else [entry.value]
            for part in parts:
                if isinstance(part, Part) and part.fingerprint == fingerprint:
                    return part
        return None

    def _load_model(self, repo: str, unet_in_channels: int) -> dict[str, Part]:
        """tokenizer, text_encoder, unet, vae, scheduler (config) of one SD 1.5-family model."""
        with self._loading(repo):
            parts = self.source.model(repo, unet_in_channels=unet_in_channels, reuse=self._shared, report=self._report)
        return self._adopt_model(parts)

    def _adopt_model(self, parts: dict[str, Part]) -> dict[str, Part]:
        """Place a model's modules (those not already held for another model) with their stages."""
        for role, stage in MODEL_STAGES.items():
            part = parts[role]
            if self._shared(part.fingerprint) is part:
                continue  # already held (and placed) for the other model
            part.module = self.residency.adopt(part.module, stage=stage)
            self.loads[role] += 1
        return parts
