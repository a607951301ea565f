"""CogVideoX's parts built in code with random weights (the tiny preset, tests, the Hub stand-in).

Shaped as diffusers' own pipeline test (tests/pipelines/cogvideo/test_cogvideox.py) but with a T5
tokenizer made in memory instead of a downloaded one: a unigram vocabulary of single characters
(every ASCII letter, digit and punctuation mark, and the word-start marker "▁"), T5's special
tokens at T5's ids (pad 0, eos 1, unk 2) and its 100 `<extra_id_*>` tokens, as the real
tokenizer has. `tokenizer_config` gives the config files of the real repo's tokenizer/ folder
(whose vocabulary is a sentencepiece model, spiece.model, and which has no tokenizer.json).

The scheduler is the real one: `CogVideoXDDIMScheduler` with THUDM/CogVideoX-2b's
scheduler_config.json (v-prediction, zero terminal SNR, SNR shift 3, trailing timesteps).
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


def _seeded(seed: int, build):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build().eval()


def build_tokenizer():
    """A T5 tokenizer over `PIECES` (unknown characters become <unk>), with T5's 100 extra ids."""
    from transformers import T5TokenizerFast

    # Numbered as T5 numbers them (and as the repo's added_tokens.json does): <extra_id_0> last.
    extra = [f"<extra_id_{i}>" for i in reversed(range(EXTRA_IDS))]
    return T5TokenizerFast(vocab=[(piece, score) for piece, score, _ in PIECES], extra_ids=0,
                           additional_special_tokens=extra, model_max_length=MAX_TEXT_TOKENS)


def build_text_encoder(vocab_size: int, seed: int = 0):
    from transformers import T5Config, T5EncoderModel

    config = T5Config(vocab_size=vocab_size, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
                      dropout_rate=0.0, **_TEXT)
    return _seeded(seed, lambda: T5EncoderModel(config))


def build_transformer(seed: int = 0):
    from diffusers import CogVideoXTransformer3DModel

    return _seeded(seed, lambda: CogVideoXTransformer3DModel(**_TRANSFORMER))


def build_vae(seed: int = 0):
    from diffusers import AutoencoderKLCogVideoX

    return _seeded(seed, lambda: AutoencoderKLCogVideoX(**_VAE))


def build_scheduler():
    from diffusers import CogVideoXDDIMScheduler

    return CogVideoXDDIMScheduler(**SCHEDULER_CONFIG)


def build_components(seed: int = 0) -> dict[str, object]:
    """{role: object} of a tiny CogVideoX: what `CogVideoXPipeline(**parts)` takes."""
    tokenizer = build_tokenizer()
    return {
        "tokenizer": tokenizer,
        "text_encoder": build_text_encoder(len(tokenizer), seed=seed + 1),
        "transformer": build_transformer(seed=seed),
        "vae": build_vae(seed=seed + 2),
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
