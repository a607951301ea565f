"""Tune-A-Video's two video layers, attached to an unchanged SD 1.5 `UNet2DConditionModel`.

The UNet runs per frame with the frames folded into the batch (`(batch * frames, C, H, W)`,
frame-minor). On top of it:

- sparse-causal attention: each spatial self-attention (`attn1`) gets a processor under which
  frame i's queries attend to the keys/values of frame 0 and frame i-1 (frame 0: itself twice,
  which is plain self-attention);
- temporal attention: after every `BasicTransformerBlock`, a residual self-attention across the
  frames at each spatial position, with its own LayerNorm and a zero output projection, so that
  at initialisation it adds exactly zero.

Nothing is written into the UNet: the processors are swapped (and swapped back), the temporal
layers live outside it and run from forward hooks, and the trained query projections
(`attn1.to_q`, `attn2.to_q`) are swapped in as new `Parameter` objects, the originals kept
aside untouched. `VideoLayers.remove()` puts everything back, so the base UNet computes bit for
bit what it did before (the UNet is shared by every tab of the app).

Trained parameters are named like Tune-A-Video's own checkpoints (`UNet3DConditionModel`):
`<block>.attn1.to_q.weight`, `<block>.attn2.to_q.weight`, `<block>.attn_temp.*`,
`<block>.norm_temp.*`, where `<block>` is the diffusers path of the transformer block, e.g.
`down_blocks.1.attentions.0.transformer_blocks.0`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention
from torch import nn

# The query projections Tune-A-Video fine-tunes in each transformer block (relative names).
QUERY_PROJECTIONS = ("attn1.to_q", "attn2.to_q")


class SparseCausalAttnProcessor:
    """Self-attention where frame i reads the keys/values of frames 0 and i-1.

    Frame 0 anchors the clip's appearance, frame i-1 carries the motion; two frames' keys instead
    of all F keep the cost linear in F. Frame 0 sees its own keys twice, which is exactly its
    plain self-attention (softmax over duplicated keys gives the same weights per value).
    """

    def __init__(self, layers: VideoLayers):
        self.layers = layers  # reads `layers.num_frames`, set for each UNet call

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args,
        **kwargs,
    ) -> torch.Tensor:
        if encoder_hidden_states is not None or attention_mask is not None or hidden_states.ndim != 3:
            raise ValueError("sparse-causal attention is for the UNet's spatial self-attention (attn1) only")
        if attn.spatial_norm is not None or attn.group_norm is not None:
            raise ValueError("sparse-causal attention does not support spatial or group norms (SD's UNet has none)")
        frames = self.layers.num_frames
        batch_frames, tokens, _ = hidden_states.shape
        if batch_frames % frames:
            raise ValueError(f"batch {batch_frames} is not a multiple of {frames} frames")
        batch = batch_frames // frames
        residual = hidden_states

        query = attn.to_q(hidden_states)
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states)

        first = [0] * frames
        previous = [max(i - 1, 0) for i in range(frames)]
        # (batch, frames, tokens, C) -> per frame: frame 0's tokens then frame i-1's tokens.
        key = key.view(batch, frames, tokens, -1)
        key = torch.cat([key[:, first], key[:, previous]], dim=2).view(batch_frames, 2 * tokens, -1)
        value = value.view(batch, frames, tokens, -1)
        value = torch.cat([value[:, first], value[:, previous]], dim=2).view(batch_frames, 2 * tokens, -1)

        heads = attn.heads
        head_dim = key.shape[-1] // heads
        query = query.view(batch_frames, tokens, heads, head_dim).transpose(1, 2)
        key = key.view(batch_frames, 2 * tokens, heads, head_dim).transpose(1, 2)
        value = value.view(batch_frames, 2 * tokens, heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        out = F.scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False)
        out = out.transpose(1, 2).reshape(batch_frames, tokens, heads * head_dim).to(query.dtype)
        out = attn.to_out[0](out)
        out = attn.to_out[1](out)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


class TemporalAttention(nn.Module):
    """Residual self-attention across frames at each spatial position.

    The output projection starts at zero (weight and bias), so a fresh layer adds exactly 0 and
    the UNet is the image model until training moves it. Submodule names are Tune-A-Video's, so
    the state dict keys read `<block>.attn_temp.to_q.weight`, `<block>.norm_temp.weight`, ...
    """

    def __init__(self, dim: int, heads: int, head_dim: int):
        super().__init__()
        self.norm_temp = nn.LayerNorm(dim)
        self.attn_temp = Attention(query_dim=dim, heads=heads, dim_head=head_dim, bias=False)
        nn.init.zeros_(self.attn_temp.to_out[0].weight)
        nn.init.zeros_(self.attn_temp.to_out[0].bias)

    def forward(self, hidden_states: torch.Tensor, num_frames: int) -> torch.Tensor:
        batch_frames, tokens, channels = hidden_states.shape
        batch = batch_frames // num_frames
        # (batch * frames, tokens, C) -> (batch * tokens, frames, C): one sequence per position.
        per_position = hidden_states.view(batch, num_frames, tokens, channels).transpose(1, 2)
        per_position = per_position.reshape(batch * tokens, num_frames, channels)
        per_position = per_position + self.attn_temp(self.norm_temp(per_position))
        per_position = per_position.view(batch, tokens, num_frames, channels).transpose(1, 2)
        return per_position.reshape(batch_frames, tokens, channels)


def _query_linear(attn: Attention) -> nn.Linear:
    """The `Linear` holding the query weights; under a PEFT LoRA wrapper (the app's Fast mode
    attaches one to the shared UNet) that is the wrapper's base layer."""
    module = attn.to_q
    return module.get_base_layer() if hasattr(module, "get_base_layer") else module


