"""The zero-shot method on Stable Diffusion 1.5 parts, and what SD 1.5 engines share: pure torch + diffusers, no UI.

Each mode is one function that takes `Components` (borrowed from the model manager) and plain
parameters, and returns frames as a float array (F, H, W, 3) in [0, 1].

Names are imported on first use: diffusers and transformers take seconds to import, and the
app must serve its first page before any job needs them.
"""

from importlib import import_module

from .schedule import SCHEDULER_NAMES, ScheduleError, chunk_frame_ids, default_t0_t1, resolve_t0_t1

_LAZY = {
    "CrossFrameAttnProcessor": "attention",
    "cross_frame_attention": "attention",
    "Components": "common",
    "StepCallback": "common",
    "SCHEDULERS": "common",
    "frame_generator": "common",
    "frame_generators": "common",
    "make_scheduler": "common",
    "generate_control_video": "controlnet",
    "FAST_DEFAULTS": "fast",
    "attach_lora": "fast",
    "detach_lora": "fast",
    "has_lora": "fast",
    "lcm_scheduler": "fast",
    "lora_active": "fast",
    "warp_latents": "motion",
    "generate_edit_video": "pix2pix",
    "StoryboardError": "storyboard",
    "check_storyboard": "storyboard",
    "key_frame_weights": "storyboard",
    "parse_storyboard": "storyboard",
    "generate_text2video": "text2video",
}

__all__ = ["SCHEDULER_NAMES", "ScheduleError", "chunk_frame_ids", "default_t0_t1", "resolve_t0_t1", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value
