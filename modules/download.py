"""Prefetching the Hub models before first use: `python app.py --download [default|all]`.

The same file choice as loading (hub + parts.HubSource), so a prefetched cache is exactly what
the app reads later, offline too. On a Space, README's `preload_from_hub` does the same at build
time; `preload_from_hub()` writes those lines.
"""

from __future__ import annotations

import os
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


def files_of(source: HubSource, repo: str, kind: str) -> tuple[hub.RepoFiles, list[str]]:
    """The files loading `repo` as `kind` reads, less a "components" spec's `shared_roles` (another
    spec's: the same weights are fetched once, from that spec's repo, which the list names too)."""
    listing, files = source.files(repo, kind)
    if kind.startswith("components:"):
        shared = _shared_roles(kind.removeprefix("components:"))
        files = [f for f in files if f.split("/")[0] not in shared]
    return listing, files


def _shared_roles(key: str) -> set[str]:
    from .engines import model_specs

    return next((set(spec.shared_roles) for _, spec in model_specs() if spec.key == key), set())


def plan(settings: Settings, which: str = "default", dtype: torch.dtype | None = None) -> list[Planned]:
    """What a first run of every tab downloads, per model, with sizes from the repos' listings."""
    source = HubSource(dtype or resolve_dtype(settings.dtype, resolve_device(settings.device)))
    planned = []
    for kind, repo in models_to_download(settings, which):
        listing, files = files_of(source, repo, kind)
        planned.append(Planned(kind, repo, files, sum(listing.sizes.get(f) or 0 for f in files)))
    return planned


def preload_from_hub(planned: list[Planned]) -> list[str]:
    """README front matter lines (`repo file1,file2`) that make a Space fetch these at build time."""
    files: dict[str, list[str]] = {}
    for item in planned:
        files.setdefault(item.repo, []).extend(f for f in item.files if f not in files.get(item.repo, []))
    return [f"{repo} {','.join(names)}" for repo, names in files.items()]


def download(settings: Settings, which: str = "default", say: Callable[[str], None] = print) -> int:
    """Fetch every file those models load into the Hub cache; returns the number of failures.

    Where the Hub can't be reached (HF_HUB_OFFLINE, no network, a proxy that refuses), no model
    can be fetched: one sentence says so and what to check, instead of one failure per model.
    """
    models = models_to_download(settings, which)
    source = HubSource(resolve_dtype(settings.dtype, resolve_device(settings.device)))
    failures = 0
    for done, (kind, repo) in enumerate(models):
        listing = None
        try:
            listing, files = files_of(source, repo, kind)
            size = sum(listing.sizes.get(f) or 0 for f in files)
            say(f"{repo} ({kind}): {len(files)} files, {hub.format_bytes(size)}")
            hub.fetch(listing, files, label=repo, report=_console_progress())
        except hub.ModelLoadError as error:
            if _hub_unreachable(repo, error, listing):
                say(unreachable_sentence(error))
                return failures + len(models) - done
            failures += 1
            say(f"  failed: {error}")
    say("done" if not failures else f"{failures} model(s) failed; run the command again to retry them")
    return failures


PROXY_VARS = (
    "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"
)


def _hub_unreachable(repo: str, error: hub.ModelLoadError, listing: hub.RepoFiles | None) -> bool:
    """Whether `error` means the Hub itself is out of reach, not that this one repo (or folder) is wrong.

    A listing that fails for a missing or gated repo keeps huggingface_hub's error as its cause;
    any other cause is the fallback to the cache failing because the Hub didn't answer. A listing
    read from the cache means the Hub didn't answer either, so its fetch failing is the same.
    """
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    if os.path.isdir(repo):
        return False
    if hub.offline():
        return True
    if listing is not None:
        return listing.cached_only
    return error.__cause__ is not None and not isinstance(error.__cause__, (GatedRepoError, RepositoryNotFoundError))


def unreachable_sentence(error: BaseException | None = None) -> str:
    """One sentence for every model at once: which endpoint, why, through which proxy, what to check."""
    from huggingface_hub import constants

    endpoint = constants.ENDPOINT  # HF_ENDPOINT, else https://huggingface.co
    proxies = [f"{name}={_without_password(os.environ[name])}" for name in PROXY_VARS if os.environ.get(name)]
    proxy = f"proxy: {', '.join(proxies)}" if proxies else "no proxy set"
    if hub.offline():
        return (f"Could not reach the Hugging Face Hub at {endpoint}: HF_HUB_OFFLINE is set ({proxy}); unset it to "
                "download, or start with `python app.py --preset tiny`, which needs no downloads.")
    reason = f"{_root_cause(error)}; " if error is not None else ""
    return (f"Could not reach the Hugging Face Hub at {endpoint} ({reason}{proxy}): check the network connection, "
            "HF_ENDPOINT and the proxy variables (HTTPS_PROXY, NO_PROXY), then try again.")


def _root_cause(error: BaseException) -> str:
    """The innermost error of the chain (`Connection refused`, a certificate, a name lookup), short."""
    seen = set()
    while id(error) not in seen and (error.__cause__ or error.__context__) is not None:
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}"[:200] if text else type(error).__name__


def _without_password(url: str) -> str:
    """A proxy URL as it may be printed: `user:secret@` becomes `***@`."""
    scheme, sep, rest = url.rpartition("://")
    host, slash, path = rest.partition("/")
    if "@" not in host:
        return url
    return f"{scheme}{sep}***@{host.rpartition('@')[2]}{slash}{path}"


def _console_progress() -> hub.Report:
    def report(fraction: float, text: str) -> None:
        print(f"  {text}", end="\r", file=sys.stderr, flush=True)

    return report
