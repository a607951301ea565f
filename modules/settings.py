"""Every tunable of the app in one place: env `T2VZ_*`, overridden by app.py's flags.

Tabs, the worker and the model manager read from a `Settings` object, made once by
`Settings.from_env`; the only other `T2VZ_*` reader is the CPU dtype probe's cache path
(`T2VZ_DTYPE_PROBE_CACHE`, modules/dtype_probe.py). `ENV_VARS` lists every name with its
meaning, for the README and `python app.py --help`.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

PRESETS = ("real", "tiny")
BACKENDS = ("local", "ray")  # where the GPU workers run: this process, or Ray Serve replicas

# Base models a user may pick (SD 1.5 family, safetensors on the Hub). The first is the default.
DEFAULT_BASE_MODELS = (
    "dreamlike-art/dreamlike-photoreal-2.0",
    "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "Lykon/dreamshaper-8",
)
# The original demo's DreamBooth-specialised SD 1.5 models, offered as styles in the Edge tab: repo id -> the
# name the page shows (the API takes the repo id).
EDGE_STYLES = {
    "PAIR/text2video-zero-controlnet-canny-anime": "Anime",
    "PAIR/text2video-zero-controlnet-canny-arcane": "Arcane",
    "PAIR/text2video-zero-controlnet-canny-gta5": "GTA V",
    "PAIR/text2video-zero-controlnet-canny-avatar": "Avatar",
}
EDGE_STYLE_MODELS = tuple(EDGE_STYLES)
DEFAULT_CONTROLNETS = {
    "pose": "lllyasviel/sd-controlnet-openpose",
    "edge": "lllyasviel/sd-controlnet-canny",
    "depth": "lllyasviel/sd-controlnet-depth",
}
DEFAULT_EDIT_MODEL = "timbrooks/instruct-pix2pix"
DEFAULT_ANNOTATORS = "lllyasviel/Annotators"


# The tiny preset is for trying every tab on a CPU in seconds: the UI starts it small.
TINY_DEFAULT_RESOLUTION = 128
TINY_DEFAULT_STEPS = 10


def model_label(repo_id: str) -> str:
    """What the page shows for a model choice: an Edge style's name, else the repo id itself."""
    return EDGE_STYLES.get(repo_id, repo_id)


def _env(name: str, default: str) -> str:
    return os.environ.get(f"T2VZ_{name}", default)


def _env_bool(name: str, default: bool) -> bool:
    return _env(name, "1" if default else "0").strip().lower() in ("1", "true", "yes", "on")


