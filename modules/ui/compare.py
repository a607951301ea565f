"""Compare tab: one prompt and one seed through each chosen engine, side by side (Studio.compare)."""

from __future__ import annotations

from dataclasses import asdict

import gradio as gr

from ..request_types import ENGINE_LABELS, ENGINES, MAX_FPS, MODELSCOPE_NOTICE, SIZE_MULTIPLE, CompareRequest
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
    settings = studio.settings
    limits = settings.limits
    low, _ = side_bounds(settings)
    side = min(max(settings.default_resolution, low), side_maximum(settings, settings.default_resolution))
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(label="Prompt", placeholder="a corgi running on a beach", lines=2)
            engines = gr.CheckboxGroup(label="Engines", choices=[(ENGINE_LABELS[e], e) for e in ENGINES],
                                       value=list(ENGINES))
            gr.Markdown(MODELSCOPE_NOTICE)
            model = gr.Dropdown(label="SD 1.5 base (zero-shot and AnimateDiff)", choices=list(settings.base_models),
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
                        slots[name] = (gr.Video(label=ENGINE_LABELS[name], format=None, loop=True),
                                       gr.Button(f"Stop {name}", size="sm"), gr.State())
            videos = gr.File(label="Each engine's own video", file_count="multiple")
            timings = gr.JSON(label="Seconds per engine")
            used_seed = gr.Number(label="Seed used", precision=0, interactive=False)
    prepared = gr.State()  # the validated request (seed fixed) every engine's job runs

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
        request = answer(lambda: studio.prepare_compare(request_of(*values)))
        cleared = [None] * (2 * len(ENGINES))  # each slot's video and run
        return [asdict(request), None, None, None, request.seed, *cleared]

    def run_engine(name: str):
        def run(prepared_request, progress=gr.Progress()):
            if not prepared_request or name not in prepared_request["engines"]:
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
    chain = run.click(prepare, inputs, [prepared, video, videos, timings, used_seed, *slot_outputs],
                      queue=False, api_visibility="private")
    events = []
    for name in ENGINES:  # separate queue entries on the shared worker, one after the other
        slot_video, slot_stop, slot_run = slots[name]
        chain = chain.then(run_engine(name), prepared, [slot_video, slot_run], api_visibility="private",
                           **gpu_options(studio))
        slot_stop.click(None, cancels=[chain])
        events.append(chain)
    final = chain.then(combine, [prepared, *(slots[name][2] for name in ENGINES)], [video, videos, timings, used_seed],
                       api_visibility="private")
    stop.click(None, cancels=[*events, final, api_event])
    return [api_event, *events]
