"""AnimateDiff: a trained motion adapter on the tab's SD 1.5 base, sharing its UNet layers (no copy).

Text-to-video (storyboards and long clips through FreeNoise) and the ControlNet tabs (the same
ControlNet and maps as the zero-shot engine, under a trained motion prior). Fast mode is
AnimateDiff-Lightning's adapter for the step count (`lightning.py`). The loop is diffusers'
maintained AnimateDiff(ControlNet)Pipeline on our shared parts (`sampling.py`).
"""

from __future__ import annotations

from ..base import Defaults, Engine, FastRecipe, JobInputs, ModelSpec

DEFAULT_ADAPTER = "guoyww/animatediff-motion-adapter-v1-5-3"
LIGHTNING_REPO = "ByteDance/AnimateDiff-Lightning"
LIGHTNING_STEPS = (1, 2, 4, 8)  # the published files; the recipe offers those of 2 and more


def lightning_file(steps: int) -> str:
    """The AnimateDiff-Lightning diffusers file for `steps` (1, 2, 4 or 8)."""
    if steps not in LIGHTNING_STEPS:
        raise ValueError(f"AnimateDiff-Lightning has {', '.join(map(str, LIGHTNING_STEPS))}-step files, not {steps}")
    return f"animatediff_lightning_{steps}step_diffusers.safetensors"


def _tiny_adapter(seed: int):
    from .tiny import build_motion_adapter

    return build_motion_adapter(seed=seed)


def _tiny_lightning(seed: int):
    from .lightning import lightning_adapter
    from .tiny import build_lightning_adapter_state, build_motion_adapter

    return lightning_adapter(build_lightning_adapter_state(build_motion_adapter(seed=seed, mid_block=True)))


def _lightning_from_state(state):
    from .lightning import lightning_adapter

    return lightning_adapter(state)


MOTION_ADAPTER = ModelSpec(
    key="motion_adapter", kind="module", default_repo=DEFAULT_ADAPTER, env="MOTION_ADAPTER",
    description="AnimateDiff motion adapter for the SD 1.5 base (Hub id or folder)",
    module_class="MotionAdapter", stage="unet", build_tiny=_tiny_adapter, group="motion_adapters",
)
LIGHTNING_ADAPTER = ModelSpec(
    key="lightning_adapter", kind="file", default_repo=LIGHTNING_REPO, default_file=lightning_file(4),
    module_class="MotionAdapter", stage="unet", build_tiny=_tiny_lightning, from_state=_lightning_from_state,
    group="motion_adapters",
)


class AnimateDiff(Engine):
    name = "animatediff"
    title = "AnimateDiff"
    label = "AnimateDiff (motion adapter on the SD 1.5 base)"
    tabs = frozenset({"text2video", "control"})
    inputs = frozenset({"base_model", "storyboard"})
    defaults = Defaults(steps=25, guidance_scale=7.5, side=512, frames=16)
    fast = FastRecipe(name="AnimateDiff-Lightning", steps=tuple(n for n in LIGHTNING_STEPS if n >= 2),
                      defaults={"*": dict(steps=4, guidance_scale=1.0)}, scheduler="lightning")
    models = (MOTION_ADAPTER, LIGHTNING_ADAPTER)

    def mode(self, tab: str, kind: str = "") -> str:
        return f"text2video-{self.name}" if tab == "text2video" else super().mode(tab, kind)

    def adapter_name(self, request, settings) -> str:
        if request.fast:
            return f"{LIGHTNING_REPO}/{lightning_file(request.steps)}"
        return MOTION_ADAPTER.repo(settings)

    def load(self, manager, request, tab: str):
        components = manager.components(request.model, scheduler="ddim")
        if request.fast:
            components.decoder = manager.tiny_decoder()
            adapter = manager.part(LIGHTNING_ADAPTER, filename=lightning_file(request.steps))
        else:
            adapter = manager.part(MOTION_ADAPTER)
        controlnet = manager.controlnet(request.kind) if tab == "control" else None
        return components, adapter, controlnet

    def sample(self, loaded, request, tab: str, inputs: JobInputs, *, chunk_size, control):
        from .lightning import lightning_scheduler
        from .sampling import generate_animatediff

        components, adapter, controlnet = loaded
        options = dict(prompt=request.prompt, negative_prompt=request.negative_prompt, steps=request.steps,
                       guidance_scale=request.guidance_scale, seed=request.seed, on_step=control.step,
                       scheduler=lightning_scheduler(components.scheduler.config) if request.fast else None)
        if tab == "control":  # the same ControlNet and maps under a trained motion prior
            maps = inputs.maps
            return generate_animatediff(components, adapter, num_frames=len(maps), height=maps.shape[1],
                                        width=maps.shape[2], controlnet=controlnet, control=maps,
                                        conditioning_scale=request.conditioning_scale, **options)
        return generate_animatediff(components, adapter, num_frames=request.num_frames, height=request.height,
                                    width=request.width, **options)

    def record(self, request, tab: str, settings) -> dict:
        record = {"engine": self.name, "model": request.model, "motion_adapter": self.adapter_name(request, settings),
                  "scheduler": "lightning" if request.fast else "ddim"}
        if tab == "control":
            record["controlnet"] = settings.controlnets[request.kind]
        return record


ENGINE = AnimateDiff()
