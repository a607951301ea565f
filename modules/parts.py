"""Model parts for a preset: built in code (`tiny`) or loaded from the Hub's files (`real`).

Both sources hand the model manager the same things: `Part`s (a module and the fingerprint of
its weights) of an SD 1.5-family model, a ControlNet or an engine's own model (a "components"
ModelSpec: one Part per role), and the source of an annotator. The manager decides what is
kept and where it lives; a source only knows where parts come from.
`reuse(fingerprint)` lets a source skip loading weights the manager already holds (a text
encoder or VAE that two models share).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from . import hub
from .hub import ModelLoadError, Report
from .residency import role_dtype, variant_for
from .safe_pickle import UnsafePickleError, check_weights

MODEL_ROLES = ("tokenizer", "scheduler", "text_encoder", "vae", "unet")
# The classes of the shared SD 1.5 parts' roles (an engine's ModelSpec names its classes itself).
ROLE_CLASSES = {"tokenizer": "CLIPTokenizer", "scheduler": "DDIMScheduler", "text_encoder": "CLIPTextModel",
                "vae": "AutoencoderKL", "unet": "UNet2DConditionModel", "controlnet": "ControlNetModel",
                "taesd": "AutoencoderTiny"}
TINY_SHARED_SEED = 0  # tiny text encoders and VAEs are one model, as SD 1.5 fine-tunes mostly share them


@dataclass
class Part:
    """A loaded module (or config) and the fingerprint of its weights."""

    fingerprint: str
    module: object


Reuse = Callable[[str], "Part | None"]


def tiny_seed(name: str) -> int:
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)


class TinySource:
    """Random-weight parts built in code: every tab on a CPU in seconds, no file, no network."""

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype
        self._tokenizer = None

    def model(self, repo: str, *, unet_in_channels: int, reuse: Reuse, report: Report | None = None) -> dict[str, Part]:
        from . import tiny

        self._tokenizer = self._tokenizer or tiny.build_tokenizer()
        parts = {"tokenizer": Part("tiny:tokenizer", self._tokenizer)}
        parts["scheduler"] = Part("tiny:scheduler", dict(tiny.build_scheduler().config))
        for role in ("text_encoder", "vae"):
            fingerprint = f"tiny:{role}:{TINY_SHARED_SEED}"
            part = reuse(fingerprint)
            if part is None:
                args = (self._tokenizer,) if role == "text_encoder" else ()
                build = tiny.build_text_encoder if role == "text_encoder" else tiny.build_vae
                part = Part(fingerprint, build(*args, seed=TINY_SHARED_SEED))
            parts[role] = part
        unet = tiny.build_unet(in_channels=unet_in_channels, seed=tiny_seed(repo))
        parts["unet"] = Part(f"tiny:unet:{repo}", unet)
        return parts

    def controlnet(self, repo: str, *, base_unet, reuse: Reuse, report: Report | None = None) -> Part:
        from . import tiny

        return Part(f"tiny:{repo}", tiny.build_controlnet(base_unet, seed=tiny_seed(repo)))

    def video_model(self, repo: str, spec, *, reuse: Reuse, report: Report | None = None) -> dict[str, Part]:
        """An engine's model folder (`spec.kind == "pipeline"`): the tiny base's parts with the spec's tiny UNet."""
        parts = self.model(repo, unet_in_channels=4, reuse=reuse, report=report)
        parts["unet"] = Part(f"tiny:{spec.key}:{repo}", spec.build_tiny(tiny_seed(repo)))
        return parts

    def components(self, repo: str, spec, *, reuse: Reuse, report: Report | None = None) -> dict[str, Part]:
        """An engine's model folder of its own components (`spec.kind == "components"`), built tiny
        by `spec.build_tiny`; the scheduler as its config (the manager makes a fresh one per job)."""
        built = spec.build_tiny(tiny_seed(repo))
        missing = set(spec.components) - set(built)
        if missing:
            raise ValueError(f"{spec.key}'s build_tiny made no {', '.join(sorted(missing))}")
        parts = {}
        for role in spec.components:
            fingerprint = f"tiny:{spec.key}:{repo}:{role}"
            if is_scheduler(spec.components[role]):
                parts[role] = Part(fingerprint, dict(built[role].config))
            else:
                parts[role] = reuse(fingerprint) or Part(fingerprint, built[role])
        return parts

    def module(self, repo: str, spec, *, filename: str | None = None, reuse: Reuse, report: Report | None = None) -> Part:
        """An engine's module ("module"), or the module one file of the repo makes ("file"), built tiny."""
        name = f"{repo}/{filename}" if filename else repo
        return Part(f"tiny:{name}", spec.build_tiny(tiny_seed(name)))

    def lora(self, repo: str, filename: str, *, unet, report: Report | None = None) -> dict:
        from . import tiny

        return tiny.build_lcm_lora(unet, seed=tiny_seed(repo))

    def tiny_decoder(self, repo: str, *, reuse: Reuse, report: Report | None = None) -> Part:
        from . import tiny

        return Part(f"tiny:{repo}", tiny.build_taesd(seed=tiny_seed(repo)))

    def annotator_source(self, repo: str, kind: str, report: Report | None = None) -> str:
        from .annotators import RANDOM_SOURCE

        return RANDOM_SOURCE

    def estimate_bytes(self, repo: str) -> int | None:
        return None  # unknown before building; the manager assumes the size of the base it holds


