"""diffusers' reference pipelines as the tests and benchmarks compare our engine against them.

Not used by the app (it imports diffusers' deprecated Text2Video-Zero code); `tests/
test_engine_reference.py` and `benchmarks/cases.py` share these so both compare against the same thing.
"""

from __future__ import annotations

import torch
from diffusers.pipelines.deprecated.text_to_video_synthesis.pipeline_text_to_video_zero import TextToVideoZeroPipeline


class FramewiseTextToVideoZero(TextToVideoZeroPipeline):
    """diffusers' pipeline, whose re-noising of frames 1.. draws each frame's noise from its own stream
    (as our engine does: noise is drawn per frame).

    `renoise_generators` (one per frame after the anchor) must be set before each call.
    """

    renoise_generators: list[torch.Generator] | None = None

    def forward_loop(self, x_t0, t0, t1, generator):
        if self.renoise_generators is None or len(self.renoise_generators) != len(x_t0):
            raise ValueError("set renoise_generators to one generator per frame after the anchor before the call")
        return super().forward_loop(x_t0, t0, t1, generator=self.renoise_generators)
