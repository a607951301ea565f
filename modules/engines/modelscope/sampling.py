"""ModelScope text-to-video (damo-vilab, now ali-vilab, text-to-video-ms-1.7b; CC BY-NC 4.0).

Our own sampling loop on the maintained `UNet3DConditionModel`, doing what diffusers' deprecated
`TextToVideoSDPipeline` (pipelines/deprecated/text_to_video_synthesis/pipeline_text_to_video_synth.py)
does, which the tests check frame for frame:

1. Encode the prompt and, with guidance > 1, the negative prompt ("" when none): [negative, positive].
2. Start from Gaussian latents (1, C, F, H/8, W/8) times the scheduler's `init_noise_sigma`.
3. Per timestep, one UNet call on the whole clip ([negative, positive] batched with guidance),
   classifier-free guidance, then the scheduler steps the F frames as a batch of images.
4. Decode every frame with the VAE (SD's), map [-1, 1] to [0, 1].

Defaults: 16 frames and guidance 9.0 are the pipeline's; 256x256 is the UNet's sample size (32
latents, the training size); 25 steps with DPM-Solver++ (2M) as the model card's recipe (the
pipeline's own default is 50 steps). The repo ships a DDIMScheduler config (SD 1.5's numbers); the
card swaps in DPMSolverMultistepScheduler made from it, which `make_scheduler(SCHEDULER, config)`
is exactly (from_config, no option changed: solver_order 2, algorithm_type "dpmsolver++"). The
engine loads that, a fresh one per job (the multistep solver keeps the previous model outputs).

One difference, on purpose: the initial noise is drawn per frame on the CPU (`frame_generator`),
so a seed gives the same video on any device and frame k's noise does not depend on the clip
length; the pipeline draws the whole (1, C, F, h, w) block from one generator. The reference
test hands our initial latents to the pipeline (`latents=`), so the sampling itself is compared.
"""

from __future__ import annotations

import numpy as np
import torch

from ...engine.common import (
    Components,
    StepCallback,
    StepCounter,
    decode_latents,
    frame_generators,
    guidance_embeds,
    noise,
    step_kwargs,
)

DEFAULT_NUM_FRAMES = 16
DEFAULT_SIZE = 256
DEFAULT_STEPS = 25
DEFAULT_GUIDANCE = 9.0
# The model card (huggingface.co/ali-vilab/text-to-video-ms-1.7b, README "Usage"):
#     pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
#     video_frames = pipe(prompt, num_inference_steps=25).frames
# "dpm++_2m" is the app's name for DPMSolverMultistepScheduler.from_config(config) (engine.common).
SCHEDULER = "dpm++_2m"


def initial_latents(c: Components, seed: int, num_frames: int, height: int, width: int) -> torch.Tensor:
    """The starting noise (1, C, F, H/8, W/8), unscaled: frame k's slice from `frame_generator(seed, k)`.

    Pass it as `latents=` to `TextToVideoSDPipeline` to start the reference where we start.
    """
    latents, _ = _frame_noise(c, seed, num_frames, height, width)
    return latents.permute(1, 0, 2, 3)[None]


def _frame_noise(c: Components, seed: int, num_frames: int, height: int, width: int):
    """Frames-first noise (F, C, h, w) and the frames' generators, positioned after that draw."""
    if height % 8 or width % 8:
        raise ValueError(f"height and width must be multiples of 8, got {height}x{width}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    scale = c.vae_scale_factor
    generators = frame_generators(seed, range(num_frames))
    shape = (num_frames, c.unet.config.in_channels, height // scale, width // scale)
    return noise(shape, generators, c), generators


@torch.no_grad()
def generate_modelscope(
    c: Components,
    *,
    prompt: str,
    negative_prompt: str = "",
    num_frames: int = DEFAULT_NUM_FRAMES,
    height: int = DEFAULT_SIZE,
    width: int = DEFAULT_SIZE,
    steps: int = DEFAULT_STEPS,
    guidance_scale: float = DEFAULT_GUIDANCE,
    seed: int = 0,
    on_step: StepCallback | None = None,
) -> np.ndarray:
    """Frames (num_frames, height, width, 3), float32 in [0, 1]. `c.unet` is a UNet3DConditionModel.

    `on_step(done, total, "")` follows every UNet call; `total` is the number of UNet calls of the
    video (one per timestep, both guidance branches batched into it).
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    embeds = guidance_embeds(c, prompt, negative_prompt, guidance_scale)
    groups = embeds.shape[0]

    scheduler = c.scheduler
    scheduler.set_timesteps(steps, device=c.device)
    timesteps = scheduler.timesteps

    # The latents are kept frames-first (F, C, h, w), the batch of images the scheduler steps;
    # the UNet takes the clip as (batch, C, F, h, w).
    latents, generators = _frame_noise(c, seed, num_frames, height, width)
    latents = latents * scheduler.init_noise_sigma
    extra = step_kwargs(scheduler, generators)  # frame i's step noise (if any) from its own stream

    count_step = StepCounter(len(timesteps), on_step)
    for t in timesteps:
        clip = latents.permute(1, 0, 2, 3)[None]
        model_input = torch.cat([clip] * groups) if groups > 1 else clip
        model_input = scheduler.scale_model_input(model_input, t)
        noise_pred = c.unet(model_input, t, encoder_hidden_states=embeds, return_dict=False)[0]
        if groups > 1:
            uncond, cond = noise_pred.chunk(2)
            noise_pred = uncond + guidance_scale * (cond - uncond)
        noise_pred = noise_pred[0].permute(1, 0, 2, 3)
        latents = scheduler.step(noise_pred, t, latents, **extra, return_dict=False)[0]
        count_step()
    return decode_latents(c, latents)


def reference_pipeline(c: Components):
    """diffusers' deprecated `TextToVideoSDPipeline` on the same parts (for tests and benchmarks).

    Call it with `latents=initial_latents(...)` and `output_type="np"`; `.frames[0]` is then
    what `generate_modelscope` returns for the same arguments.
    """
    from diffusers.pipelines.deprecated.text_to_video_synthesis.pipeline_text_to_video_synth import (
        TextToVideoSDPipeline,
    )

    pipe = TextToVideoSDPipeline(
        vae=c.vae, text_encoder=c.text_encoder, tokenizer=c.tokenizer, unet=c.unet, scheduler=c.scheduler
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
