"""Fetching model files from the Hugging Face Hub: only the files that are loaded, with progress.

- `list_files` reads a repo's file listing (one API call, with sizes); offline, or when the Hub
  can't be reached, the listing of what is cached stands in for it.
- `choose_weights` picks the one weights file of a folder that is loaded (or the index of a
  sharded one, with its shards): safetensors over pickle, the dtype's variant (`.fp16.`) when
  the repo has it, never non-EMA or other variants, never a root single-file checkpoint.
- `fetch` downloads exactly the chosen files into the Hub cache, reporting bytes and speed.

A local folder in the diffusers layout may stand wherever a repo id does.
Network failures are huggingface_hub's own (it honours HTTPS_PROXY / HF_ENDPOINT / timeouts);
this module only turns them into messages that say what to do.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tqdm.std import tqdm

from .errors import UserError

WEIGHT_STEMS = ("diffusion_pytorch_model", "model", "pytorch_model")
WEIGHT_FORMATS = (".safetensors", ".bin")  # in order of preference: safetensors can't run code
TOKENIZER_SUFFIXES = (".json", ".txt", ".model")  # .model: a sentencepiece model (T5's spiece.model)
# A shard of sharded weights: `diffusion_pytorch_model-00001-of-00002.safetensors`, or with a
# variant `model.fp16-00001-of-00005.safetensors`; its index `<stem><format>.index[.<variant>].json`.
_SHARD = re.compile(r"^(?P<stem>[A-Za-z_]+)(?:\.(?P<variant>[\w]+))?-\d+-of-\d+(?P<fmt>\.safetensors|\.bin)$")
_INDEX = re.compile(r"^(?P<stem>[A-Za-z_]+)(?P<fmt>\.safetensors|\.bin)\.index(?:\.(?P<variant>[\w]+))?\.json$")

Report = Callable[[float, str], None]


class ModelLoadError(UserError, RuntimeError):
    """A model could not be fetched or loaded; the message says what to do."""


@dataclass(frozen=True)
class RepoFiles:
    """A repo's files and their sizes in bytes (None where the listing gave none)."""

    repo: str
    sizes: dict[str, int | None]
    cached_only: bool = False  # the listing is the local cache's, not the Hub's

    def in_folder(self, folder: str) -> list[str]:
        """Files directly inside `folder` ("" = the repo's root)."""
        return sorted(p for p in self.sizes if str(PurePosixPath(p).parent).strip(".") == folder.strip("/"))


@dataclass(frozen=True)
class WeightsFile:
    path: str  # in the repo, e.g. "unet/diffusion_pytorch_model.fp16.safetensors", or a sharded model's index
    variant: str | None  # "fp16" or None
    shards: tuple[str, ...] = ()  # a sharded model's files (`path` is then its `*.index.json`)

    @property
    def is_safetensors(self) -> bool:
        return ".safetensors" in PurePosixPath(self.path).name

    @property
    def files(self) -> tuple[str, ...]:
        """Every file these weights are: the one file, or the index and its shards."""
        return (self.path, *self.shards)


def _parse_weights_name(name: str) -> tuple[str, str | None, str] | None:
    """(stem, variant, format) of a weights file name, or None if it isn't one."""
    for fmt in WEIGHT_FORMATS:
        if name.endswith(fmt):
            parts = name[: -len(fmt)].split(".")
            if parts[0] in WEIGHT_STEMS and len(parts) <= 2:
                return parts[0], (parts[1] if len(parts) == 2 else None), fmt
    return None


def _shards(files: list[str], stem: str, variant: str | None, fmt: str) -> tuple[str, ...]:
    """The shards among `files` (one folder's) of the sharded weights `stem`, `variant`, `fmt`."""
    found = []
    for path in files:
        match = _SHARD.match(PurePosixPath(path).name)
        if match and (match["stem"], match["variant"], match["fmt"]) == (stem, variant, fmt):
            found.append(path)
    return tuple(sorted(found))


