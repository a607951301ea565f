"""Test-wide setup: offline, no analytics, tiny components built once per session."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("OMP_NUM_THREADS", "2")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_parts():
    """One set of tiny SD parts (tokenizer, text encoder, UNet, VAE, ControlNet, IP2P UNet)."""
    from modules import tiny

    tokenizer = tiny.build_tokenizer()
    unet = tiny.build_unet(seed=1)
    return {
        "tokenizer": tokenizer,
        "text_encoder": tiny.build_text_encoder(tokenizer),
        "unet": unet,
        "vae": tiny.build_vae(),
        "controlnet": tiny.build_controlnet(unet, seed=2),
        "pix2pix_unet": tiny.build_unet(in_channels=8, seed=3),
    }


@pytest.fixture
def components(tiny_parts):
    """Components with a fresh DDIM scheduler."""
    from modules import tiny
    from modules.engine import Components

    p = tiny_parts
    return Components(p["tokenizer"], p["text_encoder"], p["unet"], p["vae"], tiny.build_scheduler())
