"""CogVideoX engine: equal to diffusers' own CogVideoXPipeline, seeded, stoppable with no decode, its
frame and size rules (and why they are the rules), and its tokenizer folder (spiece.model, no
tokenizer.json) loading through the app's loader."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from diffusers import CogVideoXPipeline

from modules.engines.cogvideox import ENGINE, tiny
from modules.engines.cogvideox.sampling import generate_cogvideox
from modules.job_control import Cancelled, JobControl

PROMPT = "a red ball rolling down a hill"
SMALL = dict(num_frames=9, height=32, width=32, steps=2)  # a tiny job: about 0.1 s here


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny tensors run faster on one thread


@pytest.fixture(scope="module")
def parts():
    return tiny.build_components(seed=5)


class Calls:
    """Counts a module's forward calls."""

    def __init__(self, module):
        self.count = 0
        self.handle = module.register_forward_pre_hook(self)

    def __call__(self, module, args):
        self.count += 1

    def remove(self):
        self.handle.remove()


# ------------------------------------------------------------------ sampling


@pytest.mark.parametrize("guidance, negative", [(6.0, "blurry"), (1.0, "")])  # with and without guidance
def test_cogvideox_matches_diffusers_pipeline(parts, guidance, negative):
    seed = 11
    ours = generate_cogvideox(parts, prompt=PROMPT, negative_prompt=negative, guidance_scale=guidance, seed=seed,
                              **SMALL)
    pipe = CogVideoXPipeline(tokenizer=parts["tokenizer"], text_encoder=parts["text_encoder"], vae=parts["vae"],
                             transformer=parts["transformer"], scheduler=tiny.build_scheduler())
    pipe.set_progress_bar_config(disable=True)
    reference = pipe(PROMPT, negative_prompt=negative or None, num_frames=SMALL["num_frames"], height=SMALL["height"],
                     width=SMALL["width"], num_inference_steps=SMALL["steps"], guidance_scale=guidance,
                     generator=torch.Generator().manual_seed(seed), output_type="np").frames[0]

    assert ours.shape == reference.shape == (9, 32, 32, 3)
    assert ours.dtype == np.float32 and 0.0 <= ours.min() and ours.max() <= 1.0
    assert np.abs(ours - reference).max() < 1e-5
    assert ours.std() > 0.01 and np.abs(ours[0] - ours[-1]).max() > 1e-3  # not blank, frames differ


def test_same_seed_same_frames_other_seed_other_frames(parts):
    first = generate_cogvideox(parts, prompt=PROMPT, seed=3, **SMALL)
    again = generate_cogvideox(parts, prompt=PROMPT, seed=3, **SMALL)
    other = generate_cogvideox(parts, prompt=PROMPT, seed=4, **SMALL)
    assert np.array_equal(first, again)
    assert not np.allclose(first, other)


def test_progress_every_step_then_one_decode(parts):
    seen = []
    transformer, decoder = Calls(parts["transformer"]), Calls(parts["vae"].decoder)
    try:
        generate_cogvideox(parts, prompt=PROMPT, on_step=lambda *a: seen.append(a), **{**SMALL, "steps": 3})
    finally:
        transformer.remove(), decoder.remove()
    # One transformer call per step (both guidance branches batched), then the VAE decodes.
    assert seen == [(1, 3, ""), (2, 3, ""), (3, 3, "")]
    assert transformer.count == 3 and decoder.count >= 1


def test_a_stop_within_a_step_leaves_at_once_and_decodes_nothing(parts):
    control = JobControl()

    def step(done, total, place=""):
        control.step(done, total, place)
        control.cancel()  # Stop pressed during step 1: step 2's callback raises

    transformer, decoder = Calls(parts["transformer"]), Calls(parts["vae"].decoder)
    try:
        with pytest.raises(Cancelled):
            generate_cogvideox(parts, prompt=PROMPT, on_step=step, **{**SMALL, "steps": 5})
    finally:
        transformer.remove(), decoder.remove()
    assert transformer.count == 2  # the step under way when Stop came finished; none after it
    assert decoder.count == 0  # no VAE decode after a Stop
    assert control.stopped_message() == "Stopped after step 1 of 5."


# ------------------------------------------------------------------ frame and size rules


