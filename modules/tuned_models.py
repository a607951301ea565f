"""The tuned models a user can run: a folder each under the tuned-models folder, or a Hub repo.

A folder holds the files the training engine declares (`Engine.model_files`: its weights first,
a model card, the source clip, the sample) and `tuned.json`, what the list shows. The folder is
separate from the outputs (their sweep never looks here) and a model is listed only once its
weights are written, so a training run under way, or one stopped before its first checkpoint, is
not offered.

Names are the Hub's repo-name alphabet, so a model's name is also its default repo name. A Hub
repo id ("owner/name") is fetched into the Hugging Face cache by the training engine (`download`).
No torch here: the page lists the models before any job runs.

On a public server (modules/visitors.py) each visitor sees a view (`view`): their own folder under
`visitors/` (an account's, or a browser session's, swept after a time: `sweep_sessions`), with a cap on
the models kept, plus the owner's published folder (T2VZ_SHARED_TUNED), read-only. A name that is not
in the view gets the same sentence whether or not another visitor has a model called so.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import UserError
from .tune_requests import HUB_REPO_ID, MAX_TUNED_NAME

log = logging.getLogger(__name__)

INFO_NAME = "tuned.json"  # what the list shows: base, prompts, steps, frames, size, fps, created
CARD_NAME = "README.md"  # a Hub model card: its YAML header, where a model has no tuned.json
VISITORS = "visitors"  # public mode: one folder per visitor under the tuned-models folder
SWEEP_EVERY_S = 60.0  # public mode: how often expired session models are looked for
_claims = threading.Lock()  # counting a visitor's models and claiming a folder, as one step


@dataclass(frozen=True)
class TunedModel:
    """A tuned model ready to run: where its files are, and what `/list_tuned` says of it."""

    name: str  # its name here, or its Hub repo id
    folder: Path
    info: dict  # base_model, training_prompt, steps, frames, width, height, fps, created
    shared: bool = False  # public mode: one the owner offers every visitor (T2VZ_SHARED_TUNED), read-only

    def summary(self) -> dict:
        return {"name": self.name, **self.info, **({"shared": True} if self.shared else {})}


class TunedModels:
    """The tuned-models folder: new folders for training, the list, and finding a model by name or repo id."""

    def __init__(self, root: str | Path, files: tuple[str, ...] = (), download=None, *,
                 shared: str | Path | None = None, keep: int = 0):
        self.root = Path(root)
        # (repo_id, files, token=, on_progress=, max_bytes=) -> the folder of a Hub repo's model
        self.download = download
        self.model_files = tuple(files)
        self.files = (*files, INFO_NAME)  # the model's own files (the first marks a saved model), and ours
        self.marker = files[0] if files else INFO_NAME
        self.shared = Path(shared) if shared else None  # read-only models every visitor sees (public mode)
        self.keep = keep  # the most models this folder may hold (0: no cap)
        self._swept = 0.0

    def view(self, folder: str, *, shared: str | Path | None = None, keep: int = 0) -> "TunedModels":
        """One public visitor's models: `visitors/<folder>` (their own, at most `keep`) and `shared`'s."""
        return TunedModels(self.root / VISITORS / folder, self.model_files, self.download, shared=shared, keep=keep)

    def new_folder(self, wanted: str) -> tuple[str, Path]:
        """A fresh folder for a model named `wanted`, or `wanted-2`, `wanted-3`, ... where that is taken
        (claimed with mkdir, so two jobs never share one); a sentence where the folder holds `keep` already."""
        self.root.mkdir(parents=True, exist_ok=True)
        with _claims:
            if self.keep and len(self._own_folders()) >= self.keep:
                raise UserError(
                    f"You keep {self.keep} tuned models on this server, the most one visitor may: delete one (Delete "
                    "in part 2, or /delete_tuned; share it on the Hub first to keep it), then tune again.")
            for number in range(1, 10_000):
                suffix = "" if number == 1 else f"-{number}"
                # A cut name may end in '-', '_' or '.': trimmed, else the suffix makes a '--' (a name no request
                # takes, so the model could not be run by name)
                name = (wanted[: MAX_TUNED_NAME - len(suffix)].rstrip("-_.") if suffix else wanted) + suffix
                if self.shared is not None and (self.shared / name).exists():
                    continue  # a name the owner offers stays the owner's model's
                try:
                    (self.root / name).mkdir()
                except FileExistsError:
                    continue
                return name, self.root / name
        raise UserError(f"There are too many models named {wanted}; pick another name.")

    def _own_folders(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [folder for folder in self.root.iterdir() if folder.is_dir() and folder.name != VISITORS]

    def delete(self, name: str) -> None:
        """Remove one of this folder's own models (never a shared one); the missing-model sentence otherwise."""
        folder = self.root / name
        if "/" in name or name in ("", ".", "..", VISITORS) or not (folder / self.marker).is_file():
            raise self.missing(name)
        shutil.rmtree(folder)

    def sweep_sessions(self, ttl_s: float, now: float | None = None) -> None:
        """Public mode: remove anonymous visitors' models (and their session folders) untouched for `ttl_s`;
        looked for at most every SWEEP_EVERY_S."""
        now = time.time() if now is None else now
        if ttl_s <= 0 or now - self._swept < SWEEP_EVERY_S:
            return
        self._swept = now
        sessions = self.root / VISITORS
        for session in (sessions.glob("session-*") if sessions.is_dir() else ()):
            for folder in [f for f in session.iterdir() if f.is_dir()]:
                if now - _last_change(folder) > ttl_s:
                    shutil.rmtree(folder, ignore_errors=True)
                    log.info("removed an anonymous visitor's tuned model after %g s", ttl_s)
            try:
                if not any(session.iterdir()) and now - session.stat().st_mtime > ttl_s:
                    session.rmdir()
            except OSError:
                pass

    def write_info(self, folder: Path, info: dict) -> None:
        (folder / INFO_NAME).write_text(json.dumps(info, indent=2), encoding="utf-8")

    def discard(self, folder: Path) -> None:
        """Remove a folder whose training saved no model (failed or stopped before its first checkpoint)."""
        if folder.parent == self.root and not (folder / self.marker).is_file():
            shutil.rmtree(folder, ignore_errors=True)

    def list(self) -> list[TunedModel]:
        """The models tuned here, newest first (then, in public mode, those the owner offers)."""
        own = self._models(self.root)
        taken = {model.name for model in own}
        shared = [replace(model, shared=True) for model in self._models(self.shared) if model.name not in taken]
        return own + shared

    def _models(self, root: Path | None) -> list[TunedModel]:
        if root is None or not root.is_dir():
            return []
        found = [self._local(folder) for folder in root.iterdir() if (folder / self.marker).is_file()]
        return sorted(found, key=lambda model: (-_number(model.info.get("created", 0)), model.name))

    def names(self) -> list[str]:
        return [model.name for model in self.list()]

    def find(self, name: str, *, token: str | bool | None = None, on_progress=None, max_bytes: int = 0) -> TunedModel:
        """The model tuned here called `name`, or the Hub repo `name` ("owner/name") fetched into the cache
        with `token` (None: the server's own; False: none, not even the server's, as for a public visitor),
        its bytes told to `on_progress(fraction, text)`, refused where it weighs more than `max_bytes` (0: any)."""
        if HUB_REPO_ID.fullmatch(name):
            if self.download is None:
                raise UserError("This server runs no model from the Hub.")
            folder = Path(self.download(name, self.files, token=token, on_progress=on_progress, max_bytes=max_bytes))
            if not (folder / self.marker).is_file():
                raise UserError(f"The Hub repo {name} holds no tuned model ({self.marker} is missing).")
            return TunedModel(name=name, folder=folder, info=read_info(folder))
        for root in (self.root, self.shared):
            if root is not None and name not in ("", ".", "..", VISITORS) and (root / name / self.marker).is_file():
                return replace(self._local(root / name), shared=root == self.shared)
        raise self.missing(name)

    def missing(self, name: str) -> UserError:
        """The one sentence for a name this view does not hold: missing, or another visitor's."""
        known = self.names()
        offer = f" Models tuned here: {', '.join(known[:10])}." if known else " No model has been tuned here yet."
        return UserError(f"There is no tuned model called {name}.{offer} A Hub model is named owner/name.")

    @staticmethod
    def _local(folder: Path) -> TunedModel:
        return TunedModel(name=folder.name, folder=folder, info=read_info(folder))