def choose_weights(files: Iterable[str], folder: str, variant: str | None) -> WeightsFile | None:
    """The weights file of `folder` to load, or None if it has none.

    Order: safetensors before pickle; within a format, the wanted variant, then full precision.
    A variant that is not the wanted one (fp16 when fp32 is wanted, non_ema, ema_only) is used
    only where nothing else exists in that format, and non-EMA training weights never are.
    Sharded weights (an `*.index.json` and its shards) count as one file of their format and
    variant; a single file goes before shards of the same format and variant.
    """
    ranked = []
    here = [p for p in files if str(PurePosixPath(p).parent).strip(".") == folder.strip("/")]
    for path in here:
        name = PurePosixPath(path).name
        index = _INDEX.match(name)
        if index and index["stem"] in WEIGHT_STEMS:
            parsed, shards = (index["stem"], index["variant"], index["fmt"]), None
        else:
            parsed, shards = _parse_weights_name(name), ()
        if parsed is None:
            continue
        stem, file_variant, fmt = parsed
        if file_variant is not None and "non_ema" in file_variant:
            continue
        if shards is None:
            shards = _shards(here, stem, file_variant, fmt)
        if file_variant == variant:
            variant_rank = 0
        elif file_variant is None:
            variant_rank = 1
        else:
            variant_rank = 2
        ranked.append((WEIGHT_FORMATS.index(fmt), variant_rank, len(shards) > 0, path, file_variant, shards))
    if not ranked:
        return None
    _, _, _, path, file_variant, shards = min(ranked)
    return WeightsFile(path, file_variant, shards)


def component_files(listing: RepoFiles, folder: str, role: str, variant: str | None) -> tuple[list[str], WeightsFile | None]:
    """The files one component needs: its config (or tokenizer files) and its weights (one file,
    or a sharded model's index and shards).

    A tokenizer's sentencepiece model (`spiece.model`) is only fetched where the folder has no
    `tokenizer.json` (the fast tokenizer is built from that one file)."""
    prefix = f"{folder}/" if folder else ""
    if role == "tokenizer":
        files = [p for p in listing.in_folder(folder) if p.endswith(TOKENIZER_SUFFIXES)]
        if f"{prefix}tokenizer.json" in files:
            files = [p for p in files if not p.endswith(".model")]
        if not files:
            raise ModelLoadError(f"{listing.repo} has no tokenizer files in {folder}/.")
        return files, None
    if role == "scheduler":
        return [f"{prefix}scheduler_config.json"], None
    weights = choose_weights(listing.sizes, folder, variant)
    if weights is None:
        raise ModelLoadError(
            f"{listing.repo} has no weights for {folder or 'its model'} "
            f"({' or '.join(WEIGHT_FORMATS)} files under {prefix or 'the root'})"
            + (" in the local cache; connect to the internet to download them." if listing.cached_only else ".")
        )
    return [f"{prefix}config.json", *weights.files], weights


# --------------------------------------------------------------------------- listing

_LISTINGS: dict[str, RepoFiles] = {}
_LISTINGS_LOCK = threading.Lock()


def offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def advice(repo: str) -> str:
    return (
        f"Connect to the internet, or download it beforehand with `python app.py --download` "
        f"(or `hf download {repo}`), or run offline with random weights: `python app.py --preset tiny`."
    )


def list_files(repo: str) -> RepoFiles:
    """The repo's file listing: local folder, the Hub (once per process), or the cache offline."""
    if os.path.isdir(repo):
        return RepoFiles(repo, _folder_sizes(Path(repo)))
    with _LISTINGS_LOCK:
        if repo in _LISTINGS:
            return _LISTINGS[repo]
    if offline():
        return _cached_listing(repo, reason="HF_HUB_OFFLINE is set")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        info = HfApi().model_info(repo, files_metadata=True)
    except GatedRepoError as error:
        raise ModelLoadError(
            f"{repo} is gated: accept its licence on the Hub and log in (`hf auth login` or HF_TOKEN)."
        ) from error
    except RepositoryNotFoundError as error:
        raise ModelLoadError(f"{repo} does not exist on the Hub (or is private); check the model id.") from error
    except Exception as error:  # no network, proxy refused, timeout: huggingface_hub's own errors
        return _cached_listing(repo, reason=f"the Hub can't be reached ({error_reason(error)})")
    listing = RepoFiles(repo, {s.rfilename: s.size for s in info.siblings or []})
    with _LISTINGS_LOCK:
        _LISTINGS[repo] = listing
    return listing


def _cached_listing(repo: str, reason: str) -> RepoFiles:
    from huggingface_hub import snapshot_download

    try:
        root = Path(snapshot_download(repo, local_files_only=True))
    except Exception as error:
        raise ModelLoadError(f"{repo} is not downloaded and {reason}. {advice(repo)}") from error
    return RepoFiles(repo, _folder_sizes(root), cached_only=True)


