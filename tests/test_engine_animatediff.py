"""AnimateDiff engine: weights shared with the loaded base, diffusers' pipelines, storyboards, FreeNoise."""

import ctypes
import ctypes.util

import numpy as np
import pytest
import torch

from modules.engines.animatediff import tiny as animatediff_tiny

SIZE = 32  # 4x4 latents: the tiny UNet's two levels, in well under a second a step on a CPU
# Steps default to 2: one DDIM step on AnimateDiff's "linspace" schedule is t=0 alone, which
# returns the starting noise whatever the model predicts.


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny tensors run faster on one thread


@pytest.fixture(scope="module")
def adapter():
    from modules import tiny

    return animatediff_tiny.build_motion_adapter(seed=4)


def _tensors(module):
    return dict(module.named_parameters(remove_duplicate=False)) | dict(module.named_buffers(remove_duplicate=False))


def _unet_out(unet, frames=3):
    gen = torch.Generator().manual_seed(7)
    sample = torch.randn(frames, 4, 8, 8, generator=gen)
    text = torch.randn(frames, 77, unet.config.cross_attention_dim, generator=gen)
    with torch.no_grad():
        return unet(sample, 500, encoder_hidden_states=text).sample


def _motion_out(model, frames=3):
    """The motion UNet on the same per-frame inputs as `_unet_out`, as (F, C, h, w)."""
    gen = torch.Generator().manual_seed(7)
    sample = torch.randn(frames, 4, 8, 8, generator=gen)
    text = torch.randn(frames, 77, model.config.cross_attention_dim, generator=gen)
    with torch.no_grad():
        out = model(sample.permute(1, 0, 2, 3)[None], 500, encoder_hidden_states=text).sample
    return out[0].permute(1, 0, 2, 3)


# ------------------------------------------------------------------------------- weight sharing


@pytest.mark.parametrize("mid_block", [False, True])
def test_motion_unet_shares_every_weight_and_matches_diffusers_copy(tiny_parts, mid_block):
    from diffusers import UNetMotionModel

    from modules import tiny
    from modules.engines.animatediff.sampling import motion_unet

    unet = tiny_parts["unet"]
    adapter = animatediff_tiny.build_motion_adapter(seed=5, mid_block=mid_block)
    before = _unet_out(unet)
    model = motion_unet(unet, adapter)

    mine = _tensors(model)
    base, motion = _tensors(unet), _tensors(adapter)
    assert set(base) < set(mine)  # every 2D weight of the base is in the motion UNet, by name ...
    for name, tensor in base.items():  # ... and is the very same storage
        assert mine[name].data_ptr() == tensor.data_ptr(), name
        assert mine[name] is tensor, name
    motion_names = [n for n in mine if ".motion_modules." in n]
    assert len(motion_names) == len(motion) and (mid_block == any(n.startswith("mid_block.motion") for n in mine))
    for name in motion_names:
        assert mine[name].data_ptr() == motion[name].data_ptr(), name
    assert len(mine) == len(base) + len(motion)  # nothing else: no tensor of its own

    # diffusers' from_unet2d builds the same model by copying: same outputs.
    reference = UNetMotionModel.from_unet2d(unet, adapter).eval()
    torch.testing.assert_close(_motion_out(model), _motion_out(reference), rtol=0, atol=1e-5)
    # The motion modules matter (random output projections) ...
    assert (_motion_out(model) - _unet_out(unet)).abs().max() > 1e-2
    # ... and the base UNet is untouched.
    assert torch.equal(_unet_out(unet), before)


def test_motion_unet_with_identity_motion_modules_is_the_base_unet_and_fires_its_hooks(tiny_parts):
    from modules import tiny
    from modules.engines.animatediff.sampling import motion_unet

    adapter = animatediff_tiny.build_motion_adapter(seed=6)
    with torch.no_grad():
        for module in adapter.modules():
            if type(module).__name__ == "AnimateDiffTransformer3D":
                module.proj_out.weight.zero_()
                module.proj_out.bias.zero_()
    model = motion_unet(tiny_parts["unet"], adapter)
    # Forward pre-hooks on the base UNet and the adapter (CPU offload's) fire when it runs.
    fired = []
    handles = [m.register_forward_pre_hook(lambda m, args: fired.append(m)) for m in (tiny_parts["unet"], adapter)]
    try:
        torch.testing.assert_close(_motion_out(model), _unet_out(tiny_parts["unet"]), rtol=0, atol=1e-5)
    finally:
        for handle in handles:
            handle.remove()
    assert fired[:2] == [tiny_parts["unet"], adapter]  # then the base UNet's own call