class VideoLayers:
    """Tune-A-Video's layers attached to `unet` (see the module docstring); build it with
    `add_video_layers` and always `remove()` it (or use `weights.applied_to`).

    Calling it runs the video UNet: `layers(latents (B, C, F, H, W), t, text (B, L, D))` returns
    the noise prediction `(B, C, F, H, W)`.
    """

    def __init__(self, unet: nn.Module, *, sparse_causal: bool = True, temporal: bool = True, seed: int = 0,
                 device: torch.device | None = None):
        self.unet = unet
        self.num_frames = 1
        self.blocks: dict[str, BasicTransformerBlock] = {
            name: module for name, module in unet.named_modules() if isinstance(module, BasicTransformerBlock)
        }
        if not self.blocks:
            raise ValueError("the UNet has no transformer blocks to make into video blocks")
        reference = next(unet.parameters())
        # What the job adds lives where the job runs: with CPU offload the UNet rests elsewhere between calls.
        self.device = torch.device(device) if device is not None else reference.device
        self.temporal = nn.ModuleDict()  # keys: block path with "." -> "_" (ModuleDict forbids dots)
        self._saved_processors: dict[str, object] = {}
        self._hooks = []
        self._original_queries: dict[str, tuple[nn.Linear, nn.Parameter]] = {}
        try:
            if temporal:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)  # the temporal q/k/v start the same for the same seed
                    for name, block in self.blocks.items():
                        heads = block.attn1.heads
                        layer = TemporalAttention(block.attn1.inner_dim, heads, block.attn1.inner_dim // heads)
                        self.temporal[_module_key(name)] = layer
                self.temporal.to(device=self.device, dtype=reference.dtype)
                for name, block in self.blocks.items():
                    self._hooks.append(block.register_forward_hook(self._temporal_hook(name)))
            if sparse_causal:
                processor = SparseCausalAttnProcessor(self)
                for name, block in self.blocks.items():
                    self._saved_processors[name] = block.attn1.processor
                    block.attn1.set_processor(processor)
        except BaseException:
            self.remove()
            raise

    # -- running ---------------------------------------------------------------------------

    def __call__(self, latents: torch.Tensor, timestep, text_embeddings: torch.Tensor) -> torch.Tensor:
        batch, channels, frames, height, width = latents.shape
        if text_embeddings.shape[0] != batch:
            raise ValueError(f"{text_embeddings.shape[0]} text embeddings for a batch of {batch} clips")
        self.num_frames = frames
        per_frame = latents.permute(0, 2, 1, 3, 4).reshape(batch * frames, channels, height, width)
        text_per_frame = text_embeddings.repeat_interleave(frames, dim=0)
        noise = self.unet(per_frame, timestep, encoder_hidden_states=text_per_frame, return_dict=False)[0]
        noise = noise.reshape(batch, frames, -1, height, width).permute(0, 2, 1, 3, 4)
        return noise

    def _temporal_hook(self, name: str):
        layer_key = _module_key(name)

        def run_temporal_attention(module, args, output):
            return self.temporal[layer_key](output, self.num_frames)

        return run_temporal_attention

    # -- trained parameters ----------------------------------------------------------------

    def _query_names(self) -> list[str]:
        return [f"{block}.{projection}" for block in self.blocks for projection in QUERY_PROJECTIONS]

    def _query_module(self, name: str) -> nn.Linear:
        block, attn_name, _ = name.rsplit(".", 2)
        return _query_linear(getattr(self.blocks[block], attn_name))

    def _current_tensors(self) -> dict[str, torch.Tensor]:
        """The trained parameters as they are now, by saved name (no copies)."""
        tensors: dict[str, torch.Tensor] = {}
        for name in self._query_names():
            for p, tensor in self._query_module(name).named_parameters():
                tensors[f"{name}.{p}"] = tensor
        for name in self.blocks:
            if _module_key(name) in self.temporal:
                for k, tensor in self.temporal[_module_key(name)].state_dict().items():
                    tensors[f"{name}.{k}"] = tensor
        return tensors

    def expected_keys(self) -> set[str]:
        """The names `state_dict()` gives and `load_state_dict()` takes."""
        return set(self._current_tensors())

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The trained parameters (query projections and temporal layers), detached copies on
        the CPU in float32: what a tuning run produces and what gets saved."""
        return {k: t.detach().to("cpu", torch.float32, copy=True) for k, t in self._current_tensors().items()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor], *, trainable: bool = False) -> None:
        """Install trained parameters: all keys of `expected_keys()` exactly, else ValueError.

        The query projections get NEW Parameters on the job's device (the UNet's own are kept aside for
        `remove()`), in the UNet's dtype, or float32 requiring grad with `trainable=True` (master weights
        for training); the temporal layers take the values in place.
        """
        current = self._current_tensors()
        missing, unexpected = sorted(set(current) - set(state)), sorted(set(state) - set(current))
        if missing or unexpected:
            problems = [f"missing: {_few(missing)}"] if missing else []
            problems += [f"unexpected: {_few(unexpected)}"] if unexpected else []
            raise ValueError("trained parameters do not fit this UNet; " + "; ".join(problems))
        for key, tensor in current.items():
            if state[key].shape != tensor.shape:
                shapes = f"{tuple(state[key].shape)}, the UNet's is {tuple(tensor.shape)}"
                raise ValueError(f"trained parameter {key} has shape {shapes}")
        with torch.no_grad():
            for name in self._query_names():
                module = self._query_module(name)
                for p, current_parameter in list(module.named_parameters()):
                    key = f"{name}.{p}"
                    _, original = self._original_queries.setdefault(key, (module, current_parameter))
                    dtype = torch.float32 if trainable else original.dtype
                    replacement = state[key].to(self.device, dtype, copy=True)
                    setattr(module, p, nn.Parameter(replacement, requires_grad=trainable))
            for name in self.blocks:
                layer_key = _module_key(name)
                if layer_key in self.temporal:
                    layer = self.temporal[layer_key]
                    layer.load_state_dict({k: state[f"{name}.{k}"] for k in layer.state_dict()})
        if trainable:
            self.temporal.float().requires_grad_(True)

    def make_trainable(self) -> list[nn.Parameter]:
        """Swap in float32 copies of the current trained parameters that require grad; returns
        them (what the optimiser updates). The UNet's own parameters are never touched."""
        self.load_state_dict(self.state_dict(), trainable=True)
        return self.trainable_parameters()

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The swapped-in query parameters and the temporal layers' (after `make_trainable`)."""
        queries = [getattr(module, key.rsplit(".", 1)[1]) for key, (module, _) in self._original_queries.items()]
        return queries + list(self.temporal.parameters())

    # -- removal ---------------------------------------------------------------------------

    def remove(self) -> None:
        """Detach everything: hooks, processors, swapped query weights. Idempotent."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        for name, processor in self._saved_processors.items():
            self.blocks[name].attn1.set_processor(processor)
        self._saved_processors = {}
        for key, (module, original) in self._original_queries.items():
            current = getattr(module, key.rsplit(".", 1)[1])
            if original.device != current.device:  # the UNet was moved meanwhile: follow it
                original.data = original.data.to(current.device)
            setattr(module, key.rsplit(".", 1)[1], original)
        self._original_queries = {}


def _module_key(name: str) -> str:
    return name.replace(".", "_")


def _few(keys: list[str], shown: int = 5) -> str:
    return ", ".join(keys[:shown]) + (f" and {len(keys) - shown} more" if len(keys) > shown else "")


def add_video_layers(
    unet: nn.Module,
    parameters: Mapping[str, torch.Tensor] | None = None,
    *,
    sparse_causal: bool = True,
    temporal: bool = True,
    seed: int = 0,
    device: torch.device | None = None,
) -> VideoLayers:
    """Attach Tune-A-Video's layers to `unet` (fresh, or `parameters` from a tuning run).

    `sparse_causal=False` / `temporal=False` leave one of the two out (ablations, tests). Fresh
    temporal layers draw their q/k/v from `seed`; their output projection is zero. The layers and
    the tuned queries are made on `device`, where the job runs (default: the UNet's).
    """
    layers = VideoLayers(unet, sparse_causal=sparse_causal, temporal=temporal, seed=seed, device=device)
    if parameters is not None:
        try:
            layers.load_state_dict(parameters)
        except BaseException:
            layers.remove()
            raise
    return layers


def query_weights(unet: nn.Module) -> dict[str, torch.Tensor]:
    """The UNet's own query projections (`attn1.to_q`, `attn2.to_q`) under the trained parameters' names,
    as float32 CPU copies: what a tuning on this UNet started from (`weights.rebased`)."""
    return VideoLayers(unet, sparse_causal=False, temporal=False).state_dict()  # attaches nothing


def remove_video_layers(layers: VideoLayers) -> None:
    """Restore the UNet `layers` was attached to (the same as `layers.remove()`)."""
    layers.remove()
