"""`--mode estimates`: the tiny preset's cost figures (modules/estimates.py), measured on this machine.

Runs each registered engine's tabs (text to video, Fast where served, the control tabs with edges, editing,
tuning and a tuned run) and the control-map detections through `Studio` on the tiny preset, at a few sizes
and step counts (each kind's first job, which loads its models and warms up, runs once more untimed).
Then, per stage kind, a non-negative least-squares fit of the seconds (times the job's CPU share where other
processes held the CPU, so that a shared machine's waits are not fitted) to the `estimates.Prior` terms
(fixed, per frame, per 512² frame, per unit of the engine's work), printed as the lines to paste into
each engine's `tiny_priors` and `estimates.TINY_DETECTION` / `WRITING`, beside each case's measured seconds and what the current
figures estimate for it, and the process's CPU seconds per second of each job (well under the torch threads'
count: other processes took the CPU, and the figures are high). Figures only: no timing assert. On a shared
machine, run it with priority (`nice -n -10 python -m benchmarks --mode estimates`).
"""

from __future__ import annotations

import datetime
import os
import platform
import tempfile
import time
from collections import defaultdict

from .harness import loadavg

# (frames, side, steps) per sampling case; detection runs at two sizes.
SHAPES = ((4, 64, 2), (8, 64, 6), (8, 96, 2))
DETECT_SHAPES = ((4, 64), (8, 96))
CHEAP_FIRST = {"wan": 0, "cogvideox": 1, "modelscope": 2}


