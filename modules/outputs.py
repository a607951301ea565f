"""Per-request output folders under one root, with params.json, and removal after a TTL.

Every job writes into a folder of its own (time + random id), so concurrent users never
overwrite each other's files; the root is the only path the app lets Gradio serve.

Nothing is lost: the sweep removes only folders this app created (each holds a marker file
written at creation, with the creation time), so a root shared with other files, or pointed at
by mistake at a folder of the user's, keeps everything else. Files appear atomically (written
under a temporary name, then renamed), so a half-written video is never served.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "diffusers", "transformers", "gradio", "controlnet-aux", "imageio-ffmpeg")
PARAMS_FILE = "params.json"
# Written into every folder the app creates; the sweep removes nothing without it.
MARKER_FILE = ".t2vz-output"
MARKER_APP = "text2video-zero-studio"
PARTIAL_TAG = ".partial"


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@contextmanager
def atomic_write_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary name beside `path` to write to, renamed onto `path` only if the block succeeds.

    The temporary file is hidden, in the same folder (so `os.replace` is atomic) and keeps the
    suffix (encoders pick the format from it). A reader sees the old file or the complete new
    one, never a partial one; a failed write leaves nothing behind.
    """
    path = Path(path)
    temp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}{PARTIAL_TAG}{path.suffix}")
    try:
        yield temp
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)  # already gone after a successful replace


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    path = Path(path)
    with atomic_write_path(path) as temp:
        temp.write_text(text, encoding="utf-8")
    return path


def mark_output_folder(folder: str | os.PathLike, created: float | None = None) -> Path:
    """Claim `folder` as the app's, created at `created` (epoch seconds, default now), for the sweep."""
    created = time.time() if created is None else float(created)
    return write_text_atomic(Path(folder) / MARKER_FILE, json.dumps({"app": MARKER_APP, "created": created}))


def folder_created(folder: str | os.PathLike) -> float | None:
    """When the app created `folder` (from its marker), or None if the app did not create it.

    The marker's recorded time, not the folder's mtime: adding a file (control.mp4 after the
    result, a rename by an atomic write) moves the mtime, and copying or restoring a folder can
    set it to anything, but a result's lifetime is counted from when it was made. A marker whose
    content cannot be read still marks the folder as ours; its own mtime stands in then.
    """
    marker = Path(folder) / MARKER_FILE
    try:
        if marker.is_symlink() or not marker.is_file():
            return None
        try:
            created = float(json.loads(marker.read_text(encoding="utf-8"))["created"])
            if math.isfinite(created):
                return created
        except (ValueError, KeyError, TypeError):
            pass
        return marker.stat().st_mtime
    except OSError:
        return None


class Outputs:
    def __init__(self, root: str | Path, ttl_s: int):
        self.root = Path(root).resolve()
        self.ttl_s = ttl_s  # <= 0: keep every folder
        self.root.mkdir(parents=True, exist_ok=True)

    def new_folder(self, mode: str) -> Path:
        """A fresh, marked folder for one request; old folders are swept first."""
        self.sweep()
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        folder = self.root / f"{stamp}-{mode}-{uuid.uuid4().hex[:10]}"
        folder.mkdir(parents=True)
        mark_output_folder(folder)
        return folder

    def sweep(self, now: float | None = None) -> list[Path]:
        """Remove the app's folders older than the TTL; returns what was removed.

        Skips anything without the app's marker (files, links, other folders), so it can never
        delete what it did not create.
        """
        if self.ttl_s <= 0:
            return []
        now = time.time() if now is None else now
        removed = []
        try:
            entries = list(self.root.iterdir())
        except OSError:
            return removed
        for folder in entries:
            try:
                if folder.is_symlink() or not folder.is_dir():
                    continue
            except OSError:
                continue
            created = folder_created(folder)
            if created is not None and now - created > self.ttl_s:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        return removed


def write_params(folder: Path, params: dict) -> Path:
    """params.json, serialised first and then written atomically (never a truncated record)."""
    record = {"created": datetime.now(timezone.utc).isoformat(), "versions": package_versions(), **params}
    text = json.dumps(record, indent=2, default=str)
    return write_text_atomic(Path(folder) / PARAMS_FILE, text)


def read_params(path: str | Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))
