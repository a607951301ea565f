"""Unit tests of the engine's parts: motion warping, cross-frame attention, t0/t1, chunks, decoding."""

import inspect
import types

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from diffusers.pipelines.deprecated.text_to_video_synthesis.pipeline_text_to_video_zero import (
    CrossFrameAttnProcessor2_0,
    create_motion_field_and_warp_latents,
)

from modules.engine import (
    CrossFrameAttnProcessor,
    ScheduleError,
    chunk_frame_ids,
    cross_frame_attention,
    default_t0_t1,
    resolve_t0_t1,
    warp_latents,
)
from modules.engine.common import Components, decode_latents


# ---------------------------------------------------------------- motion
@pytest.mark.parametrize("height, width", [(64, 64), (40, 72)])
@pytest.mark.parametrize("dx, dy", [(12, 12), (-20, 5), (0, 0)])
def test_warp_latents_matches_paper_code(height, width, dx, dy):
    latents = torch.randn(4, 4, height, width, generator=torch.Generator().manual_seed(0))
    ids = [1, 2, 5, 9]
    expected = create_motion_field_and_warp_latents(dx, dy, ids, latents)
    assert torch.equal(warp_latents(latents, ids, dx, dy), expected)


def test_warp_is_identity_without_motion_and_for_frame_zero():
    latents = torch.randn(2, 4, 16, 16)
    assert torch.equal(warp_latents(latents, [0, 3], 0, 0), latents)
    assert torch.equal(warp_latents(latents, [0, 0], 12, 12), latents)


def test_warp_translates_by_frame_id():
    """dx = 8 on the 512 reference moves a 64-wide latent by 1 latent pixel per frame id."""
    latents = torch.arange(64, dtype=torch.float32).repeat(1, 1, 8, 1)  # value = column index
    warped = warp_latents(latents.repeat(2, 1, 1, 1), [1, 3], dx=8, dy=0)
    assert torch.equal(warped[0, 0, 0, :50], torch.arange(1, 51, dtype=torch.float32))
    assert torch.equal(warped[1, 0, 0, :50], torch.arange(3, 53, dtype=torch.float32))


def test_warp_checks_frame_ids():
    with pytest.raises(ValueError):
        warp_latents(torch.zeros(2, 4, 8, 8), [1], 1, 1)


