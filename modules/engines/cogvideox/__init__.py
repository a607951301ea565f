"""CogVideoX-2B (THUDM, now zai-org; Apache-2.0): a text-to-video diffusion transformer with its own
T5-XXL text encoder and 3D VAE.

Text-to-video only, one prompt (no storyboard), no first frame (image-to-video is another
checkpoint, CogVideoX-5b-I2V), no fast recipe. Sampling is diffusers' maintained
`CogVideoXPipeline` with the repo's `CogVideoXDDIMScheduler` (`sampling.py`); the published
defaults are 49 frames of 720x480, 50 steps, guidance 6, 8 fps.

Rules, from the model's shapes: frames 8k+1 (the VAE compresses time 4x and decodes latent
frames in pairs after the first, so other counts come back with another length); width and
height multiples of 16 (the VAE's 8x times the transformer's 2x2 patches; 24 or 40 fail inside
the transformer). Validation refuses other values with a sentence naming the rule.

Its weights ("components": each role from its subfolder): the transformer (3.39 GB fp16), the
T5 v1.1 XXL encoder (two shards, 9.5 GB fp16), the VAE (862 MB, float32, kept in float32 here),
the scheduler config and the tokenizer.

The tokenizer: the repo's tokenizer/ holds a sentencepiece model (spiece.model), special-token
files and no tokenizer.json. transformers 5 builds its (only) T5 tokenizer from spiece.model by
reading the model file with sentencepiece's protobuf description, so loading it needs both the
`sentencepiece` and `protobuf` packages; without them it fails ("requires the SentencePiece
library ... Falling back to TikToken"). Both are pinned in requirements.txt: it is transformers'
own conversion, the one every diffusers user of this repo runs, and the alternatives are worse
(no other repo publishes this tokenizer's tokenizer.json to fetch instead, and parsing the
protobuf ourselves would be our own copy of transformers' converter). The tiny preset builds
the same kind of tokenizer in memory (`tiny.py`); the tests load a trained spiece.model in the
repo's folder shape through the app's loader, and the Hub stand-in serves the tiny vocabulary as
a spiece.model that the real preset reads.
"""

from __future__ import annotations

from ..base import Engine, FrameRule, JobInputs, ModelSpec, Recipe, Rules, Prior

MODEL_ID = "THUDM/CogVideoX-2b"  # the Hub redirects to zai-org/CogVideoX-2b
SCHEDULER = "cogvideox_ddim"  # params.json's name for the repo's CogVideoXDDIMScheduler


def _tiny_components(seed: int) -> dict:
    from .tiny import build_components

    return build_components(seed=seed)


VIDEO_MODEL = ModelSpec(
    key="cogvideox_model", kind="components", default_repo=MODEL_ID, env="COGVIDEOX_MODEL",
    description="CogVideoX text-to-video model (Apache-2.0)",
    components={"tokenizer": "T5Tokenizer", "text_encoder": "T5EncoderModel",
                "transformer": "CogVideoXTransformer3DModel", "vae": "AutoencoderKLCogVideoX",
                "scheduler": "CogVideoXDDIMScheduler"},
    dtypes={"vae": "float32"},  # the repo ships it in float32 (its fp16 copy was replaced)
    build_tiny=_tiny_components, group="video",
)


class CogVideoX(Engine):
    name = "cogvideox"
    title = "CogVideoX"
    label = "CogVideoX 2B"
    licence = "Apache-2.0"
    tabs = frozenset({"text2video"})
    inputs = frozenset()
    # The card and CogVideoXPipeline: 49 frames of 720x480 at 8 fps, 50 steps, guidance 6.0, no negative prompt
    # (the pipeline's default None), the repo's CogVideoXDDIMScheduler; 49 frames is the longest it was trained on.
    recipes = {"text2video": Recipe(steps=50, guidance_scale=6.0, frames=49, max_frames=49, fps=8.0, width=720,
                                    height=480, scheduler="CogVideoXDDIMScheduler")}
    rules = Rules(frames=FrameRule(multiple=8, offset=1), size_multiple=16)
    fast = None
    models = (VIDEO_MODEL,)
    # Estimates' priors (modules/estimates.py). CPU: 9 x 128², 4 steps (batched guidance): 3.96 s a step, T5-XXL
    # 7.4 s, VAE 16.2 s. Tiny: measured.
    cpu_priors = {("text2video", False): Prior(fixed_s=7.4, pixel_s=28.8, step_s=7.0)}
    tiny_priors = {("text2video", False): Prior(pixel_s=2.6)}
    # A transformer step over the whole clip: per 512x512 frame about twice an SD 1.5 UNet call on a
    # CPU (1.7 G parameters on a quarter of the frames' tokens, plus attention across all of them).
    cpu_seconds_per_frame_step = 8.0

    def mode(self, tab: str, kind: str = "") -> str:
        return f"text2video-{self.name}"

    def load(self, manager, request, tab: str):
        return manager.model(VIDEO_MODEL)

    def sample(self, loaded, request, tab: str, inputs: JobInputs, *, chunk_size, control):
        from .sampling import generate_cogvideox

        return generate_cogvideox(loaded, prompt=request.prompt, negative_prompt=request.negative_prompt,
                                  num_frames=request.num_frames, height=request.height, width=request.width,
                                  steps=request.steps, guidance_scale=request.guidance_scale, seed=request.seed,
                                  on_step=control.step, device=getattr(loaded, "device", None))

    def scheduler_of(self, loaded, request, tab: str):
        return loaded["scheduler"]

    def record(self, request, tab: str, settings) -> dict:
        return {"engine": self.name, "model": VIDEO_MODEL.repo(settings), "licence": self.licence,
                "scheduler": SCHEDULER}


ENGINE = CogVideoX()
