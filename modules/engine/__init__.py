"""Text2Video-Zero on Stable Diffusion 1.5 parts: pure torch + diffusers, no UI.

Each mode is one function that takes `Components` (borrowed from the model manager) and plain
parameters, and returns frames as a float array (F, H, W, 3) in [0, 1].
"""

from .attention import CrossFrameAttnProcessor, cross_frame_attention
from .common import SCHEDULERS, Components, StepCallback, make_scheduler
from .controlnet import generate_control_video
from .motion import warp_latents
from .pix2pix import generate_edit_video
from .schedule import ScheduleError, chunk_frame_ids, default_t0_t1, resolve_t0_t1
from .text2video import generate_text2video

__all__ = [
    "SCHEDULERS",
    "Components",
    "CrossFrameAttnProcessor",
    "ScheduleError",
    "StepCallback",
    "chunk_frame_ids",
    "cross_frame_attention",
    "default_t0_t1",
    "generate_control_video",
    "generate_edit_video",
    "generate_text2video",
    "make_scheduler",
    "resolve_t0_t1",
    "warp_latents",
]
