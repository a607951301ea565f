"""The page: one tab per mode, all sharing one Studio (one worker, one model manager)."""

from __future__ import annotations

import gradio as gr

from .. import engines
from ..request_types import CONTROL_KINDS
from . import compare, controlnet, edit, text2video, tune
from .common import GIF_ROUTE_JS, RANGE_NOTE_JS, server_details, status_summary
from .inputs import answer_component_failures
from .queue import refuse_when_full

TITLE = "Text2Video-Zero Studio"


def description() -> str:
    """The header: what the studio does today, in two sentences read from the registry (engines and their tabs)."""
    def by(tab: str) -> str:
        titles = [e.title for e in engines.for_tab(tab)]
        return titles[0] if len(titles) == 1 else f"{', '.join(titles[:-1])} or {titles[-1]}"

    uses = [f"from text ({by('text2video')})"]
    if engines.for_tab("control"):
        uses.append(f"following a pose, edge or depth video ({by('control')})")
    if engines.for_tab("edit"):
        uses.append(f"by editing a clip with an instruction ({by('edit')})")
    if engines.for_tab("tune"):
        uses.append(f"from a model tuned on one clip ({by('tune')})")
    made = uses[0] if len(uses) == 1 else f"{', '.join(uses[:-1])}, or {uses[-1]}"
    return (f"# {TITLE}\nMake short videos {made}; **Compare engines** runs one prompt through several. "
            "Every tab shares one worker: jobs queue, show their progress, and end on **Stop**.")


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
    with gr.Blocks(title=TITLE, analytics_enabled=False,
                   delete_cache=cache_policy(settings.outputs_ttl_s)) as demo:
        gr.Markdown(description())
        if settings.preset == "tiny":
            gr.Markdown(TINY_BANNER)
        # One plain line (filled on page load: building the page must not import torch); details behind a click.
        status = gr.Markdown(elem_id="status-line")
        with gr.Accordion("Server details", open=False):
            details = gr.Markdown()
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
        demo.load(None, None, None, js=GIF_ROUTE_JS)

        def line_and_details():
            return status_summary(studio), server_details(studio)

        demo.load(line_and_details, None, [status, details], api_visibility="private")
        for event in gpu_events:  # what is loaded changes with every job
            event.then(line_and_details, None, [status, details], api_visibility="private")
        # While another tab's (or user's) job runs, every tab says so: the line follows the workers.
        gr.Timer(STATUS_EVERY_S).tick(line_and_details, None, [status, details], queue=False, show_progress="hidden",
                                      api_visibility="private")
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=len(studio.pool))
    refuse_when_full(demo, studio, settings.queue_size)
    answer_component_failures(demo)
    return demo
