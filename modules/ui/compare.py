"""Compare tab: one prompt and one seed through each chosen engine, side by side (Studio.compare)."""

from __future__ import annotations

import time
from dataclasses import asdict

import gradio as gr

from .. import engines as registry
from ..request_types import MAX_FPS, SIZE_MULTIPLE, CompareRequest
from .common import (
    Number,
    Slider,
    gpu_options,
    gradio_errors,
    gradio_job_control,
    seed_input,
    side_bounds,
    side_maximum,
)


def build(demo: gr.Blocks, studio) -> list:
    ENGINES = registry.names("text2video")  # noqa: N806 - the offered engines, fixed for the page
    LABELS = {e.name: e.label for e in registry.for_tab("text2video")}  # noqa: N806
    notices = [e.notice for e in registry.for_tab("text2video") if e.notice]
    on_base = [e.title for e in registry.for_tab("text2video") if "base_model" in e.inputs]
    settings = studio.settings
    limits = settings.limits
    low, _ = side_bounds(settings)
    side = min(max(settings.default_resolution, low), side_maximum(settings, settings.default_resolution))
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(label="Prompt", placeholder="a corgi running on a beach", lines=2)
            engines = gr.CheckboxGroup(label="Engines", choices=[(LABELS[e], e) for e in ENGINES], value=list(ENGINES))
            for notice in notices:
                gr.Markdown(notice)
            model = gr.Dropdown(label=f"SD 1.5 base ({' and '.join(on_base)})", choices=list(settings.base_models),
                                value=settings.default_base_model)
            with gr.Row():
                num_frames = Slider(label="Frames", minimum=1, maximum=limits.max_frames, step=1, value=min(8, limits.max_frames))
                fps = Slider(label="FPS", minimum=1, maximum=MAX_FPS, step=1, value=4)
            with gr.Accordion("Advanced", open=False):
                negative_prompt = gr.Textbox(label="Negative prompt", value="", lines=2)
                with gr.Row():
                    width = Slider(label="Width", minimum=low, maximum=side_maximum(settings, side), step=SIZE_MULTIPLE, value=side)
                    height = Slider(label="Height", minimum=low, maximum=side_maximum(settings, side), step=SIZE_MULTIPLE, value=side)
                steps = Number(label="Steps (0 = each engine's default)", value=0, precision=0, minimum=0, maximum=limits.max_steps)
                seed = seed_input()
            with gr.Row():
                run = gr.Button("Compare", variant="primary")
                stop = gr.Button("Stop all", variant="stop")
            api_trigger = gr.Button("compare (API)", visible=False)  # /compare: the whole comparison in one call
        with gr.Column():
            video = gr.Video(label="Side by side (seconds per engine in the labels)", format=None, autoplay=True, loop=True)
            slots = {}
            with gr.Row():
                for name in ENGINES:  # one queued job per engine: its own progress here, its own Stop
                    with gr.Column(min_width=160):
                        slots[name] = (gr.Video(label=LABELS[name], format=None, loop=True),
                                       gr.Button(f"Stop {name}", size="sm"), gr.State())
            videos = gr.File(label="Each engine's own video", file_count="multiple")
            timings = gr.JSON(label="Seconds per engine")
            used_seed = gr.Number(label="Seed used", precision=0, interactive=False)
    prepared = gr.State()  # the validated request (seed fixed) every engine's job runs
    # Stop: the frontend cancels only jobs it has already queued, so a Stop pressed earlier (while the
    # click is prepared, or before the chain reaches that engine) is also kept here and read when the
    # engine's turn comes: an engine whose Stop was pressed after its Compare click is skipped.
    pressed_at = gr.State()  # when this Compare was clicked (time.monotonic())
    stopped_at = gr.State({})  # engine -> when its Stop (or Stop all) was last pressed

    def request_of(prompt, engines, negative_prompt, model, num_frames, width, height, steps, seed, fps):
        return CompareRequest(prompt=prompt, engines=engines, negative_prompt=negative_prompt, model=model,
                              num_frames=num_frames, width=width, height=height, steps=steps, seed=seed, fps=fps)

    def answer(run):
        """Run one Studio call; our errors as sentences on the page or to the client."""
        with gradio_errors("comparing the engines"):
            return run()

    def outputs_of(result) -> tuple:
        seconds = {name: info["seconds"] for name, info in result.engines.items()}
        return result.video, [info["video"] for info in result.engines.values()], seconds, result.seed

    def compare(prompt, engines, negative_prompt, model, num_frames, width, height, steps, seed, fps,
                progress=gr.Progress()):
        request = request_of(prompt, engines, negative_prompt, model, num_frames, width, height, steps, seed, fps)
        return outputs_of(answer(lambda: studio.compare(request, gradio_job_control(demo, progress))))

    def prepare(*values):
        pressed = time.monotonic()  # first thing: a Stop pressed after this click counts for this run
        request = answer(lambda: studio.prepare_compare(request_of(*values)))
        cleared = [None] * (2 * len(ENGINES))  # each slot's video and run
        return [asdict(request), pressed, None, None, None, request.seed, *cleared]

    def press_stop(names):
        def press(stopped):
            stopped.update(dict.fromkeys(names, time.monotonic()))  # in place: two Stops at once both count
            return stopped

        return press

    def is_stopped(name, pressed, stopped) -> bool:
        return pressed is not None and stopped.get(name, float("-inf")) >= pressed

    def run_engine(name: str):
        def run(prepared_request, pressed, stopped, progress=gr.Progress()):
            if not prepared_request or name not in prepared_request["engines"] or is_stopped(name, pressed, stopped):
                return gr.skip(), gr.skip()
            request = CompareRequest(**{**prepared_request, "engines": tuple(prepared_request["engines"])})
            run = answer(lambda: studio.compare_engine(request, name, gradio_job_control(demo, progress)))
            return run["video"], run

        return run

    def combine(prepared_request, *runs):
        done = {name: run for name, run in zip(ENGINES, runs) if run and prepared_request and name in prepared_request["engines"]}
        if not done:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        request = CompareRequest(**{**prepared_request, "engines": tuple(done)})
        return outputs_of(answer(lambda: studio.combine_compare(request, done)))

    inputs = [prompt, engines, negative_prompt, model, num_frames, width, height, steps, seed, fps]
    api_event = api_trigger.click(compare, inputs, [video, videos, timings, used_seed], api_name="compare",
                                  **gpu_options(studio))
    slot_outputs = [component for name in ENGINES for component in (slots[name][0], slots[name][2])]
    chain = run.click(prepare, inputs, [prepared, pressed_at, video, videos, timings, used_seed, *slot_outputs],
                      queue=False, api_visibility="private")
    events = []
    for name in ENGINES:  # separate queue entries on the shared worker, one after the other
        slot_video, slot_stop, slot_run = slots[name]
        chain = chain.then(run_engine(name), [prepared, pressed_at, stopped_at], [slot_video, slot_run],
                           api_visibility="private", **gpu_options(studio))
        slot_stop.click(press_stop([name]), stopped_at, stopped_at, queue=False, api_visibility="private",
                        cancels=[chain])
        events.append(chain)
    final = chain.then(combine, [prepared, *(slots[name][2] for name in ENGINES)], [video, videos, timings, used_seed],
                       api_visibility="private")
    stop.click(press_stop(ENGINES), stopped_at, stopped_at, queue=False, api_visibility="private",
               cancels=[*events, final, api_event])
    return [api_event, *events]
