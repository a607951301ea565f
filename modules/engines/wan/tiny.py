"""Wan 2.1's parts built in code with random weights (the tiny preset, tests, the Hub stand-in).

`arch="tiny"`: the shapes follow diffusers' own tiny Wan (tests/pipelines/wan/test_wan.py): a 2-layer
`WanTransformer3DModel` of 2 heads of 12 channels, an `AutoencoderKLWan` of base width 3 with the
real model's scales (8x in space, 4x in time: frames 4k+1), a 2-layer UMT5 encoder of width 32,
and a T5-style unigram tokenizer built in memory (pad 0, eos 1, unk 2) instead of the 256k-piece
UMT5 vocabulary. The scheduler is the real repo's (scheduler/scheduler_config.json).
5 frames of 32x32 in 2 steps take well under a second on 2 CPU cores.

`arch="wan13"`: Wan 2.1 T2V 1.3B's real transformer and VAE (the repo's config.json files) and a
UMT5-XXL-wide text encoder (4096 wide, 64 heads) with `text_layers` of its 24 layers (all 24 are
22.7 GB in float32): the real model's FLOPs per step for benchmarks, without a download.
"""

from __future__ import annotations

import string

import torch

# Wan-AI/Wan2.1-T2V-1.3B-Diffusers scheduler/scheduler_config.json (UniPC on flow sigmas, shift 3).
SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    beta_start=0.0001,
    beta_end=0.02,
    beta_schedule="linear",
    solver_order=2,
    prediction_type="flow_prediction",
    thresholding=False,
    dynamic_thresholding_ratio=0.995,
    sample_max_value=1.0,
    predict_x0=True,
    solver_type="bh2",
    lower_order_final=True,
    disable_corrector=[],
    solver_p=None,
    use_karras_sigmas=False,
    use_exponential_sigmas=False,
    use_beta_sigmas=False,
    use_flow_sigmas=True,
    flow_shift=3.0,
    timestep_spacing="linspace",
    steps_offset=0,
    final_sigmas_type="zero",
    rescale_betas_zero_snr=False,
)

TEXT_DIM = 32  # the tiny encoder's width = the transformer's text_dim

TRANSFORMER = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=2,
    attention_head_dim=12,
    in_channels=16,
    out_channels=16,
    text_dim=TEXT_DIM,
    freq_dim=256,
    ffn_dim=32,
    num_layers=2,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    rope_max_seq_len=1024,  # the real model's: any size the app allows has rotary positions
)

VAE = dict(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True])

ARCHS = ("tiny", "wan13")
# Wan-AI/Wan2.1-T2V-1.3B-Diffusers transformer/config.json and vae/config.json.
WAN13_TRANSFORMER = dict(
    patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16,
    text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
    eps=1e-6, rope_max_seq_len=1024,
)
WAN13_VAE = dict(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                 temperal_downsample=[False, True, True], dropout=0.0)
# text_encoder/config.json (UMT5-XXL's encoder), but for the vocabulary (the tiny tokenizer's) and the layers.
WAN13_TEXT = dict(d_model=4096, d_kv=64, d_ff=10240, num_heads=64, relative_attention_num_buckets=32,
                  relative_attention_max_distance=128, feed_forward_proj="gated-gelu")


def _seeded(seed: int, build):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build().eval()


def build_tokenizer():
    """A T5-style unigram tokenizer in memory: single characters, with and without the word mark."""
    from transformers import T5TokenizerFast

    chars = string.ascii_lowercase + string.ascii_uppercase + string.digits + string.punctuation
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(f"\u2581{c}", -3.0) for c in chars] + [(c, -4.0) for c in chars]
    return T5TokenizerFast(vocab=pieces)


def _check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise ValueError(f"Unknown Wan architecture {arch!r}; choose one of {', '.join(ARCHS)}.")


def build_text_encoder(tokenizer, seed: int = 0, arch: str = "tiny", text_layers: int = 24):
    from transformers import UMT5Config, UMT5EncoderModel

    _check_arch(arch)
    shape = (dict(d_model=TEXT_DIM, d_kv=8, d_ff=37, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
                  feed_forward_proj="gated-gelu") if arch == "tiny" else dict(WAN13_TEXT, num_layers=text_layers))
    config = UMT5Config(vocab_size=len(tokenizer), pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, **shape)
    return _seeded(seed, lambda: UMT5EncoderModel(config))


