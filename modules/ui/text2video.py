"""Text-to-video tab: lays out the widgets and wires one event to Studio.text2video.

Width and height: each slider's maximum is what fits the server's pixel cap with the other side
(`side_maximum`), updated as the other one moves, so the page never offers a size that
validation refuses (1024x512 is offered; 1024x1024 is not, with the default 768x768 cap).
"""

from __future__ import annotations

from dataclasses import replace

import gradio as gr

from .. import engines
from ..errors import UserError
from ..forms import frame_cap, form_values
from ..request_types import (
    DEFAULT_NEGATIVE_PROMPT,
    MAX_FPS,
    MAX_GUIDANCE,
    MAX_MOTION,
    SIZE_MULTIPLE,
    Text2VideoRequest,
)
from ..forms import side_bounds, side_maximum
from .common import (
    Dropdown,
    Image,
    uploaded,
    fast_checkbox,
    wire_fast,
    Number,
    Slider,
    chunk_slider,
    output_column,
    params_upload,
    run_buttons,
    seed_input,
    steps_slider,
)
from .running import run_job, video_outputs, wire_estimate, wire_job, wire_stop
from .params_files import filled, load_params, request_from_params, wrong_mode_message

EXAMPLES = [  # prompts only: every engine takes a prompt, not every engine a motion
    ["an astronaut riding a horse on the moon"],
    ["a panda playing guitar on times square"],
    ["a sailing boat on a stormy sea, oil painting"],
]
TAB = "Text to video"
DEFAULT_ENGINE = engines.default("text2video").name


def fitted_side(settings, value, other) -> dict:
    """A size slider's update after the other side changed: its maximum, and its value kept under it."""
    maximum = side_maximum(settings, other)
    try:
        value = min(int(value), maximum)
    except (TypeError, ValueError):
        value = maximum
    return gr.update(maximum=maximum, value=value)


def form_from_params(settings, data: dict) -> list:
    """The tab's input values (in the endpoint's order) from a parsed params.json, checked."""
    if engines.mode_tab(data.get("mode")) != "text2video":
        raise UserError(wrong_mode_message(data, TAB))
    r = request_from_params(Text2VideoRequest, data, settings)
    filled(f"Filled the form from params.json (seed {r.seed}); press Generate to make the same video.")
    return [r.prompt, r.negative_prompt, r.model, r.num_frames,
            gr.update(value=r.width, maximum=side_maximum(settings, r.height)),
            gr.update(value=r.height, maximum=side_maximum(settings, r.width)),
            r.steps, r.guidance_scale, r.motion_x, r.motion_y, r.t0, r.t1, r.seed, r.chunk_size, r.fps, r.engine,
            gr.skip(), r.fast]  # the first-frame image is not in params.json's folder: upload it again


def engine_form(settings, name: str, fast: bool = False) -> list:
    """Updates when the engine changes: only the inputs it takes shown, its published recipe set
    (forms.form_values; its fast recipe's steps and guidance while Fast is on; an engine without one turns
    Fast off), the frame slider up to its cap.

    In order: model, motion x, motion y, t0, t1, chunk size, first frame, steps, guidance, width, height,
    notice, fast, frames, fps, negative prompt.
    """
    engine = engines.find(name) or engines.default("text2video")
    fast = bool(fast) and engine.fast is not None
    defaults = engine.form_defaults("text2video", fast)
    recipe = form_values(engine, "text2video", settings)
    width, height = recipe["width"], recipe["height"]
    step = max(SIZE_MULTIPLE, engine.rules.size_multiple)  # the sliders offer only sizes the engine takes
    motion = "motion" in engine.inputs
    return [
        gr.update(visible="base_model" in engine.inputs),
        *(gr.update(visible=motion) for _ in range(4)),
        gr.update(visible="chunks" in engine.inputs),
        # A hidden image would still be sent and refused ("clear the image") where the user can't see it.
        gr.update(visible=True) if "image" in engine.inputs else gr.update(visible=False, value=None),
        gr.update(value=defaults["steps"] if fast else recipe["steps"]),
        gr.update(value=defaults["guidance_scale"]),
        gr.update(value=width, step=step, maximum=side_maximum(settings, height)),
        gr.update(value=height, step=step, maximum=side_maximum(settings, width)),
        gr.update(visible=bool(engine.notice), value=engine.notice),
        gr.update(visible=engine.fast is not None, value=fast),
        gr.update(value=recipe["num_frames"], maximum=frame_cap(engine, "text2video", settings)),
        gr.update(value=recipe["fps"]),
        gr.update(value=recipe["negative_prompt"]),
    ]


