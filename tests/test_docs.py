"""The README documents what the code has: every endpoint, flag and environment variable."""

import re
from pathlib import Path

from modules.settings import ENV_VARS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_has_spaces_front_matter():
    front = README.split("---")[1]
    for key in ("title:", "sdk: gradio", "sdk_version: 6.31.0", "app_file: app.py", "license:", "emoji:"):
        assert key in front


def test_every_endpoint_is_documented(served):
    demo = served[1]
    names = {fn.api_name for fn in demo.fns.values() if fn.api_name and fn.api_visibility == "public"}
    assert {"text2video", "pose2video", "edge2video", "depth2video", "edit_video"} <= names
    for name in names:
        assert f"/{name}`" in README or f'"/{name}"' in README, name


def test_every_env_var_and_flag_is_documented():
    for names, _ in ENV_VARS:
        for name in re.findall(r"T2VZ_\w+", names):
            assert name in README, name
    for flag in ("--preset", "--host", "--port", "--share", "--download", "--backend", "--ray-address"):
        assert flag in README


def _real_plan(which, dtype_name):
    """The app's own file choice over the Hub listings read into tests/hub_standin/layouts.py."""
    import torch

    from modules import download, hub
    from modules.settings import Settings
    from tests.hub_standin.layouts import LAYOUTS

    original = hub.list_files
    hub.list_files = lambda repo: hub.RepoFiles(repo, dict(LAYOUTS[repo]["files"]))
    try:
        return download.plan(Settings(), which, dtype=getattr(torch, dtype_name))
    finally:
        hub.list_files = original


def test_readme_download_sizes_and_preload_match_the_app():
    from modules.download import preload_from_hub
    from modules.hub import format_bytes

    front = README.split("---")[1]
    for line in preload_from_hub(_real_plan("default", "float16")):
        assert f"  - {line}\n" in front, line
    rows = {line.split("|")[1].strip(): line for line in README.splitlines() if line.startswith("| `")}
    for dtype, column in (("float16", 3), ("float32", 4)):
        for item in _real_plan("all", dtype):
            if item.kind in ("pose", "depth"):
                continue  # one row each, checked below
            row = next(line for name, line in rows.items() if item.repo in name or
                       ("PAIR" in item.repo and "PAIR/" in name) or (item.repo.startswith("lllyasviel/sd-controlnet")
                                                                    and "sd-controlnet-openpose" in name))
            assert format_bytes(item.bytes) in row.split("|")[column], (item.repo, dtype, row)
        total = {which: format_bytes(sum(p.bytes for p in _real_plan(which, dtype))) for which in ("default", "all")}
        assert total["all"] in README and total["default"] in README
    for item in _real_plan("default", "float16"):
        if item.kind in ("pose", "depth"):
            assert format_bytes(item.bytes) in README


ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_test_command_is_the_one_ci_runs():
    """The README's first screen gives the install and test commands; .ci/run runs the same (with its venv's
    python, and quieter pip), so the command a newcomer copies is the one CI keeps green."""
    command = next(line for line in README.splitlines() if "python -m pytest" in line and line.startswith("pip "))
    install, test = (part.strip() for part in command.split("&&"))
    ci = (ROOT / ".ci" / "run").read_text()
    ci_pytest = next(line for line in ci.splitlines() if line.startswith(".venv/bin/python -m pytest"))
    assert ci_pytest.startswith(".venv/bin/" + test), (test, ci_pytest)
    ci_pip = next(line for line in ci.splitlines() if line.startswith(".venv/bin/pip install"))
    assert re.findall(r"-r \S+", install) == re.findall(r"-r \S+", ci_pip), (install, ci_pip)
    assert "python3.11 -m venv .venv && source .venv/bin/activate && pip install -r requirements.txt" in README
    assert "python app.py --preset tiny" in README


def test_readme_links_and_picture_exist():
    """The README is short and links to docs/ for the rest: every relative link (docs pages, RECIPES.md, the
    picture of the page) names a file of the repository, and every docs page is linked from the README."""
    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if not re.match(r"https?://", target):
                assert (doc.parent / target).exists(), (doc.name, target)
    for page in (ROOT / "docs").glob("*.md"):
        assert f"(docs/{page.name}" in README, page.name
    assert "](assets/page.png)" in README and (ROOT / "assets" / "page.png").read_bytes()[:4] == b"\x89PNG"


def test_readme_stays_short():
    """Issue 29: a newcomer's first read. Long explanations go to docs/ (linked), not back into the README."""
    assert len(README.splitlines()) <= 350


def test_each_performance_section_has_its_date_and_machine():
    """Figures from different dates and machines are not mixed: each section of docs/performance.md is one date
    and one machine (two sections gather what several share, and say so)."""
    text = (ROOT / "docs" / "performance.md").read_text()
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings
    for heading in headings:
        assert (re.match(r"20\d\d-\d\d-\d\d — (AMD EPYC|Intel Xeon)", heading)
                or heading in ("bfloat16 on CPUs (several machines)", "The test suite (CI)")), heading
    for line in README.split("## Performance")[1].splitlines():
        if line.startswith("| 20"):
            assert re.match(r"\| 20\d\d-\d\d-\d\d \| (AMD EPYC|Intel Xeon) \|", line), line
