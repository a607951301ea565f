"""What `python app.py` prints in the terminal: a sentence for a busy port or an unreachable Hub,
the address to open, our own logs, and none of the libraries' noise."""

import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60
NOISE = ("share=True", "Token indices sequence length", "can only handle sequences up to 77 tokens",
         "macro_block_size")


def app_env(**extra) -> dict:
    """The test's environment, offline, on the CPU in float32 (no dtype probe); None removes a variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("T2VZ_")}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", T2VZ_DEVICE="cpu", T2VZ_DTYPE="float32")
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


def run_app(*args, timeout=120, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "app.py", *args], cwd=ROOT, env=app_env(**env), capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def taken_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


# --------------------------------------------------------------------------- a busy port


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_a_busy_port_is_one_sentence_that_names_a_free_one(taken_port, host):
    done = run_app("--preset", "tiny", "--host", host, "--port", str(taken_port))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    line, = done.stderr.strip().splitlines()
    assert line.startswith(f"Port {taken_port} is in use: try --port ")
    suggested = int(line.rsplit(" ", 1)[1].rstrip("."))
    with socket.socket() as sock:  # the suggestion is free
        sock.bind(("127.0.0.1", suggested))


def test_port_problem_says_what_to_change():
    from app import port_problem

    assert port_problem("127.0.0.1", free_port()) is None
    assert "is not a port number" in port_problem("127.0.0.1", 70000)
    for host in ("192.0.2.1", "no-such-host.invalid"):  # an address kept for documentation / a name that never resolves
        assert "--host 127.0.0.1" in port_problem(host, free_port())


# --------------------------------------------------------------------------- --download without the Hub


def assert_one_hub_sentence(done: subprocess.CompletedProcess, *parts: str) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Could not reach the Hugging Face Hub at "), output
    assert "--download" not in output and "failed:" not in output and "Traceback" not in output
    for part in parts:
        assert part in lines[0], lines[0]


@pytest.mark.slow  # `python app.py --download` in subprocesses (torch is imported)
def test_download_offline_is_one_sentence_naming_the_endpoint_and_proxy():
    done = run_app("--download", HTTPS_PROXY="http://user:secret@proxy.example:3128")
    assert_one_hub_sentence(done, "https://huggingface.co", "HF_HUB_OFFLINE",
                            "HTTPS_PROXY=http://***@proxy.example:3128", "--preset tiny")
    assert "secret" not in done.stdout + done.stderr


@pytest.mark.slow
def test_download_with_the_hub_unreachable_is_one_sentence_naming_the_endpoint():
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = dict(HF_HUB_OFFLINE="0", HF_ENDPOINT=endpoint)
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        env[name] = None  # straight to the closed port
    done = run_app("--download", **env)
    assert_one_hub_sentence(done, endpoint, "Connection refused", "no proxy set", "HF_ENDPOINT")


def test_unreachable_sentence_lists_every_proxy_variable_set(monkeypatch):
    from modules import download, hub

    monkeypatch.setattr(hub, "offline", lambda: False)
    for name in download.PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.lan:8080")
    monkeypatch.setenv("NO_PROXY", "localhost")
    sentence = download.unreachable_sentence(ConnectionError("timed out"))
    assert "HTTP_PROXY=http://proxy.lan:8080, NO_PROXY=localhost" in sentence
    assert "ConnectionError: timed out" in sentence and sentence.endswith("then try again.")


# --------------------------------------------------------------------------- a quiet terminal

QUIET_JOB = textwrap.dedent("""
    import logging, sys, tempfile
    import numpy as np
    import imageio
    from modules.request_types import Text2VideoRequest
    from modules.settings import Settings
    from modules.studio import Studio

    def job():
        studio = Studio(Settings.from_env(preset="tiny", outputs_dir=tempfile.mkdtemp()))  # a fresh tokenizer:
        prompt = " ".join(["a detailed cinematic shot of a red fox running through snow"] * 10)  # it warns once
        # AnimateDiff runs diffusers' pipeline, whose encode_prompt warns twice about a long prompt
        studio.text2video(Text2VideoRequest(prompt=prompt, engine="animatediff", num_frames=2, width=72, height=72,
                                            steps=2, seed=1))
        with imageio.get_writer(tempfile.mktemp(suffix=".mp4"), fps=4) as writer:  # a third-party writer's block
            writer.append_data(np.zeros((72, 72, 3), np.uint8))

    print("---- as the libraries print", flush=True)
    job()
    from modules import quiet
    quiet.install()
    print("---- quiet", flush=True)
    job()
    logging.getLogger("modules.errors").warning("our own log line")
    print("finished", flush=True)
""")


@pytest.mark.slow  # one tiny job twice in a subprocess
def test_a_long_prompt_and_an_odd_size_print_no_library_warnings_but_our_logs_print():
    done = subprocess.run([sys.executable, "-u", "-c", QUIET_JOB], cwd=ROOT, env=app_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300)
    output = done.stdout
    assert done.returncode == 0 and "finished" in output, output
    loud, quiet = output.split("---- as the libraries print", 1)[1].split("---- quiet", 1)
    assert all(noise in loud for noise in NOISE[1:]), loud  # the job really provokes each warning
    assert not any(noise in quiet for noise in NOISE), quiet
    assert "our own log line" in quiet


def test_quiet_filters_library_handlers_added_later_and_nothing_else():
    """Libraries add their handler when first imported, after `install()`: it is filtered too."""
    code = textwrap.dedent("""
        import logging, sys
        from modules import quiet
        quiet.install(); quiet.install()
        for name in ("transformers", "diffusers"):
            handler = logging.StreamHandler(sys.stdout)
            logging.getLogger(name).addHandler(handler)
            logging.getLogger(name).propagate = False
        logging.getLogger("transformers.tokenization_utils_base").warning(
            "Token indices sequence length is longer than the specified maximum sequence length (90 > 77)")
        logging.getLogger("diffusers.pipelines.x").warning(
            "The following part of your input was truncated because CLIP can only handle sequences up to 77 tokens: "
            "['x']")
        logging.getLogger("diffusers.pipelines.x").warning("diffusers: another warning")
        logging.getLogger("imageio_ffmpeg").warning(
            "IMAGEIO FFMPEG_WRITER WARNING: input image is not divisible by macro_block_size=16")
        logging.getLogger("modules.worker").warning("out of memory on cpu")
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    output = done.stdout + done.stderr
    assert output.split() == "diffusers: another warning out of memory on cpu".split(), output


@pytest.mark.slow  # `python app.py` launched
def test_launch_prints_the_local_url_and_no_share_hint(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "app.py", "--preset", "tiny", "--port", str(port)], cwd=ROOT,
        env=app_env(T2VZ_OUTPUTS_DIR=str(tmp_path)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and process.poll() is None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        time.sleep(1)  # whatever launch prints after serving
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0]
    assert f"Running on local URL:  http://127.0.0.1:{port}\n" in output, output
    assert "share=True" not in output and "Traceback" not in output, output
