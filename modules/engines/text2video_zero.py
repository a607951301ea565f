"""The zero-shot engine (Khachatryan et al. 2023): SD 1.5 with latent motion and cross-frame attention.

It serves every tab: text-to-video (with storyboards and an uploaded first frame), the ControlNet
tabs and video editing (Instruct-Pix2Pix). Its loops are `modules/engine/` (text2video,
controlnet, pix2pix); fast mode is the LCM-LoRA on the shared UNet with TAESD decoding.
"""

from __future__ import annotations

from ..engine.recipes import FAST_DEFAULTS, LCM_MAX_STEPS, LCM_MIN_STEPS
from .base import Engine, FastRecipe, JobInputs, Recipe, Prior

# The LCM-LoRA card's recipe (modules/engine/recipes.py says why each number).
LCM = FastRecipe(name="LCM-LoRA", steps=tuple(range(LCM_MIN_STEPS, LCM_MAX_STEPS + 1)), defaults=FAST_DEFAULTS,
                 scheduler="lcm")

# The authors' demo (Picsart-AI-Research/Text2Video-Zero, model.py and app_*.py; RECIPES.md cites the lines): its
# negative prompt for text to video and the ControlNet tabs.
NEGATIVE_PROMPT = ("longbody, lowres, bad anatomy, bad hands, missing fingers, extra digit, fewer digits, cropped, "
                   "worst quality, low quality, deformed body, bloated, ugly, unrealistic")
RECIPES = {
    # TextToVideoZeroPipeline's __call__: 50 DDIM steps, guidance 7.5, video_length 8, 512x512 (t0 44, t1 47).
    "text2video": Recipe(steps=50, guidance_scale=7.5, negative_prompt=NEGATIVE_PROMPT, frames=8, max_frames=64,
                         fps=4.0),
    # The demo's ControlNet tabs: 20 DDIM steps, guidance 9.0, the clip's frames at its rate.
    "control": Recipe(steps=20, guidance_scale=9.0, negative_prompt=NEGATIVE_PROMPT, frames=0, max_frames=64,
                      fps=0.0, extra={"conditioning_scale": 1.0}),
    # The demo's Video Instruct-Pix2Pix: 50 Euler-ancestral steps, guidance 7.5, image guidance 1.0.
    "edit": Recipe(steps=50, guidance_scale=7.5, frames=0, max_frames=64, fps=0.0,
                   scheduler="EulerAncestralDiscreteScheduler", extra={"image_guidance_scale": 1.0}),
}


