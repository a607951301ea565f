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
    for flag in ("--preset", "--host", "--port", "--share"):
        assert flag in README
