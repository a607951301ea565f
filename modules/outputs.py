"""Per-request output folders under one root, with params.json, and removal after a TTL.

Every job writes into a folder of its own (time + random id), so concurrent users never
overwrite each other's files; the root is the only path the app lets Gradio serve.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
import uuid
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "diffusers", "transformers", "gradio", "controlnet-aux", "imageio-ffmpeg")
PARAMS_FILE = "params.json"


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


class Outputs:
    def __init__(self, root: str | Path, ttl_s: int):
        self.root = Path(root).resolve()
        self.ttl_s = ttl_s
        self.root.mkdir(parents=True, exist_ok=True)

    def new_folder(self, mode: str) -> Path:
        """A fresh folder for one request; old folders are swept first."""
        self.sweep()
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        folder = self.root / f"{stamp}-{mode}-{uuid.uuid4().hex[:10]}"
        folder.mkdir(parents=True)
        return folder

    def sweep(self, now: float | None = None) -> list[Path]:
        """Remove request folders older than the TTL; returns what was removed."""
        now = time.time() if now is None else now
        removed = []
        for folder in self.root.iterdir():
            if folder.is_dir() and now - folder.stat().st_mtime > self.ttl_s:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        return removed


def write_params(folder: Path, params: dict) -> Path:
    path = folder / PARAMS_FILE
    record = {"created": datetime.now(timezone.utc).isoformat(), "versions": package_versions(), **params}
    path.write_text(json.dumps(record, indent=2, default=str))
    return path


def read_params(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())
