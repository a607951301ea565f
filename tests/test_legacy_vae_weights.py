"""The PAIR DreamBooth styles' VAEs (diffusers 0.14, March 2023) name their attention weights
query/key/value/proj_attn; diffusers now calls them to_q/to_k/to_v/to_out.0. diffusers 0.42.1 renames
the old keys when it reads a single (unsharded) weights file (`ModelMixin._fix_state_dict_keys_on_load`);
without that, the four attention layers of the VAE would be left uninitialised (only a log warning) and
every Edge DreamBooth style would decode with random attention. This pins that the app's own loading
path (HubSource on a local folder in the repo's layout, weights-only unpickling first) ends with the
file's values in the model, in float32 and bfloat16.
"""

from __future__ import annotations

import pytest
import torch

from modules.parts import HubSource
from modules.settings import EDGE_STYLE_MODELS
from tests.hub_standin.repos import OLD_VAE_ATTENTION_KEYS, _model, repo_contents

STYLE = EDGE_STYLE_MODELS[0]


@pytest.fixture(scope="module")
def style_folder(tmp_path_factory):
    """One PAIR style repo written to disk in its real layout (.bin weights, 2023 VAE key names)."""
    root = tmp_path_factory.mktemp("pair-style")
    for path, content in repo_contents(STYLE).items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content() if callable(content) else content)
    return root


def test_the_style_vae_file_uses_the_2023_attention_names(style_folder):
    state = torch.load(style_folder / "vae" / "diffusion_pytorch_model.bin", weights_only=True)
    attention = [k for k in state if ".attentions." in k]
    assert attention and not any(f".{new}." in k for k in attention for new in OLD_VAE_ATTENTION_KEYS)
    assert {k.split(".")[-2] for k in attention} >= set(OLD_VAE_ATTENTION_KEYS.values())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_old_attention_names_load_into_the_vae(style_folder, dtype):
    parts = HubSource(dtype).model(str(style_folder), unet_in_channels=4, reuse=lambda fingerprint: None)
    loaded = parts["vae"].module.state_dict()
    reference = _model(STYLE, "vae").state_dict()
    attention = [k for k in reference if ".attentions." in k and ".to_" in k]
    assert len(attention) == 16  # encoder and decoder mid-block: to_q, to_k, to_v, to_out.0 (weight and bias)
    assert all(not loaded[k].is_meta for k in attention)
    differ = [k for k in attention if not torch.equal(reference[k].to(dtype), loaded[k])]
    assert not differ, f"the VAE attention weights {differ} are not the file's (old names dropped?)"
    # Everything else in the file arrived too.
    assert all(torch.equal(v.to(dtype), loaded[k]) for k, v in reference.items() if v.is_floating_point())
