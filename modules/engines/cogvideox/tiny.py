"""CogVideoX's parts built in code with random weights (the tiny preset, tests, the Hub stand-in).

Shaped as diffusers' own pipeline test (tests/pipelines/cogvideo/test_cogvideox.py) but with a T5
tokenizer made in memory instead of a downloaded one: a unigram vocabulary of single characters
(every ASCII letter, digit and punctuation mark, and the word-start marker "▁"), T5's special
tokens at T5's ids (pad 0, eos 1, unk 2) and its 100 `<extra_id_*>` tokens, as the real
tokenizer has. `tokenizer_config` gives the config files of the real repo's tokenizer/ folder
(whose vocabulary is a sentencepiece model, spiece.model, and which has no tokenizer.json).

The scheduler is the real one: `CogVideoXDDIMScheduler` with THUDM/CogVideoX-2b's
scheduler_config.json (v-prediction, zero terminal SNR, SNR shift 3, trailing timesteps).

`arch="cogvideox2b"` (benchmarks): the real 2B transformer and VAE (the repo's config.json files) and a
T5-XXL-wide encoder of a chosen number of its 24 layers: the real model's FLOPs without a download.
"""

from __future__ import annotations

import string

import torch

MAX_TEXT_TOKENS = 226  # CogVideoX-2b's max_text_seq_length (its tokenizer's model_max_length)
EXTRA_IDS = 100  # T5's sentinel tokens, <extra_id_0> .. <extra_id_99>

# THUDM/CogVideoX-2b scheduler/scheduler_config.json (482 bytes), less its _class_name/_diffusers_version.
SCHEDULER_CONFIG = dict(
    beta_end=0.012,
    beta_schedule="scaled_linear",
    beta_start=0.00085,
    clip_sample=False,
    clip_sample_range=1.0,
    num_train_timesteps=1000,
    prediction_type="v_prediction",
    rescale_betas_zero_snr=True,
    sample_max_value=1.0,
    set_alpha_to_one=True,
    snr_shift_scale=3.0,
    steps_offset=0,
    timestep_spacing="trailing",
    trained_betas=None,
)

# The pieces of the tiny tokenizer: (piece, score, sentencepiece type: 1 normal, 2 unknown, 3 control).
_SPECIAL = [("<pad>", 0.0, 3), ("</s>", 0.0, 3), ("<unk>", 0.0, 2)]
PIECES = _SPECIAL + [("▁", -2.0, 1)] + [(c, -3.0, 1) for c in string.ascii_letters + string.digits + string.punctuation]

_TEXT = dict(d_model=32, d_kv=8, num_heads=4, num_layers=2, d_ff=64, feed_forward_proj="gated-gelu",
             relative_attention_num_buckets=8, relative_attention_max_distance=32)
_TRANSFORMER = dict(
    num_attention_heads=4,
    attention_head_dim=8,  # 4 x 8 = 32 channels inside
    in_channels=4,
    out_channels=4,
    time_embed_dim=2,
    text_embed_dim=32,  # the tiny T5's d_model
    num_layers=2,
    sample_width=4,  # latent 4x4 = 32x32 pixels (only a default: any size runs)
    sample_height=4,
    sample_frames=9,
    patch_size=2,
    temporal_compression_ratio=4,
    max_text_seq_length=MAX_TEXT_TOKENS,
)
_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("CogVideoXDownBlock3D",) * 4,  # 4 blocks: 8x spatial, as the real VAE
    up_block_types=("CogVideoXUpBlock3D",) * 4,
    block_out_channels=(8, 8, 8, 8),
    latent_channels=4,
    layers_per_block=1,
    norm_num_groups=2,
    temporal_compression_ratio=4,
    scaling_factor=1.15258426,  # the real VAE's
)


ARCHS = ("tiny", "cogvideox2b")
# THUDM/CogVideoX-2b transformer/config.json: 30 layers of 30 heads x 64 (1920 wide), sincos positions (no
# rotary embedding, unlike the 5B), T5-XXL's 4096-wide text at 226 tokens: diffusers' defaults, pinned here.
COGVIDEOX2B_TRANSFORMER = dict(
    num_attention_heads=30, attention_head_dim=64, in_channels=16, out_channels=16, flip_sin_to_cos=True,
    freq_shift=0, time_embed_dim=512, text_embed_dim=4096, num_layers=30, dropout=0.0, attention_bias=True,
    sample_width=90, sample_height=60, sample_frames=49, patch_size=2, temporal_compression_ratio=4,
    max_text_seq_length=MAX_TEXT_TOKENS, activation_fn="gelu-approximate", timestep_activation_fn="silu",
    norm_elementwise_affine=True, norm_eps=1e-5, spatial_interpolation_scale=1.875, temporal_interpolation_scale=1.0,
    use_rotary_positional_embeddings=False, use_learned_positional_embeddings=False,
)
# vae/config.json: 4 blocks of 128, 256, 256, 512 channels, 3 layers each, 16 latent channels (8x in space, 4x in time).
COGVIDEOX2B_VAE = dict(
    in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
    up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(128, 256, 256, 512), latent_channels=16,
    layers_per_block=3, act_fn="silu", norm_eps=1e-6, norm_num_groups=32, temporal_compression_ratio=4,
    sample_height=480, sample_width=720, scaling_factor=1.15258426,
)
# text_encoder/config.json: T5 v1.1 XXL's encoder (24 layers, 4096 wide, 64 heads, gated GELU), but for the
# vocabulary (the tiny tokenizer's: the 32k-piece embedding table is a lookup, no compute) and the layers.
T5_XXL = dict(d_model=4096, d_kv=64, d_ff=10240, num_heads=64, num_layers=24, feed_forward_proj="gated-gelu",
              relative_attention_num_buckets=32, relative_attention_max_distance=128)


