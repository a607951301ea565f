"""`--preset real` end to end, offline: every tab through gradio_client, the Hub stand-in the only source.

First run: the app downloads what each tab loads (and nothing else). Second run: a new app process
state (new Studio, new model manager) with the stand-in stopped and HF_HUB_OFFLINE=1 reads the
cache alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from modules import video_io
from modules.hub import forget_listings
from modules.settings import Settings
from tests.conftest import free_port
from tests.hub_standin.repos import all_repos
from tests.hub_standin.server import HubStandIn, hub_env

ASSETS = Path(__file__).resolve().parents[1] / "assets"
STYLE = "PAIR/text2video-zero-controlnet-canny-arcane"


def video_path(value) -> str:
    return value["video"] if isinstance(value, dict) else value


def control_args(kind: str, video: Path, model: str = "dreamlike-art/dreamlike-photoreal-2.0") -> list:
    window = [0, 1, 2, 64]  # start, end, fps, long side: 2 frames
    sampling = [2, 9.0, 1.0, 7, 2]  # steps, guidance, conditioning scale, seed, chunk size
    options = {"pose": [False, False, False], "edge": [100, 200], "depth": []}[kind]
    return [handle_file(str(video)), "a robot", "", model, *window, *sampling, *options]


def run_every_tab(tmp_path: Path, name: str) -> dict[str, str]:
    """Launch the real preset on CPU and call every endpoint once; returns endpoint -> mp4 path."""
    from app import create_app, launch_options

    settings = Settings.from_env(
        preset="real", device="cpu", host="127.0.0.1", port=free_port(), outputs_dir=str(tmp_path / f"out-{name}")
    )
    studio, demo = create_app(settings)
    demo.launch(**launch_options(settings, studio), prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{settings.port}/", analytics_enabled=False, verbose=False,
                        download_files=str(tmp_path / f"dl-{name}"))
        videos = {}
        videos["text2video"] = client.predict(
            prompt="a horse", negative_prompt="", model="dreamlike-art/dreamlike-photoreal-2.0", num_frames=2,
            width=64, height=64, steps=2, guidance_scale=7.5, motion_x=12, motion_y=12, t0=-1, t1=-1, seed=3,
            chunk_size=2, fps=4, api_name="/text2video",
        )[0]
        clip = ASSETS / "edge_box.mp4"
        for kind in ("pose", "edge", "depth"):
            videos[f"{kind}2video"] = client.predict(*control_args(kind, clip), allow_empty_maps=True,  # random weights
                                                     api_name=f"/{kind}2video")[0]
        videos["edge2video-style"] = client.predict(*control_args("edge", clip, STYLE), api_name="/edge2video")[0]
        videos["depth_preview"] = client.predict(handle_file(str(clip)), 0, 1, 2, 64, api_name="/depth_preview")
        result = client.predict(
            handle_file(str(clip)), "make it snow", "", 1.0, 7.5, 2, "euler_ancestral", 5, 0, 1, 2, 64, 2,
            api_name="/edit_video",
        )
        videos["edit_video"] = result[0]
        params = json.load(open(result[2]))
        assert params["preset"] == "real" and params["model"] == "timbrooks/instruct-pix2pix"
        return {endpoint: video_path(value) for endpoint, value in videos.items()}
    finally:
        demo.close()


@pytest.mark.slow
def test_hub_real_preset_serves_every_tab_then_runs_offline(tmp_path):
    contents = all_repos()
    cache = tmp_path / "cache"
    forget_listings()
    with HubStandIn(contents) as server, hub_env(server.url, cache_dir=cache):
        first = run_every_tab(tmp_path, "first")
        url = server.url
        fetched = {repo: server.downloaded(repo) for repo in contents}
    for path in first.values():
        assert video_io.read_video(path)[0].shape[0] >= 2
    # What a first run of every tab fetched: the used models only, one weights file per part.
    used = {"dreamlike-art/dreamlike-photoreal-2.0", STYLE, "timbrooks/instruct-pix2pix", "lllyasviel/Annotators",
            *Settings().controlnets.values()}
    assert {repo for repo, files in fetched.items() if files} == used
    everything = [f for files in fetched.values() for f in files]
    assert not any(f.endswith(".ckpt") or "non_ema" in f or "safety_checker" in f for f in everything)
    assert fetched[STYLE] and all(not f.endswith(".safetensors") for f in fetched[STYLE])  # .bin-only repo

    forget_listings()
    with hub_env(url, cache_dir=cache, offline=True):
        second = run_every_tab(tmp_path, "second")
    for endpoint, path in second.items():
        again, _ = video_io.read_video(path)
        assert again.shape == video_io.read_video(first[endpoint])[0].shape, endpoint
    # Same seed, same weights from the cache: the same text-to-video.
    assert (video_io.read_video(second["text2video"])[0] == video_io.read_video(first["text2video"])[0]).all()
    forget_listings()
