"""Video editing tab (Instruct-Pix2Pix): widgets and one event wired to Studio.edit_video."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from ..engine import SCHEDULER_NAMES
from ..request_types import MAX_GUIDANCE, EditVideoRequest
from .common import gpu_options, VIDEO_TYPES, output_column, run_buttons, run_job, seed_input, video_outputs, video_window_inputs, window

ASSETS = Path(__file__).resolve().parents[2] / "assets"
EXAMPLE_PROMPTS = ["make it a snowy winter night", "make it look like a Van Gogh painting"]


def build(demo: gr.Blocks, studio) -> list:
    settings = studio.settings
    limits = settings.limits
    defaults = EditVideoRequest(video="", prompt="")
    with gr.Row():
        with gr.Column():
            video_in = gr.Video(label=f"Input video ({', '.join(VIDEO_TYPES)})", sources=["upload"], format=None)
            prompt = gr.Textbox(label="Instruction", placeholder="make it Van Gogh Starry Night style", lines=2)
            image_guidance = gr.Slider(label="Image guidance (higher = closer to the input)", minimum=0, maximum=5, step=0.05, value=defaults.image_guidance_scale)
            start, end, fps, resolution = video_window_inputs(settings)
            with gr.Accordion("Advanced", open=False):
                negative_prompt = gr.Textbox(label="Negative prompt", value=defaults.negative_prompt, lines=2)
                with gr.Row():
                    steps = gr.Slider(label="Steps", minimum=1, maximum=limits.max_steps, step=1, value=settings.default_steps(defaults.steps))
                    guidance = gr.Slider(label="Guidance scale (text)", minimum=0, maximum=MAX_GUIDANCE, step=0.5, value=defaults.guidance_scale)
                with gr.Row():
                    scheduler = gr.Dropdown(label="Scheduler", choices=list(SCHEDULER_NAMES), value=defaults.scheduler)
                    chunk_size = gr.Slider(label="Chunk size (frames per pass)", minimum=2, maximum=limits.max_frames, step=1, value=defaults.chunk_size)
                seed = seed_input()
            run, stop = run_buttons()
        with gr.Column():
            video, gif, params, used_seed = output_column()

    def edit_video(video, prompt, negative_prompt, image_guidance_scale, guidance_scale, steps, scheduler,
                   seed, start, end, fps, resolution, chunk_size, progress=gr.Progress()):
        request = EditVideoRequest(
            video=video or "", prompt=prompt, negative_prompt=negative_prompt, steps=int(steps),
            guidance_scale=float(guidance_scale), image_guidance_scale=float(image_guidance_scale),
            scheduler=scheduler, seed=int(seed), chunk_size=int(chunk_size),
            window=window(start, end, fps, resolution),
        )
        return video_outputs(run_job(demo, studio.edit_video, request, progress))

    inputs = [video_in, prompt, negative_prompt, image_guidance, guidance, steps, scheduler, seed, start, end, fps,
              resolution, chunk_size]
    event = run.click(edit_video, inputs, [video, gif, params, used_seed], api_name="edit_video", **gpu_options(studio))
    stop.click(None, cancels=[event])
    clips = sorted(ASSETS.glob("edit_*.mp4"))
    if clips:
        gr.Examples([[str(p), EXAMPLE_PROMPTS[i % len(EXAMPLE_PROMPTS)]] for i, p in enumerate(clips)], [video_in, prompt])
    return [event]
