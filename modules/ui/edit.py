"""Video editing tab (Instruct-Pix2Pix): widgets and one event wired to Studio.edit_video."""

from __future__ import annotations


import gradio as gr

from ..engine import SCHEDULER_NAMES
from ..errors import UserError
from ..request_types import MAX_GUIDANCE, MAX_IMAGE_GUIDANCE, EditVideoRequest
from .common import (
    ASSETS,
    Dropdown,
    video_input,
    uploaded,
    fast_checkbox,
    wire_fast,
    VIDEO_TYPES,
    Slider,
    chunk_slider,
    output_column,
    params_upload,
    run_buttons,
    seed_input,
    steps_slider,
    video_window_inputs,
    window,
)
from .running import wire_estimate, wire_job, wire_stop, run_job, video_outputs
from .params_files import filled, load_params, request_from_params, wrong_mode_message

EXAMPLE_PROMPTS = ["make it a snowy winter night", "make it look like a Van Gogh painting"]
TAB = "Video editing"


def form_from_params(settings, data: dict, path: str) -> list:
    """The tab's input values (in the endpoint's order; the video kept) from a parsed params.json."""
    if data.get("mode") != "edit":
        raise UserError(wrong_mode_message(data, TAB))
    r = request_from_params(EditVideoRequest, data, settings, video_stand_in=path)
    w = r.window
    where = f"{w.start:g}–{w.end:g} s" if w.end else f"from {w.start:g} s to the end"
    filled(f"Filled the form from params.json. Upload the same video ({where} is used) and press Generate "
            f"(seed {r.seed}) to make the same video.")
    return [gr.skip(), r.prompt, r.negative_prompt, r.image_guidance_scale, r.guidance_scale, r.steps,
            r.scheduler, r.seed, w.start, w.end, w.fps, w.resolution, r.chunk_size, r.fast]


def build(demo: gr.Blocks, studio) -> list:
    settings = studio.settings
    defaults = EditVideoRequest(video="", prompt="")
    with gr.Row():
        with gr.Column():
            video_in = video_input(f"Input video ({', '.join(VIDEO_TYPES)})", settings)
            prompt = gr.Textbox(label="Instruction", lines=2,
                                placeholder="make it Van Gogh Starry Night style (instructions work best in English)")
            image_guidance = Slider(label="Image guidance (higher = closer to the input)", minimum=0,
                                    maximum=MAX_IMAGE_GUIDANCE, step=0.05, value=defaults.image_guidance_scale)
            start, end, fps, resolution = video_window_inputs(settings)
            fast = fast_checkbox("edit")
            with gr.Accordion("Advanced", open=False):
                negative_prompt = gr.Textbox(label="Negative prompt", value=defaults.negative_prompt, lines=2)
                with gr.Row():
                    steps = steps_slider(settings, defaults.steps)
                    guidance = Slider(label="Guidance scale (text)", minimum=0, maximum=MAX_GUIDANCE, step=0.5, value=defaults.guidance_scale)
                with gr.Row():
                    scheduler = Dropdown(label="Scheduler", choices=list(SCHEDULER_NAMES), value=defaults.scheduler)
                    chunk_size = chunk_slider(settings, defaults.chunk_size, "edit")
                seed = seed_input()
            run, stop, estimate = run_buttons()
            load = params_upload()
        with gr.Column():
            status, video, gif, params, used_seed = output_column()

    def request_of(video, prompt, negative_prompt, image_guidance_scale, guidance_scale, steps, scheduler, seed,
                   start, end, fps, resolution, chunk_size, fast) -> EditVideoRequest:
        """Raw values: validate() coerces and checks them."""
        return EditVideoRequest(
            video=uploaded(video, "video"), prompt=prompt, negative_prompt=negative_prompt, steps=steps,
            guidance_scale=guidance_scale, image_guidance_scale=image_guidance_scale, scheduler=scheduler, seed=seed,
            chunk_size=chunk_size, window=window(start, end, fps, resolution), fast=fast,
        )

    def edit_video(video, prompt, negative_prompt, image_guidance_scale, guidance_scale, steps, scheduler,
                   seed, start, end, fps, resolution, chunk_size, fast=False, progress=gr.Progress()):
        def request() -> EditVideoRequest:
            return request_of(video, prompt, negative_prompt, image_guidance_scale, guidance_scale, steps, scheduler,
                              seed, start, end, fps, resolution, chunk_size, fast)

        return video_outputs(run_job(demo, studio.edit_video, request, progress, TAB))

    def estimate_request(video, prompt, *values) -> EditVideoRequest:
        """The cost does not depend on the words: a form without an instruction yet has an estimate too."""
        return request_of(video, prompt or "a clip", *values)

    inputs = [video_in, prompt, negative_prompt, image_guidance, guidance, steps, scheduler, seed, start, end, fps,
              resolution, chunk_size, fast]
    event = wire_job(demo, studio, TAB, run, edit_video, inputs, [video, gif, params, used_seed], status=status,
                     seed=used_seed, api_name="edit_video")
    wire_stop(stop, TAB, [event])
    wire_estimate(demo, studio, estimate, inputs, estimate_request)
    wire_fast(fast, steps, guidance, settings, "edit", defaults.steps, defaults.guidance_scale)

    load.upload(
        lambda path: load_params(path, lambda data: form_from_params(settings, data, path), len(inputs)),
        load, [*inputs, load, status], api_name="load_edit_params", api_visibility="private",
    )
    clips = sorted(ASSETS.glob("edit_*.mp4"))
    if clips:
        gr.Examples([[str(p), EXAMPLE_PROMPTS[i % len(EXAMPLE_PROMPTS)]] for i, p in enumerate(clips)], [video_in, prompt])
    return [event]
