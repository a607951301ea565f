"""`--mode backend`: the per-job overhead of the Ray backend against the local one, tiny preset.

Both sides run the same text2video jobs one after another through `Studio.text2video` (the page's
path: validate, load, sample, write the mp4, GIF and params.json). Local: the worker is a thread
of this process. Ray: a local cluster (`ray.init(num_cpus=2, num_gpus=1)`) with one Serve replica,
so the job travels pickled, progress streams back, the frames come back and are written here.
The sampling is the same work on the same CPU, so the difference of the medians is what the Ray
path adds per job. Also reported: the Ray backend's start-up (cluster and replica) and the job's
pickled size. Figures only: no timing assert.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from .harness import loadavg

ROOT = Path(__file__).resolve().parent.parent


def _request(args, seed: int):
    from modules.request_types import Text2VideoRequest

    size = args.size or 64
    return Text2VideoRequest(prompt="a horse galloping on a street", num_frames=args.frames, width=size,
                             height=size, steps=args.steps, seed=seed, chunk_size=args.frames, fps=4)


def _time_jobs(studios: dict, args, log) -> dict[str, list[float]]:
    """Jobs on each side in turn (local, ray, local, ...): a busy machine slows both alike."""
    for studio in studios.values():
        for i in range(max(args.warmup, 1)):  # the first job loads the tiny models: never timed
            studio.text2video(_request(args, 1000 + i))
    seconds: dict[str, list[float]] = {key: [] for label in studios for key in (label, f"{label}_around")}
    for i in range(args.repeats or 5):
        for label, studio in studios.items():
            started = time.perf_counter()
            studio.text2video(_request(args, i))
            wall = time.perf_counter() - started
            seconds[label].append(wall)
            seconds[f"{label}_around"].append(wall - _worker_seconds(studio))
            log(f"{label}: job {i + 1} in {wall:.3f} s, {seconds[f'{label}_around'][-1] * 1000:.0f} ms of it "
                "around the worker's load+sample")
    return seconds


def _empty_job_ms(pool, args, count: int = 30) -> float:
    """Median ms of a job that loads nothing and returns frames of the benchmark's size: the pool's own cost."""
    import numpy as np

    from modules.job_control import JobControl

    size = args.size or 64
    frames = np.zeros((args.frames, size, size, 3), np.float32)

    def job(manager):
        return lambda: (frames, {})

    seconds = []
    for _ in range(count + 1):
        started = time.perf_counter()
        pool.run(job, JobControl(), needs_gpu=False)
        seconds.append(time.perf_counter() - started)
    return 1000 * statistics.median(seconds[1:])


def _worker_seconds(studio) -> float:
    """How long the worker itself ran the last job (load and sample): here its span, on Ray the replica's count."""
    info = getattr(studio.pool, "last_info", None)
    if info is not None:
        return info["job_s"]
    start, end = studio.pool.workers[0].busy_log[-1]
    return end - start


def benchmark(args, log) -> dict:
    import ray
    import torch

    from modules.settings import Settings
    from modules.studio import Studio

    # One torch thread on both sides: Ray gives a replica OMP_NUM_THREADS=1 (its CPU share), and two
    # threads here against one there would measure threads, not the backend.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    load_before = loadavg()
    with tempfile.TemporaryDirectory(prefix="t2vz-bench-backend-") as outputs:
        started = time.perf_counter()
        ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}})
        try:
            remote = Studio(Settings.from_env(preset="tiny", backend="ray", ray_replicas=1, outputs_dir=outputs))
            startup_s = time.perf_counter() - started
            log(f"ray: cluster and 1 replica up in {startup_s:.1f} s")
            local = Studio(Settings.from_env(preset="tiny", backend="local", outputs_dir=outputs))
            seconds = _time_jobs({"local": local, "ray": remote}, args, log)
            local_s, ray_s = seconds["local"], seconds["ray"]
            empty = {label: _empty_job_ms(studio.pool, args) for label, studio in (("local", local), ("ray", remote))}
            log(f"an empty job: local {empty['local']:.2f} ms, ray {empty['ray']:.2f} ms")
            local_around, ray_around = statistics.median(seconds["local_around"]), statistics.median(seconds["ray_around"])
            remote.pool.close()
        finally:
            from ray import serve

            serve.shutdown()
            ray.shutdown()
    local_median, ray_median = statistics.median(local_s), statistics.median(ray_s)
    return {
        "mode": "backend",
        "preset": "tiny",
        "frames": args.frames,
        "steps": args.steps,
        "size": args.size or 64,
        "repeats": len(local_s),
        "local_s": local_s,
        "ray_s": ray_s,
        "local_median_s": round(local_median, 4),
        "ray_median_s": round(ray_median, 4),
        "overhead_s": round(ray_median - local_median, 4),
        "overhead_pct": round(100 * (ray_median - local_median) / local_median, 1),
        "local_around_worker_s": round(local_around, 4),
        "ray_around_worker_s": round(ray_around, 4),
        "overhead_around_worker_s": round(ray_around - local_around, 4),
        "empty_job_local_ms": round(empty["local"], 2),
        "empty_job_ray_ms": round(empty["ray"], 2),
        "ray_startup_s": round(startup_s, 2),
        "loadavg_before": load_before,
        "torch_threads": 1,
    }


def table(result: dict) -> str:
    rows = [
        f"backend overhead, tiny preset: {result['frames']} frames of {result['size']}², {result['steps']} steps, "
        f"median of {result['repeats']} jobs each, taken in turn (after a warm-up job), one torch thread each",
        f"  local: {result['local_median_s']:.3f} s per job",
        f"  ray:   {result['ray_median_s']:.3f} s per job (1 replica on a local cluster)",
        f"  overhead of the Ray path: {result['overhead_s'] * 1000:+.0f} ms per job ({result['overhead_pct']:+.1f} %)",
        f"  around the worker's load+sample (validation, transport, writing): local "
        f"{result['local_around_worker_s'] * 1000:.0f} ms, ray {result['ray_around_worker_s'] * 1000:.0f} ms: "
        f"{result['overhead_around_worker_s'] * 1000:+.0f} ms per job on the Ray path",
        f"  an empty job (nothing loaded, {result['frames']} float32 frames back) through the pool: local "
        f"{result['empty_job_local_ms']:.2f} ms, ray {result['empty_job_ray_ms']:.1f} ms",
        f"  Ray start-up (cluster + replica): {result['ray_startup_s']:.1f} s",
    ]
    return "\n".join(rows)