def read_info(folder: Path) -> dict:
    """What a tuned model's folder says of it: its tuned.json, else its model card's YAML header."""
    card = _card_header(folder / CARD_NAME)
    path = folder / INFO_NAME
    if path.is_file():
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(info, dict):
                # tuned.json is written as the training starts (the steps asked for); the card at every save,
                # a Stop's included: its steps are the steps trained.
                trained = str(card.get("steps", "")).strip()
                return {**info, "steps": int(trained)} if trained.isdigit() else info
        except (OSError, ValueError):
            pass
    return card


def _card_header(path: Path) -> dict:
    """The few `key: value` lines of a model card's YAML header that the list shows (no YAML parser needed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    header = re.match(r"---\n(.*?)\n---", text, re.S)
    info = {}
    for line in (header.group(1).splitlines() if header else []):
        key, _, value = line.partition(":")
        if key in ("base_model", "training_prompt", "training_steps") and value.strip():
            info[key.replace("training_steps", "steps")] = value.strip().strip("'\"")
    return info


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _last_change(folder: Path) -> float:
    """When anything in a model's folder last changed (a training run writes at every checkpoint)."""
    try:
        return max([folder.stat().st_mtime, *(path.stat().st_mtime for path in folder.iterdir())])
    except OSError:
        return 0.0