class HubSource:
    """Parts read from Hub repos (or local folders in the same layout), fetched on first use.

    Only the files that are loaded are fetched: one weights file per component, safetensors
    where the repo has them, the dtype's variant where it exists (fp16 on CUDA fp16).
    """

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype
        self.variant = variant_for(dtype)

    def model(self, repo: str, *, unet_in_channels: int, reuse: Reuse, report: Report | None = None) -> dict[str, Part]:
        listing = hub.list_files(repo)
        parts = {role: self._part(listing, role, role, reuse, report) for role in MODEL_ROLES}
        channels = parts["unet"].module.config.in_channels
        if channels != unet_in_channels:
            raise ModelLoadError(
                f"{repo}'s UNet takes {channels} input channels, not {unet_in_channels}: "
                + ("it is not an Instruct-Pix2Pix model." if unet_in_channels == 8 else "it is not a text-to-image SD 1.5 model.")
            )
        return parts

    def controlnet(self, repo: str, *, base_unet, reuse: Reuse, report: Report | None = None) -> Part:
        return self._part(hub.list_files(repo), "", "controlnet", reuse, report)

    def video_model(self, repo: str, spec, *, reuse: Reuse, report: Report | None = None) -> dict[str, Part]:
        """An engine's model folder (`spec.kind == "pipeline"`): SD's layout, `unet/` of `spec.module_class`."""
        listing = hub.list_files(repo)
        return {role: self._part(listing, role, spec.module_class if role == "unet" else role, reuse, report)
                for role in MODEL_ROLES}

    def components(self, repo: str, spec, *, reuse: Reuse, report: Report | None = None) -> dict[str, Part]:
        """An engine's model folder of its own components (`spec.kind == "components"`): each role
        from its subfolder, as its class, in its dtype (`role_dtype`); only the files loaded are fetched."""
        listing = hub.list_files(repo)
        return {role: self._part(listing, role, cls, reuse, report, dtype=role_dtype(spec, role, self.dtype))
                for role, cls in spec.components.items()}

    def module(self, repo: str, spec, *, filename: str | None = None, reuse: Reuse, report: Report | None = None) -> Part:
        """An engine's module: at the repo's root (`spec.module_class`), or made by `spec.from_state`
        of one bare state-dict file of the repo (distilled weights published without a config)."""
        listing = hub.list_files(repo)
        if not filename:
            return self._part(listing, "", spec.module_class, reuse, report)
        from safetensors.torch import load_file

        if filename not in listing.sizes:
            raise ModelLoadError(f"{repo} has no {filename}.")
        root = hub.fetch(listing, [filename], label=f"{repo} ({filename})", report=report)
        fingerprint = hub.fingerprint(root, filename)
        shared = reuse(fingerprint)
        if shared is not None:
            return shared
        try:
            return Part(fingerprint, spec.from_state(load_file(str(root / filename))))
        except (OSError, ValueError, KeyError, RuntimeError) as error:
            raise ModelLoadError(f"Could not load {filename} of {repo} as a {spec.module_class}: {str(error)[:300]}") from error

    def lora(self, repo: str, filename: str, *, unet, report: Report | None = None) -> dict:
        """A LoRA's state dict (one safetensors file of the repo)."""
        from safetensors.torch import load_file

        listing = hub.list_files(repo)
        if filename not in listing.sizes:
            raise ModelLoadError(f"{repo} has no {filename}.")
        root = hub.fetch(listing, [filename], label=f"{repo} (LoRA)", report=report)
        return load_file(str(root / filename))

    def tiny_decoder(self, repo: str, *, reuse: Reuse, report: Report | None = None) -> Part:
        return self._part(hub.list_files(repo), "", "taesd", reuse, report)

    def annotator_source(self, repo: str, kind: str, report: Report | None = None) -> Path:
        from .annotators import ANNOTATOR_FILES

        listing, files = self.files(repo, kind)
        missing = [name for name in files if name not in listing.sizes]
        if missing:
            raise ModelLoadError(f"{repo} has no {', '.join(missing)}; set T2VZ_ANNOTATORS to lllyasviel/Annotators or a folder with them.")
        return hub.fetch(listing, files, label=f"{repo} ({kind} annotator)", report=report)

    def estimate_bytes(self, repo: str) -> int | None:
        """Bytes the model's weights take in memory at our dtype, from the listing's file sizes."""
        try:
            listing = hub.list_files(repo)
        except ModelLoadError:
            return None
        total = 0
        for folder in ("text_encoder", "vae", "unet"):
            weights = hub.choose_weights(listing.sizes, folder, self.variant)
            sizes = [listing.sizes.get(f) for f in weights.files] if weights else [None]
            if None in sizes:
                return None
            size = sum(sizes)
            file_bytes_per_value = 2 if weights.variant == "fp16" else 4
            total += size * torch.finfo(self.dtype).bits // 8 // file_bytes_per_value
        return total

    def files(self, repo: str, kind: str) -> tuple[hub.RepoFiles, list[str]]:
        """The files loading `repo` as `kind` reads (model, video_model, controlnet, pose, depth, module,
        taesd, file:<name>, components:<ModelSpec key>): what a prefetch gets."""
        from .annotators import ANNOTATOR_FILES

        listing = hub.list_files(repo)
        if kind in ANNOTATOR_FILES:
            return listing, list(ANNOTATOR_FILES[kind])
        if kind == "controlnet":
            return listing, hub.component_files(listing, "", "controlnet", self.variant)[0]
        if kind in ("module", "taesd"):  # one model at the repo's root
            return listing, hub.component_files(listing, "", kind, self.variant)[0]
        if kind.startswith("file:"):  # one bare weights file: a LoRA, an engine's few-step weights
            return listing, [kind.removeprefix("file:")]
        if kind.startswith("components:"):  # an engine's model folder of its own components
            spec = _spec(kind.removeprefix("components:"))
            return listing, [f for role, cls in spec.components.items() for f in hub.component_files(
                listing, role, component_kind(cls), variant_for(role_dtype(spec, role, self.dtype)))[0]]
        return listing, [f for role in MODEL_ROLES for f in hub.component_files(listing, role, role, self.variant)[0]]

    def _part(self, listing: hub.RepoFiles, folder: str, role: str, reuse: Reuse, report: Report | None,
              dtype: torch.dtype | None = None) -> Part:
        """One component: `role` is an SD role, "controlnet", "taesd", or a class name (an engine's)."""
        repo = listing.repo
        dtype = dtype or self.dtype
        files, weights = hub.component_files(listing, folder, component_kind(role), variant_for(dtype))
        root = hub.fetch(listing, files, label=f"{repo} {folder or role}", report=report)
        path = root / folder if folder else root
        if weights is None:
            fingerprint = f"{repo}/{folder}"
        else:
            fingerprint = hub.weights_fingerprint(root, weights)
            shared = reuse(fingerprint)
            if shared is not None:
                return shared
        if report is not None:
            report(1.0, f"loading {repo} {folder or role}")
        try:
            if weights is not None and not weights.is_safetensors:
                for name in weights.shards or (weights.path,):
                    check_weights(root / name)
            return Part(fingerprint, _load(role, path, dtype, weights))
        except UnsafePickleError as error:
            raise ModelLoadError(f"{repo}: {error}") from error
        except (OSError, ValueError, KeyError, RuntimeError) as error:
            raise ModelLoadError(f"Could not load the {folder or role} of {repo}: {str(error)[:300]}") from error


