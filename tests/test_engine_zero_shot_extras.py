"""The zero-shot engine's storyboards (per-frame text embeddings) and an image as the first frame."""

import numpy as np
import pytest

from modules.engine import generate_text2video
from modules.engine.common import decode_latents, encode_images

COMMON = dict(negative_prompt="", num_frames=6, height=64, width=64, steps=6, guidance_scale=7.5, seed=3)


def run(components, **overrides):
    from modules import tiny

    components.scheduler = tiny.build_scheduler()
    return generate_text2video(components, **{**COMMON, **overrides})


def test_storyboard_of_one_prompt_is_that_prompt(components):
    plain = run(components, prompt="a cat")
    board = run(components, prompt={0: "a cat", 3: "a cat"})
    np.testing.assert_allclose(board, plain, atol=1e-6)


def test_storyboard_keeps_the_anchor_and_changes_later_frames(components):
    plain = run(components, prompt="a cat sleeping")
    board = run(components, prompt={0: "a cat sleeping", 5: "a dog running fast"})
    np.testing.assert_allclose(board[0], plain[0], atol=1e-6)  # frame 0 is the first key's prompt
    assert np.abs(board[5] - plain[5]).max() > 1e-3
    chunked = run(components, prompt={0: "a cat sleeping", 5: "a dog running fast"}, chunk_size=3)
    np.testing.assert_allclose(chunked, board, atol=2e-5)  # per-frame text, not per chunk


def test_storyboard_of_three_key_frames_over_48_frames(components):
    """The issue's long-clip case for the zero-shot engine: 3 key frames over 48 frames, in chunks."""
    from modules.engine import parse_storyboard

    board = parse_storyboard("0: a cat sleeping\n16: the cat wakes up\n32: the cat runs")
    frames = run(components, prompt=board, num_frames=48, height=32, width=32, steps=2, chunk_size=8)
    assert frames.shape == (48, 32, 32, 3) and np.isfinite(frames).all()
    plain = run(components, prompt="a cat sleeping", num_frames=48, height=32, width=32, steps=2, chunk_size=8)
    np.testing.assert_allclose(frames[0], plain[0], atol=1e-6)  # the first key on the anchor
    assert np.abs(frames[40] - plain[40]).max() > 1e-3  # later frames follow the later keys


def test_first_frame_image_becomes_the_anchor(components):
    rng = np.random.default_rng(0)
    image, other = (rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(2))
    steps = []
    kept = run(components, prompt="a cat", first_frame=image, t0=1, t1=2,
               on_step=lambda done, total, phase: steps.append(total))
    elsewhere = run(components, prompt="a cat", first_frame=other, t0=1, t1=2)
    roundtrip = decode_latents(components, encode_images(components, image[None]) * components.vae.config.scaling_factor)[0]
    assert np.abs(kept[0] - roundtrip).mean() < np.abs(elsewhere[0] - roundtrip).mean()
    assert steps[0] == (2 - 1) + 1 * (2 + 1)  # the anchor's own first steps are skipped
    with pytest.raises(ValueError, match="first frame must be 64x64"):
        run(components, prompt="a cat", first_frame=image[:32])
