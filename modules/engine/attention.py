"""Cross-frame attention: every frame's self-attention reads the anchor frame's keys and values.

This is what keeps the frames of a zero-shot clip consistent (paper sect. 3.3.2). The
batch of a UNet call is `groups` equal-sized groups of frames (2 for classifier-free guidance:
[unconditional frames, conditional frames]; 3 for Instruct-Pix2Pix: [text, image,
unconditional]); frame 0 of each group is that group's anchor.

Two things make it cheaper than diffusers' deprecated processor while computing the same
attention: keys and values are projected for the anchor frames only (not for every frame and
then thrown away), and since all frames of a group share one key/value set, the group's frames
are folded into one long query sequence for a single SDPA call (no key/value copies).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0


class CrossFrameAttnProcessor:
    def __init__(self, groups: int = 2):
        if groups < 1:
            raise ValueError("groups must be at least 1")
        self.groups = groups
        self._plain = AttnProcessor2_0()

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
        is_self_attention = encoder_hidden_states is None
        unsupported = (
            attention_mask is not None
            or attn.spatial_norm is not None
            or attn.group_norm is not None
            or attn.norm_q is not None
            or hidden_states.ndim != 3
        )
        if not is_self_attention or unsupported:
            # Text cross-attention (and attention layouts SD's UNet never uses) stay per frame.
            return self._plain(attn, hidden_states, encoder_hidden_states, attention_mask, temb)

        batch, tokens, _ = hidden_states.shape
        if batch % self.groups:
            raise ValueError(f"batch {batch} is not a multiple of the {self.groups} guidance groups")
        frames = batch // self.groups
        residual = hidden_states

        query = attn.to_q(hidden_states)
        anchors = hidden_states.view(self.groups, frames, tokens, -1)[:, 0]
        key = attn.to_k(anchors)
        value = attn.to_v(anchors)

        heads = attn.heads
        head_dim = key.shape[-1] // heads
        # (groups, frames*tokens, heads, head_dim) -> (groups, heads, frames*tokens, head_dim)
        query = query.reshape(self.groups, frames * tokens, heads, head_dim).transpose(1, 2)
        key = key.view(self.groups, tokens, heads, head_dim).transpose(1, 2)
        value = value.view(self.groups, tokens, heads, head_dim).transpose(1, 2)

        out = F.scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False)
        out = out.transpose(1, 2).reshape(batch, tokens, heads * head_dim).to(query.dtype)
        out = attn.to_out[0](out)
        out = attn.to_out[1](out)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


@contextmanager
def cross_frame_attention(*models: torch.nn.Module | None, groups: int):
    """Install the processor on `models` for one generation, then restore what they had.

    The base UNet is shared by every tab, so its processors must be left as they were found.
    """
    models = tuple(m for m in models if m is not None)
    saved = [m.attn_processors for m in models]
    processor = CrossFrameAttnProcessor(groups)
    try:
        for model in models:
            model.set_attn_processor(processor)
        yield processor
    finally:
        for model, processors in zip(models, saved):
            model.set_attn_processor(processors)
