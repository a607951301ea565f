"""Every Python example in README.md and docs/*.md runs, as written, against the launched tiny app (issue 29).

A reader copies these blocks into a Python session beside a running `python app.py`; so does this test, in
order, one namespace per file (the README's first block makes the `client` the others use). Only two things
may differ from the text:

- the address: the README's `http://127.0.0.1:7860/` becomes the launched app's;
- sizes the text itself names for the tiny preset: a line ending in `# tiny preset: steps=2, num_frames=4`
  runs with those values in place of the line's own (the reader of a CPU-only machine does the same).

A block that cannot run offline is preceded by a line `<!-- not run: <why> -->`; that list stays short.
What the examples print and leave behind must be sensible: the file paths they print or hold exist, and the
videos among them are videos with frames.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
URL_IN_DOCS = "http://127.0.0.1:7860/"
NOT_RUN = re.compile(r"<!--\s*not run:\s*(?P<why>.+?)\s*-->")
TINY = re.compile(r"#\s*tiny preset:\s*(?P<values>.+?)\s*$")
PATH = re.compile(r"(/[^\s'\",()\[\]{}]+\.(?:mp4|gif|json|webm|png))")
MOST_NOT_RUN = 3  # blocks marked `not run` in all the docs: keep the list short


@dataclass
class Block:
    path: Path
    line: int  # the line of its ```python fence (1-based)
    code: str
    not_run: str | None  # why it is not run, or None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def python_blocks(path: Path) -> list[Block]:
    blocks, lines = [], path.read_text().splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start, body = i, []
            i += 1
            while lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            before = next((line for line in reversed(lines[:start]) if line.strip()), "")
            mark = NOT_RUN.search(before)
            blocks.append(Block(path, start + 1, "\n".join(body) + "\n", mark and mark["why"]))
        i += 1
    return blocks


def for_the_tiny_app(code: str, url: str) -> str:
    """The block as this test runs it: the launched app's address, and the tiny values its lines name."""
    code = code.replace(URL_IN_DOCS, url).replace(URL_IN_DOCS.rstrip("/"), url.rstrip("/"))
    out = []
    for line in code.splitlines():
        tiny = TINY.search(line)
        if tiny:
            line = line[: tiny.start()].rstrip()
            for name, value in (item.split("=", 1) for item in tiny["values"].split(", ")):
                line, found = re.subn(rf"\b{re.escape(name.strip())}=[^,)\s]+", f"{name.strip()}={value.strip()}",
                                      line)
                assert found == 1, f"`# tiny preset: {name}=` names no value on its line: {line!r}"
        out.append(line)
    return "\n".join(out) + "\n"


ALL_BLOCKS = [block for path in DOCS for block in python_blocks(path)]
FILES_WITH_EXAMPLES = sorted({block.path for block in ALL_BLOCKS if not block.not_run}, key=DOCS.index)


def test_the_readme_has_examples_and_few_are_not_run():
    assert any(block.path.name == "README.md" and not block.not_run for block in ALL_BLOCKS)
    not_run = [block.where for block in ALL_BLOCKS if block.not_run]
    assert len(not_run) <= MOST_NOT_RUN, not_run


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda block: block.where)
def test_each_example_parses_and_names_files_that_exist(block):
    """Cheap, in the inner loop: the block is Python, and every file it uploads is in the repository."""
    tree = ast.parse(block.code, filename=block.where)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "handle_file":
            assert node.args and isinstance(node.args[0], ast.Constant), block.where
            if not block.not_run:  # a file of the repository, by its path from the root
                assert (ROOT / node.args[0].value).is_file(), (block.where, node.args[0].value)


def _paths_in(value) -> list[str]:
    """The files an example's variables hold: a returned path, or a list of them (Compare's videos)."""
    if isinstance(value, str):
        return [value] if PATH.fullmatch(value) else []
    if isinstance(value, (list, tuple)):
        return [path for item in value for path in _paths_in(item)]
    return []


@pytest.mark.slow  # a dozen jobs through the launched app (tiny preset), as a reader's script runs them
@pytest.mark.parametrize("path", FILES_WITH_EXAMPLES, ids=lambda path: str(path.relative_to(ROOT)))
def test_examples_run_as_written_against_the_tiny_app(path, served, monkeypatch):
    from modules import video_io

    monkeypatch.chdir(ROOT)  # the examples upload the repository's clips by their paths from its root
    namespace: dict = {"__name__": "__readme__"}
    for block in python_blocks(path):
        if block.not_run:
            continue
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                exec(compile(for_the_tiny_app(block.code, served[2]), block.where, "exec"), namespace)
        except Exception as error:
            raise AssertionError(f"the example at {block.where} fails as written:\n{block.code}\n"
                                 f"{type(error).__name__}: {error}") from error
        output = printed.getvalue()
        if "print(" in block.code:
            assert output.strip(), f"the example at {block.where} prints nothing"
        for shown in PATH.findall(output):
            assert Path(shown).exists(), f"{block.where} printed a path that does not exist: {shown}"
    held = {p for name, value in namespace.items() if not name.startswith("__") for p in _paths_in(value)}
    assert held, f"the examples of {path.name} returned no files"
    for held_path in held:
        assert Path(held_path).is_file(), held_path
        if held_path.endswith((".mp4", ".gif")):
            assert video_io.probe_video(held_path).num_frames > 0, held_path
