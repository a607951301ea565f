"""The tuned models a user can run: a folder each under the tuned-models folder, or a Hub repo.

A folder holds the files the training engine declares (`Engine.model_files`: its weights first,
a model card, the source clip, the sample) and `tuned.json`, what the list shows. The folder is
separate from the outputs (their sweep never looks here) and a model is listed only once its
weights are written, so a training run under way, or one stopped before its first checkpoint, is
not offered.

Names are the Hub's repo-name alphabet, so a model's name is also its default repo name. A Hub
repo id ("owner/name") is fetched into the Hugging Face cache by the training engine (`download`).
No torch here: the page lists the models before any job runs.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .request_types import HUB_REPO_ID, MAX_TUNED_NAME

INFO_NAME = "tuned.json"  # what the list shows: base, prompts, steps, frames, size, fps, created
CARD_NAME = "README.md"  # a Hub model card: its YAML header, where a model has no tuned.json


@dataclass(frozen=True)
class TunedModel:
    """A tuned model ready to run: where its files are, and what `/list_tuned` says of it."""

    name: str  # its name here, or its Hub repo id
    folder: Path
    info: dict  # base_model, training_prompt, steps, frames, width, height, fps, created

    def summary(self) -> dict:
        return {"name": self.name, **self.info}


class TunedModels:
    """The tuned-models folder: new folders for training, the list, and finding a model by name or repo id."""

    def __init__(self, root: str | Path, files: tuple[str, ...] = (), download=None):
        self.root = Path(root)
        self.download = download  # (repo_id, files, token=) -> the folder of a Hub repo's model
        self.files = (*files, INFO_NAME)  # the model's own files (the first marks a saved model), and ours
        self.marker = files[0] if files else INFO_NAME

    def new_folder(self, wanted: str) -> tuple[str, Path]:
        """A fresh folder for a model named `wanted`, or `wanted-2`, `wanted-3`, ... where that is taken
        (claimed with mkdir, so two jobs never share one)."""
        self.root.mkdir(parents=True, exist_ok=True)
        for number in range(1, 10_000):
            suffix = "" if number == 1 else f"-{number}"
            # A cut name may end in '-', '_' or '.': trimmed, or the suffix would make a '--' no model may be run by
            name = (wanted[: MAX_TUNED_NAME - len(suffix)].rstrip("-_.") if suffix else wanted) + suffix
            try:
                (self.root / name).mkdir()
            except FileExistsError:
                continue
            return name, self.root / name
        raise UserError(f"There are too many models named {wanted}; pick another name.")

    def write_info(self, folder: Path, info: dict) -> None:
        (folder / INFO_NAME).write_text(json.dumps(info, indent=2), encoding="utf-8")

    def discard(self, folder: Path) -> None:
        """Remove a folder whose training saved no model (failed or stopped before its first checkpoint)."""
        if folder.parent == self.root and not (folder / self.marker).is_file():
            shutil.rmtree(folder, ignore_errors=True)

    def list(self) -> list[TunedModel]:
        """The models tuned here, newest first."""
        if not self.root.is_dir():
            return []
        found = [self._local(folder) for folder in self.root.iterdir() if (folder / self.marker).is_file()]
        return sorted(found, key=lambda model: (-float(model.info.get("created", 0)), model.name))

    def names(self) -> list[str]:
        return [model.name for model in self.list()]

    def find(self, name: str, *, token: str | None = None) -> TunedModel:
        """The model tuned here called `name`, or the Hub repo `name` ("owner/name") fetched into the cache."""
        if HUB_REPO_ID.fullmatch(name):
            if self.download is None:
                raise UserError("This server runs no model from the Hub.")
            folder = Path(self.download(name, self.files, token=token))
            if not (folder / self.marker).is_file():
                raise UserError(f"The Hub repo {name} holds no tuned model ({self.marker} is missing).")
            return TunedModel(name=name, folder=folder, info=read_info(folder))
        folder = self.root / name
        if not (folder / self.marker).is_file():
            known = self.names()
            offer = f" Models tuned here: {', '.join(known[:10])}." if known else " No model has been tuned here yet."
            raise UserError(f"There is no tuned model called {name}.{offer} A Hub model is named owner/name.")
        return self._local(folder)

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