def test_free_noise_blocks_share_the_adapter_weights(tiny_parts, adapter):
    from diffusers.models.attention import FreeNoiseTransformerBlock

    from modules.engines.animatediff.sampling import _free_noise_blocks, motion_unet

    model = motion_unet(tiny_parts["unet"], adapter)
    _free_noise_blocks(model)
    blocks = [m for m in model.modules() if isinstance(m, FreeNoiseTransformerBlock)]
    assert len(blocks) == sum(len(b.motion_modules) for b in [*model.down_blocks, *model.up_blocks])
    motion = _tensors(adapter)
    mine = {n: t for n, t in _tensors(model).items() if ".motion_modules." in n}
    assert set(mine) == set(motion)
    assert all(mine[n].data_ptr() == motion[n].data_ptr() for n in mine)
    assert not any(t.is_meta for t in _tensors(model).values())


def test_adapter_must_sit_with_the_base_unet(tiny_parts):
    from diffusers import MotionAdapter

    from modules import tiny
    from modules.engines.animatediff.sampling import motion_unet

    with pytest.raises(ValueError, match="device and dtype"):
        motion_unet(tiny_parts["unet"], animatediff_tiny.build_motion_adapter().to(torch.float64))
    with pytest.raises(ValueError, match="Incompatible"):  # other channels than the tiny UNet's
        motion_unet(tiny_parts["unet"], MotionAdapter(block_out_channels=(32, 32), motion_layers_per_block=2))
    with pytest.raises(ValueError, match="Incompatible"):  # other layers per block
        motion_unet(tiny_parts["unet"], MotionAdapter(block_out_channels=(32, 64), motion_layers_per_block=1))


# ------------------------------------------------------------------------------- generation


def _generate(components, adapter, **kwargs):
    from modules.engines.animatediff.sampling import generate_animatediff

    params = dict(prompt="a cat", num_frames=8, height=SIZE, width=SIZE, steps=2, seed=3)
    return generate_animatediff(components, adapter, **(params | kwargs))


def test_generation_is_finite_deterministic_and_reports_steps(tiny_parts, components, adapter):
    from modules import tiny

    base_before = _unet_out(tiny_parts["unet"])
    calls = []
    frames = _generate(components, adapter, on_step=lambda *a: calls.append(a))
    assert frames.shape == (8, SIZE, SIZE, 3) and frames.dtype == np.float32
    assert np.isfinite(frames).all() and frames.min() >= 0 and frames.max() <= 1
    assert calls == [(1, 2, ""), (2, 2, "")]
    components.scheduler = tiny.build_scheduler()
    assert np.array_equal(_generate(components, adapter), frames)
    assert np.abs(_generate(components, adapter, seed=4) - frames).max() > 1e-3
    assert torch.equal(_unet_out(tiny_parts["unet"]), base_before)


def test_free_noise_on_one_window_equals_plain_sampling(components, adapter):
    plain = _generate(components, adapter, free_noise=False)
    windowed = _generate(components, adapter, free_noise=True)  # one window of 8, split inference
    np.testing.assert_allclose(windowed, plain, atol=1e-4)


def test_on_step_raising_stops_the_generation(components, adapter):
    class Stop(Exception):
        pass

    calls = []

    def on_step(done, total, phase):
        calls.append(done)
        raise Stop

    with pytest.raises(Stop):
        _generate(components, adapter, steps=5, on_step=on_step)
    assert calls == [1]


def test_controlnet_variant_follows_the_maps(tiny_parts, components, adapter):
    rng = np.random.default_rng(0)
    maps = rng.integers(0, 256, (8, SIZE, SIZE, 3), dtype=np.uint8)
    controlnet = tiny_parts["controlnet"]
    a = _generate(components, adapter, controlnet=controlnet, control=maps)
    b = _generate(components, adapter, controlnet=controlnet, control=255 - maps)
    assert a.shape == (8, SIZE, SIZE, 3) and np.isfinite(a).all()
    assert np.abs(a - b).max() > 1e-3
    with pytest.raises(ValueError, match="control maps must be"):
        _generate(components, adapter, controlnet=controlnet, control=maps[:4], steps=1)
    with pytest.raises(ValueError, match="needs control maps"):
        _generate(components, adapter, controlnet=controlnet, steps=1)


