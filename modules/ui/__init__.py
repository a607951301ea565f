"""The page: one tab per mode, all sharing one Studio (one worker, one model manager)."""

from __future__ import annotations

import gradio as gr

from .. import engines
from ..request_types import CONTROL_KINDS
from . import compare, controlnet, edit, text2video, tune
from .common import RANGE_NOTE_JS, status_line
from .inputs import answer_component_failures
from .queue import refuse_when_full

DESCRIPTION = """# Text2Video-Zero Studio
Zero-shot video generation and editing with Stable Diffusion 1.5
([Text2Video-Zero](https://arxiv.org/abs/2303.13439)): latent motion dynamics + cross-frame attention,
with ControlNet (pose, edge, depth) and Instruct-Pix2Pix. One GPU worker serves every tab; jobs queue,
show progress and stop when you press **Stop**. Each result's `params.json` repeats it: load it under
**Repeat a run** in its tab."""


TINY_BANNER = ("**Tiny preset: random weights, so every output is noise.** It runs every tab offline in seconds "
               "to try the app; start without `--preset tiny` for real videos.")
STATUS_EVERY_S = 2.0  # how often the status line follows the workers


def cache_policy(ttl_s: int) -> tuple[int, int] | None:
    """Gradio's delete_cache for our TTL: its copies of returned files live as long as our folders.

    Gradio copies each returned file into its cache and, every `frequency` s, deletes copies
    older than `age` s (by ctime, i.e. from when the result was returned); so a result stays
    downloadable for at least the TTL, and at most TTL + frequency. TTL <= 0 keeps everything.
    """
    if ttl_s <= 0:
        return None
    return (max(1, min(ttl_s, 3600)), ttl_s)


def build_demo(studio) -> gr.Blocks:
    settings = studio.settings
    with gr.Blocks(title="Text2Video-Zero Studio", analytics_enabled=False,
                   delete_cache=cache_policy(settings.outputs_ttl_s)) as demo:
        gr.Markdown(DESCRIPTION)
        if settings.preset == "tiny":
            gr.Markdown(TINY_BANNER)
        status = gr.Markdown()  # filled on page load: building the page must not import torch
        gpu_events = []
        with gr.Tabs():
            with gr.Tab("Text to video", id="text2video"):
                gpu_events += text2video.build(demo, studio)
            for kind in CONTROL_KINDS:
                with gr.Tab(controlnet.TITLES[kind], id=kind):
                    gpu_events += controlnet.build(demo, studio, kind)
            with gr.Tab("Video editing", id="edit"):
                gpu_events += edit.build(demo, studio)
            if engines.for_tab("tune"):
                with gr.Tab("Tune on a clip", id="tune"):
                    gpu_events += tune.build(demo, studio)
            with gr.Tab("Compare engines", id="compare"):
                gpu_events += compare.build(demo, studio)
        demo.load(None, None, None, js=RANGE_NOTE_JS)
        demo.load(lambda: status_line(studio), None, status, api_visibility="private")
        for event in gpu_events:  # what is loaded changes with every job
            event.then(lambda: status_line(studio), None, status, api_visibility="private")
        # While another tab's (or user's) job runs, every tab says so: the line follows the workers.
        gr.Timer(STATUS_EVERY_S).tick(lambda: status_line(studio), None, status, queue=False, show_progress="hidden",
                                      api_visibility="private")
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=len(studio.pool))
    refuse_when_full(demo, studio, settings.queue_size)
    answer_component_failures(demo)
    return demo
