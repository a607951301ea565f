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