def build_transformer(seed: int = 0, arch: str = "tiny"):
    from diffusers import WanTransformer3DModel

    _check_arch(arch)
    return _seeded(seed, lambda: WanTransformer3DModel(**(TRANSFORMER if arch == "tiny" else WAN13_TRANSFORMER)))


def build_vae(seed: int = 0, arch: str = "tiny"):
    from diffusers import AutoencoderKLWan

    _check_arch(arch)
    return _seeded(seed, lambda: AutoencoderKLWan(**(VAE if arch == "tiny" else WAN13_VAE)))


def build_scheduler():
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(**SCHEDULER_CONFIG)


def build_components(seed: int = 0, arch: str = "tiny", text_layers: int = 24) -> dict:
    """{role: object} of a Wan 2.1 model folder with random weights (what the "components" ModelSpec's
    build_tiny returns, at `arch="tiny"`)."""
    tokenizer = build_tokenizer()
    return {
        "tokenizer": tokenizer,
        "text_encoder": build_text_encoder(tokenizer, seed=seed, arch=arch, text_layers=text_layers),
        "transformer": build_transformer(seed=seed + 1, arch=arch),
        "vae": build_vae(seed=seed + 2, arch=arch),
        "scheduler": build_scheduler(),
    }


# diffusers' tiny VACE (tests/pipelines/wan/test_wan_vace.py): the tiny transformer with VACE blocks at
# layers 0 and 2 of 3; VACE's input is 16 + 16 latent channels (kept, generated) and 64 of the 8x8 mask.
VACE_TRANSFORMER = dict(TRANSFORMER, num_layers=3, vace_layers=[0, 2], vace_in_channels=96)


def build_vace_transformer(seed: int = 0):
    from diffusers import WanVACETransformer3DModel

    return _seeded(seed, lambda: WanVACETransformer3DModel(**VACE_TRANSFORMER))


def build_vace_components(seed: int = 0) -> dict:
    """{role: object} of a Wan 2.1 VACE model folder with random weights: the tiny text encoder, tokenizer,
    VAE and scheduler of `build_components`, a tiny `WanVACETransformer3DModel`."""
    parts = build_components(seed=seed)
    parts["transformer"] = build_vace_transformer(seed=seed + 1)
    return parts


# ------------------------------------------------------------------ Fast mode: AnyFlow (flow-map distilled Wan 2.1)
# diffusers' tiny AnyFlow (tests/pipelines/anyflow/test_anyflow.py): the tiny Wan transformer's shapes with the
# dual-timestep (t, r) embedding; the real model's gate 0.25 and delta type "r". AnyFlowTransformer3DModel is the
# v0.35.1 Wan backbone: it takes no `qk_norm` (always RMS norm across heads).
ANYFLOW_TRANSFORMER = dict({k: v for k, v in TRANSFORMER.items() if k != "qk_norm"}, gate_value=0.25,
                           deltatime_type="r")
# nvidia/AnyFlow-Wan2.1-T2V-1.3B-Diffusers's transformer: Wan 2.1 T2V 1.3B's config plus the flow-map embedding.
ANYFLOW13_TRANSFORMER = dict({k: v for k, v in WAN13_TRANSFORMER.items() if k != "qk_norm"}, gate_value=0.25,
                             deltatime_type="r")
# The scheduler both AnyFlow converters write (NVlabs/AnyFlow scripts/convert_model, diffusers'
# scripts/convert_anyflow_to_diffusers.py): flow-map Euler with shift 5.
ANYFLOW_SCHEDULER_CONFIG = dict(num_train_timesteps=1000, shift=5.0)


def build_anyflow_transformer(seed: int = 0, arch: str = "tiny"):
    from diffusers import AnyFlowTransformer3DModel

    _check_arch(arch)
    return _seeded(seed, lambda: AnyFlowTransformer3DModel(**(ANYFLOW_TRANSFORMER if arch == "tiny"
                                                              else ANYFLOW13_TRANSFORMER)))


def build_anyflow_scheduler():
    from diffusers import FlowMapEulerDiscreteScheduler

    return FlowMapEulerDiscreteScheduler(**ANYFLOW_SCHEDULER_CONFIG)


def build_anyflow_components(seed: int = 0) -> dict:
    """{role: object} of an AnyFlow Wan 2.1 folder with random weights: the tiny text encoder, tokenizer and VAE of
    `build_components` (the repo carries the T2V model's), a tiny `AnyFlowTransformer3DModel` and its scheduler."""
    parts = build_components(seed=seed)
    parts["transformer"] = build_anyflow_transformer(seed=seed + 1)
    parts["scheduler"] = build_anyflow_scheduler()
    return parts
