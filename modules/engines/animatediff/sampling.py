"""AnimateDiff on the already loaded SD 1.5 base: a motion adapter plugged into our own UNet.

diffusers' maintained code does the work (`UNetMotionModel`, `AnimateDiffPipeline`,
`AnimateDiffControlNetPipeline`, FreeNoise); what this module adds is that nothing is copied:

- `motion_unet` builds a `UNetMotionModel` on the meta device (no memory, no init) and then puts
  the base UNet's own layers into its 2D places and the adapter's own layers into its motion
  places. Sharing is per leaf layer (each `Linear`, `Conv2d`, norm, positional table is the very
  same module object), so the weights exist once, and moving the base UNet or the adapter
  (`.to()`, CPU offload) moves what the motion UNet runs on too. diffusers' own
  `UNetMotionModel.from_unet2d` would allocate a second UNet and copy every weight into it.
- It is cheap to build (no tensor is allocated), so `generate_animatediff` builds one per call;
  FreeNoise and split inference then restructure that throwaway model, never the adapter.
- FreeNoise swaps each motion transformer block for a `FreeNoiseTransformerBlock`; diffusers
  copies the weights into the new block, we build it on the meta device and share them instead.

Storyboards: `prompt` may be {frame: text} (or the text form `parse_storyboard` reads); diffusers'
FreeNoise encodes the key frames and interpolates the embeddings linearly between them. Long
clips (more frames than one context window) run with FreeNoise: the motion modules attend within
sliding windows of 16 frames (stride 4, pyramid-weighted), and the spatial layers run 16 frames at
a time (split inference). No memory term grows with frames squared and the per-layer temporaries
are those of 16 frames, but what every frame holds between layers (hidden states, skip tensors)
still grows linearly with the clip: FreeNoise makes long clips possible, not free.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
from diffusers import (
    AnimateDiffControlNetPipeline,
    AnimateDiffPipeline,
    ControlNetModel,
    MotionAdapter,
    UNet2DConditionModel,
    UNetMotionModel,
)
from diffusers.models.attention import BasicTransformerBlock, FreeNoiseTransformerBlock
from diffusers.pipelines.free_noise_utils import SplitInferenceModule
from torch import nn

from ...engine.common import (Components, OnDevice, StepCallback, decode_latents, make_generator, run_on,
                              step_end_callback)
from ...engine.storyboard import StoryboardError, check_storyboard, parse_storyboard  # noqa: F401 - re-exported

DEFAULT_ADAPTER = "guoyww/animatediff-motion-adapter-v1-5-3"

# diffusers' AnimateDiff recipe (docs "Text-to-Video Generation with AnimateDiff" and the
# AnimateDiffPipeline docstring example): DDIM on the base model's schedule with these changes
# (the engine's recipe declares them); the motion modules were trained with a linear beta schedule.
from . import SCHEDULER_CONFIG as SCHEDULER_OVERRIDES  # noqa: E402

# enable_free_noise's defaults (context of 16 frames = what the v1.5 adapters were trained on).
FREE_NOISE_DEFAULTS = dict(
    context_length=16, context_stride=4, weighting_scheme="pyramid", noise_type="shuffle_context"
)
# enable_free_noise_split_inference's defaults: spatial layers see 16 frames at a time, motion
# modules 256 pixel positions at a time.
SPLIT_INFERENCE = dict(spatial_split_size=256, temporal_split_size=16)


# ---------------------------------------------------------------------------------------------
# Sharing weights


def _has_tensors(module: nn.Module) -> bool:
    return any(t is not None for t in module._parameters.values()) or any(
        t is not None for t in module._buffers.values()
    )


def _same_layout(a: nn.Module, b: nn.Module) -> bool:
    def layout(m):
        tensors = {**m._parameters, **m._buffers}
        return {k: None if t is None else tuple(t.shape) for k, t in tensors.items()}

    return type(a) is type(b) and layout(a) == layout(b)


def _share_layers(target: nn.Module, source_of: Callable[[str], nn.Module | None], prefix: str = "") -> None:
    """Replace every layer of `target` that holds tensors by `source_of(its qualified name)`."""
    for name, child in list(target._modules.items()):
        if child is None:
            continue
        path = f"{prefix}{name}"
        if _has_tensors(child):
            source = source_of(path)
            if source is None or not _same_layout(child, source):
                raise ValueError(f"Incompatible motion adapter: no matching weights for {path!r}.")
            target._modules[name] = source
        else:
            _share_layers(child, source_of, f"{path}.")


def _forward_pre_hooks_of(*modules: nn.Module):
    """A pre-hook that runs the pre-hooks of `modules` (e.g. CPU offload moving them in)."""

    def hook(_module, args):
        for module in modules:
            for key, fn in list(module._forward_pre_hooks.items()):
                if key in module._forward_pre_hooks_with_kwargs:
                    fn(module, args, {})
                else:
                    fn(module, args)

    return hook


def motion_unet(unet2d: UNet2DConditionModel, adapter: MotionAdapter) -> UNetMotionModel:
    """A `UNetMotionModel` running on `unet2d`'s own layers plus `adapter`'s motion modules.

    No weight is allocated or copied: every layer with tensors is the base UNet's (2D) or the
    adapter's (motion) module object. Building one costs no memory (the skeleton is made on the
    meta device), so callers need not cache it. Don't move the result: move the base UNet and
    the adapter (it follows, they are its layers). When the motion UNet runs it fires the forward
    pre-hooks of `unet2d` and `adapter`, so hook-based CPU offload moves them in as usual.
    """
    if adapter.config.get("conv_in_channels"):
        raise ValueError("PIA-style motion adapters (their own conv_in) are not supported.")
    dtypes = {p.dtype for p in unet2d.parameters()} | {p.dtype for p in adapter.parameters()}
    devices = {p.device for p in unet2d.parameters()} | {p.device for p in adapter.parameters()}
    if len(dtypes) > 1 or len(devices) > 1:
        raise ValueError(
            "The motion adapter must be on the base UNet's device and dtype "
            f"(got {sorted(map(str, devices))}, {sorted(map(str, dtypes))})."
        )
    with torch.device("meta"):
        # from_unet2d checks the adapter against the UNet and derives the config; with
        # load_weights=False it returns the bare skeleton (its adapter.to(unet.device) is a no-op).
        model = UNetMotionModel.from_unet2d(unet2d, adapter, load_weights=False)
    base = dict(unet2d.named_modules(remove_duplicate=False))
    motion = dict(adapter.named_modules(remove_duplicate=False))

    def source_of(path: str) -> nn.Module | None:
        if ".motion_modules." in f".{path}.":
            return motion.get(path)
        layer = base.get(path)
        # A LoRA attached to the base (fast mode's LCM-LoRA, off outside its jobs) wraps layers in
        # PEFT layers; the motion UNet runs the plain layer inside, which is what the wrapper
        # computes while the LoRA is off.
        return layer.get_base_layer() if hasattr(layer, "get_base_layer") else layer

    _share_layers(model, source_of)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise ValueError(f"Incompatible motion adapter: {len(left)} tensors without weights, e.g. {left[0]!r}.")
    model.register_forward_pre_hook(_forward_pre_hooks_of(unet2d, adapter))
    return model.eval()


def _free_noise_blocks(unet: UNetMotionModel) -> None:
    """Swap the motion transformer blocks for FreeNoise blocks that share their layers.

    `enable_free_noise` then only sets the window properties on them (it swaps, and copies the
    weights, only blocks that are still `BasicTransformerBlock`s).
    """
    for block in [*unet.down_blocks, unet.mid_block, *unet.up_blocks]:
        for motion_module in getattr(block, "motion_modules", None) or []:
            for i, old in enumerate(motion_module.transformer_blocks):
                if not isinstance(old, BasicTransformerBlock):
                    continue
                with torch.device("meta"):  # the arguments diffusers' _enable_free_noise_in_block passes
                    new = FreeNoiseTransformerBlock(
                        dim=old.dim,
                        num_attention_heads=old.num_attention_heads,
                        attention_head_dim=old.attention_head_dim,
                        dropout=old.dropout,
                        cross_attention_dim=old.cross_attention_dim,
                        activation_fn=old.activation_fn,
                        attention_bias=old.attention_bias,
                        only_cross_attention=old.only_cross_attention,
                        double_self_attention=old.double_self_attention,
                        positional_embeddings=old.positional_embeddings,
                        num_positional_embeddings=old.num_positional_embeddings,
                    )
                layers = dict(old.named_modules(remove_duplicate=False))
                _share_layers(new, layers.get)
                new.set_chunk_feed_forward(old._chunk_size, old._chunk_dim)
                motion_module.transformer_blocks[i] = new.eval()


def _split_inference(unet: UNetMotionModel, spatial_split_size: int, temporal_split_size: int) -> None:
    """diffusers' `enable_free_noise_split_inference`, on the blocks with motion modules only.

    diffusers wraps every block's layers in `SplitInferenceModule`s, which split keyword inputs
    only; the plain `UNetMidBlock2DCrossAttn` of adapters without a mid-block motion module (as
    v1-5-3) calls its layers positionally, and diffusers' version fails there ("list index out of
    range"). That mid block runs at the lowest resolution, so leaving it whole costs little.
    """
    for block in [*unet.down_blocks, unet.mid_block, *unet.up_blocks]:
        if getattr(block, "motion_modules", None) is None:
            continue
        for module in block.motion_modules:
            module.proj_in = SplitInferenceModule(module.proj_in, spatial_split_size, 0, ["input"])
            for i, layer in enumerate(module.transformer_blocks):
                module.transformer_blocks[i] = SplitInferenceModule(
                    layer, spatial_split_size, 0, ["hidden_states", "encoder_hidden_states"]
                )
            module.proj_out = SplitInferenceModule(module.proj_out, spatial_split_size, 0, ["input"])
        for name, inputs in (
            ("attentions", ["hidden_states", "encoder_hidden_states"]),
            ("resnets", ["input_tensor", "temb"]),
            ("downsamplers", ["hidden_states"]),
            ("upsamplers", ["hidden_states"]),
        ):
            layers = getattr(block, name, None)
            for i, layer in enumerate(layers or []):
                layers[i] = SplitInferenceModule(layer, temporal_split_size, 0, inputs)


def _free_noise_settings(free_noise, num_frames: int, storyboard: bool, adapter: MotionAdapter) -> dict | None:
    """enable_free_noise's arguments, or None to run without FreeNoise."""
    max_frames = adapter.config.motion_max_seq_length
    if free_noise is None:  # auto: long clips and storyboards
        free_noise = storyboard or num_frames > FREE_NOISE_DEFAULTS["context_length"]
    if free_noise is False:
        if storyboard:
            raise StoryboardError("A storyboard (prompts per frame) needs FreeNoise; turn it on.")
        if num_frames > max_frames:
            raise ValueError(
                f"{num_frames} frames without FreeNoise is more than this motion adapter's {max_frames}; "
                "turn FreeNoise on for long clips."
            )
        return None
    settings = dict(FREE_NOISE_DEFAULTS)
    if isinstance(free_noise, Mapping):
        unknown = set(free_noise) - set(settings)
        if unknown:
            raise ValueError(f"Unknown FreeNoise settings {sorted(unknown)}; known: {sorted(settings)}.")
        settings.update(free_noise)
    elif free_noise is not True:
        raise ValueError(f"free_noise must be None, True, False or a dict of settings, got {free_noise!r}.")
    settings["context_length"] = min(int(settings["context_length"] or max_frames), num_frames)
    if not 1 <= settings["context_length"] <= max_frames:
        raise ValueError(f"FreeNoise context_length must be 1..{max_frames} (this adapter's longest clip).")
    if int(settings["context_stride"]) < 1:
        raise ValueError("FreeNoise context_stride must be at least 1.")
    return settings