def test_storyboard_over_48_frames_runs_with_free_noise(components, adapter):
    calls = []
    board = "0: a cat sleeping\n16: the cat wakes up\n40: the cat runs"
    frames = _generate(
        components, adapter, prompt=board, num_frames=48, guidance_scale=1.0, on_step=lambda *a: calls.append(a)
    )
    assert frames.shape == (48, SIZE, SIZE, 3) and np.isfinite(frames).all()
    assert calls == [(1, 2, ""), (2, 2, "")]


def test_long_clip_needs_free_noise(components, adapter):
    from modules.engine import StoryboardError

    with pytest.raises(ValueError, match="turn FreeNoise on"):
        _generate(components, adapter, num_frames=40, free_noise=False)
    with pytest.raises(StoryboardError, match="needs FreeNoise"):
        _generate(components, adapter, prompt={0: "a", 4: "b"}, free_noise=False)
    with pytest.raises(StoryboardError, match="has 8 frames"):
        _generate(components, adapter, prompt={0: "a", 8: "b"})
    with pytest.raises(StoryboardError, match="start at frame 0"):
        _generate(components, adapter, prompt={2: "a"})


def test_parse_storyboard():
    from modules.engine import StoryboardError, parse_storyboard

    assert parse_storyboard("0: a cat sleeping\n16: the cat wakes up") == {0: "a cat sleeping", 16: "the cat wakes up"}
    assert parse_storyboard("  a cat, style: anime \n") == "a cat, style: anime"
    assert parse_storyboard("\n# comment\n16 : b\n0:a\n\n") == {0: "a", 16: "b"}
    errors = {
        "0: a\nthe cat wakes up": "line 2 .* has no frame number",
        "0: a\n1.5: b": "whole number",
        "0: a\n-4: b": "start at 0",
        "0: a\n8:   ": "no prompt",
        "0: a\n8: b\n8: c": "already given on line 2",
        "4: a\n8: b": "must start at frame 0",
    }
    for text, message in errors.items():
        with pytest.raises(StoryboardError, match=message):
            parse_storyboard(text)
    assert issubclass(StoryboardError, ValueError)


# ------------------------------------------------------------------------------- memory


def _heap_in_use():
    """Bytes malloc has handed out now (heap + mmapped): where torch's CPU tensors live."""

    class MallInfo2(ctypes.Structure):
        names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
        _fields_ = [(n, ctypes.c_size_t) for n in names.split()]

    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.mallinfo2.restype = MallInfo2

    def used():
        info = libc.mallinfo2()
        return info.uordblks + info.hblkhd

    return used


def _peak_bytes(run, skip: torch.nn.Module | None = None) -> int:
    """Peak heap growth during `run`, sampled at every module's entry and exit (but `skip`'s)."""
    from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

    used = _heap_in_use()
    skipped = {id(m) for m in skip.modules()} if skip is not None else set()
    start = used()
    peak = [start]

    def sample(module, *_args):
        if id(module) not in skipped:
            peak[0] = max(peak[0], used())

    handles = [register_module_forward_pre_hook(sample), register_module_forward_hook(sample)]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return peak[0] - start


@pytest.mark.skipif(not hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "mallinfo2"), reason="needs glibc")
@pytest.mark.slow  # samples 16 and 64 frames to measure the peak
def test_free_noise_memory_16_vs_64_frames(components, adapter, record_property):
    """Sampling's peak (the VAE decodes 8 frames at a time, apart) grows at most linearly.

    FreeNoise attends within 16-frame windows and split inference runs the spatial layers 16
    frames at a time, so no term grows with frames squared; what still grows is what every
    frame holds between layers (latents, hidden states, skip tensors): linear, not flat.
    """
    peaks = {}
    for frames in (16, 64):
        settings = dict(num_frames=frames, height=64, width=64, steps=1, guidance_scale=1.0, free_noise=True)
        peaks[frames] = _peak_bytes(lambda: _generate(components, adapter, **settings), skip=components.vae)
    record_property("sampling_peak_bytes", peaks)
    mib = {k: f"{v / 2**20:.1f} MiB" for k, v in peaks.items()}
    print(f"\nFreeNoise sampling peak (64x64, tiny): 16 frames {mib[16]}, 64 frames {mib[64]}")
    assert 0 < peaks[16] < peaks[64] < 4.5 * peaks[16]
