"""Wan 2.1 text-to-video, 1.3B (Wan-AI/Wan2.1-T2V-1.3B-Diffusers, Apache-2.0).

A flow-matching diffusion transformer over a causal 3D VAE's latents, with a UMT5-XXL text
encoder: its own model folder (a "components" ModelSpec), sampled by diffusers' maintained
`WanPipeline` (`sampling.py`). One prompt. The Pose, Edge and Depth tabs and a first frame run Wan
2.1 VACE 1.3B (Wan-AI/Wan2.1-VACE-1.3B-diffusers, a second folder) through diffusers'
`WanVACEPipeline` (`vace.py`): the control window's frames and size are fitted there to 4k+1 frames
and sides of multiples of 16, and the result's notes say so (`fit_notes`). Fast mode runs NVIDIA's
AnyFlow (nvidia/AnyFlow-Wan2.1-T2V-1.3B-Diffusers, a third folder: the T2V model distilled into a
flow map) through diffusers' `AnyFlowPipeline` (`fast.py`): 4 steps, guidance 1 (folded into the
weights); text to video only, so Fast with VACE says in a sentence that there are no few-step
weights for it. The VACE and AnyFlow repos publish the T2V model's text encoder, tokenizer and VAE
again; their ModelSpecs share the T2V model's (`shared_roles`): read, held and downloaded once.

Published defaults (the model card and WanPipeline): 832x480, 81 frames at 16 fps, 50 steps,
guidance 5, UniPC with flow shift 3.0. Frames are 4k+1 (the VAE's 4x in time) and sides
multiples of 16 (8x VAE, 2x2 patches): validation refuses others in a sentence that names one
that fits. float16 gives black frames on Wan, so where the app runs float16 (CUDA) the text
encoder and transformer run in bfloat16, and the VAE stays float32 everywhere. With CPU offload
each part is a stage of its own: the 22.7 GB text encoder leaves the GPU once the prompt is
encoded, so the peak is the transformer's (published: 8.19 GB VRAM for 480p).
"""

from __future__ import annotations

from ..base import Engine, FastRecipe, FrameRule, JobInputs, ModelSpec, Recipe, Rules, Prior

MODEL_ID = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
VACE_MODEL_ID = "Wan-AI/Wan2.1-VACE-1.3B-diffusers"
FAST_MODEL_ID = "nvidia/AnyFlow-Wan2.1-T2V-1.3B-Diffusers"
LICENCE = "Apache-2.0"
# The AnyFlow card's front matter says `license: other` (NVIDIA's; reported as the non-commercial NSCLv1).
FAST_LICENCE = "AnyFlow transformer: NVIDIA's licence (card: other; reported non-commercial); the rest Apache-2.0"


def _tiny(seed: int) -> dict:
    from .tiny import build_components

    return build_components(seed=seed)


WAN_MODEL = ModelSpec(
    key="wan_model", kind="components", default_repo=MODEL_ID, env="WAN_MODEL",
    description="Wan 2.1 text-to-video model in the diffusers layout (Hub id or folder)",
    components={"tokenizer": "T5TokenizerFast", "text_encoder": "UMT5EncoderModel",
                "transformer": "WanTransformer3DModel", "vae": "AutoencoderKLWan",
                "scheduler": "UniPCMultistepScheduler"},
    dtypes={"vae": "float32"}, half_dtype="bfloat16", build_tiny=_tiny, group="video",
)


def _tiny_vace(seed: int) -> dict:
    from .tiny import build_vace_components

    return build_vace_components(seed=seed)


# The T2V model's text encoder, tokenizer and VAE, which the VACE and AnyFlow repos publish again: the same
# UMT5-XXL (Wan 2.1's umt5-xxl-enc-bf16 checkpoint; VACE's copy in bfloat16, the T2V one in float32) and the
# same 508 MB Wan VAE and tokenizer files. Read from the T2V repo once, held once, downloaded once.
WAN_SHARED = {"tokenizer": WAN_MODEL.key, "text_encoder": WAN_MODEL.key, "vae": WAN_MODEL.key}

# Wan 2.1 VACE 1.3B: a transformer with VACE blocks that read a control video and mask (the Pose, Edge and
# Depth tabs; a first frame), its scheduler; the rest is the T2V model's (WAN_SHARED).
WAN_VACE_MODEL = ModelSpec(
    key="wan_vace_model", kind="components", default_repo=VACE_MODEL_ID, env="WAN_VACE_MODEL",
    description="Wan 2.1 VACE model (control maps, a first frame) in the diffusers layout (Hub id or folder)",
    components={"tokenizer": "T5TokenizerFast", "text_encoder": "UMT5EncoderModel",
                "transformer": "WanVACETransformer3DModel", "vae": "AutoencoderKLWan",
                "scheduler": "UniPCMultistepScheduler"},
    dtypes={"vae": "float32"}, half_dtype="bfloat16", build_tiny=_tiny_vace, group="video", shared_roles=WAN_SHARED,
)