# ---------------------------------------------------------------- attention
def _attention(dim=32, heads=4):
    torch.manual_seed(0)
    return Attention(query_dim=dim, heads=heads, dim_head=dim // heads).eval()


@pytest.mark.parametrize("groups, frames", [(1, 4), (2, 3), (3, 5)])
def test_cross_frame_attention_matches_deprecated_processor(groups, frames):
    attn = _attention()
    hidden = torch.randn(groups * frames, 16, 32)
    with torch.no_grad():
        ours = CrossFrameAttnProcessor(groups)(attn, hidden)
        reference = CrossFrameAttnProcessor2_0(batch_size=groups)(attn, hidden)
    assert torch.allclose(ours, reference, atol=1e-5)


def test_each_group_attends_to_its_own_anchor():
    """Changing group 2's anchor changes group 2's frames only."""
    attn = _attention()
    hidden = torch.randn(2 * 3, 16, 32)
    changed = hidden.clone()
    changed[3] += 1.0  # anchor of the second group
    processor = CrossFrameAttnProcessor(2)
    with torch.no_grad():
        before, after = processor(attn, hidden), processor(attn, changed)
    assert torch.allclose(before[:3], after[:3])
    assert not torch.allclose(before[4:], after[4:])


def test_single_frame_is_plain_self_attention_and_text_attention_untouched():
    attn = _attention()
    hidden = torch.randn(2, 16, 32)
    text = torch.randn(2, 7, 32)
    with torch.no_grad():
        assert torch.allclose(CrossFrameAttnProcessor(2)(attn, hidden), AttnProcessor2_0()(attn, hidden), atol=1e-6)
        assert torch.equal(CrossFrameAttnProcessor(2)(attn, hidden, text), AttnProcessor2_0()(attn, hidden, text))


def test_processor_rejects_a_batch_that_is_not_whole_groups():
    with pytest.raises(ValueError):
        CrossFrameAttnProcessor(3)(_attention(), torch.randn(4, 16, 32))


def test_cross_frame_attention_restores_processors(tiny_parts):
    unet = tiny_parts["unet"]
    before = {name: type(p) for name, p in unet.attn_processors.items()}
    with pytest.raises(RuntimeError):
        with cross_frame_attention(unet, None, groups=2):
            assert all(isinstance(p, CrossFrameAttnProcessor) for p in unet.attn_processors.values())
            raise RuntimeError("stopped mid-generation")
    assert {name: type(p) for name, p in unet.attn_processors.items()} == before


# ---------------------------------------------------------------- t0 / t1 and chunks
def test_default_t0_t1_is_the_papers_and_scales():
    assert default_t0_t1(50) == (44, 47)
    for steps in range(2, 101):
        t0, t1 = default_t0_t1(steps)
        assert 0 <= t0 < t1 <= steps - 1


def test_impossible_t0_t1_is_a_clear_error():
    with pytest.raises(ScheduleError, match="at least 2"):
        default_t0_t1(1)
    with pytest.raises(ScheduleError, match="need 0 <= t0 < t1 <= 9"):
        resolve_t0_t1(10, 44, 47)
    with pytest.raises(ScheduleError):
        resolve_t0_t1(10, 5, 5)
    assert resolve_t0_t1(10, -1, -1) == default_t0_t1(10)
    assert resolve_t0_t1(10, 3, 8) == (3, 8)


@pytest.mark.parametrize("frames, chunk", [(8, 8), (9, 8), (20, 4), (1, 8), (5, 2)])
def test_chunks_cover_every_frame_once_after_the_anchor(frames, chunk):
    chunks = chunk_frame_ids(frames, chunk)
    assert all(len(ids) <= chunk for ids in chunks)
    assert all(ids[0] == 0 for ids in chunks)
    produced = chunks[0] + [i for ids in chunks[1:] for i in ids[1:]]
    assert produced == list(range(frames))


def test_every_scheduler_name_has_a_class():
    from modules.engine import SCHEDULER_NAMES, SCHEDULERS

    assert tuple(SCHEDULERS) == SCHEDULER_NAMES


# ---------------------------------------------------------------- decoding
class HalfOverflowingVae(torch.nn.Module):
    """A VAE stand-in: decodes NaN in half precision (black frames); its float32 retry can fail."""

    config = types.SimpleNamespace(scaling_factor=0.18215)

    def __init__(self, float32_error: Exception | None):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1, dtype=torch.float16))
        self.float32_error = float32_error

    @property
    def dtype(self) -> torch.dtype:
        return self.weight.dtype

    def decode(self, latents, return_dict=False):
        if self.dtype != torch.float32:
            return (torch.full((latents.shape[0], 3, 8, 8), float("nan"), dtype=self.dtype),)
        if self.float32_error is not None:
            raise self.float32_error
        return (torch.zeros(latents.shape[0], 3, 8, 8),)


@pytest.mark.parametrize("float32_error", [None, torch.OutOfMemoryError("CUDA out of memory in the float32 retry")])
def test_float32_decode_fallback_always_gives_the_shared_vae_its_dtype_back(float32_error):
    vae = HalfOverflowingVae(float32_error)
    unet = types.SimpleNamespace(dtype=torch.float16)
    c = Components(tokenizer=None, text_encoder=None, unet=unet, vae=vae, scheduler=None, vae_decode_batch=2)
    latents = torch.zeros(3, 4, 1, 1)
    if float32_error is None:
        frames = decode_latents(c, latents)
        assert frames.shape == (3, 8, 8, 3) and np.isfinite(frames).all()
    else:
        with pytest.raises(torch.OutOfMemoryError):
            decode_latents(c, latents)
    assert vae.dtype == torch.float16  # the next job's VAE is as it was, not left in float32


def test_on_device_overrides_diffusers_private_execution_device():
    """`engine.common.OnDevice` is the one place that relies on diffusers' private `_execution_device`:
    this fails if diffusers renames it."""
    import torch
    from diffusers import DiffusionPipeline

    from modules.engine.common import OnDevice

    assert isinstance(inspect.getattr_static(DiffusionPipeline, "_execution_device"), property)

    class Toy(OnDevice, DiffusionPipeline):
        pass

    toy = Toy()
    toy._t2vz_device = torch.device("meta")
    assert toy._execution_device == torch.device("meta")
