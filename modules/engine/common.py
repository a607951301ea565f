"""Pieces every generation mode shares: the components it runs on, prompt encoding, decoding."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderTiny,
    ControlNetModel,
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
    UNet2DConditionModel,
)
from diffusers.utils.torch_utils import randn_tensor
from transformers import CLIPTextModel, CLIPTokenizer

from ..job_control import Place

SCHEDULERS = {  # one class per name in schedule.SCHEDULER_NAMES
    "ddim": DDIMScheduler,
    "euler_ancestral": EulerAncestralDiscreteScheduler,
    "euler": EulerDiscreteScheduler,
    "dpm++_2m": DPMSolverMultistepScheduler,
    # Latent Consistency sampling, for a UNet with the LCM-LoRA active (fast mode, 2-8 steps):
    # each step predicts the clean latent and re-noises it to the next timestep with the frame's
    # own noise (`step_kwargs` passes the per-frame generators).
    "lcm": LCMScheduler,
}

# on_step(done, total, place) after every UNet call: `done` of `total` calls of the whole generation
# (the progress bar), `place` where it stands (a job_control.Place: which pass and step), or "" for a
# generation of one pass whose every call is a step. It may raise to stop the generation.
StepCallback = Callable[[int, int, "Place | str"], None]


@dataclass
class Components:
    """What one generation runs on. The model manager owns these; the engine only borrows them."""

    tokenizer: CLIPTokenizer
    text_encoder: CLIPTextModel
    unet: UNet2DConditionModel
    vae: AutoencoderKL
    scheduler: object  # a fresh diffusers scheduler for this generation (they carry state)
    vae_decode_batch: int = 8
    # Where the generation runs. With CPU offload the models wait on the CPU and move in when
    # they run, so their own `.device` is not where tensors must go.
    execution_device: torch.device | None = None
    # A fast decoder (diffusers' AutoencoderTiny, i.e. TAESD) that `decode_latents` uses instead
    # of the VAE when set. The VAE still encodes (Instruct-Pix2Pix) and sets the latent scale.
    decoder: AutoencoderTiny | None = None

    @property
    def device(self) -> torch.device:
        return self.execution_device or self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)


class StepCounter:
    """Counts the UNet calls of one generation for `on_step`, and says which pass and step each is.

    Until `start_pass` the generation is one pass whose calls are its steps (place ""). A pass
    is the steps one batch of frames takes: `start_pass` names its first step in the schedule of
    `steps` and, when the clip runs in several passes, the frames it makes.
    """

    def __init__(self, total: int, on_step: StepCallback | None, steps: int | None = None, frames: int = 0):
        self.total = total
        self.done = 0
        self.on_step = on_step
        self.steps = total if steps is None else steps
        self.frames = frames  # the clip's frames
        self.place: Place | str = ""

    def start_pass(self, first_step: int = 1, frame_ids: Sequence[int] | None = None, part: str = "") -> None:
        """The next calls are steps `first_step`, `first_step + 1`, ... of a pass making `frame_ids` (0-based;
        None: the whole clip in one pass) or of `part` (e.g. the first frame alone)."""
        frames = (min(frame_ids) + 1, max(frame_ids) + 1) if frame_ids else None
        self.place = Place(step=first_step - 1, steps=self.steps, frames=frames, of=self.frames, part=part)

    def __call__(self) -> None:
        self.done += 1
        if isinstance(self.place, Place):
            self.place = replace(self.place, step=self.place.step + 1)
        if self.on_step is not None:
            self.on_step(self.done, self.total, self.place)


def make_generator(seed: int) -> torch.Generator:
    """Noise is drawn on the CPU so a seed gives the same video on any device."""
    return torch.Generator("cpu").manual_seed(int(seed))


def step_end_callback(on_step: StepCallback | None):
    """A diffusers pipeline's `callback_on_step_end` that reports each finished step to `on_step`
    (done, total, ""). `on_step` may raise to stop: the pipeline stops there and decodes nothing
    (setting `_interrupt` would skip the steps but still decode)."""

    def step_end(pipeline, i, _t, _tensors):
        if on_step is not None:
            on_step(i + 1, pipeline.num_timesteps, "")
        return {}

    return step_end


def frame_generator(seed: int, frame_id: int) -> torch.Generator:
    """Frame `frame_id`'s own noise stream: the same for a seed and frame whatever the chunking.

    Every random number a frame uses (its starting noise, then one draw per stochastic
    scheduler step) comes from this stream, in that order, so how many frames share a UNet
    batch, or which chunk a frame falls in, changes none of it. Frame 0 draws from `seed`
    itself, as a single-image pipeline seeded with `seed` would; frame k > 0 from a seed
    hashed from (seed, k), so neighbouring seeds don't give shifted copies of one video.
    """
    frame_id = int(frame_id)
    if frame_id < 0:
        raise ValueError(f"frame ids start at 0, got {frame_id}")
    if frame_id == 0:
        return make_generator(seed)
    digest = hashlib.blake2b(f"{int(seed)}/{frame_id}".encode(), digest_size=8).digest()
    return torch.Generator("cpu").manual_seed(int.from_bytes(digest, "little"))


def frame_generators(seed: int, frame_ids: Sequence[int]) -> list[torch.Generator]:
    """One `frame_generator` per frame id, in order (diffusers' per-sample generator lists)."""
    return [frame_generator(seed, k) for k in frame_ids]


def copy_generator(generator: torch.Generator) -> torch.Generator:
    """A generator that continues from `generator`'s current state (which it leaves alone)."""
    copy = torch.Generator(generator.device)
    copy.set_state(generator.get_state())
    return copy


def encode_prompt(c: Components, prompt: str) -> torch.Tensor:
    """CLIP text embeddings (1, 77, dim), padded and truncated as Stable Diffusion's pipelines do."""
    ids = c.tokenizer(
        [prompt],
        padding="max_length",
        max_length=c.tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    with torch.no_grad():
        embeds = c.text_encoder(ids.to(c.device))[0]
    return embeds.to(device=c.device, dtype=c.dtype)


def noise(shape, generators: Sequence[torch.Generator], c: Components) -> torch.Tensor:
    """Standard normal noise of `shape` (frames, ...): frame i's slice drawn from `generators[i]`.

    diffusers' `randn_tensor` draws a list of generators one sample at a time, so a frame's
    noise does not depend on how many frames are drawn with it.
    """
    if len(generators) != shape[0]:
        raise ValueError(f"{shape[0]} frames of noise but {len(generators)} generators")
    if shape[0] == 0:
        return torch.zeros(shape, device=c.device, dtype=c.dtype)
    return randn_tensor(tuple(shape), generator=list(generators), device=c.device, dtype=c.dtype)


def decode_latents(c: Components, latents: torch.Tensor) -> np.ndarray:
    """Frames (F, H, W, 3) float32 in [0, 1], decoded a few at a time to bound peak memory.

    `c.decoder` (TAESD) decodes when set, else the VAE. Both take the UNet's latents divided by
    their config's `scaling_factor`: SD's VAE has 0.18215 (its decoder wants unscaled latents),
    AutoencoderTiny has 1.0 because TAESD was trained on SD's scaled latents directly (as
    diffusers' pipelines do with `vae=AutoencoderTiny`). Both return [-1, 1] images.
    Half-precision decoders can overflow to NaN (black frames); such a slice is decoded again in
    float32.
    """
    decoder = c.decoder if c.decoder is not None else c.vae
    frames = []
    for start in range(0, latents.shape[0], max(1, c.vae_decode_batch)):
        part = latents[start : start + c.vae_decode_batch].to(decoder.dtype) / decoder.config.scaling_factor
        with torch.no_grad():
            image = decoder.decode(part, return_dict=False)[0]
            if decoder.dtype != torch.float32 and not torch.isfinite(image).all():
                image = _decode_in_float32(decoder, part)
        image = (image / 2 + 0.5).clamp(0, 1)
        frames.append(image.float().permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(frames)


def _decode_in_float32(decoder, latents: torch.Tensor) -> torch.Tensor:
    """Decode once in float32; the decoder (shared by every job) gets its dtype back even if this raises."""
    dtype = decoder.dtype
    try:
        return decoder.float().decode(latents.float(), return_dict=False)[0]
    finally:
        decoder.to(dtype)


def encode_images(c: Components, frames: np.ndarray) -> torch.Tensor:
    """VAE latent modes of uint8 frames (F, H, W, 3), unscaled, as Instruct-Pix2Pix expects."""
    latents = []
    for start in range(0, frames.shape[0], max(1, c.vae_decode_batch)):
        part = torch.from_numpy(frames[start : start + c.vae_decode_batch]).permute(0, 3, 1, 2)
        part = part.to(device=c.device, dtype=c.vae.dtype) / 127.5 - 1.0
        with torch.no_grad():
            latents.append(c.vae.encode(part).latent_dist.mode())
    return torch.cat(latents).to(c.dtype)


def make_scheduler(name: str, config: dict):
    """A fresh scheduler of kind `name` with a model's noise schedule (`config`)."""
    if name not in SCHEDULERS:
        raise ValueError(f"Unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}.")
    return SCHEDULERS[name].from_config(config)


def step_kwargs(scheduler, generators: Sequence[torch.Generator], eta: float = 0.0) -> dict:
    """eta and the frames' generators for the schedulers whose step() takes them.

    Every stochastic step of diffusers' schedulers (Euler ancestral, DDIM with eta > 0, the SDE
    DPM-Solvers, Euler with churn) draws its noise with `randn_tensor(model_output.shape,
    generator=...)`, which with a list draws frame i's noise from generators[i]: each frame's
    step noise comes from its own stream, whatever the batch.
    """
    accepted = inspect.signature(scheduler.step).parameters
    kwargs = {}
    if "eta" in accepted:
        kwargs["eta"] = eta
    if "generator" in accepted:
        kwargs["generator"] = list(generators)
    return kwargs


def denoise(
    c: Components,
    scheduler,
    latents: torch.Tensor,
    timesteps: torch.Tensor,
    embeds: torch.Tensor,
    guidance_scale: float,
    count_step: StepCounter,
    generators: Sequence[torch.Generator],
    controlnet: ControlNetModel | None = None,
    control: torch.Tensor | None = None,
    conditioning_scale: float = 1.0,
) -> torch.Tensor:
    """Classifier-free-guided steps over `timesteps` for a batch of frames.

    `embeds` is (groups, tokens, dim): [negative, positive] with guidance, [positive] without;
    or (groups, frames, tokens, dim) with one embedding per frame (a storyboard).
    `control` (frames, 3, H, W) in [0, 1] conditions the UNet through `controlnet`.
    `generators` holds one noise stream per frame (see `frame_generator`), for stochastic steps.
    """
    groups = embeds.shape[0]
    frames = latents.shape[0]
    if embeds.dim() == 4:  # per frame, group-major as the model input is
        frame_embeds = embeds.reshape(groups * frames, *embeds.shape[2:])
    else:
        frame_embeds = embeds.repeat_interleave(frames, dim=0)
    if control is not None:
        control = torch.cat([control] * groups)
    if len(generators) != frames:
        raise ValueError(f"{frames} frames but {len(generators)} generators")
    extra = step_kwargs(scheduler, generators)
    for t in timesteps:
        model_input = torch.cat([latents] * groups) if groups > 1 else latents
        model_input = scheduler.scale_model_input(model_input, t)
        residuals = {}
        if controlnet is not None:
            down, mid = controlnet(
                model_input,
                t,
                encoder_hidden_states=frame_embeds,
                controlnet_cond=control,
                conditioning_scale=conditioning_scale,
                return_dict=False,
            )
            residuals = dict(down_block_additional_residuals=down, mid_block_additional_residual=mid)
        noise_pred = c.unet(model_input, t, encoder_hidden_states=frame_embeds, return_dict=False, **residuals)[0]
        if groups > 1:
            uncond, cond = noise_pred.chunk(2)
            noise_pred = uncond + guidance_scale * (cond - uncond)
        latents = scheduler.step(noise_pred, t, latents, **extra, return_dict=False)[0]
        count_step()
    return latents


def storyboard_embeds(
    c: Components, board: dict[int, str], negative_prompt: str, guidance_scale: float, frame_ids: Sequence[int]
) -> torch.Tensor:
    """(groups, frames, tokens, dim): each frame's text embedding, linear between key frames' prompts.

    Each key prompt is encoded once; the negative prompt is shared by every frame.
    """
    from .storyboard import key_frame_weights

    keys = sorted(board)
    encoded = {k: guidance_embeds(c, board[k], negative_prompt, guidance_scale) for k in keys}
    per_frame = []
    for frame in frame_ids:
        before, after, weight = key_frame_weights(keys, frame)
        per_frame.append(torch.lerp(encoded[before], encoded[after], weight))
    return torch.stack(per_frame, dim=1)


def guidance_embeds(c: Components, prompt: str, negative_prompt: str, guidance_scale: float) -> torch.Tensor:
    """[negative, positive] embeddings with classifier-free guidance, [positive] without."""
    cond = encode_prompt(c, prompt)
    if guidance_scale <= 1.0:
        return cond
    return torch.cat([encode_prompt(c, negative_prompt or ""), cond])


class OnDevice:
    """Mixin for diffusers pipelines built around the manager's parts: they run on the device the parts
    run on (with CPU offload the modules' own `.device` is the CPU they wait on). diffusers has no public
    way to say so; its private `_execution_device` is overridden here, in one place."""

    _t2vz_device: torch.device | None = None

    @property
    def _execution_device(self):
        return self._t2vz_device or super()._execution_device


def run_on(pipe, device: torch.device | None):
    """`pipe` (an `OnDevice` pipeline) running on `device`, without diffusers' progress bar (ours reports)."""
    pipe._t2vz_device = device
    pipe.set_progress_bar_config(disable=True)
    return pipe