class Text2VideoZero(Engine):
    name = "text2video-zero"
    title = "Text2Video-Zero"
    label = "Text2Video-Zero (zero-shot, SD 1.5)"
    tabs = frozenset({"text2video", "control", "edit"})
    inputs = frozenset({"base_model", "motion", "chunks", "image", "storyboard"})
    recipes = RECIPES
    # Estimates' priors (modules/estimates.py). CPU, from the README's benchmarks (2-core EPYC/Xeon, fp32):
    # text to video 8 x 128², 4 steps: 25.97 s, UNet 73 % (9.5 s per frame-step), VAE 26 % (13.5 s per 512² frame);
    # fast (LCM, guidance 1, TAESD): 55.9 s for 8 x 256² at 4 steps. Pose/Edge/Depth 8 x 256², 4 steps (UNet +
    # ControlNet): 162.7 s; fast: 85.3 s. Editing 8 x 256², 4 steps (three branches, VAE encode and decode):
    # 180.8 s; fast (two branches): 127.9 s.
    cpu_priors = {
        ("text2video", False): Prior(fixed_s=1.0, pixel_s=13.5, step_s=9.5),
        ("text2video", True): Prior(fixed_s=3.0, pixel_s=1.0, step_s=6.5),
        ("control", False): Prior(fixed_s=1.0, pixel_s=13.5, step_s=17.0),
        ("control", True): Prior(fixed_s=3.0, pixel_s=1.0, step_s=10.0),
        ("edit", False): Prior(fixed_s=1.0, pixel_s=20.0, step_s=17.5),
        ("edit", True): Prior(fixed_s=3.0, pixel_s=8.0, step_s=14.0),
    }
    tiny_priors = {  # measured (modules/estimates.py says how)
        ("text2video", False): Prior(fixed_s=0.17, pixel_s=0.18, step_s=0.91),
        ("text2video", True): Prior(fixed_s=0.45, step_s=0.67),
        ("control", False): Prior(fixed_s=0.035, step_s=1.3),
        ("control", True): Prior(fixed_s=0.34, step_s=1.2),
        ("edit", False): Prior(fixed_s=0.013, pixel_s=0.67, step_s=0.94),
        ("edit", True): Prior(fixed_s=0.37, step_s=1.4),
    }
    fast = LCM

    def unet_calls(self, request, tab: str, frames: int) -> int:
        if tab != "text2video":
            return int(request.steps)
        from ..engine import chunk_frame_ids

        return int(request.steps) * len(chunk_frame_ids(request.num_frames, request.chunk_size))

    def work(self, request, tab: str, frames: int, width: int, height: int) -> float:
        # Text-to-video runs chunks of `chunk_size` frames, each with the anchor frame again.
        per_pass = min(request.chunk_size, frames) if tab == "text2video" else frames
        return super().work(request, tab, per_pass, width, height)

    def scheduler_name(self, request, tab: str) -> str:
        if tab == "edit":
            return request.scheduler
        return "lcm" if request.fast else "ddim"

    def load(self, manager, request, tab: str):
        if tab == "edit":
            components = manager.edit_components(request.scheduler)
        else:
            components = manager.components(request.model, scheduler=self.scheduler_name(request, tab))
        if request.fast:
            manager.lcm_lora(components.unet)  # attached, off until `lora_active`
            components.decoder = manager.tiny_decoder()
        if tab == "control":
            return components, manager.controlnet(request.kind)
        return components

    def sample(self, loaded, request, tab: str, inputs: JobInputs, *, chunk_size, control):
        from contextlib import nullcontext

        from .. import engine

        components = loaded[0] if tab == "control" else loaded
        with engine.lora_active(components.unet) if request.fast else nullcontext():
            if tab == "text2video":
                t0, t1 = engine.resolve_t0_t1(request.steps, request.t0, request.t1)
                return engine.generate_text2video(
                    components, prompt=engine.parse_storyboard(request.prompt), first_frame=inputs.first_frame,
                    negative_prompt=request.negative_prompt, num_frames=request.num_frames, height=request.height,
                    width=request.width, steps=request.steps, guidance_scale=request.guidance_scale,
                    motion_x=request.motion_x, motion_y=request.motion_y, t0=t0, t1=t1, seed=request.seed,
                    chunk_size=chunk_size, on_step=control.step,
                )
            if tab == "control":
                return engine.generate_control_video(
                    components, loaded[1], control=inputs.maps, prompt=request.prompt,
                    negative_prompt=request.negative_prompt, steps=request.steps,
                    guidance_scale=request.guidance_scale, conditioning_scale=request.conditioning_scale,
                    seed=request.seed, chunk_size=chunk_size, on_step=control.step,
                )
            return engine.generate_edit_video(
                components, frames=inputs.frames, prompt=request.prompt, negative_prompt=request.negative_prompt,
                steps=request.steps, guidance_scale=request.guidance_scale,
                image_guidance_scale=request.image_guidance_scale, seed=request.seed, chunk_size=chunk_size,
                on_step=control.step, skip_unused_guidance=request.fast,
            )

    def scheduler_of(self, loaded, request, tab: str):
        return (loaded[0] if tab == "control" else loaded).scheduler

    def record(self, request, tab: str, settings) -> dict:
        record = {"engine": self.name, "scheduler": self.scheduler_name(request, tab)}
        if tab == "edit":
            return {**record, "model": settings.edit_model}
        record["model"] = request.model
        if tab == "control":
            return {**record, "controlnet": settings.controlnets[request.kind]}
        from ..engine import resolve_t0_t1

        t0, t1 = resolve_t0_t1(request.steps, request.t0, request.t1)
        return {**record, "t0": t0, "t1": t1}


ENGINE = Text2VideoZero()
