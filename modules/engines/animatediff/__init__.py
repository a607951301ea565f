"""AnimateDiff: a trained motion adapter on the tab's SD 1.5 base, sharing its UNet layers (no copy).

Text-to-video (storyboards and long clips through FreeNoise) and the ControlNet tabs (the same
ControlNet and maps as the zero-shot engine, under a trained motion prior). Fast mode is
AnimateDiff-Lightning's adapter for the step count (`lightning.py`). The loop is diffusers'
maintained AnimateDiff(ControlNet)Pipeline on our shared parts (`sampling.py`).
"""

from __future__ import annotations

from ..base import Engine, FastRecipe, JobInputs, ModelSpec, Recipe, Prior

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


# diffusers' AnimateDiff docs (text-to-video and ControlNet examples): 16 frames, 25 steps, guidance 7.5, negative
# prompt "bad quality, worse quality", DDIM with the overrides in sampling.SCHEDULER_OVERRIDES; GIFs at 8 fps as
# AnimateDiff's own save_videos_grid. FreeNoise windows make clips past the adapter's 32 frames (up to 64 here).
NEGATIVE_PROMPT = "bad quality, worse quality"
SCHEDULER_CONFIG = {"beta_schedule": "linear", "clip_sample": False, "timestep_spacing": "linspace", "steps_offset": 1}
RECIPES = {
    "text2video": Recipe(steps=25, guidance_scale=7.5, negative_prompt=NEGATIVE_PROMPT, frames=16, max_frames=64,
                         fps=8.0, scheduler="DDIMScheduler", scheduler_config=SCHEDULER_CONFIG),
    "control": Recipe(steps=25, guidance_scale=7.5, negative_prompt=NEGATIVE_PROMPT, frames=0, max_frames=64,
                      fps=0.0, scheduler="DDIMScheduler", scheduler_config=SCHEDULER_CONFIG,
                      extra={"conditioning_scale": 1.0}),
}


class AnimateDiff(Engine):
    name = "animatediff"
    title = "AnimateDiff"
    label = "AnimateDiff (motion adapter on the SD 1.5 base)"
    tabs = frozenset({"text2video", "control"})
    inputs = frozenset({"base_model", "storyboard"})
    recipes = RECIPES
    fast = FastRecipe(name="AnimateDiff-Lightning", steps=tuple(n for n in LIGHTNING_STEPS if n >= 2),
                      defaults={"*": dict(steps=4, guidance_scale=1.0)}, scheduler="lightning")
    models = (MOTION_ADAPTER, LIGHTNING_ADAPTER)
    # Estimates' priors (modules/estimates.py). CPU: 16 x 128², 4 steps: 82.3 s, 16.5 s a step (of 16 frames of
    # 128²: one frame-step); Lightning (guidance 1, TAESD): 35.7 s. Its control tab (no benchmark): the
    # ControlNet's share of Text2Video-Zero's control steps (17.0 / 9.5) on AnimateDiff's step. Derived. Tiny: not
    # measured; Text2Video-Zero's step with the motion modules (x1.5). Derived.
    cpu_priors = {
        ("text2video", False): Prior(fixed_s=2.0, pixel_s=14.0, step_s=16.5),
        ("text2video", True): Prior(fixed_s=3.0, pixel_s=1.0, step_s=8.0),
        ("control", False): Prior(fixed_s=2.0, pixel_s=14.0, step_s=29.0),
    }
    tiny_priors = {
        ("text2video", False): Prior(fixed_s=0.44, pixel_s=0.7, step_s=1.2),
        ("text2video", True): Prior(fixed_s=0.51, step_s=1.3),
        ("control", False): Prior(fixed_s=0.24, pixel_s=3.7, step_s=1.7),
        ("control", True): Prior(fixed_s=0.71, step_s=1.6),
    }

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

    def scheduler_of(self, loaded, request, tab: str):
        """The scheduler sampling builds from the base's: AnimateDiff's schedule, or Lightning's in fast mode."""
        from .lightning import lightning_scheduler
        from .sampling import animatediff_scheduler

        scheduler = loaded[0].scheduler
        return lightning_scheduler(scheduler.config) if request.fast else animatediff_scheduler(scheduler)

    def record(self, request, tab: str, settings) -> dict:
        record = {"engine": self.name, "model": request.model, "motion_adapter": self.adapter_name(request, settings),
                  "scheduler": "lightning" if request.fast else "ddim"}
        if tab == "control":
            record["controlnet"] = settings.controlnets[request.kind]
        return record


ENGINE = AnimateDiff()