def test_the_rules_are_the_models_own(parts):
    """Why 8k+1 frames and sides of 16: diffusers' pipeline on the same parts returns another frame
    count for other lengths and fails inside the transformer for sides of 8 more than a multiple of 16."""
    pipe = CogVideoXPipeline(**{**parts, "scheduler": tiny.build_scheduler()})
    pipe.set_progress_bar_config(disable=True)

    def frames(num_frames, side=16):
        return pipe(PROMPT, num_frames=num_frames, height=side, width=side, num_inference_steps=1,
                    output_type="np").frames[0].shape[0]

    assert [frames(n) for n in (1, 9, 17)] == [1, 9, 17]
    assert [frames(n) for n in (5, 13)] == [8, 16]  # 4k+1 but not 8k+1: the length changes
    with pytest.raises(RuntimeError):
        frames(9, side=24)
    assert ENGINE.rules.size_multiple == 16 and str(ENGINE.rules.frames) == "8k+1"


@pytest.mark.parametrize("frames, side, error", [
    (8, 32, r"CogVideoX makes 8k\+1 frames"),
    (9, 24, "multiples of 16; got 24x24"),
    (9, 40, "multiples of 16; got 40x40"),
])
def test_sampling_refuses_shapes_the_model_cannot_make(parts, frames, side, error):
    with pytest.raises(ValueError, match=error):
        generate_cogvideox(parts, prompt=PROMPT, num_frames=frames, height=side, width=side, steps=1)


@pytest.mark.parametrize("values, sentence", [
    # The nearest count that fits, not the one below (issue 28: 8 frames offered "e.g. 1").
    ({"num_frames": 48}, "CogVideoX makes clips of 8k+1 frames, e.g. 49; got 48."),
    ({"num_frames": 12}, "CogVideoX makes clips of 8k+1 frames, e.g. 9; got 12."),
    ({"num_frames": 7}, "CogVideoX makes clips of 8k+1 frames, e.g. 9; got 7."),
    ({"width": 728}, "CogVideoX needs a width that is a multiple of 16; got 728."),
    ({"height": 488}, "CogVideoX needs a height that is a multiple of 16; got 488."),
])
def test_validation_refuses_other_frames_and_sides_in_a_sentence(values, sentence):
    from modules.request_types import RequestError, Text2VideoRequest
    from modules.settings import Settings

    settings = Settings()
    published = dict(prompt=PROMPT, engine="CogVideoX", num_frames=49, width=720, height=480, steps=50,
                     guidance_scale=6.0, fps=8)
    with pytest.raises(RequestError) as refused:
        Text2VideoRequest(**{**published, **values}).validate(settings)
    assert str(refused.value) == sentence
    fitted = {k: ENGINE.rules.frames.nearest(v) if k == "num_frames" else v - v % 16 for k, v in values.items()}
    assert Text2VideoRequest(**{**published, **fitted}).validate(settings).engine == "cogvideox"


def test_declared_defaults_are_the_published_ones():
    defaults = ENGINE.defaults
    assert (defaults.frames, defaults.steps, defaults.guidance_scale, defaults.fps) == (49, 50, 6.0, 8.0)
    assert defaults.size == (720, 480) and ENGINE.rules.frames.fits(defaults.frames)
    assert ENGINE.fast is None and ENGINE.tabs == {"text2video"} and not ENGINE.inputs
    assert ENGINE.licence == "Apache-2.0"


# ------------------------------------------------------------------ the tokenizer folder


def load_tokenizer(folder):
    """The tokenizer as the Hub source loads the repo's tokenizer/ (the class the ModelSpec names)."""
    from modules.parts import _load

    (spec,) = ENGINE.models
    return _load(spec.components["tokenizer"], folder, torch.float32, None)