def _tiny_fast(seed: int) -> dict:
    from .tiny import build_anyflow_components

    return build_anyflow_components(seed=seed)


# Fast mode: AnyFlow, Wan 2.1 T2V 1.3B distilled into a flow map: any step count (its evaluations: 2, 4, 8, 16; the
# app's least is 2), the card's and the demo's 4; classifier-free guidance folded into the weights (guidance 1).
WAN_FAST_MODEL = ModelSpec(
    key="wan_fast_model", kind="components", default_repo=FAST_MODEL_ID, env="WAN_FAST_MODEL",
    description="Wan 2.1 few-step model for Fast mode (AnyFlow) in the diffusers layout (Hub id or folder)",
    components={"tokenizer": "T5TokenizerFast", "text_encoder": "UMT5EncoderModel",
                "transformer": "AnyFlowTransformer3DModel", "vae": "AutoencoderKLWan",
                "scheduler": "FlowMapEulerDiscreteScheduler"},
    dtypes={"vae": "float32"}, half_dtype="bfloat16", build_tiny=_tiny_fast, group="video", shared_roles=WAN_SHARED,
)
FAST = FastRecipe(
    name="AnyFlow", steps=(2, 4, 8, 16), defaults={"*": {"steps": 4, "guidance_scale": 1.0}},
    scheduler="flowmap_euler (shift 5)", max_guidance=1.0, tabs=frozenset({"text2video"}),
)


# Wan's negative prompt in the English form that diffusers' Wan docs and the Diffusers repo's card pass (the Wan
# team's `sample_neg_prompt` in wan/configs/shared_config.py is the Chinese original).
NEGATIVE_PROMPT = ("Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, "
                   "static, overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra "
                   "fingers, poorly drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused "
                   "fingers, still picture, messy background, three legs, many people in the background, walking "
                   "backwards")
# The repo's scheduler config: UniPC on flow predictions, flow shift 3.0 (480p; the Wan team's README suggests 8-12
# and guidance 6 for the 1.3B: RECIPES.md says why the repo's config and diffusers' docs are followed).
FLOW_SCHEDULER = {"prediction_type": "flow_prediction", "use_flow_sigmas": True, "flow_shift": 3.0}
RECIPES = {
    # WanPipeline's docs and __call__: 832x480, 81 frames, 50 steps, guidance 5.0, exported at 16 fps.
    "text2video": Recipe(steps=50, guidance_scale=5.0, negative_prompt=NEGATIVE_PROMPT, frames=81, max_frames=81,
                         fps=16.0, width=832, height=480, scheduler="UniPCMultistepScheduler",
                         scheduler_config=FLOW_SCHEDULER),
    # WanVACEPipeline's __call__ and docs (VACE 1.3B): 50 steps, guidance 5.0, up to 81 frames of the control
    # clip at its rate, conditioning scale 1.0.
    "control": Recipe(steps=50, guidance_scale=5.0, negative_prompt=NEGATIVE_PROMPT, frames=0, max_frames=81,
                      fps=0.0, width=832, height=480, scheduler="UniPCMultistepScheduler",
                      scheduler_config=FLOW_SCHEDULER, extra={"conditioning_scale": 1.0}),
}