# ---------------------------------------------------------------------------------------------
# Generation


class _AnimateDiffPipeline(OnDevice, AnimateDiffPipeline):
    pass


class _AnimateDiffControlNetPipeline(OnDevice, AnimateDiffControlNetPipeline):
    pass


def animatediff_scheduler(scheduler):
    """A fresh scheduler of `scheduler`'s kind with AnimateDiff's schedule (`SCHEDULER_OVERRIDES`)."""
    overrides = {k: v for k, v in SCHEDULER_OVERRIDES.items() if k in scheduler.config}
    return type(scheduler).from_config(scheduler.config, **overrides)


@torch.no_grad()
def generate_animatediff(
    c: Components,
    adapter: MotionAdapter,
    *,
    prompt: str | Mapping[int, str],
    negative_prompt: str | Mapping[int, str] = "",
    num_frames: int = 16,
    height: int = 512,
    width: int = 512,
    steps: int = 25,
    guidance_scale: float = 7.5,
    seed: int = 0,
    on_step: StepCallback | None = None,
    free_noise: bool | Mapping | None = None,
    controlnet: ControlNetModel | None = None,
    control: np.ndarray | None = None,
    conditioning_scale: float = 1.0,
    scheduler=None,
) -> np.ndarray:
    """Frames (F, H, W, 3) float32 in [0, 1] from AnimateDiff on `c`'s base and `adapter`.

    Defaults are diffusers' AnimateDiff recipe: 16 frames, 25 steps, guidance 7.5, DDIM with a
    linear beta schedule (`animatediff_scheduler`, applied to `c.scheduler`'s kind and config).
    `prompt` / `negative_prompt` may be storyboards ({frame: text} or `parse_storyboard` text).
    `free_noise`: None = on for storyboards and clips longer than 16 frames, False = off, True or
    a dict of `enable_free_noise` settings = on. `scheduler`: a scheduler to sample with instead
    (AnimateDiff-Lightning's `fast.lightning_scheduler`). With `controlnet`, `control` holds one uint8 map
    (F, H, W, 3) per frame. `on_step(done, total, "")` runs after every step; it may raise to stop.
    Noise comes from a CPU generator seeded with `seed`.
    """
    num_frames = int(num_frames)
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    scale = c.vae_scale_factor
    if height % scale or width % scale:
        raise ValueError(f"height and width must be multiples of {scale} pixels, got {width}x{height}")
    prompt = check_storyboard(prompt, num_frames, "prompt")
    negative_prompt = check_storyboard(negative_prompt, num_frames, "negative prompt")
    storyboard = isinstance(prompt, dict) or isinstance(negative_prompt, dict)
    settings = _free_noise_settings(free_noise, num_frames, storyboard, adapter)

    unet = motion_unet(c.unet, adapter)
    parts = dict(
        vae=c.vae,
        text_encoder=c.text_encoder,
        tokenizer=c.tokenizer,
        unet=unet,
        motion_adapter=adapter,
        scheduler=scheduler if scheduler is not None else animatediff_scheduler(c.scheduler),
    )
    extra = {}
    if controlnet is None:
        if control is not None:
            raise ValueError("control maps were given without a ControlNet")
        pipe = _AnimateDiffPipeline(**parts)
    else:
        if control is None:
            raise ValueError("a ControlNet needs control maps")
        control = np.asarray(control)
        if control.ndim != 4 or control.shape[0] != num_frames or control.shape[1:] != (height, width, 3):
            raise ValueError(f"control maps must be ({num_frames}, {height}, {width}, 3), got {control.shape}")
        pipe = _AnimateDiffControlNetPipeline(**parts, controlnet=controlnet)
        maps = torch.from_numpy(np.ascontiguousarray(control)).permute(0, 3, 1, 2).float() / 255.0
        extra = dict(conditioning_frames=list(maps), controlnet_conditioning_scale=float(conditioning_scale))
    run_on(pipe, c.device)
    if settings is not None:
        _free_noise_blocks(unet)
        pipe.enable_free_noise(**settings)
        _split_inference(unet, **SPLIT_INFERENCE)


    latents = pipe(
        prompt=prompt,
        negative_prompt=negative_prompt,
        num_frames=num_frames,
        height=height,
        width=width,
        num_inference_steps=steps,
        guidance_scale=guidance_scale,
        generator=make_generator(seed),
        output_type="latent",
        callback_on_step_end=step_end_callback(on_step),
        **extra,
    ).frames
    # (1, C, F, h, w) -> (F, C, h, w)
    return decode_latents(c, latents[0].permute(1, 0, 2, 3))
