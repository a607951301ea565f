"""Wan 2.1 text-to-video, 1.3B (Wan-AI/Wan2.1-T2V-1.3B-Diffusers, Apache-2.0).

A flow-matching diffusion transformer over a causal 3D VAE's latents, with a UMT5-XXL text
encoder: its own model folder (a "components" ModelSpec), sampled by diffusers' maintained
`WanPipeline` (`sampling.py`). One prompt, no fast recipe yet. The Pose, Edge and Depth tabs and a
first frame run Wan 2.1 VACE 1.3B (Wan-AI/Wan2.1-VACE-1.3B-diffusers, a second folder) through
diffusers' `WanVACEPipeline` (`vace.py`): the control window's frames and size are fitted there to
4k+1 frames and sides of multiples of 16.

Published defaults (the model card and WanPipeline): 832x480, 81 frames at 16 fps, 50 steps,
guidance 5, UniPC with flow shift 3.0. Frames are 4k+1 (the VAE's 4x in time) and sides
multiples of 16 (8x VAE, 2x2 patches): validation refuses others in a sentence that names one
that fits. float16 gives black frames on Wan, so where the app runs float16 (CUDA) the text
encoder and transformer run in bfloat16, and the VAE stays float32 everywhere. With CPU offload
each part is a stage of its own: the 22.7 GB text encoder leaves the GPU once the prompt is
encoded, so the peak is the transformer's (published: 8.19 GB VRAM for 480p).
"""

from __future__ import annotations

from ..base import Defaults, Engine, FrameRule, JobInputs, ModelSpec, Rules

MODEL_ID = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
VACE_MODEL_ID = "Wan-AI/Wan2.1-VACE-1.3B-diffusers"
LICENCE = "Apache-2.0"


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


# Wan 2.1 VACE 1.3B: the same text encoder, tokenizer, VAE and scheduler kinds, a transformer with VACE
# blocks that read a control video and mask (the Pose, Edge and Depth tabs; a first frame).
WAN_VACE_MODEL = ModelSpec(
    key="wan_vace_model", kind="components", default_repo=VACE_MODEL_ID, env="WAN_VACE_MODEL",
    description="Wan 2.1 VACE model (control maps, a first frame) in the diffusers layout (Hub id or folder)",
    components={"tokenizer": "T5TokenizerFast", "text_encoder": "UMT5EncoderModel",
                "transformer": "WanVACETransformer3DModel", "vae": "AutoencoderKLWan",
                "scheduler": "UniPCMultistepScheduler"},
    dtypes={"vae": "float32"}, half_dtype="bfloat16", build_tiny=_tiny_vace, group="video",
)


class Wan(Engine):
    name = "wan"
    title = "Wan 2.1"
    label = "Wan 2.1 (1.3B text-to-video transformer)"
    licence = LICENCE
    tabs = frozenset({"text2video", "control"})
    inputs = frozenset({"image"})  # a first frame: through VACE
    defaults = Defaults(steps=50, guidance_scale=5.0, side=480, width=832, height=480, frames=81, fps=16.0)
    rules = Rules(frames=FrameRule(4, 1), size_multiple=16)
    models = (WAN_MODEL, WAN_VACE_MODEL)
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

    def unet_calls(self, request, tab: str, frames: int) -> int:
        """Transformer calls per frame: one per step, two with guidance (conditional and unconditional)."""
        return int(request.steps) * (2 if request.guidance_scale > 1.0 else 1)

    def load(self, manager, request, tab: str):
        return manager.model(WAN_VACE_MODEL if self.uses_vace(request, tab) else WAN_MODEL)

    def sample(self, loaded, request, tab: str, inputs: JobInputs, *, chunk_size, control):
        from .sampling import generate_wan

        if tab == "control" or inputs.first_frame is not None:
            from .vace import generate_wan_vace

            common = dict(prompt=request.prompt, negative_prompt=request.negative_prompt, steps=request.steps,
                          guidance_scale=request.guidance_scale, seed=request.seed, on_step=control.step)
            if tab == "control":
                return generate_wan_vace(loaded, maps=inputs.maps,
                                         conditioning_scale=request.conditioning_scale, **common)
            return generate_wan_vace(loaded, first_frame=inputs.first_frame, num_frames=request.num_frames,
                                     height=request.height, width=request.width, **common)

        return generate_wan(loaded, prompt=request.prompt, negative_prompt=request.negative_prompt,
                            num_frames=request.num_frames, height=request.height, width=request.width,
                            steps=request.steps, guidance_scale=request.guidance_scale, seed=request.seed,
                            on_step=control.step)

    def record(self, request, tab: str, settings) -> dict:
        spec = WAN_VACE_MODEL if self.uses_vace(request, tab) else WAN_MODEL
        return {"engine": self.name, "model": spec.repo(settings), "licence": self.licence,
                "scheduler": "unipc (flow shift 3.0)"}


ENGINE = Wan()