class Wan(Engine):
    name = "wan"
    title = "Wan 2.1"
    label = "Wan 2.1 (1.3B text-to-video transformer)"
    licence = LICENCE
    tabs = frozenset({"text2video", "control"})
    inputs = frozenset({"image"})  # a first frame: through VACE
    recipes = RECIPES
    rules = Rules(frames=FrameRule(4, 1), size_multiple=16)
    fast = FAST  # AnyFlow, text to video only: VACE (the control tabs, a first frame) has no few-step weights
    models = (WAN_MODEL, WAN_VACE_MODEL, WAN_FAST_MODEL)
    # Estimates' priors (modules/estimates.py). CPU: 9 x 128², 4 guided steps (8 transformer calls), bf16 on the
    # Xeon: 2.94 s a step, VAE 8.2 s; the whole 24-layer UMT5-XXL is ~12x the benchmark's 2 layers (1.4 s). AnyFlow:
    # the same per call. The control tab (VACE: the same transformer plus the context blocks): derived as 1.5x.
    # Tiny: measured.
    cpu_priors = {
        ("text2video", False): Prior(fixed_s=17.0, pixel_s=14.6, step_s=2.6),
        ("control", False): Prior(fixed_s=17.0, pixel_s=14.6, step_s=3.9),
    }
    tiny_priors = {
        ("text2video", False): Prior(fixed_s=0.074, pixel_s=0.49, step_s=0.018),
        ("text2video", True): Prior(fixed_s=0.059, step_s=0.22),
        ("control", False): Prior(fixed_s=0.23, pixel_s=0.94, step_s=0.016),
    }
    # Per transformer call on one 512x512 frame. GPU: the card's 5 s of 480p in ~4 min on an RTX 4090
    # (50 steps, two calls each) is ~0.02 s; generous, as attention grows faster than the clip. CPU: a
    # prior from FLOPs against SD 1.5's measured 4 s (a call of each is ~0.7 TFLOP a frame); not measured.
    gpu_seconds_per_frame_step = 0.03
    cpu_seconds_per_frame_step = 3.0

    def mode(self, tab: str, kind: str = "") -> str:
        return f"text2video-{self.name}" if tab == "text2video" else super().mode(tab, kind)

    @staticmethod
    def uses_vace(request, tab: str) -> bool:
        """Control maps and a first frame go through VACE; plain text-to-video through the T2V model."""
        return tab == "control" or bool(getattr(request, "image", None))

    def uses_fast(self, request, tab: str) -> bool:
        """A fast job runs AnyFlow (text to video; validation refuses Fast with VACE in a sentence)."""
        return bool(getattr(request, "fast", False)) and not self.uses_vace(request, tab)

    # ------------------------------------------------------------------ Fast: AnyFlow for text to video only
    def fast_recipe(self, request, tab: str):
        return None if self.uses_vace(request, tab) else super().fast_recipe(request, tab)

    def fast_missing(self, request, tab: str) -> str:
        if tab != "control" and getattr(request, "image", None):
            return f"{self.title} with a first frame (a picture goes through VACE; {FAST.name} is for text to video only)"
        return super().fast_missing(request, tab)

    def fit_notes(self, request, tab: str, frames: int, width: int, height: int) -> list[str]:
        """A control window goes to VACE cut to its first 4k+1 frames, each map resized to sides of 16
        (`vace.fit_maps`): the sentences saying so, where that changes the window's shape."""
        if tab != "control":
            return []
        multiple = self.rules.size_multiple
        fitted = self.rules.frames.nearest(frames)
        fit_width, fit_height = (max(multiple, side - side % multiple) for side in (width, height))
        notes = []
        if fitted != frames:
            notes.append(f"{self.title} used the first {fitted} of the window's {frames} frames: it makes clips of "
                         f"{self.rules.frames} frames.")
        if (fit_width, fit_height) != (width, height):
            notes.append(f"{self.title} made {fit_width}×{fit_height}, not {width}×{height}: its sides are multiples "
                         f"of {multiple} (the control maps were resized to fit).")
        return notes

    # ------------------------------------------------------------------ a job
    def unet_calls(self, request, tab: str, frames: int) -> int:
        """Transformer calls per frame: one per step, two with guidance (conditional and unconditional)."""
        return int(request.steps) * (2 if request.guidance_scale > 1.0 else 1)

    def spec_for(self, request, tab: str) -> ModelSpec:
        """The model folder a job runs: VACE (control maps, a first frame), AnyFlow (Fast), else T2V."""
        if self.uses_vace(request, tab):
            return WAN_VACE_MODEL
        return WAN_FAST_MODEL if self.uses_fast(request, tab) else WAN_MODEL

    def load(self, manager, request, tab: str):
        return manager.model(self.spec_for(request, tab))

    def sample(self, loaded, request, tab: str, inputs: JobInputs, *, chunk_size, control):
        common = dict(prompt=request.prompt, negative_prompt=request.negative_prompt, steps=request.steps,
                      guidance_scale=request.guidance_scale, seed=request.seed, on_step=control.step)
        if tab == "control" or inputs.first_frame is not None:
            from .vace import generate_wan_vace

            if tab == "control":
                return generate_wan_vace(loaded, maps=inputs.maps,
                                         conditioning_scale=request.conditioning_scale, **common)
            return generate_wan_vace(loaded, first_frame=inputs.first_frame, num_frames=request.num_frames,
                                     height=request.height, width=request.width, **common)
        shape = dict(num_frames=request.num_frames, height=request.height, width=request.width)
        if self.uses_fast(request, tab):
            from .fast import generate_wan_fast

            return generate_wan_fast(loaded, **shape, **common)
        from .sampling import generate_wan

        return generate_wan(loaded, **shape, **common)

    def scheduler_of(self, loaded, request, tab: str):
        return loaded["scheduler"]

    def record(self, request, tab: str, settings) -> dict:
        """The models that ran; the scheduler's own settings (its flow shift) are `scheduler_config`, read
        from the loaded scheduler."""
        spec = self.spec_for(request, tab)
        if spec is WAN_FAST_MODEL:
            return {"engine": self.name, "model": spec.repo(settings), "licence": FAST_LICENCE,
                    "scheduler": FAST.scheduler, "text_encoder_and_vae": WAN_MODEL.repo(settings)}
        return {"engine": self.name, "model": spec.repo(settings), "licence": self.licence, "scheduler": "unipc"}


ENGINE = Wan()
