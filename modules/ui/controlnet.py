"""Pose, Edge and Depth tabs: one layout, three ControlNets (what differs is `kind_options` and `OPTION_NAMES`)."""

from __future__ import annotations


import gradio as gr

from .. import engines
from ..empty_maps import GO_ON
from ..errors import UserError
from ..forms import form_values
from ..request_types import (
    DEFAULT_NEGATIVE_PROMPT,
    MAX_CANNY,
    MAX_CONDITIONING,
    MAX_GUIDANCE,
    ControlVideoRequest,
)
from ..settings import model_label
from .common import (
    ASSETS,
    Dropdown,
    PLAYER_HEIGHT,
    video_input,
    uploaded,
    fast_checkbox,
    wire_fast,
    VIDEO_TYPES,
    KIND_TABS,
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

DEFAULT_ENGINE = engines.default("control").name
TITLES = KIND_TABS
EXAMPLE_PROMPTS = {
    "pose": "an astronaut dancing in outer space",
    "edge": "a shiny golden sculpture, studio light",
    "depth": "a wooden toy on a table, warm light",
}


# What an empty map means, for the "Go on with empty maps" box (modules/empty_maps.py says when maps are empty).
NOTHING_FOUND = {"pose": "no person is found", "edge": "no edges are found", "depth": "the depth map is flat"}
OPTION_NAMES = {"pose": ("is_skeleton", "pose_hands", "pose_face"), "edge": ("canny_low", "canny_high"), "depth": ()}


def kind_options(kind: str) -> list[gr.components.Component]:
    """The widgets only one kind has, in the order its endpoint takes them (OPTION_NAMES)."""
    if kind == "edge":  # each alone offers only what validation accepts: 0 <= low < high <= 255
        return [
            Slider(label="Canny low threshold", minimum=0, maximum=MAX_CANNY - 1, step=1, value=100),
            Slider(label="Canny high threshold", minimum=1, maximum=MAX_CANNY, step=1, value=200),
        ]
    if kind == "pose":
        return [
            gr.Checkbox(label="Input is already a pose skeleton video (skip detection)", value=False),
            gr.Checkbox(label="Detect hands", value=False),
            gr.Checkbox(label="Detect face", value=False),
        ]
    return []


def examples(kind: str) -> list[list]:
    """[video, prompt] per example clip; the pose clips already are skeletons (no detection)."""
    skeleton = [True] if kind == "pose" else []
    return [[str(path), EXAMPLE_PROMPTS[kind], *skeleton] for path in sorted(ASSETS.glob(f"{kind}_*.mp4"))]


def form_from_params(settings, kind: str, data: dict, path: str) -> list:
    """The tab's generate inputs (in the endpoint's order; the video kept) from a parsed params.json.

    A control preview's params.json fills the window and the kind's options only.
    """
    mode = data.get("mode")
    is_preview = mode == "control-preview" and data["request"].get("kind") == kind
    if mode != f"{kind}2video" and not is_preview:
        raise UserError(wrong_mode_message(data, TITLES[kind]))
    r = request_from_params(ControlVideoRequest, data, settings, video_stand_in=path, preview=is_preview)
    w = r.window
    where = f"{w.start:g}–{w.end:g} s" if w.end else f"from {w.start:g} s to the end"
    filled(f"Filled the form from params.json. Upload the same video ({where} is used) and press "
            + ("Preview control." if is_preview else f"Generate (seed {r.seed}) to make the same video."))
    keep = gr.skip()
    generating = [keep] * 3 if is_preview else [r.prompt, r.negative_prompt, r.model]
    tuning = [keep] * 5 if is_preview else [r.steps, r.guidance_scale, r.conditioning_scale, r.seed, r.chunk_size]
    return [keep, *generating, w.start, w.end, w.fps, w.resolution, *tuning,
            *(getattr(r, name) for name in OPTION_NAMES[kind]),
            *([keep] * 3 if is_preview else [r.engine, r.fast, r.allow_empty_maps])]


def engine_form(settings, name: str, fast: bool = False) -> list:
    """Updates when the engine changes: its recipe for the ControlNet tabs (forms.form_values; its fast recipe's
    steps and guidance while Fast is on), the base model and chunk size shown only where it takes them, Fast
    offered only where it has few-step weights here.

    In order: model, chunk size, steps, guidance, conditioning scale, negative prompt, fast.
    """
    engine = engines.find(name) or engines.default("control")
    has_fast = engine.fast is not None and engine.fast.serves("control")
    fast = bool(fast) and has_fast
    recipe = form_values(engine, "control", settings)
    steps, guidance = recipe["steps"], recipe["guidance_scale"]
    if fast:
        steps, guidance = (engine.form_defaults("control", True)[key] for key in ("steps", "guidance_scale"))
    return [
        gr.update(visible="base_model" in engine.inputs),
        gr.update(visible="chunks" in engine.inputs),
        gr.update(value=steps),
        gr.update(value=guidance),
        gr.update(value=recipe["conditioning_scale"]),
        gr.update(value=recipe["negative_prompt"]),
        gr.update(visible=has_fast, value=fast),
    ]


def build(demo: gr.Blocks, studio, kind: str) -> list:
    settings = studio.settings
    defaults = ControlVideoRequest(kind=kind, video="", prompt="")
    models = [(model_label(model), model) for model in defaults.allowed_models(settings)]  # names shown, ids sent
    with gr.Row():
        with gr.Column():
            video_in = video_input(f"Input video ({', '.join(VIDEO_TYPES)})", settings)
            prompt = gr.Textbox(label="Prompt", lines=2, placeholder=f"{EXAMPLE_PROMPTS[kind]} (prompts work best in English)")
            engine = Dropdown(label="Engine", choices=[(e.label, e.name) for e in engines.for_tab("control")],
                                 value=DEFAULT_ENGINE)
            model = Dropdown(
                label="Base model" + (" or DreamBooth style" if kind == "edge" else ""), choices=models,
                value=models[0][1]
            )
            start, end, fps, resolution = video_window_inputs(settings)
            fast = fast_checkbox("control")
            allow_empty = gr.Checkbox(label=GO_ON, value=False,
                                      info=f"Generate even where {NOTHING_FOUND[kind]} (the video then follows the "
                                           "prompt alone)")
            options = []
            if OPTION_NAMES[kind]:  # depth (MiDaS) has no options: no accordion to open for nothing
                with gr.Accordion(f"{TITLES[kind]} detection", open=True):
                    options = kind_options(kind)
            with gr.Accordion("Advanced", open=False):
                negative_prompt = gr.Textbox(label="Negative prompt", value=DEFAULT_NEGATIVE_PROMPT, lines=2)
                with gr.Row():
                    steps = steps_slider(settings, defaults.steps)
                    guidance = Slider(label="Guidance scale", minimum=0, maximum=MAX_GUIDANCE, step=0.5, value=defaults.guidance_scale)
                with gr.Row():
                    scale = Slider(label="ControlNet conditioning scale", minimum=0, maximum=MAX_CONDITIONING, step=0.05, value=defaults.conditioning_scale)
                    chunk_size = chunk_slider(settings, defaults.chunk_size, "control")
                seed = seed_input()
            preview = gr.Button("Preview control maps")
            run, stop, estimate = run_buttons()
            load = params_upload()
        with gr.Column():
            status, video, gif, params, used_seed = output_column()
            control_video = gr.Video(label="Control maps", format=None, autoplay=True, loop=True, height=PLAYER_HEIGHT)

    def request(values: dict) -> ControlVideoRequest:
        """Raw values in: ControlVideoRequest.validate coerces and checks them (None = the default)."""
        fields = dict(
            kind=kind, video=uploaded(values["video"], "video"), prompt=values.get("prompt", ""),
            window=window(values["start"], values["end"], values["fps"], values["resolution"]),
            **{name: values[name] for name in OPTION_NAMES[kind]},
        )
        for name in ("negative_prompt", "model", "steps", "guidance_scale", "conditioning_scale", "seed", "chunk_size",
                     "engine", "fast", "allow_empty_maps"):
            if name in values:
                fields[name] = values[name]
        return ControlVideoRequest(**fields)

    def generate(values: dict):
        result = run_job(demo, studio.control_video, lambda: request(values), values["progress"], TITLES[kind])
        return (*video_outputs(result), result.control)

    def preview_control(values: dict):
        return run_job(demo, studio.control_preview, lambda: request(values), values["progress"], TITLES[kind]).video

    # Explicit signatures, so API clients see real parameter names.
    def pose2video(video, prompt, negative_prompt, model, start, end, fps, resolution, steps, guidance_scale,
                   conditioning_scale, seed, chunk_size, is_skeleton, pose_hands, pose_face, engine=DEFAULT_ENGINE,
                   fast=False, allow_empty_maps=False, progress=gr.Progress()):
        return generate(dict(locals()))

    def edge2video(video, prompt, negative_prompt, model, start, end, fps, resolution, steps, guidance_scale,
                   conditioning_scale, seed, chunk_size, canny_low, canny_high, engine=DEFAULT_ENGINE,
                   fast=False, allow_empty_maps=False, progress=gr.Progress()):
        return generate(dict(locals()))

    def depth2video(video, prompt, negative_prompt, model, start, end, fps, resolution, steps, guidance_scale,
                    conditioning_scale, seed, chunk_size, engine=DEFAULT_ENGINE, fast=False,
                    allow_empty_maps=False, progress=gr.Progress()):
        return generate(dict(locals()))

    def pose_preview(video, start, end, fps, resolution, is_skeleton, pose_hands, pose_face, progress=gr.Progress()):
        return preview_control(dict(locals()))

    def edge_preview(video, start, end, fps, resolution, canny_low, canny_high, progress=gr.Progress()):
        return preview_control(dict(locals()))

    def depth_preview(video, start, end, fps, resolution, progress=gr.Progress()):
        return preview_control(dict(locals()))

    def estimate_request(*values) -> ControlVideoRequest:
        names = ["video", "prompt", "negative_prompt", "model", "start", "end", "fps", "resolution", "steps",
                 "guidance_scale", "conditioning_scale", "seed", "chunk_size", *OPTION_NAMES[kind], "engine", "fast",
                 "allow_empty_maps"]
        form = dict(zip(names, values))
        return request({**form, "prompt": form["prompt"] or "a clip"})  # the cost does not depend on the words

    generate_fn = {"pose": pose2video, "edge": edge2video, "depth": depth2video}[kind]
    preview_fn = {"pose": pose_preview, "edge": edge_preview, "depth": depth_preview}[kind]

    inputs = [video_in, prompt, negative_prompt, model, start, end, fps, resolution, steps, guidance, scale, seed,
              chunk_size, *options, engine, fast, allow_empty]  # the endpoint's order: new ones go last
    event = wire_job(demo, studio, TITLES[kind], run, generate_fn, inputs, [video, gif, params, used_seed, control_video],
                     status=status, seed=used_seed, api_name=f"{kind}2video")
    preview_event = wire_job(demo, studio, TITLES[kind], preview, preview_fn,
                             [video_in, start, end, fps, resolution, *options], control_video, status=status,
                             api_name=f"{kind}_preview")
    wire_stop(stop, TITLES[kind], [event, preview_event])
    wire_estimate(demo, studio, estimate, inputs, estimate_request)
    wire_fast(fast, steps, guidance, settings, "control", defaults.steps, defaults.guidance_scale, engine)
    engine.change(lambda name, fast_on: engine_form(settings, name, fast_on), [engine, fast],
                  [model, chunk_size, steps, guidance, scale, negative_prompt, fast], queue=False,
                  api_visibility="private")

    load.upload(
        lambda path: load_params(path, lambda data: form_from_params(settings, kind, data, path), len(inputs)),
        load, [*inputs, load, status], api_name=f"load_{kind}_params", api_visibility="private",
    )
    if examples(kind):
        gr.Examples(examples(kind), [video_in, prompt, *options[:1]] if kind == "pose" else [video_in, prompt])
    return [event, preview_event]
