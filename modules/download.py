"""Prefetching the Hub models before first use: `python app.py --download [default|all]`.

The same file choice as loading (hub + parts.HubSource), so a prefetched cache is exactly what
the app reads later, offline too. On a Space, README's `preload_from_hub` does the same at build
time; `preload_from_hub()` writes those lines.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import hub
from .parts import HubSource
from .residency import resolve_device, resolve_dtype
from .settings import Settings

CHOICES = ("default", "all")


@dataclass(frozen=True)
class Planned:
    kind: str  # model, controlnet, pose, depth, motion_adapter, taesd, file:<name>
    repo: str
    files: list[str]
    bytes: int


def models_to_download(settings: Settings, which: str = "default") -> list[tuple[str, str]]:
    """(kind, repo) pairs: the default base, the ControlNets, the editing model, the annotators and
    fast mode's LCM-LoRA and TAESD; `all` adds every offered base model, the Edge tab's DreamBooth
    styles and every registered engine's own models (`Engine.download_models`)."""
    from .engine.recipes import LCM_LORA_FILE, LCM_LORA_REPO, TAESD_REPO
    from .engines import all_engines

    bases = [settings.default_base_model]
    if which == "all":
        bases = list(dict.fromkeys([*settings.base_models, *settings.edge_style_models]))
    models = [
        *(("model", repo) for repo in bases),
        *(("controlnet", repo) for repo in settings.controlnets.values()),
        ("model", settings.edit_model),
        ("pose", settings.annotators),
        ("depth", settings.annotators),
        (f"file:{LCM_LORA_FILE}", LCM_LORA_REPO),
        ("taesd", TAESD_REPO),
    ]
    if which == "all":
        models += [item for engine in all_engines() for item in engine.download_models(settings)]
    return models


def plan(settings: Settings, which: str = "default", dtype: torch.dtype | None = None) -> list[Planned]:
    """What a first run of every tab downloads, per model, with sizes from the repos' listings."""
    source = HubSource(dtype or resolve_dtype(settings.dtype, resolve_device(settings.device)))
    planned = []
    for kind, repo in models_to_download(settings, which):
        listing, files = source.files(repo, kind)
        planned.append(Planned(kind, repo, files, sum(listing.sizes.get(f) or 0 for f in files)))
    return planned


def preload_from_hub(planned: list[Planned]) -> list[str]:
    """README front matter lines (`repo file1,file2`) that make a Space fetch these at build time."""
    files: dict[str, list[str]] = {}
    for item in planned:
        files.setdefault(item.repo, []).extend(f for f in item.files if f not in files.get(item.repo, []))
    return [f"{repo} {','.join(names)}" for repo, names in files.items()]


def download(settings: Settings, which: str = "default", say: Callable[[str], None] = print) -> int:
    """Fetch every file those models load into the Hub cache; returns the number of failures."""
    failures = 0
    for kind, repo in models_to_download(settings, which):
        try:
            listing, files = HubSource(resolve_dtype(settings.dtype, resolve_device(settings.device))).files(repo, kind)
            size = sum(listing.sizes.get(f) or 0 for f in files)
            say(f"{repo} ({kind}): {len(files)} files, {hub.format_bytes(size)}")
            hub.fetch(listing, files, label=repo, report=_console_progress())
        except hub.ModelLoadError as error:
            failures += 1
            say(f"  failed: {error}")
    say("done" if not failures else f"{failures} model(s) failed; run the command again to retry them")
    return failures


def _console_progress() -> hub.Report:
    def report(fraction: float, text: str) -> None:
        print(f"  {text}", end="\r", file=sys.stderr, flush=True)

    return report
