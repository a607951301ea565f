"""Compare tab: one prompt and one seed through each chosen engine, side by side (Studio.compare)."""

from __future__ import annotations

import gradio as gr

from ..errors import UserError
from ..request_types import ENGINE_LABELS, ENGINES, MAX_FPS, MODELSCOPE_NOTICE, SIZE_MULTIPLE, CompareRequest
from ..worker import Cancelled
from ..studio import user_errors
from .common import STOPPED, Number, Slider, gpu_options, gradio_job_control, seed_input, side_bounds, side_maximum


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
                stop = gr.Button("Stop", variant="stop")
        with gr.Column():
            video = gr.Video(label="Side by side (seconds per engine in the labels)", format=None, autoplay=True, loop=True)
            videos = gr.File(label="Each engine's own video", file_count="multiple")
            timings = gr.JSON(label="Seconds per engine")
            used_seed = gr.Number(label="Seed used", precision=0, interactive=False)

    def compare(prompt, engines, negative_prompt, model, num_frames, width, height, steps, seed, fps,
                progress=gr.Progress()):
        try:
            with user_errors("comparing the engines"):
                request = CompareRequest(prompt=prompt, engines=engines, negative_prompt=negative_prompt, model=model,
                                         num_frames=num_frames, width=width, height=height, steps=steps, seed=seed,
                                         fps=fps)
                result = studio.compare(request, gradio_job_control(demo, progress))
        except UserError as error:
            raise gr.Error(str(error), print_exception=False) from error
        except Cancelled as error:
            raise gr.Error(STOPPED, print_exception=False) from error
        seconds = {name: info["seconds"] for name, info in result.engines.items()}
        return result.video, [info["video"] for info in result.engines.values()], seconds, result.seed

    inputs = [prompt, engines, negative_prompt, model, num_frames, width, height, steps, seed, fps]
    event = run.click(compare, inputs, [video, videos, timings, used_seed], api_name="compare", **gpu_options(studio))
    stop.click(None, cancels=[event])
    return [event]