def component_class(name: str):
    """The class a ModelSpec names: diffusers' first, then transformers'."""
    import diffusers
    import transformers

    cls = getattr(diffusers, name, None) or getattr(transformers, name, None)
    if cls is None:
        raise ModelLoadError(f"Neither diffusers nor transformers has a class {name!r}.")
    return cls


def is_scheduler(name: str) -> bool:
    return name == "scheduler" or name.endswith("Scheduler")


def component_kind(name: str) -> str:
    """How a role or class loads: "tokenizer" (its tokenizer files), "scheduler" (its config) or
    itself (a config.json and weights)."""
    if name == "tokenizer" or name.endswith(("Tokenizer", "TokenizerFast")):
        return "tokenizer"
    return "scheduler" if is_scheduler(name) else name


def _spec(key: str):
    """The registered ModelSpec called `key`."""
    from .engines import model_specs

    for _, spec in model_specs():
        if spec.key == key:
            return spec
    raise ModelLoadError(f"No engine declares a model {key!r}.")


def _load(role: str, path: Path, dtype: torch.dtype, weights: hub.WeightsFile | None):
    """One part: a shared SD 1.5 part's role ("tokenizer", "text_encoder", ...), or a class an engine's ModelSpec names."""
    cls = component_class(ROLE_CLASSES.get(role, role))
    kind = component_kind(cls.__name__)
    if kind == "tokenizer":
        return cls.from_pretrained(path)
    if kind == "scheduler":
        return dict(cls.load_config(path))
    if cls.__module__.startswith("transformers"):
        return cls.from_pretrained(path, dtype=dtype, variant=weights.variant, use_safetensors=weights.is_safetensors)
    return cls.from_pretrained(path, torch_dtype=dtype, variant=weights.variant, use_safetensors=weights.is_safetensors)


def source_for(preset: str, dtype: torch.dtype):
    return TinySource(dtype) if preset == "tiny" else HubSource(dtype)
