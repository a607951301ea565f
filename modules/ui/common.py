"""Widgets and glue every tab shares: the only place that knows both Gradio and the Studio."""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr
from gradio.context import LocalContext

from ..request_types import MAX_SEED, VideoWindow
from ..settings import Settings
from ..studio import StudioError, VideoResult
from ..worker import Cancelled, JobControl

VIDEO_TYPES = [".mp4", ".webm", ".mov", ".gif", ".avi", ".mkv"]


def gpu_options(studio) -> dict:
    """Every GPU event shares one queue, served by as many jobs at once as there are workers."""
    return dict(concurrency_id="gpu", concurrency_limit=len(studio.pool))


def gradio_job_control(blocks: gr.Blocks, progress: gr.Progress) -> JobControl:
    """A JobControl for the running event: progress to the page, and a cancel probe.

    Gradio's cancel (Stop button or a client's job.cancel()) ends the event's task and removes
    it from the queue's active jobs, but the worker thread runs on; the probe sees the event
    gone and the worker stops at its next step.
    """
    event_id = LocalContext.event_id.get(None)

    def should_stop() -> bool:
        queue = getattr(blocks, "_queue", None)
        if event_id is None or queue is None:
            return False
        return not any(job and any(event._id == event_id for event in job) for job in queue.active_jobs)

    return JobControl(should_stop=should_stop, progress=lambda fraction, text: progress(fraction, desc=text))


def run_job(blocks: gr.Blocks, method: Callable[..., VideoResult], request, progress: gr.Progress) -> VideoResult:
    """Call one Studio method; user-facing failures become gr.Error (the only text clients see)."""
    try:
        return method(request, gradio_job_control(blocks, progress))
    except StudioError as error:
        raise gr.Error(str(error)) from error
    except Cancelled as error:
        raise gr.Error("Cancelled.") from error


def video_outputs(result: VideoResult) -> tuple[str, str, str, int]:
    """(mp4, gif, params.json, used seed) - the outputs every generating tab returns."""
    return result.video, result.gif, result.params, result.seed


def seed_input(default: int = -1) -> gr.Number:
    return gr.Number(
        label="Seed (-1 = random)", value=default, precision=0, minimum=-1, maximum=MAX_SEED
    )


def output_column() -> tuple[gr.Video, gr.File, gr.File, gr.Number]:
    video = gr.Video(label="Result", format=None, autoplay=True, loop=True, buttons=["download"])
    with gr.Row():
        gif = gr.File(label="GIF download", height=90)
        params = gr.File(label="params.json (repeat this run)", height=90)
    used_seed = gr.Number(label="Seed used", precision=0, interactive=False)
    return video, gif, params, used_seed


def run_buttons() -> tuple[gr.Button, gr.Button]:
    with gr.Row():
        run = gr.Button("Generate", variant="primary")
        stop = gr.Button("Stop", variant="stop")
    return run, stop


def video_window_inputs(settings: Settings):
    """Start, end, fps, resolution: which part of an uploaded video to use and how."""
    limits = settings.limits
    with gr.Row():
        start = gr.Number(label="Start (s)", value=0.0, minimum=0.0)
        end = gr.Number(label="End (s, 0 = to the end)", value=0.0, minimum=0.0)
    with gr.Row():
        fps = gr.Number(label="FPS (0 = the input's)", value=0.0, minimum=0.0, maximum=60.0)
        resolution = gr.Slider(
            label="Resolution (long side, aspect kept)",
            minimum=limits.min_side,
            maximum=limits.max_side,
            step=8,
            value=min(settings.default_resolution, limits.max_side),
        )
    return start, end, fps, resolution


def window(start, end, fps, resolution) -> VideoWindow:
    return VideoWindow(start=float(start or 0), end=float(end or 0), fps=float(fps or 0), resolution=int(resolution))


def status_line(studio) -> str:
    manager = studio.manager
    resident = manager.resident()
    loaded = ", ".join(f"{k}: {', '.join(v)}" for k, v in resident.items() if v) or "nothing yet (loads on first use)"
    return (
        f"Preset **{studio.settings.preset}** · device **{manager.device}** ({str(manager.dtype).replace('torch.', '')})"
        f" · workers {len(studio.pool)} · loaded: {loaded}"
    )
