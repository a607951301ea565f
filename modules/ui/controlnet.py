"""Pose, Edge and Depth tabs: one layout, three ControlNets (what differs is `KIND_OPTIONS`)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from ..request_types import DEFAULT_NEGATIVE_PROMPT, MAX_GUIDANCE, ControlVideoRequest
from .common import (
    gpu_options,
    VIDEO_TYPES,
    output_column,
    run_buttons,
    run_job,
    seed_input,
    video_outputs,
    video_window_inputs,
    window,
)

ASSETS = Path(__file__).resolve().parents[2] / "assets"
TITLES = {"pose": "Pose", "edge": "Edge", "depth": "Depth"}
EXAMPLE_PROMPTS = {
    "pose": "an astronaut dancing in outer space",
    "edge": "a shiny golden sculpture, studio light",
    "depth": "a wooden toy on a table, warm light",
}


def kind_options(kind: str) -> list[gr.components.Component]:
    """The widgets only one kind has, in the order its endpoint takes them."""
    if kind == "edge":
        return [
            gr.Slider(label="Canny low threshold", minimum=0, maximum=255, step=1, value=100),
            gr.Slider(label="Canny high threshold", minimum=0, maximum=255, step=1, value=200),
        ]
    if kind == "pose":
        return [
            gr.Checkbox(label="Input is already a pose skeleton video (skip detection)", value=False),
            gr.Checkbox(label="Detect hands", value=False),
            gr.Checkbox(label="Detect face", value=False),
        ]
    return []


def option_values(kind: str, values: dict) -> dict:
    if kind == "edge":
        return {"canny_low": int(values["canny_low"]), "canny_high": int(values["canny_high"])}
    if kind == "pose":
        return {name: bool(values[name]) for name in ("is_skeleton", "pose_hands", "pose_face")}
    return {}


def examples(kind: str) -> list[list]:
    """[video, prompt] per example clip; the pose clips already are skeletons (no detection)."""
    skeleton = [True] if kind == "pose" else []
    return [[str(path), EXAMPLE_PROMPTS[kind], *skeleton] for path in sorted(ASSETS.glob(f"{kind}_*.mp4"))]


def build(demo: gr.Blocks, studio, kind: str) -> list:
    settings = studio.settings
    limits = settings.limits
    defaults = ControlVideoRequest(kind=kind, video="", prompt="")
    models = list(defaults.allowed_models(settings))
    with gr.Row():
        with gr.Column():
            video_in = gr.Video(label=f"Input video ({', '.join(VIDEO_TYPES)})", sources=["upload"], format=None)
            prompt = gr.Textbox(label="Prompt", lines=2)
            model = gr.Dropdown(
                label="Base model" + (" or DreamBooth style" if kind == "edge" else ""), choices=models, value=models[0]
            )
            start, end, fps, resolution = video_window_inputs(settings)
            with gr.Accordion(f"{TITLES[kind]} detection", open=kind != "depth"):
                options = kind_options(kind)
                if not options:
                    gr.Markdown("MiDaS depth, no options.")
            with gr.Accordion("Advanced", open=False):
                negative_prompt = gr.Textbox(label="Negative prompt", value=DEFAULT_NEGATIVE_PROMPT, lines=2)
                with gr.Row():
                    steps = gr.Slider(label="Steps (DDIM)", minimum=1, maximum=limits.max_steps, step=1, value=settings.default_steps(defaults.steps))
                    guidance = gr.Slider(label="Guidance scale", minimum=0, maximum=MAX_GUIDANCE, step=0.5, value=defaults.guidance_scale)
                with gr.Row():
                    scale = gr.Slider(label="ControlNet conditioning scale", minimum=0, maximum=2, step=0.05, value=defaults.conditioning_scale)
                    chunk_size = gr.Slider(label="Chunk size (frames per pass)", minimum=2, maximum=limits.max_frames, step=1, value=defaults.chunk_size)
                seed = seed_input()
            preview = gr.Button("Preview control")
            run, stop = run_buttons()
        with gr.Column():
            control_video = gr.Video(label="Control maps", format=None, autoplay=True, loop=True)
            video, gif, params, used_seed = output_column()

    def request(values: dict) -> ControlVideoRequest:
        return ControlVideoRequest(
            kind=kind, video=values["video"] or "", prompt=values.get("prompt", ""),
            negative_prompt=values.get("negative_prompt", ""), model=values.get("model", ""),
            steps=int(values.get("steps", defaults.steps)),
            guidance_scale=float(values.get("guidance_scale", defaults.guidance_scale)),
            conditioning_scale=float(values.get("conditioning_scale", defaults.conditioning_scale)),
            seed=int(values.get("seed", -1)), chunk_size=int(values.get("chunk_size", defaults.chunk_size)),
            window=window(values["start"], values["end"], values["fps"], values["resolution"]),
            **option_values(kind, values),
        )

    def generate(values: dict):
        result = run_job(demo, studio.control_video, request(values), values["progress"])
        return (*video_outputs(result), result.control)

    def preview_control(values: dict):
        return run_job(demo, studio.control_preview, request(values), values["progress"]).video

    # Explicit signatures, so API clients see real parameter names.
    def pose2video(video, prompt, negative_prompt, model, start, end, fps, resolution, steps, guidance_scale,
                   conditioning_scale, seed, chunk_size, is_skeleton, pose_hands, pose_face, progress=gr.Progress()):
        return generate(dict(locals()))

    def edge2video(video, prompt, negative_prompt, model, start, end, fps, resolution, steps, guidance_scale,
                   conditioning_scale, seed, chunk_size, canny_low, canny_high, progress=gr.Progress()):
        return generate(dict(locals()))

    def depth2video(video, prompt, negative_prompt, model, start, end, fps, resolution, steps, guidance_scale,
                    conditioning_scale, seed, chunk_size, progress=gr.Progress()):
        return generate(dict(locals()))

    def pose_preview(video, start, end, fps, resolution, is_skeleton, pose_hands, pose_face, progress=gr.Progress()):
        return preview_control(dict(locals()))

    def edge_preview(video, start, end, fps, resolution, canny_low, canny_high, progress=gr.Progress()):
        return preview_control(dict(locals()))

    def depth_preview(video, start, end, fps, resolution, progress=gr.Progress()):
        return preview_control(dict(locals()))

    generate_fn = {"pose": pose2video, "edge": edge2video, "depth": depth2video}[kind]
    preview_fn = {"pose": pose_preview, "edge": edge_preview, "depth": depth_preview}[kind]

    inputs = [video_in, prompt, negative_prompt, model, start, end, fps, resolution, steps, guidance, scale, seed,
              chunk_size, *options]
    event = run.click(generate_fn, inputs, [video, gif, params, used_seed, control_video], api_name=f"{kind}2video", **gpu_options(studio))
    preview_event = preview.click(
        preview_fn, [video_in, start, end, fps, resolution, *options], control_video,
        api_name=f"{kind}_preview", **gpu_options(studio),
    )
    stop.click(None, cancels=[event, preview_event])
    if examples(kind):
        gr.Examples(examples(kind), [video_in, prompt, *options[:1]] if kind == "pose" else [video_in, prompt])
    return [event, preview_event]
