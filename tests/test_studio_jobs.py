"""Studio's generic job: which worker ran it, the out-of-memory retry, and which jobs ask for a GPU."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from modules import engines, video_io
from modules.job_control import JobControl
from modules.request_types import ControlVideoRequest, Text2VideoRequest, VideoWindow
from modules.settings import Settings
from modules.studio import Studio


@pytest.fixture
def clip(tmp_path):
    frames = np.zeros((4, 64, 64, 3), np.uint8)
    frames[:, 16:48, 16:48] = 255
    return str(video_io.write_mp4(frames, tmp_path / "clip.mp4", 4))


def small_request(**fields) -> Text2VideoRequest:
    return Text2VideoRequest(**{**dict(prompt="a cat", num_frames=4, width=64, height=64, steps=2, seed=1), **fields})


def test_params_json_records_the_device_of_the_worker_that_ran_the_job(tmp_path):
    studio = Studio(Settings.from_env(preset="tiny", devices=("cpu:0", "cpu:1"), outputs_dir=str(tmp_path)))
    busy = studio.pool._take(JobControl())  # worker 0 is busy: the job goes to worker 1
    assert busy is studio.pool.workers[0]
    result = studio.text2video(small_request())
    record = json.loads(open(result.params).read())
    assert record["device"] == "cpu:1" and record["dtype"] == str(studio.pool.workers[1].manager.dtype)


def test_out_of_memory_retry_runs_fewer_frames_per_pass_even_when_the_chunk_exceeds_the_clip(tmp_path, monkeypatch):
    """A chunk of 8 on a 4-frame clip is one pass of 4: the retry must run 2, not 'half of 8' = 4 again."""
    studio = Studio(Settings.from_env(preset="tiny", outputs_dir=str(tmp_path)))
    engine = engines.get("text2video-zero")
    original, chunks = engine.sample, []

    def sample(loaded, request, tab, inputs, *, chunk_size, control):
        chunks.append(chunk_size)
        if len(chunks) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(loaded, request, tab, inputs, chunk_size=chunk_size, control=control)

    monkeypatch.setattr(engine, "sample", sample)
    result = studio.text2video(small_request(chunk_size=8))
    assert chunks == [8, 2]
    record = json.loads(open(result.params).read())
    assert record["chunk_size_used"] == 2 and record["request"]["chunk_size"] == 2
    assert "ran out of memory" in result.note


def test_cpu_only_previews_ask_no_gpu_slot(tmp_path, monkeypatch, clip):
    """Edge maps and given skeletons are CPU work: no ZeroGPU slot; a depth preview runs a net."""
    from modules import worker

    calls = []

    def run_on_gpu(fn, control, duration_s):
        calls.append(duration_s)
        return fn()

    monkeypatch.setattr(worker, "run_on_gpu", run_on_gpu)
    studio = Studio(Settings.from_env(preset="tiny", outputs_dir=str(tmp_path)))
    window = VideoWindow(resolution=64)
    studio.control_preview(ControlVideoRequest(kind="edge", video=clip, prompt="", window=window))
    studio.control_preview(ControlVideoRequest(kind="pose", video=clip, prompt="", window=window, is_skeleton=True))
    assert calls == []
    studio.control_preview(ControlVideoRequest(kind="depth", video=clip, prompt="", window=window))
    assert len(calls) == 1


def test_server_details_names_every_workers_device(tmp_path):
    from modules.ui.common import server_details

    studio = Studio(Settings.from_env(preset="tiny", devices=("cpu:0", "cpu:1"), outputs_dir=str(tmp_path)))
    line = server_details(studio)
    assert "**cpu:0**" in line and "**cpu:1**" in line and "workers 2" in line