def _env_list(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = _env(name, "")
    items = tuple(item.strip() for item in raw.split(",") if item.strip())
    return items or default


@dataclass(frozen=True)
class Limits:
    """Per-job caps: what one request may ask of the shared worker."""

    max_frames: int = 0  # 0: each engine's own cap in each tab (its published clip: RECIPES.md)
    min_side: int = 64
    max_side: int = 1024
    max_pixels: int = 768 * 768
    max_steps: int = 100
    max_upload_mb: float = 100.0
    max_video_seconds: float = 60.0  # of the part one job uses
    # What an uploaded file itself may be; checked from its header, before any frame is decoded.
    max_source_pixels: int = 4096 * 4096
    max_source_frames: int = 20_000
    max_source_seconds: float = 600.0
    max_tune_steps: int = 1000  # training steps of one job of the Tune tab (300 by default)
    # What a tuned model run by Hub id may weigh, asked of the Hub before downloading (an SD 1.5 one: ~300 MB).
    max_tuned_download_mb: float = 1000.0


@dataclass(frozen=True)
class Settings:
    preset: str = "real"
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False

    # Devices: "auto" picks CUDA when present. `devices` lists one worker per entry (several GPUs).
    device: str = "auto"
    devices: tuple[str, ...] = ()
    dtype: str = "auto"  # auto = fp16 on CUDA; on CPU bf16 where a probe finds it faster, else fp32

    # Workers: "local" (threads of this process, one per device) or "ray" (Ray Serve replicas,
    # modules/ray_backend.py). ray_address "" starts a local cluster; ray_replicas 0 = one per GPU
    # of the cluster (2 on a CPU-only one).
    backend: str = "local"
    ray_address: str = ""
    ray_replicas: int = 0
    ray_max_replicas: int = 0  # above ray_replicas: Serve autoscales between the two

    base_models: tuple[str, ...] = DEFAULT_BASE_MODELS
    edge_style_models: tuple[str, ...] = EDGE_STYLE_MODELS
    controlnets: dict = field(default_factory=lambda: dict(DEFAULT_CONTROLNETS))
    edit_model: str = DEFAULT_EDIT_MODEL
    annotators: str = DEFAULT_ANNOTATORS
    # The engines' own models that a setting may name (ModelSpec.key -> repo or folder); a key not
    # here is the engine's default (engines/*: their `models`).
    models: dict = field(default_factory=dict)

    # Memory policy of the model manager.
    controlnet_cache_size: int = 3
    annotator_cache_size: int = 2
    memory_budget_gb: float = 0.0  # 0 = 80 % of the detected VRAM on CUDA, no budget on CPU
    cpu_offload: bool = False
    vae_decode_batch: int = 8  # frames decoded at once

    # Queue and outputs.
    queue_size: int = 20
    outputs_dir: str = field(default_factory=lambda: str(Path(tempfile.gettempdir()) / "t2vz-outputs"))
    outputs_ttl_s: int = 24 * 3600
    # Models tuned here (the "tune" tab): a folder each, kept until deleted (the outputs' sweep never looks here).
    tuned_dir: str = field(default_factory=lambda: str(Path.home() / ".cache" / "text2video-zero-studio" / "tuned"))
    limits: Limits = field(default_factory=Limits)

    # Public or private, decided once by `from_env` (`decide_public`): public, each visitor's tuned models are
    # theirs (modules/visitors.py) and the server's HF_TOKEN serves no visitor; private, one user, one folder.
    public: bool = False
    public_reason: str = ""  # why, in words, for the page's server details
    shared_tuned_dir: str = ""  # public: the owner's tuned models every visitor may run (read-only); "" = none
    tuned_per_visitor: int = 5  # public: tuned models one visitor (account or session) keeps here
    tuned_ttl_s: int = 24 * 3600  # public: how long an anonymous visitor's tuned models are kept

    @property
    def default_base_model(self) -> str:
        return self.base_models[0]

    @property
    def default_resolution(self) -> int:
        """The UI's starting size: SD's 512, or 128 where the tiny preset runs on a CPU."""
        return TINY_DEFAULT_RESOLUTION if self.preset == "tiny" else 512

    def default_steps(self, steps: int) -> int:
        """The UI's starting step count: the method's, or a few where the tiny preset runs."""
        return min(steps, TINY_DEFAULT_STEPS) if self.preset == "tiny" else steps

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        """Read `T2VZ_*`; keyword overrides (from flags) win over the environment."""
        limits = Limits(
            max_frames=int(_env("MAX_FRAMES", str(Limits.max_frames))),
            min_side=int(_env("MIN_SIDE", str(Limits.min_side))),
            max_side=int(_env("MAX_SIDE", str(Limits.max_side))),
            max_pixels=int(_env("MAX_PIXELS", str(Limits.max_pixels))),
            max_steps=int(_env("MAX_STEPS", str(Limits.max_steps))),
            max_upload_mb=float(_env("MAX_UPLOAD_MB", str(Limits.max_upload_mb))),
            max_tuned_download_mb=float(_env("MAX_TUNED_DOWNLOAD_MB", str(Limits.max_tuned_download_mb))),
            max_video_seconds=float(_env("MAX_VIDEO_SECONDS", str(Limits.max_video_seconds))),
            max_source_pixels=int(_env("MAX_SOURCE_PIXELS", str(Limits.max_source_pixels))),
            max_source_frames=int(_env("MAX_SOURCE_FRAMES", str(Limits.max_source_frames))),
            max_source_seconds=float(_env("MAX_SOURCE_SECONDS", str(Limits.max_source_seconds))),
            max_tune_steps=int(_env("MAX_TUNE_STEPS", str(Limits.max_tune_steps))),
        )
        defaults = cls()
        settings = cls(
            preset=_env("PRESET", defaults.preset),
            host=_env("HOST", os.environ.get("GRADIO_SERVER_NAME", defaults.host)),
            port=int(_env("PORT", os.environ.get("GRADIO_SERVER_PORT", str(defaults.port)))),
            share=_env_bool("SHARE", defaults.share),
            device=_env("DEVICE", defaults.device),
            devices=_env_list("DEVICES", ()),
            dtype=_env("DTYPE", defaults.dtype),
            backend=_env("BACKEND", defaults.backend),
            ray_address=_env("RAY_ADDRESS", defaults.ray_address),
            ray_replicas=int(_env("RAY_REPLICAS", str(defaults.ray_replicas))),
            ray_max_replicas=int(_env("RAY_MAX_REPLICAS", str(defaults.ray_max_replicas))),
            base_models=_env_list("BASE_MODELS", defaults.base_models),
            edit_model=_env("EDIT_MODEL", defaults.edit_model),
            annotators=_env("ANNOTATORS", defaults.annotators),
            models=_engine_models(),
            controlnet_cache_size=int(_env("CONTROLNET_CACHE", str(defaults.controlnet_cache_size))),
            annotator_cache_size=int(_env("ANNOTATOR_CACHE", str(defaults.annotator_cache_size))),
            memory_budget_gb=float(_env("MEMORY_BUDGET_GB", str(defaults.memory_budget_gb))),
            cpu_offload=_env_bool("CPU_OFFLOAD", defaults.cpu_offload),
            vae_decode_batch=int(_env("VAE_DECODE_BATCH", str(defaults.vae_decode_batch))),
            queue_size=int(_env("QUEUE_SIZE", str(defaults.queue_size))),
            outputs_dir=_env("OUTPUTS_DIR", defaults.outputs_dir),
            outputs_ttl_s=int(_env("OUTPUTS_TTL_S", str(defaults.outputs_ttl_s))),
            tuned_dir=_env("TUNED_DIR", defaults.tuned_dir),
            limits=limits,
            shared_tuned_dir=_env("SHARED_TUNED", defaults.shared_tuned_dir),
            tuned_per_visitor=int(_env("TUNED_PER_VISITOR", str(defaults.tuned_per_visitor))),
            tuned_ttl_s=int(_env("TUNED_TTL_S", str(defaults.tuned_ttl_s))),
        )
        settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
        if overrides.get("public") is None:  # decided here once, from where it serves (after the flags)
            public, reason = decide_public(settings.host, settings.share)
            settings = replace(settings, public=public, public_reason=reason)
        if settings.preset not in PRESETS:
            raise ValueError(f"Unknown preset {settings.preset!r}; choose one of {', '.join(PRESETS)}.")
        if settings.backend not in BACKENDS:
            raise ValueError(f"Unknown backend {settings.backend!r}; choose one of {', '.join(BACKENDS)}.")
        return settings


LOOPBACK_NAMES = ("localhost", "")  # "" = Gradio's default, 127.0.0.1


def decide_public(host: str, share: bool = False, environ=os.environ) -> tuple[bool, str]:
    """(public?, why): T2VZ_PUBLIC=0/1 decides; else public on a Hugging Face Space (SPACE_ID), with a share
    link, or serving an address other machines reach (not loopback); private otherwise."""
    forced = environ.get("T2VZ_PUBLIC", "").strip().lower()
    if forced in ("1", "true", "yes", "on"):
        return True, "T2VZ_PUBLIC=1"
    if forced in ("0", "false", "no", "off"):
        return False, "T2VZ_PUBLIC=0"
    if forced:
        raise ValueError(f"T2VZ_PUBLIC={forced!r}: use 1 (public), 0 (private) or leave it unset (decided from "
                         "where the app serves).")
    if environ.get("SPACE_ID"):
        return True, f"on the Space {environ['SPACE_ID']}"
    if share:
        return True, "a public share link"
    if not _loopback(host):
        return True, f"serves {host}, which other machines reach"
    return False, f"serves only this machine ({host or '127.0.0.1'})"


def _loopback(host: str) -> bool:
    import ipaddress

    host = (host or "").strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: reached by others unless it names this machine only
        return False


def _engine_models() -> dict:
    """T2VZ_<env> of every engine model that declares one (the registry says which)."""
    from .engines import model_specs

    return {spec.key: _env(spec.env, spec.default_repo) for _, spec in model_specs() if spec.env}


def _engine_env_vars() -> tuple[tuple[str, str], ...]:
    from .engines import model_specs

    return tuple((f"T2VZ_{spec.env}", f"{spec.description} (default `{spec.default_repo}`)")
                 for _, spec in model_specs() if spec.env)


# name, meaning — the README and `python app.py --help` show this table.
ENV_VARS = (
    ("T2VZ_PRESET", "`real` (Hub weights, default) or `tiny` (random weights built in code, offline, CPU)"),
    ("T2VZ_HOST / T2VZ_PORT / T2VZ_SHARE", "where to serve (also GRADIO_SERVER_NAME / GRADIO_SERVER_PORT)"),
    ("T2VZ_DEVICE", "`auto` (CUDA if present), `cpu`, `cuda`, `cuda:1`, ..."),
    ("T2VZ_DEVICES", "comma list, one worker per device, e.g. `cuda:0,cuda:1`"),
    ("T2VZ_BACKEND", "`local` (workers in this process, default) or `ray` (Ray Serve replicas, one GPU each)"),
    ("T2VZ_RAY_ADDRESS", "the Ray cluster for `--backend ray` (`auto`, `ray://host:10001`, `host:6379`); empty "
     "(default) starts a local cluster"),
    ("T2VZ_RAY_REPLICAS", "worker replicas for `--backend ray`; 0 (default) = one per GPU of the cluster, 2 on a "
     "CPU-only one"),
    ("T2VZ_RAY_MAX_REPLICAS", "above T2VZ_RAY_REPLICAS: Ray Serve autoscales the replicas between the two (one "
     "job per replica; up after 5 s of waiting jobs, down after 10 idle minutes); 0 (default) = a fixed number"),
    ("T2VZ_DTYPE", "`auto` (fp16 on CUDA; on a CPU bfloat16 where a short cached probe finds it at least 1.2x faster, else fp32; the status line says which and why), `float32`, `float16`, `bfloat16`"),
    ("T2VZ_DTYPE_PROBE_CACHE", "where the CPU dtype probe caches its result (default ~/.cache/text2video-zero-studio/cpu_dtype_probe.json)"),
    ("T2VZ_BASE_MODELS", "comma list of allowed SD 1.5 base models; the first is the default"),
    ("T2VZ_EDIT_MODEL", "Instruct-Pix2Pix model id"),
    ("T2VZ_ANNOTATORS", "Hub repo of the OpenPose / MiDaS annotator weights"),
    *_engine_env_vars(),
    ("T2VZ_CONTROLNET_CACHE / T2VZ_ANNOTATOR_CACHE", "how many ControlNets / annotators stay loaded (LRU)"),
    ("T2VZ_MEMORY_BUDGET_GB", "budget for model weights on the device, in GiB (least recently used extras are "
     "evicted beyond it); 0 = 80 % of the GPU's memory on CUDA, none on CPU"),
    ("T2VZ_CPU_OFFLOAD", "1 = keep models on CPU and move each to the GPU only while it runs"),
    ("T2VZ_VAE_DECODE_BATCH", "frames decoded by the VAE at once"),
    ("T2VZ_QUEUE_SIZE", "jobs allowed to wait in the queue"),
    ("T2VZ_OUTPUTS_DIR / T2VZ_OUTPUTS_TTL_S", "where per-request folders go and how long they are kept"),
    ("T2VZ_TUNED_DIR", "where models tuned here (the Tune tab) are kept, a folder each (default "
     "~/.cache/text2video-zero-studio/tuned; never swept)"),
    ("T2VZ_PUBLIC", "`1` = public (visitors sign in with Hugging Face; each visitor's tuned models are theirs; the "
     "server's HF_TOKEN serves no visitor), `0` = private (one user: today's single folder and HF_TOKEN); unset "
     "(default): public on a Space (SPACE_ID), with a share link or on a non-loopback address"),
    ("T2VZ_SHARED_TUNED", "public mode: a folder of tuned models the owner offers every visitor (read-only; default "
     "none)"),
    ("T2VZ_TUNED_PER_VISITOR", "public mode: tuned models one visitor (account or browser session) keeps (default 5)"),
    ("T2VZ_TUNED_TTL_S", "public mode: seconds an anonymous visitor's tuned models are kept (default 86400)"),
    ("T2VZ_MAX_FRAMES", "per-job cap on frames for every engine (default: each engine's own, from its published "
                        "clip: RECIPES.md)"),
    ("T2VZ_MAX_STEPS", "per-job cap on denoising steps"),
    ("T2VZ_MAX_TUNE_STEPS", "per-job cap on training steps in the Tune tab (default 1000)"),
    ("T2VZ_MIN_SIDE / T2VZ_MAX_SIDE / T2VZ_MAX_PIXELS", "per-job caps on output size"),
    ("T2VZ_MAX_UPLOAD_MB / T2VZ_MAX_VIDEO_SECONDS", "caps on an upload's file size and on the part of it one job uses"),
    ("T2VZ_MAX_TUNED_DOWNLOAD_MB", "cap on a tuned model run by Hub id, sized on the Hub before downloading (default "
     "1000)"),
    ("T2VZ_MAX_SOURCE_PIXELS / T2VZ_MAX_SOURCE_FRAMES / T2VZ_MAX_SOURCE_SECONDS", "caps on an uploaded video itself, checked before decoding"),
)