def _folder_sizes(root: Path) -> dict[str, int]:
    """Files under `root` and their sizes, following links (the Hub cache and shared folders use them)."""
    sizes = {}
    for folder, _, names in os.walk(root, followlinks=True):
        for name in names:
            path = Path(folder) / name
            sizes[path.relative_to(root).as_posix()] = path.stat().st_size
    return sizes


def error_reason(error: BaseException, limit: int = 300) -> str:
    """What went wrong, in the error's own words for a person: the Hub's answer where it gave one (its
    `server_message`, often on the lines after "Bad request:"), every line of the text joined, no URL, no
    exception class (that is for the log); the class name only where the error has no words at all."""
    text = str(getattr(error, "server_message", "") or "").strip() or str(error).strip()
    lines = [re.sub(r"\s*for url: \S+", "", line).strip(" .:") for line in text.splitlines()]
    said = "; ".join(line for line in lines if line and not line.lower().startswith("request id"))
    return (said or type(error).__name__.replace("Error", " error").strip())[:limit]


def forget_listings() -> None:
    """Drop listings read this process (tests; a long-running server reads each repo once)."""
    with _LISTINGS_LOCK:
        _LISTINGS.clear()


# --------------------------------------------------------------------------- downloading


@dataclass
class DownloadProgress:
    """Bytes of one fetch, summed over its files, reported as text for a progress bar."""

    label: str
    total: int
    report: Report | None
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    _last: float = 0.0

    def add(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self.report is None or (now - self._last < 0.25 and self.done < self.total):
            return
        self._last = now
        speed = self.done / max(now - self.started, 1e-6)
        total = f" / {format_bytes(self.total)}" if self.total else ""
        fraction = min(self.done / self.total, 1.0) if self.total else 0.0
        self.report(fraction, f"downloading {self.label}: {format_bytes(self.done)}{total} · {format_bytes(speed)}/s")


def _bar_class(progress: DownloadProgress) -> type[tqdm]:
    """A silent tqdm for huggingface_hub's downloads that feeds `progress` instead of a terminal."""

    class Bar(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            super().__init__(*args, **{**kwargs, "disable": True})

        def update(self, n=1):
            if n:
                progress.add(int(n))

    return Bar


def format_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(count) < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"


def is_cached(repo: str, path: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo, path), str)


def fetch(listing: RepoFiles, paths: list[str], label: str, report: Report | None = None) -> Path:
    """Download `paths` of the repo (those not cached yet) and return the local root they sit in."""
    repo = listing.repo
    if os.path.isdir(repo):
        missing = [p for p in paths if not (Path(repo) / p).is_file()]
        if missing:
            raise ModelLoadError(f"The local model folder {repo} lacks {', '.join(missing)}.")
        return Path(repo)
    from huggingface_hub import hf_hub_download

    to_download = [p for p in paths if not is_cached(repo, p)]
    total = sum(listing.sizes.get(p) or 0 for p in to_download)
    progress = DownloadProgress(label, total, report)
    bar = _bar_class(progress)
    local = None
    for path in paths:
        try:
            local = hf_hub_download(repo, path, tqdm_class=bar if path in to_download else None)
        except Exception as error:
            if offline() or listing.cached_only:
                raise ModelLoadError(f"{repo}: {path} is not downloaded and the Hub can't be reached. {advice(repo)}") from error
            raise ModelLoadError(
                f"Downloading {path} of {repo} failed ({error_reason(error)}). Check the connection and try again; "
                "finished files are kept, so a retry continues where this stopped."
            ) from error
    if local is None:
        raise ModelLoadError(f"Nothing to download from {repo}.")
    return Path(local).parents[len(PurePosixPath(paths[-1]).parts) - 1]


def weights_fingerprint(root: Path, weights: WeightsFile) -> str:
    """Identity of weights: the one file's fingerprint, or every shard's (an index names shards, not contents)."""
    if not weights.shards:
        return fingerprint(root, weights.path)
    import hashlib

    joined = "+".join(fingerprint(root, shard) for shard in weights.shards)
    return "shards:" + hashlib.sha256(joined.encode()).hexdigest()


def fingerprint(root: Path, path: str) -> str:
    """Identity of a weights file: the Hub blob's sha256 (its cache name), no hashing of GBs."""
    target = Path(os.path.realpath(root / path))
    if target.parent.name == "blobs":
        return target.name
    stat = target.stat()
    return f"{target}:{stat.st_size}:{stat.st_mtime_ns}"