def _clip(folder: str, frames: int = 16, side: int = 128) -> str:
    import numpy as np

    from modules import video_io

    video = np.zeros((frames, side, side, 3), np.uint8)
    for i in range(frames):
        video[i, side // 6: side // 2, 4 + 5 * i: side // 3 + 5 * i] = (200, 120, 40)
        video[i, side // 2:, :, 1] = 90
    return str(video_io.write_mp4(video, os.path.join(folder, "clip.mp4"), 8))


def _cases(clip: str):
    """(label, stage kind key, request, run(studio, request)) for each case."""
    from modules import engines
    from modules.request_types import ControlVideoRequest, EditVideoRequest, Text2VideoRequest, VideoWindow
    from modules.tune_requests import RunTunedRequest, TuneRequest

    def window(frames: int, side: int) -> VideoWindow:
        return VideoWindow(resolution=side, fps=frames / 2)  # the 2 s clip: `frames` frames

    detections = _detections(clip, window)
    # The cheap engines first (and the detections after them): their figures come in minutes.
    for engine in sorted(engines.all_engines(), key=lambda e: CHEAP_FIRST.get(e.name, len(CHEAP_FIRST))):
        if engine.name == "animatediff":
            yield from detections
        for tab in sorted(engine.tabs):
            fasts = (False, True) if engine.fast is not None and engine.fast.serves(tab) else (False,)
            for fast in fasts:
                for frames, side, steps in SHAPES:
                    steps = engine.fast.for_tab(tab)["steps"] if fast else steps
                    # The fewest frames the engine takes from `frames` up (`nearest` goes down: 8 is 1 for 8k+1).
                    frames = engine.rules.frames.nearest(frames + engine.rules.frames.multiple - 1)
                    key = ("sampling", engine.name, tab, fast)
                    common = dict(prompt="a red ball rolling", steps=steps, seed=1)
                    if tab == "text2video":
                        request = Text2VideoRequest(engine=engine.name, num_frames=frames, width=side, height=side,
                                                    fast=fast, **common)
                        yield key, request, lambda studio, r: studio.text2video(r)
                    elif tab == "control":
                        request = ControlVideoRequest(kind="edge", video=clip, engine=engine.name, fast=fast,
                                                      window=window(frames, side), **common)
                        yield key, request, lambda studio, r: studio.control_video(r)
                    elif tab == "edit":
                        request = EditVideoRequest(video=clip, fast=fast, window=window(frames, side), **common)
                        yield key, request, lambda studio, r: studio.edit_video(r)
                    elif tab == "tune":
                        request = TuneRequest(video=clip, prompt="a box slides", steps=2, sample_steps=steps,
                                              num_frames=frames, seed=1, window=VideoWindow(resolution=side))
                        yield key, request, lambda studio, r: studio.tune_video(r)
                    elif tab == "tuned":
                        yield key, ("tuned", frames, steps), None


def _detections(clip: str, window):
    from modules.request_types import ControlVideoRequest

    for kind, extras in (("pose", False), ("pose", True), ("depth", False), ("edge", False)):
        for frames, side in DETECT_SHAPES:
            options = dict(pose_hands=True, pose_face=True) if extras else {}
            request = ControlVideoRequest(kind=kind, video=clip, prompt="a dancer", window=window(frames, side),
                                          **options)
            yield ("detection", kind, extras), request, lambda studio, r: studio.control_preview(r)


def benchmark(args, log) -> dict:
    from scipy.optimize import nnls

    from modules.jobs import CostLog
    from modules.tune_requests import RunTunedRequest
    from modules.settings import Settings
    from modules.studio import Studio

    import torch

    # One torch thread: with two, a shared machine's waits multiply (each of thousands of tiny calls waits for
    # the other thread), and what one core does is the figure an idle core gives; more cores only help.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    load_before = loadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="t2vz-bench-estimates-") as outputs:
        os.environ.setdefault("T2VZ_TUNED_DIR", os.path.join(outputs, "tuned"))
        studio = Studio(Settings.from_env(preset="tiny", device="cpu", outputs_dir=outputs))
        studio.control_maps = type(studio.control_maps)(0)  # keeps nothing: every run detects its maps
        clip = _clip(outputs)
        tuned, warmed, first = None, set(), {}
        for key, request, run in _cases(clip):
            if run is None:  # a tuned run: of a model tuned here
                if tuned is None:
                    continue
                _, frames, steps = request
                request = RunTunedRequest(tuned=tuned, prompt="a blue box", steps=steps, seed=1, num_frames=frames)

                def run(studio, r):
                    return studio.run_tuned(r)
            if key not in warmed:  # a kind's first job loads its models and warms up: not fitted
                warmed.add(key)
                started = time.perf_counter()
                result = run(studio, request)
                first[key] = time.perf_counter() - started
                if key[1:3] == ("tune-a-video", "tune") and tuned is None:
                    tuned = result.model
            studio.runner.costs = CostLog()  # the estimate before: the prior alone; then this job's stages alone
            costs = studio.estimates.costs_of(request, preview=key[0] == "detection")
            prior = studio.estimate(request).seconds
            started, cpu = time.perf_counter(), time.process_time()
            run(studio, request)
            wall = time.perf_counter() - started
            share = (time.process_time() - cpu) / wall  # this process's CPU seconds per second: low when contended
            stages = {m.cost.what: m.seconds for m in studio.runner.costs.latest_of(lambda what: True, 100)}
            shapes = {cost.what: _shape(studio, request, cost) for cost in costs}
            rows.append(dict(key=key, stages=stages, shapes=shapes, work={c.what: c.work for c in costs},
                             wall=wall, first=first.get(key), prior=prior, share=share))
            log(f"{'/'.join(map(str, key))} {shapes.get(key, list(shapes.values())[0])}: "
                f"{', '.join(f'{w[0]} {s:.3f} s' for w, s in stages.items())}; wall {wall:.2f} s (the kind's first "
                f"job {first.get(key, 0):.2f} s); {share:.2f} CPU s per s; estimated {prior:.2f} s before")
    fits = _fit(rows, nnls)
    return {"mode": "estimates", "preset": "tiny", "device": "cpu", "date": datetime.date.today().isoformat(),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "cpu": _cpu_name(), "loadavg_before": load_before, "loadavg_after": loadavg(),
            "fits": fits, "cases": [_json_row(row) for row in rows]}


def _shape(studio, request, cost) -> tuple[int, int, int]:
    """(frames, width, height) of a stage, from its request as the estimate reads it."""
    from modules.request_types import Text2VideoRequest
    from modules.tune_requests import RunTunedRequest, TuneRequest

    if isinstance(request, Text2VideoRequest):
        request = request.validate(studio.settings)
        return request.num_frames, request.width, request.height
    if isinstance(request, TuneRequest):
        _, width, height = studio.estimates.window_shape(request.video, request.window, 8)
        return request.num_frames, width, height
    if isinstance(request, RunTunedRequest):
        info = studio.tuned.find(request.tuned).info
        return request.num_frames or int(info["frames"]), int(info["width"]), int(info["height"])
    return studio.estimates.window_shape(request.video, request.window)


def _fit(rows, nnls) -> dict:
    """Per stage kind: the non-negative (fixed, frame, pixel, step) seconds that fit its cases best."""
    import numpy as np

    points = defaultdict(list)
    for row in rows:
        for what, seconds in row["stages"].items():
            frames, width, height = row["shapes"][what]
            work = row["work"][what] if what[0] == "sampling" else 0.0
            group = ("writing",) if what[0] == "writing" else what
            # A stage that waited for the CPU (share under 1: other processes had it) counts the CPU it got.
            points[group].append(((1.0, frames, frames * width * height / 512**2, work), seconds * min(row["share"], 1)))
    fits = {}
    for group, data in points.items():
        terms = np.array([d[0] for d in data])
        seconds = np.array([d[1] for d in data])
        used = [i for i in range(4) if terms[:, i].any()]
        if group[0] == "sampling":
            used = [0, 2, 3]  # fixed, decoding and steps
        elif group[0] == "detection":
            used = [0, 1, 2]
        else:
            used = [0, 2]
        coefficients, _ = nnls(terms[:, used], seconds)
        full = [0.0] * 4
        for i, c in zip(used, coefficients):
            full[i] = round(float(c), 4)
        fitted = terms @ np.array(full)
        fits["/".join(map(str, group))] = {"fixed_s": full[0], "frame_s": full[1], "pixel_s": full[2],
                                           "step_s": full[3], "worst_ratio": round(float(max(
                                               np.maximum(fitted / seconds, seconds / np.maximum(fitted, 1e-9)))), 2)}
    return fits


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def _json_row(row: dict) -> dict:
    return {"key": list(row["key"]), "wall_s": round(row["wall"], 3), "estimated_before_s": round(row["prior"], 3),
            "first_job_s": row["first"] and round(row["first"], 3),
            "cpu_share": round(row["share"], 2),
            "stages": {"/".join(map(str, k)): round(v, 3) for k, v in row["stages"].items()},
            "shapes": {"/".join(map(str, k)): v for k, v in row["shapes"].items()},
            "work": {"/".join(map(str, k)): round(v, 4) for k, v in row["work"].items()}}


def table(result: dict) -> str:
    lines = [f"tiny preset cost figures, measured {result['date']} on {result['cpu']} ({result['machine']}), "
             f"load average {result['loadavg_before']} before, {result['loadavg_after']} after",
             "  case: its stages' seconds, the job's wall time, and what the figures in use estimated before it"]
    for case in result["cases"]:
        stages = ", ".join(f"{k.split('/')[0]} {v:.2f}" for k, v in case["stages"].items())
        first = f" (the kind's first job: {case['first_job_s']:.2f} s)" if case["first_job_s"] else ""
        lines.append(f"  {'/'.join(map(str, case['key']))} {list(case['shapes'].values())[0]}: {stages}; wall "
                     f"{case['wall_s']:.2f} s{first}; {case['cpu_share']} CPU s per s; estimated "
                     f"{case['estimated_before_s']} s before")
    lines.append("  fits (Prior(fixed_s, frame_s, pixel_s, step_s); worst case off by the ratio shown):")
    for group, fit in result["fits"].items():
        lines.append(f"    {group}: Prior(fixed_s={fit['fixed_s']}, frame_s={fit['frame_s']}, "
                     f"pixel_s={fit['pixel_s']}, step_s={fit['step_s']})  worst x{fit['worst_ratio']}")
    return "\n".join(lines)
