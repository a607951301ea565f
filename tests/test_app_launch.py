"""`python app.py` as a user runs it: flags, a first page with nothing loaded, a clean exit."""

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.slow  # `python app.py` in a subprocess

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60


def test_app_serves_its_first_page_with_nothing_loaded(tmp_path):
    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", T2VZ_OUTPUTS_DIR=str(tmp_path))
    env.pop("T2VZ_PRESET", None)
    process = subprocess.Popen(
        [sys.executable, "app.py", "--preset", "tiny", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        page = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
                break
            except OSError:
                time.sleep(0.1)
        assert page is not None, process.stdout.read() if process.poll() is not None else "no page in time"
        assert "Text2Video-Zero Studio" in page
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_building_the_app_loads_no_model_and_not_even_torch():
    """The first page needs Gradio only; torch, diffusers and weights wait for the first job."""
    code = (
        "import sys; from app import create_app; from modules.settings import Settings; "
        "studio, demo = create_app(Settings(preset='tiny')); "
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'controlnet_aux') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_help_lists_flags_and_environment():
    out = subprocess.run(
        [sys.executable, "app.py", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    for flag in ("--preset", "--host", "--port", "--share", "--download", "T2VZ_PRESET", "T2VZ_QUEUE_SIZE"):
        assert flag in out