def test_the_benchmarks_real_architecture_is_cogvideox_2b_as_its_files_weigh():
    """The configs `--arch sd15` builds (on the meta device here: no memory) have the real repo's parameter
    counts: the transformer's 1.69B in fp16 is its 3.39 GB file, the VAE's 0.22B in fp32 its 862 MB, and the
    T5-XXL encoder's 24 layers of 4096 (d_ff 10240, 64 heads) with T5's 32,128-piece vocabulary its 9.52 GB."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    from modules.engines.cogvideox import tiny as cog_tiny

    with init_empty_weights():
        transformer = CogVideoXTransformer3DModel(**cog_tiny.COGVIDEOX2B_TRANSFORMER)
        vae = AutoencoderKLCogVideoX(**cog_tiny.COGVIDEOX2B_VAE)
        encoder = T5EncoderModel(T5Config(vocab_size=32128, **cog_tiny.T5_XXL))
    count = lambda module, skip=(): sum(p.numel() for n, p in module.named_parameters() if n not in skip)  # noqa: E731
    assert round(count(transformer) * 2 / 1e9, 2) == 3.39 and round(count(vae) * 4 / 1e9, 3) == 0.862
    assert round(count(encoder, skip={"encoder.embed_tokens.weight"}) * 2 / 1e9, 2) == 9.52
    assert cog_tiny.COGVIDEOX2B_TRANSFORMER["max_text_seq_length"] == 226 and not transformer.config.use_rotary_positional_embeddings
    with pytest.raises(ValueError, match="Unknown CogVideoX architecture"):
        cog_tiny.build_transformer(arch="cogvideox5b")


def test_a_trained_spiece_model_folder_loads_as_the_real_repo_ships_it(tmp_path):
    """A sentencepiece model trained here (nmt_nfkc normalisation, as T5's) in a folder shaped as the
    real repo's tokenizer/ (spiece.model, the config files, no tokenizer.json) loads, and tokenizes
    as sentencepiece itself does."""
    import sentencepiece

    text = ["a red ball rolling down a hill", "a panda playing a guitar on a rooftop at sunset",
            "waves crash on dark rocks under a grey sky", "a cat sleeping in the afternoon sun"] * 10
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(text), model_writer=model, vocab_size=60, model_type="unigram", pad_id=0, eos_id=1,
        unk_id=2, bos_id=-1, hard_vocab_limit=False, num_threads=1, minloglevel=2)
    processor = sentencepiece.SentencePieceProcessor(model_proto=model.getvalue())
    pieces = processor.get_piece_size()
    folder = tmp_path / "tokenizer"
    folder.mkdir()
    (folder / "spiece.model").write_bytes(model.getvalue())
    for name, value in tiny.tokenizer_config(pieces).items():
        (folder / name).write_text(json.dumps(value))

    tokenizer = load_tokenizer(folder)
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    assert len(tokenizer) == pieces + 100 and tokenizer.model_max_length == 226
    assert tokenizer.convert_tokens_to_ids("<extra_id_0>") == pieces + 99  # T5's sentinels count down
    for sentence in ["a red ball rolling", "A  Panda, at sunset!"]:
        assert tokenizer(sentence).input_ids == processor.encode(sentence) + [1]  # + </s>


# ------------------------------------------------------------------ the real preset, through the Hub stand-in

COG_FILES = {
    "scheduler/scheduler_config.json",
    *(f"tokenizer/{n}" for n in ("spiece.model", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")),
    "text_encoder/config.json", "text_encoder/model.safetensors.index.json",
    *(f"text_encoder/model-0000{i}-of-00002.safetensors" for i in (1, 2)),
    "transformer/config.json", "transformer/diffusion_pytorch_model.safetensors",
    "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
}


def test_hub_cogvideox_loads_its_real_layout_then_runs_from_the_cache_offline(tmp_path):
    """THUDM/CogVideoX-2b's real layout (T5 in 2 shards with its index; a tokenizer folder with spiece.model
    and no tokenizer.json): exactly the files loaded, no README or LICENSE; the tokenizer built from
    spiece.model tokenizes as the tiny one; float16 on the way in keeps the VAE float32; then the same
    frames from the cache, offline."""
    from modules.engines.cogvideox import MODEL_ID, VIDEO_MODEL
    from modules.hub import forget_listings
    from modules.models import ModelManager
    from modules.settings import Settings
    from tests.hub_standin.repos import repo_contents
    from tests.hub_standin.server import HubStandIn, hub_env

    def manager(dtype):
        return ModelManager(Settings.from_env(preset="real", device="cpu", dtype=dtype, outputs_dir=str(tmp_path / "out")))

    cache = tmp_path / "cache"
    forget_listings()
    try:
        with HubStandIn({MODEL_ID: repo_contents(MODEL_ID)}) as server, hub_env(server.url, cache_dir=cache):
            parts = manager("float32").model(VIDEO_MODEL)
            url = server.url
            assert server.downloaded(MODEL_ID) == COG_FILES
        assert type(parts["tokenizer"]).__name__ == "T5Tokenizer" and parts["vae"].dtype == torch.float32
        assert parts["tokenizer"](PROMPT).input_ids == tiny.build_tokenizer()(PROMPT).input_ids
        run = dict(prompt=PROMPT, num_frames=9, height=32, width=32, steps=2, seed=4)
        first = generate_cogvideox(parts, **run)
        forget_listings()
        with hub_env(url, cache_dir=cache, offline=True):
            assert np.array_equal(generate_cogvideox(manager("float32").model(VIDEO_MODEL), **run), first)
            half = manager("float16").model(VIDEO_MODEL)  # CUDA's dtype: the transformer float16, the VAE float32
            assert half["transformer"].dtype == torch.float16 and half["vae"].dtype == torch.float32
    finally:
        forget_listings()