def _check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise ValueError(f"Unknown CogVideoX architecture {arch!r}; choose one of {', '.join(ARCHS)}.")


def _seeded(seed: int, build, dtype: torch.dtype | None = None):
    """`build()` with the torch RNG seeded (and left as it was), its parameters made in `dtype` (the default
    dtype meanwhile: a 4.7B-parameter encoder is never held in float32 on the way to bfloat16)."""
    default = torch.get_default_dtype()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            if dtype is not None:
                torch.set_default_dtype(dtype)
            return build().eval()
        finally:
            torch.set_default_dtype(default)


def build_tokenizer():
    """A T5 tokenizer over `PIECES` (unknown characters become <unk>), with T5's 100 extra ids."""
    from transformers import T5TokenizerFast

    # Numbered as T5 numbers them (and as the repo's added_tokens.json does): <extra_id_0> last.
    extra = [f"<extra_id_{i}>" for i in reversed(range(EXTRA_IDS))]
    return T5TokenizerFast(vocab=[(piece, score) for piece, score, _ in PIECES], extra_ids=0,
                           additional_special_tokens=extra, model_max_length=MAX_TEXT_TOKENS)


def build_text_encoder(vocab_size: int, seed: int = 0, arch: str = "tiny", text_layers: int = 24,
                       dtype: torch.dtype | None = None):
    from transformers import T5Config, T5EncoderModel

    _check_arch(arch)
    shape = _TEXT if arch == "tiny" else dict(T5_XXL, num_layers=text_layers)
    config = T5Config(vocab_size=vocab_size, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
                      dropout_rate=0.0, **shape)
    return _seeded(seed, lambda: T5EncoderModel(config), dtype)


def build_transformer(seed: int = 0, arch: str = "tiny", dtype: torch.dtype | None = None):
    from diffusers import CogVideoXTransformer3DModel

    _check_arch(arch)
    return _seeded(seed, lambda: CogVideoXTransformer3DModel(**(_TRANSFORMER if arch == "tiny"
                                                                else COGVIDEOX2B_TRANSFORMER)), dtype)


def build_vae(seed: int = 0, arch: str = "tiny"):
    from diffusers import AutoencoderKLCogVideoX

    _check_arch(arch)
    return _seeded(seed, lambda: AutoencoderKLCogVideoX(**(_VAE if arch == "tiny" else COGVIDEOX2B_VAE)))


def build_scheduler():
    from diffusers import CogVideoXDDIMScheduler

    return CogVideoXDDIMScheduler(**SCHEDULER_CONFIG)


def build_components(seed: int = 0, arch: str = "tiny", text_layers: int = 24,
                     dtype: torch.dtype | None = None) -> dict[str, object]:
    """{role: object} of a CogVideoX with random weights: what `CogVideoXPipeline(**parts)` takes. `arch="tiny"`
    (the tiny preset); `arch="cogvideox2b"`: CogVideoX-2b's real transformer (1.69B) and VAE and a T5-XXL encoder
    of `text_layers` of its 24 layers (4.6B parameters with all 24: 9.3 GB in bfloat16, 18.6 GB in float32),
    the text encoder and transformer made in `dtype` (the VAE stays float32, as the engine runs it)."""
    tokenizer = build_tokenizer()
    return {
        "tokenizer": tokenizer,
        "text_encoder": build_text_encoder(len(tokenizer), seed=seed + 1, arch=arch, text_layers=text_layers,
                                           dtype=dtype),
        "transformer": build_transformer(seed=seed, arch=arch, dtype=dtype),
        "vae": build_vae(seed=seed + 2, arch=arch),
        "scheduler": build_scheduler(),
    }


# ------------------------------------------------------------------ the tokenizer folder, as the Hub has it


def tokenizer_config(pieces: int = len(PIECES), extra_ids: int = EXTRA_IDS) -> dict[str, dict]:
    """tokenizer_config.json, special_tokens_map.json and added_tokens.json as the real repo's
    tokenizer/ has them (a T5Tokenizer: eos, pad, unk, the extra ids after the sentencepiece model's
    `pieces`; model_max_length 226)."""
    extra = [f"<extra_id_{i}>" for i in range(extra_ids)]
    special = {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>", "additional_special_tokens": extra}
    config = {**special, "extra_ids": extra_ids, "legacy": True, "model_max_length": MAX_TEXT_TOKENS,
              "sp_model_kwargs": {}, "tokenizer_class": "T5Tokenizer", "clean_up_tokenization_spaces": True}
    added = {token: pieces + extra_ids - 1 - i for i, token in enumerate(extra)}  # <extra_id_0> last
    return {"tokenizer_config.json": config, "special_tokens_map.json": special, "added_tokens.json": added}
