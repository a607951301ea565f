"""Text-to-video tab: lays out the widgets and wires one event to Studio.text2video."""

from __future__ import annotations

import gradio as gr

from ..request_types import DEFAULT_NEGATIVE_PROMPT, MAX_FPS, MAX_GUIDANCE, MAX_MOTION, Text2VideoRequest
from .common import gpu_options, output_column, run_buttons, run_job, seed_input, video_outputs

EXAMPLES = [
    ["an astronaut riding a horse on the moon", 12, 12],
    ["a panda playing guitar on times square", 12, 0],
    ["a sailing boat on a stormy sea, oil painting", -8, 4],
]


def build(demo: gr.Blocks, studio) -> list:
    settings = studio.settings
    limits = settings.limits
    defaults = Text2VideoRequest(prompt="")
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(label="Prompt", placeholder="a horse galloping on a street", lines=2)
            model = gr.Dropdown(label="Base model", choices=list(settings.base_models), value=settings.default_base_model)
            with gr.Row():
                num_frames = gr.Slider(label="Frames", minimum=1, maximum=limits.max_frames, step=1, value=defaults.num_frames)
                fps = gr.Slider(label="FPS", minimum=1, maximum=MAX_FPS, step=1, value=defaults.fps)
            with gr.Row():
                motion_x = gr.Slider(label="Motion δx", minimum=-MAX_MOTION, maximum=MAX_MOTION, step=1, value=defaults.motion_x)
                motion_y = gr.Slider(label="Motion δy", minimum=-MAX_MOTION, maximum=MAX_MOTION, step=1, value=defaults.motion_y)
            with gr.Accordion("Advanced", open=False):
                negative_prompt = gr.Textbox(label="Negative prompt", value=DEFAULT_NEGATIVE_PROMPT, lines=2)
                with gr.Row():
                    width = gr.Slider(label="Width", minimum=limits.min_side, maximum=limits.max_side, step=8, value=settings.default_resolution)
                    height = gr.Slider(label="Height", minimum=limits.min_side, maximum=limits.max_side, step=8, value=settings.default_resolution)
                with gr.Row():
                    steps = gr.Slider(label="Steps (DDIM)", minimum=2, maximum=limits.max_steps, step=1, value=settings.default_steps(defaults.steps))
                    guidance = gr.Slider(label="Guidance scale", minimum=0, maximum=MAX_GUIDANCE, step=0.5, value=defaults.guidance_scale)
                with gr.Row():
                    t0 = gr.Number(label="t0 (-1 = 44 of 50, scaled)", value=-1, precision=0, minimum=-1)
                    t1 = gr.Number(label="t1 (-1 = 47 of 50, scaled)", value=-1, precision=0, minimum=-1)
                with gr.Row():
                    seed = seed_input()
                    chunk_size = gr.Slider(label="Chunk size (frames per pass)", minimum=2, maximum=limits.max_frames, step=1, value=defaults.chunk_size)
            run, stop = run_buttons()
        with gr.Column():
            video, gif, params, used_seed = output_column()

    def text2video(prompt, negative_prompt, model, num_frames, width, height, steps, guidance_scale,
                   motion_x, motion_y, t0, t1, seed, chunk_size, fps, progress=gr.Progress()):
        request = Text2VideoRequest(
            prompt=prompt, negative_prompt=negative_prompt, model=model, num_frames=int(num_frames),
            width=int(width), height=int(height), steps=int(steps), guidance_scale=float(guidance_scale),
            motion_x=float(motion_x), motion_y=float(motion_y), t0=int(t0), t1=int(t1), seed=int(seed),
            chunk_size=int(chunk_size), fps=float(fps),
        )
        return video_outputs(run_job(demo, studio.text2video, request, progress))

    inputs = [prompt, negative_prompt, model, num_frames, width, height, steps, guidance, motion_x, motion_y,
              t0, t1, seed, chunk_size, fps]
    event = run.click(text2video, inputs, [video, gif, params, used_seed], api_name="text2video", **gpu_options(studio))
    stop.click(None, cancels=[event])
    gr.Examples(EXAMPLES, [prompt, motion_x, motion_y])
    return [event]
