"""ModelScope text-to-video 1.7B (damo-vilab, now ali-vilab): its own 3D UNet beside SD's VAE.

Text-to-video only, one prompt, no fast recipe. Our loop on the maintained `UNet3DConditionModel`
(`sampling.py`) equals diffusers' deprecated `TextToVideoSDPipeline` (tests check it). The weights
are CC BY-NC 4.0: the page says so beside the engine and params.json records it.
"""

from __future__ import annotations

from ..base import Engine, JobInputs, ModelSpec, Recipe, Prior

MODEL_ID = "damo-vilab/text-to-video-ms-1.7b"  # the Hub redirects to ali-vilab/text-to-video-ms-1.7b


def _tiny_unet3d(seed: int):
    from .tiny import build_unet3d

    return build_unet3d(seed=seed)


VIDEO_MODEL = ModelSpec(
    key="modelscope_model", kind="pipeline", default_repo=MODEL_ID, env="MODELSCOPE_MODEL",
    description="ModelScope text-to-video model (CC BY-NC 4.0)", module_class="UNet3DConditionModel",
    build_tiny=_tiny_unet3d, group="video",
)


class ModelScope(Engine):
    name = "modelscope"
    title = "ModelScope"
    label = "ModelScope 1.7B (non-commercial licence)"
    notice = "ModelScope's weights are licensed CC BY-NC 4.0: videos made with this engine are for non-commercial use only."
    licence = "CC BY-NC 4.0 (non-commercial use only)"
    tabs = frozenset({"text2video"})
    inputs = frozenset()
    # The card: DPMSolverMultistepScheduler.from_config(the repo's), 25 steps; TextToVideoSDPipeline's guidance 9.0
    # and 16 frames; 256x256 (the UNet's sample size); diffusers' export_to_video's 10 fps, which the card calls.
    recipes = {"text2video": Recipe(steps=25, guidance_scale=9.0, frames=16, max_frames=64, fps=10.0, width=256,
                                    height=256, scheduler="DPMSolverMultistepScheduler")}
    models = (VIDEO_MODEL,)
    # Estimates' priors (modules/estimates.py). CPU: 8 x 128², 4 steps: 56.8 s (at 64²: UNet 12.8 of 15.7 s;
    # OpenCLIP-H text once). Tiny: measured.
    cpu_priors = {("text2video", False): Prior(fixed_s=4.0, pixel_s=13.5, step_s=23.0)}
    tiny_priors = {("text2video", False): Prior(fixed_s=0.11, pixel_s=0.92, step_s=0.52)}

    def mode(self, tab: str, kind: str = "") -> str:
        return f"text2video-{self.name}"

    def load(self, manager, request, tab: str):
        from .sampling import SCHEDULER  # the card's DPM-Solver++ from the repo's scheduler config

        return manager.model(VIDEO_MODEL, scheduler=SCHEDULER)  # a fresh scheduler per job

    def sample(self, loaded, request, tab: str, inputs: JobInputs, *, chunk_size, control):
        from .sampling import generate_modelscope

        return generate_modelscope(loaded, prompt=request.prompt, negative_prompt=request.negative_prompt,
                                   num_frames=request.num_frames, height=request.height, width=request.width,
                                   steps=request.steps, guidance_scale=request.guidance_scale, seed=request.seed,
                                   on_step=control.step)

    def record(self, request, tab: str, settings) -> dict:
        from .sampling import SCHEDULER

        return {"engine": self.name, "model": VIDEO_MODEL.repo(settings), "licence": self.licence, "scheduler": SCHEDULER}


ENGINE = ModelScope()
