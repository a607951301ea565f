"""outputs: the sweep removes only the app's own folders, by their creation time; writes are atomic."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from modules.outputs import (  # noqa: E402
    MARKER_FILE,
    PARAMS_FILE,
    Outputs,
    atomic_write_path,
    folder_created,
    mark_output_folder,
    read_params,
    write_params,
)

TTL = 60


def age(path: Path, seconds: float) -> None:
    """Make a path look `seconds` old to anything that reads its mtime."""
    old = time.time() - seconds
    os.utime(path, (old, old))


@pytest.fixture
def outputs(tmp_path) -> Outputs:
    return Outputs(tmp_path / "outputs", ttl_s=TTL)


def test_new_folders_are_marked_with_their_creation_time(outputs):
    before = time.time()
    folder = outputs.new_folder("text2video")
    assert folder.parent == outputs.root and (folder / MARKER_FILE).is_file()
    assert before <= folder_created(folder) <= time.time()
    assert folder_created(outputs.root) is None  # unmarked: not the app's


def test_the_sweep_never_touches_what_the_app_did_not_create(outputs):
    foreign_folder = outputs.root / "my-renders"
    foreign_folder.mkdir()
    (foreign_folder / "final.mp4").write_bytes(b"someone's work")
    foreign_file = outputs.root / "notes.txt"
    foreign_file.write_text("keep me")
    elsewhere = outputs.root.parent / "elsewhere"
    elsewhere.mkdir()
    mark_output_folder(elsewhere, created=0)  # marked, but outside the root: reached only by a link
    (outputs.root / "link").symlink_to(elsewhere, target_is_directory=True)
    for path in (foreign_folder, foreign_folder / "final.mp4", foreign_file):
        age(path, 10 * 365 * 24 * 3600)

    assert outputs.sweep(now=time.time() + 10 * TTL) == []
    assert (foreign_folder / "final.mp4").read_bytes() == b"someone's work"
    assert foreign_file.read_text() == "keep me"
    assert (outputs.root / "link").is_symlink() and (elsewhere / MARKER_FILE).exists()


def test_results_are_kept_for_the_ttl_from_creation_then_removed(outputs):
    folder = outputs.new_folder("edit")
    (folder / "video.mp4").write_bytes(b"result")
    created = folder_created(folder)
    assert outputs.sweep(now=created + TTL - 1) == []  # still downloadable until the TTL
    assert outputs.sweep(now=created + TTL + 1) == [folder]
    assert not folder.exists()


def test_the_age_comes_from_the_marker_not_from_mtimes(outputs):
    """mtimes move for reasons unrelated to a result's age, in both directions.

    A file added later (control.mp4, an atomic rename) makes the folder look new, and copying or
    restoring a folder can make it look old; a result's lifetime counts from its creation.
    """
    fresh = outputs.new_folder("pose2video")
    age(fresh, 10 * TTL)  # e.g. restored from a backup with old times
    stale = outputs.new_folder("pose2video")
    mark_output_folder(stale, created=time.time() - 2 * TTL)
    (stale / "control.mp4").write_bytes(b"written just now")  # bumps the folder's mtime

    assert outputs.sweep() == [stale]
    assert fresh.exists() and not stale.exists()


def test_a_damaged_marker_still_marks_the_folder(outputs):
    folder = outputs.new_folder("edit")
    (folder / MARKER_FILE).write_text("{not json")
    age(folder / MARKER_FILE, 2 * TTL)
    assert folder_created(folder) == pytest.approx(time.time() - 2 * TTL, abs=5)
    assert outputs.sweep() == [folder]


def test_new_folder_sweeps_old_ones_first(outputs):
    old = outputs.new_folder("text2video")
    mark_output_folder(old, created=time.time() - 2 * TTL)
    new = outputs.new_folder("text2video")
    assert not old.exists() and new.exists() and new != old


def test_a_ttl_of_zero_keeps_everything(tmp_path):
    outputs = Outputs(tmp_path / "keep", ttl_s=0)
    folder = outputs.new_folder("edit")
    mark_output_folder(folder, created=0)
    assert outputs.sweep() == [] and folder.exists()


# ------------------------------------------------------------------------------ atomic writes


def test_params_json_is_written_whole(outputs):
    folder = outputs.new_folder("edit")
    path = write_params(folder, {"mode": "edit", "seed": 7})
    assert path == folder / PARAMS_FILE and read_params(path)["seed"] == 7
    assert sorted(p.name for p in folder.iterdir()) == sorted([MARKER_FILE, PARAMS_FILE])  # no temp left


def test_a_failing_params_write_leaves_the_old_file_and_no_partial(outputs, monkeypatch):
    folder = outputs.new_folder("edit")
    write_params(folder, {"seed": 1})
    real_write_text = Path.write_text

    def disk_full(self, text, *args, **kwargs):
        real_write_text(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", disk_full)
    with pytest.raises(OSError):
        write_params(folder, {"seed": 2})
    monkeypatch.undo()
    assert read_params(folder / PARAMS_FILE)["seed"] == 1
    assert sorted(p.name for p in folder.iterdir()) == sorted([MARKER_FILE, PARAMS_FILE])


def test_atomic_write_path_publishes_only_on_success(tmp_path):
    target = tmp_path / "video.mp4"
    with pytest.raises(RuntimeError):
        with atomic_write_path(target) as temp:
            assert temp.parent == tmp_path and temp.suffix == ".mp4" and temp.name.startswith(".")
            temp.write_bytes(b"half")
            raise RuntimeError("encoder crashed")
    assert list(tmp_path.iterdir()) == []

    with atomic_write_path(target) as temp:
        temp.write_bytes(b"whole")
        assert not target.exists()  # nothing at the final name until the write is complete
    assert target.read_bytes() == b"whole" and list(tmp_path.iterdir()) == [target]


def test_marker_records_the_app_and_time(tmp_path):
    mark_output_folder(tmp_path, created=123.5)
    assert json.loads((tmp_path / MARKER_FILE).read_text())["created"] == 123.5
    assert folder_created(tmp_path) == 123.5