def build(demo: gr.Blocks, studio) -> list:
    settings = studio.settings
    limits = settings.limits
    defaults = Text2VideoRequest(prompt="")
    low, high = side_bounds(settings)
    side = min(max(settings.default_resolution, low), side_maximum(settings, settings.default_resolution))
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(
                label="Prompt", lines=2,
                placeholder="a horse galloping on a street (or a storyboard, one line per key frame: 0: a cat sleeping / "
                            "16: the cat wakes up). Prompts work best in English.",
            )
            engine = Dropdown(label="Engine", choices=[(e.label, e.name) for e in engines.for_tab("text2video")],
                                 value=DEFAULT_ENGINE)
            notice = gr.Markdown(engines.get(DEFAULT_ENGINE).notice, visible=bool(engines.get(DEFAULT_ENGINE).notice))
            first_frame = Image(label="First frame (optional): the clip starts from this picture; a lower t1 keeps more of it",
                                type="filepath", sources=["upload"], height=160)
            model = Dropdown(label="Base model", choices=list(settings.base_models), value=settings.default_base_model)
            with gr.Row():
                num_frames = Slider(label="Frames", minimum=1, step=1, value=defaults.num_frames,
                                    maximum=frame_cap(engines.get(DEFAULT_ENGINE), "text2video", settings))
                fps = Slider(label="FPS", minimum=1, maximum=MAX_FPS, step=1, value=defaults.fps)
            with gr.Row():
                motion_x = Slider(label="Motion δx", minimum=-MAX_MOTION, maximum=MAX_MOTION, step=1, value=defaults.motion_x)
                motion_y = Slider(label="Motion δy", minimum=-MAX_MOTION, maximum=MAX_MOTION, step=1, value=defaults.motion_y)
            fast = fast_checkbox("text2video")
            with gr.Accordion("Advanced", open=False):
                negative_prompt = gr.Textbox(label="Negative prompt", value=DEFAULT_NEGATIVE_PROMPT, lines=2)
                with gr.Row():
                    width = Slider(label="Width", minimum=low, maximum=side_maximum(settings, side), step=SIZE_MULTIPLE, value=side)
                    height = Slider(label="Height", minimum=low, maximum=side_maximum(settings, side), step=SIZE_MULTIPLE, value=side)
                with gr.Row():
                    steps = steps_slider(settings, defaults.steps, minimum=2)  # the schedule needs 2 (Fast: its own)
                    guidance = Slider(label="Guidance scale", minimum=0, maximum=MAX_GUIDANCE, step=0.5, value=defaults.guidance_scale)
                with gr.Row():
                    t0 = Number(label="t0 (-1 = 44 of 50, scaled)", value=-1, precision=0, minimum=-1, maximum=limits.max_steps)
                    t1 = Number(label="t1 (-1 = 47 of 50, scaled)", value=-1, precision=0, minimum=-1, maximum=limits.max_steps)
                with gr.Row():
                    seed = seed_input()
                    chunk_size = chunk_slider(settings, defaults.chunk_size, "text2video")
            run, stop, estimate = run_buttons()
            load = params_upload()
        with gr.Column():
            status, video, gif, params, used_seed = output_column()

    def request_of(prompt, negative_prompt, model, num_frames, width, height, steps, guidance_scale, motion_x,
                   motion_y, t0, t1, seed, chunk_size, fps, engine, image, fast) -> Text2VideoRequest:
        """Raw values: validate() coerces and checks them."""
        return Text2VideoRequest(
            prompt=prompt, negative_prompt=negative_prompt, model=model, num_frames=num_frames, width=width,
            height=height, steps=steps, guidance_scale=guidance_scale, motion_x=motion_x, motion_y=motion_y,
            t0=t0, t1=t1, seed=seed, chunk_size=chunk_size, fps=fps, engine=engine,
            image=uploaded(image, "first-frame image"), fast=fast,
        )

    def text2video(prompt, negative_prompt, model, num_frames, width, height, steps, guidance_scale,
                   motion_x, motion_y, t0, t1, seed, chunk_size, fps, engine=DEFAULT_ENGINE, image=None,
                   fast=False, progress=gr.Progress()):
        def request() -> Text2VideoRequest:
            return request_of(prompt, negative_prompt, model, num_frames, width, height, steps, guidance_scale,
                              motion_x, motion_y, t0, t1, seed, chunk_size, fps, engine, image, fast)

        return video_outputs(run_job(demo, studio.text2video, request, progress, TAB))

    def estimate_request(prompt, *values) -> Text2VideoRequest:
        """The cost does not depend on the words: a form without a prompt yet has an estimate too."""
        return replace(request_of(prompt or "a clip", *values), image=None)

    inputs = [prompt, negative_prompt, model, num_frames, width, height, steps, guidance, motion_x, motion_y,
              t0, t1, seed, chunk_size, fps, engine, first_frame, fast]
    event = wire_job(demo, studio, TAB, run, text2video, inputs, [video, gif, params, used_seed], status=status,
                     seed=used_seed, api_name="text2video")
    wire_stop(stop, TAB, [event])
    wire_estimate(demo, studio, estimate, inputs, estimate_request)
    wire_fast(fast, steps, guidance, settings, "text2video", defaults.steps, defaults.guidance_scale, engine)
    engine.change(lambda name, fast_on: engine_form(settings, name, fast_on), [engine, fast],
                  [model, motion_x, motion_y, t0, t1, chunk_size, first_frame, steps, guidance, width, height, notice,
                   fast, num_frames, fps, negative_prompt],
                  queue=False, api_visibility="private")

    # Each side's maximum follows the other, so that width x height always fits max_pixels.
    width.input(lambda w, h: fitted_side(settings, h, w), [width, height], height, queue=False, api_visibility="private")
    height.input(lambda w, h: fitted_side(settings, w, h), [width, height], width, queue=False, api_visibility="private")

    load.upload(
        lambda path: load_params(path, lambda data: form_from_params(settings, data), len(inputs)),
        load, [*inputs, load, status], api_name="load_text2video_params", api_visibility="private",
    )
    gr.Examples(EXAMPLES, [prompt])
    return [event]
