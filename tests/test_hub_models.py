"""The real preset's loading, offline: the app's own Hub code against a local stand-in of the Hub.

The stand-in serves every default model with its real id and real file layout (tests/hub_standin
/layouts.py, read from the Hub's file pages) and tiny random weights. These tests pin what a
first run downloads (one variant, no root checkpoints, no non-EMA weights), that pickle-only
repos load through the weights-only unpickler and a crafted pickle is refused, that a broken
download is a clear error and a retry works, that proxies are honoured, and that a second run
needs no server.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tests.hub_standin.layouts import LAYOUTS
from tests.hub_standin.repos import _model, _spec_components, all_repos, malicious_pickle, repo_contents
from tests.hub_standin.server import ForwardProxy, HubStandIn, hub_env
from modules.hub import forget_listings
from modules.models import ModelLoadError, ModelManager
from modules.settings import EDGE_STYLE_MODELS, Settings

SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DREAMLIKE = "dreamlike-art/dreamlike-photoreal-2.0"
TOKENIZER = {f"tokenizer/{n}" for n in ("vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json")}


def base_files(weights: dict[str, str]) -> set[str]:
    """What loading one SD 1.5 base fetches: configs, tokenizer, and one weights file per part."""
    return TOKENIZER | {"scheduler/scheduler_config.json"} | {
        f"{folder}/{name}" for folder, name in [*((f, "config.json") for f in weights), *weights.items()]
    }


@pytest.fixture(scope="module")
def contents():
    return all_repos()


@pytest.fixture
def hub(contents, tmp_path):
    """A running stand-in, huggingface_hub pointed at it with an empty cache."""
    forget_listings()
    with HubStandIn(contents) as server, hub_env(server.url, cache_dir=tmp_path / "hub-cache"):
        yield server
    forget_listings()


def manager(tmp_path, **overrides) -> ModelManager:
    return ModelManager(Settings.from_env(preset="real", device="cpu", outputs_dir=str(tmp_path / "out"), **overrides))


def test_hub_first_load_fetches_only_what_is_loaded(hub, tmp_path):
    reports = []
    models = manager(tmp_path)
    with models.reporting(lambda fraction, text: reports.append((fraction, text))):
        components = models.components()
    assert components.unet.config.in_channels == 4
    # dreamlike: per-folder safetensors beside .bin, root .ckpt/.safetensors single files: one file each.
    assert hub.downloaded(DREAMLIKE) == base_files(
        {"text_encoder": "model.safetensors", "unet": "diffusion_pytorch_model.safetensors", "vae": "diffusion_pytorch_model.safetensors"}
    )
    assert not any(p.endswith((".ckpt", ".bin")) or "/" not in p and p.endswith(".safetensors") for p in hub.downloaded(DREAMLIKE))
    # Progress says which model, how many bytes of how many, and how fast.
    texts = [text for _, text in reports]
    assert any(DREAMLIKE in t and "downloading" in t and " / " in t and "/s" in t for t in texts), texts
    assert all(0.0 <= fraction <= 1.0 for fraction, _ in reports)


@pytest.mark.parametrize(
    "dtype, variant_files",
    [
        ("float16", {"text_encoder": "model.fp16.safetensors", "unet": "diffusion_pytorch_model.fp16.safetensors",
                     "vae": "diffusion_pytorch_model.fp16.safetensors"}),
        ("float32", {"text_encoder": "model.safetensors", "unet": "diffusion_pytorch_model.safetensors",
                     "vae": "diffusion_pytorch_model.safetensors"}),
    ],
)
def test_hub_fetches_the_variant_of_the_dtype_and_never_non_ema(hub, tmp_path, dtype, variant_files):
    models = manager(tmp_path, dtype=dtype, base_models=(SD15,))
    components = models.components()
    assert hub.downloaded(SD15) == base_files(variant_files)
    assert str(components.unet.dtype) == f"torch.{dtype}"
    # The fingerprint is the blob of the file actually loaded (the fp16 file on fp16).
    unet_file = f"unet/{variant_files['unet']}"
    assert models._cache["base"].value["unet"].fingerprint == hub.sha256(SD15, unet_file)


def test_hub_pickle_only_dreambooth_styles_all_load(hub, tmp_path):
    models = manager(tmp_path)
    for style in EDGE_STYLE_MODELS:
        components = models.components(style)
        assert hub.downloaded(style) == base_files(
            {"text_encoder": "pytorch_model.bin", "unet": "diffusion_pytorch_model.bin", "vae": "diffusion_pytorch_model.bin"}
        )
        assert not any("safety_checker" in p for p in hub.downloaded(style))
        assert components.vae.config.latent_channels == 4
        # The 2023 VAE's old attention names (query/key/value/proj_attn) were converted, not dropped. Compared
        # in the dtype the manager loaded (T2VZ_DTYPE=auto: bfloat16 where this CPU's probe finds it faster).
        reference, loaded = _model(style, "vae").state_dict(), components.vae.state_dict()
        attention = [k for k in reference if ".attentions." in k and ".to_" in k]
        differ = [k for k in attention if not torch.equal(reference[k].to(loaded[k].dtype), loaded[k])]
        assert attention and not differ, f"{style}: the VAE attention weights {differ} differ from the .bin's"


def test_hub_crafted_pickle_is_refused_and_runs_nothing(contents, tmp_path):
    marker = tmp_path / "pwned"
    evil = "someone/sd15-pickle"
    repo = repo_contents(evil, LAYOUTS[EDGE_STYLE_MODELS[0]])
    repo["unet/diffusion_pytorch_model.bin"] = malicious_pickle(marker)
    forget_listings()
    with HubStandIn({evil: repo}) as server, hub_env(server.url, cache_dir=tmp_path / "cache"):
        models = manager(tmp_path, base_models=(evil,))
        with pytest.raises(ModelLoadError, match="refused") as caught:
            models.components()
    assert "could run code" in str(caught.value) and "safetensors" in str(caught.value)
    assert not marker.exists()
    forget_listings()


def test_hub_annotators_fetch_only_their_checkpoints(hub, tmp_path):
    from modules import annotators

    models = manager(tmp_path)
    assert isinstance(models.annotator("pose"), annotators.OpenposeDetector)
    assert isinstance(models.annotator("depth"), annotators.MidasDetector)
    assert hub.downloaded("lllyasviel/Annotators") == set(LAYOUTS["lllyasviel/Annotators"]["fetched_by_controlnet_aux"])


def test_hub_controlnets_and_editing_model(hub, tmp_path):
    models = manager(tmp_path)
    for kind, repo in models.settings.controlnets.items():
        assert models.controlnet(kind) is not None
        assert hub.downloaded(repo) == {"config.json", "diffusion_pytorch_model.safetensors"}
    edit = models.edit_components()
    assert edit.unet.config.in_channels == 8
    assert not any(p.endswith(".ckpt") or p.endswith(".bin") for p in hub.downloaded("timbrooks/instruct-pix2pix"))


def test_hub_broken_download_is_a_clear_error_and_a_retry_works(hub, tmp_path, monkeypatch):
    import huggingface_hub.file_download

    monkeypatch.setattr(huggingface_hub.file_download.time, "sleep", lambda s: None)  # its 1 s between retries
    path = "unet/diffusion_pytorch_model.safetensors"
    hub.fail_once(DREAMLIKE, path, after_bytes=0, times=6)  # more drops than huggingface_hub's 5 resumes
    models = manager(tmp_path)
    with pytest.raises(ModelLoadError) as caught:
        models.components()
    text = str(caught.value)
    assert path in text and DREAMLIKE in text and "try again" in text
    assert models.resident()["base"] == []
    components = models.components()  # the retry downloads what is missing and loads
    assert components.unet is not None and path in hub.downloaded(DREAMLIKE)


def test_hub_proxy_settings_are_honoured(contents, tmp_path):
    forget_listings()
    with HubStandIn(contents) as server, ForwardProxy() as proxy:
        with hub_env(server.url, cache_dir=tmp_path / "cache", extra_env={"HTTP_PROXY": proxy.url, "http_proxy": proxy.url,
                                                                           "NO_PROXY": "", "no_proxy": ""}):
            manager(tmp_path).controlnet("edge")
    assert proxy.count > 0
    assert any("sd-controlnet-canny" in url and "/resolve/" in url for _, url in proxy.requests)
    forget_listings()


def test_hub_second_run_needs_no_server(contents, tmp_path):
    cache = tmp_path / "cache"
    forget_listings()
    with HubStandIn(contents) as server, hub_env(server.url, cache_dir=cache):
        first = manager(tmp_path).components()
        url = server.url
    assert not server.running
    for offline in (True, False):  # HF_HUB_OFFLINE=1, and a Hub that just doesn't answer
        forget_listings()
        with hub_env(url, cache_dir=cache, offline=offline):
            again = manager(tmp_path).components()
        assert again.unet.config == first.unet.config
    forget_listings()
    with hub_env(url, cache_dir=tmp_path / "empty", offline=True):
        with pytest.raises(ModelLoadError, match="hf download") as caught:
            manager(tmp_path).components()
    assert "--preset tiny" in str(caught.value) and "huggingface-cli" not in str(caught.value)
    forget_listings()


@pytest.mark.slow  # `python app.py --download` in a subprocess, then every tab's models offline
def test_hub_download_flag_prefetches_exactly_what_the_tabs_load(contents, tmp_path):
    """`python app.py --download` fills the cache; every tab's models then load with the Hub gone."""
    import os
    import subprocess
    import sys

    from modules.download import plan

    root = Path(__file__).resolve().parents[1]
    cache = tmp_path / "cache"
    forget_listings()
    with HubStandIn(contents) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "T2VZ_"))}
        env.update(HF_ENDPOINT=server.url, HF_HUB_CACHE=str(cache), HF_HOME=str(tmp_path / "home"),
                   HF_HUB_OFFLINE="0", T2VZ_DEVICE="cpu", NO_PROXY="*", no_proxy="*")
        done = subprocess.run([sys.executable, "app.py", "--download"], cwd=root, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        with hub_env(server.url, cache_dir=cache):
            expected = plan(Settings.from_env(preset="real", device="cpu"))
        url = server.url
        fetched = {repo: server.downloaded(repo) for repo in contents}
    for item in expected:
        assert set(item.files) <= fetched[item.repo]
    assert sum(len(v) for v in fetched.values()) == len({(p.repo, f) for p in expected for f in p.files})
    forget_listings()
    with hub_env(url, cache_dir=cache, offline=True):
        models = manager(tmp_path)
        models.components()
        models.edit_components()
        for kind in ("pose", "edge", "depth"):
            models.controlnet(kind)
        models.annotator("pose"), models.annotator("depth")
        models.lcm_lora(models.components().unet), models.tiny_decoder()  # fast mode's parts are in the default set
    forget_listings()


def test_hub_download_progress_reaches_the_jobs_progress_bar(hub, tmp_path):
    """The worker hands the job's progress to the manager while it loads: the tab's bar shows the download."""
    from modules.job_control import JobControl
    from modules.worker import Worker

    seen = []
    worker = Worker(Settings.from_env(preset="real", device="cpu", outputs_dir=str(tmp_path / "out")))
    control = JobControl(progress=lambda fraction, text: seen.append(text))

    def job(manager):
        manager.controlnet("depth")
        return lambda: "sampled"

    assert worker.run(job, control) == "sampled"
    assert any("downloading lllyasviel/sd-controlnet-depth" in text and "/s" in text for text in seen), seen


def test_hub_video_engines_fetch_their_real_layouts(hub, tmp_path):
    """ModelScope (3D UNet, fp16 variants beside fp32 and .bin) and the AnimateDiff motion adapter."""
    models = manager(tmp_path)
    from modules.engines.animatediff import MOTION_ADAPTER
    from modules.engines.modelscope import VIDEO_MODEL

    video = models.model(VIDEO_MODEL)
    assert type(video.unet).__name__ == "UNet3DConditionModel"
    ms = VIDEO_MODEL.repo(Settings())
    assert hub.downloaded(ms) == base_files(
        {"text_encoder": "model.safetensors", "unet": "diffusion_pytorch_model.safetensors", "vae": "diffusion_pytorch_model.safetensors"}
    )
    adapter = models.part(MOTION_ADAPTER)
    assert type(adapter).__name__ == "MotionAdapter"
    assert hub.downloaded(MOTION_ADAPTER.repo(Settings())) == {"config.json", "diffusion_pytorch_model.safetensors"}


def test_hub_fast_mode_fetches_the_lcm_lora_and_taesd_only(hub, tmp_path):
    from modules.engine.fast import lora_active

    models = manager(tmp_path)
    components = models.components()
    models.lcm_lora(components.unet)
    decoder = models.tiny_decoder()
    assert type(decoder).__name__ == "AutoencoderTiny"
    assert hub.downloaded("latent-consistency/lcm-lora-sdv1-5") == {"pytorch_lora_weights.safetensors"}
    assert hub.downloaded("madebyollin/taesd") == {"config.json", "diffusion_pytorch_model.safetensors"}
    with lora_active(components.unet):
        pass


def test_hub_animatediff_lightning_fetches_one_step_file_and_loads_it_strictly(hub, tmp_path):
    """Fast AnimateDiff: only the diffusers file for the step count (no ComfyUI twin, no other
    step counts, no samples), a bare state dict loaded into a MotionAdapter of the file's shapes."""
    from modules.engines.animatediff.sampling import generate_animatediff
    from modules.engines.animatediff import LIGHTNING_ADAPTER, lightning_file
    from modules.engines.animatediff.lightning import LIGHTNING_REPO, lightning_scheduler

    models = manager(tmp_path)
    adapter = models.part(LIGHTNING_ADAPTER, filename=lightning_file(4))
    assert type(adapter).__name__ == "MotionAdapter" and adapter.config.use_motion_mid_block
    assert hub.downloaded(LIGHTNING_REPO) == {"animatediff_lightning_4step_diffusers.safetensors"}
    assert models.part(LIGHTNING_ADAPTER, filename=lightning_file(4)) is adapter  # kept
    models.part(LIGHTNING_ADAPTER, filename=lightning_file(2))
    assert hub.downloaded(LIGHTNING_REPO) == {f"animatediff_lightning_{n}step_diffusers.safetensors" for n in (2, 4)}
    components = models.components()
    frames = generate_animatediff(components, adapter, prompt="a boat", num_frames=3, height=64, width=64, steps=4,
                                  guidance_scale=1.0, scheduler=lightning_scheduler(components.scheduler.config))
    assert frames.shape == (3, 64, 64, 3)


WAN = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
WAN_FILES = {
    "scheduler/scheduler_config.json",
    *(f"tokenizer/{n}" for n in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")),
    "text_encoder/config.json", "text_encoder/model.safetensors.index.json",
    *(f"text_encoder/model-0000{i}-of-00005.safetensors" for i in range(1, 6)),
    "transformer/config.json", "transformer/diffusion_pytorch_model.safetensors.index.json",
    *(f"transformer/diffusion_pytorch_model-0000{i}-of-00002.safetensors" for i in range(1, 3)),
    "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
}


def test_hub_wan_loads_its_sharded_real_layout_then_runs_from_the_cache_offline(contents, tmp_path):
    """Wan 2.1's real layout (transformer in 2 shards, UMT5 in 5, each with its index; tokenizer.json
    beside spiece.model): the shards and their indexes, no spiece.model, README or examples; float16
    on the way in runs bfloat16 with a float32 VAE; then the same frames from the cache, offline."""
    from modules.engines.wan import WAN_MODEL
    from modules.engines.wan.sampling import generate_wan

    cache = tmp_path / "cache"
    forget_listings()
    with HubStandIn({WAN: contents[WAN]}) as server, hub_env(server.url, cache_dir=cache):
        parts = manager(tmp_path, dtype="float32").model(WAN_MODEL)
        url = server.url
        assert server.downloaded(WAN) == WAN_FILES
    assert parts["vae"].dtype == torch.float32 and type(parts["transformer"]).__name__ == "WanTransformer3DModel"
    served = _spec_components(WAN)  # every tensor came from its shard: the served weights exactly
    for role in ("text_encoder", "transformer"):
        expected = served[role].state_dict()
        assert all(torch.equal(v, expected[k]) for k, v in parts[role].state_dict().items()), role
    run = dict(prompt="a boat", num_frames=5, height=32, width=32, steps=2, seed=4)
    first = generate_wan(parts, **run)
    forget_listings()
    with hub_env(url, cache_dir=cache, offline=True):
        again = manager(tmp_path, dtype="float32").model(WAN_MODEL)
        assert (generate_wan(again, **run) == first).all()
        half = manager(tmp_path, dtype="float16").model(WAN_MODEL)  # CUDA's dtype: bfloat16, the VAE float32
        assert half["transformer"].dtype == torch.bfloat16 and half["vae"].dtype == torch.float32
    forget_listings()


FAST = "nvidia/AnyFlow-Wan2.1-T2V-1.3B-Diffusers"
VACE = "Wan-AI/Wan2.1-VACE-1.3B-diffusers"
WAN_SHARED_FILES = {f for f in WAN_FILES if f.split("/")[0] in ("tokenizer", "text_encoder", "vae")}


def test_hub_wan_fast_and_vace_fetch_their_own_parts_and_the_t2v_text_encoder_once_then_run_offline(contents, tmp_path):
    """AnyFlow (Fast) and VACE from their layouts: each repo's transformer and scheduler only; the text encoder,
    tokenizer and VAE from the T2V repo, fetched once for all three (the text encoder and VAE held once); then
    Fast again from the cache, offline, with the same frames."""
    from modules.engines.wan import WAN_FAST_MODEL, WAN_MODEL, WAN_VACE_MODEL
    from modules.engines.wan.fast import generate_wan_fast

    cache = tmp_path / "cache"
    forget_listings()
    with HubStandIn({repo: contents[repo] for repo in (WAN, FAST, VACE)}) as server, hub_env(server.url, cache_dir=cache):
        models = manager(tmp_path, dtype="float32")
        fast = models.model(WAN_FAST_MODEL)
        assert server.downloaded(FAST) == {"scheduler/scheduler_config.json", "transformer/config.json",
                                           "transformer/diffusion_pytorch_model.safetensors"}
        assert server.downloaded(WAN) == WAN_SHARED_FILES  # not its transformer: the T2V model is not loaded
        vace = models.model(WAN_VACE_MODEL)
        assert server.downloaded(VACE) == {
            "scheduler/scheduler_config.json", "transformer/config.json",
            "transformer/diffusion_pytorch_model.safetensors.index.json",
            *(f"transformer/diffusion_pytorch_model-0000{i}-of-00002.safetensors" for i in (1, 2))}
        t2v = models.model(WAN_MODEL)
        assert server.downloaded(WAN) == WAN_FILES
        url = server.url
    for role in ("text_encoder", "vae"):
        assert fast[role] is vace[role] is t2v[role], role
    assert models.loads["wan_model:text_encoder"] == models.loads["wan_model:vae"] == 1
    assert fast["tokenizer"]("a boat").input_ids == t2v["tokenizer"]("a boat").input_ids  # the T2V repo's files
    assert type(fast["transformer"]).__name__ == "AnyFlowTransformer3DModel"
    assert type(fast["scheduler"]).__name__ == "FlowMapEulerDiscreteScheduler"
    served = _spec_components(FAST)["transformer"].state_dict()  # the served weights exactly
    assert all(torch.equal(v, served[k]) for k, v in fast["transformer"].state_dict().items())
    run = dict(prompt="a boat", num_frames=5, height=32, width=32, steps=4, seed=2)
    first = generate_wan_fast(fast, **run)
    forget_listings()
    with hub_env(url, cache_dir=cache, offline=True):
        again = manager(tmp_path, dtype="float32").model(WAN_FAST_MODEL)
        assert (generate_wan_fast(again, **run) == first).all()
    forget_listings()
