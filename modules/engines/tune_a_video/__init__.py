"""Tune-A-Video (Wu et al. 2023, arXiv 2212.11565): tune SD 1.5 on one clip, then run it with any prompt.

Two tabs: "tune" trains a model on a clip and its description, saves it (`weights`) and makes a
sample clip; "tuned" runs a saved model (one tuned here or a Hub repo) with a new
prompt, starting from its source clip's DDIM inversion by default, which keeps the source's
motion. Both run on the shared SD 1.5 base the other tabs use: the video layers and the tuned
parameters are attached for the job only, and the base is bit for bit what it was afterwards
(`attention`). No maintained library ships the method; this folder is ours:

- `attention`: sparse-causal spatial attention and temporal attention, attached by
  `add_video_layers(unet, parameters=None)` and removed by `VideoLayers.remove()`;
- `train`: `tune(unet, vae, text_encoder, tokenizer, frames, prompt, ...)`, returning only the
  trained parameters;
- `weights` and `files`: a tuned model's folder (safetensors, model card, source clip, sample);
  `applied_to(unet, parameters)`, the tuned video UNet for one job; `rebased`, a model tuned on one base
  for running on another (the tuning's change to the queries, added to that base's own);
- `inference`: `generate(layers, ...)`, DDIM inversion of the source clip and sampling;
- `sharing`: upload to and download from the Hub.

Submodules that pull in torch and diffusers are imported on use.

Numbers: the paper tunes 300-500 steps at 3e-5; the Hugging Face Space 300 at 3.5e-5 on 8 frames.
Inference: 50 DDIM steps, guidance 12.5, inversion with the empty prompt.
"""

from __future__ import annotations

import time

from ...errors import UserError
from ...job_control import INVERTING, TRAINING, Place, duration_text
from . import files
from ..base import Engine, FrameRule, JobInputs, MadeModel, Recipe, Rules, Prior

CHECKPOINT_EVERY = 100  # training steps between saves: a crash or Stop keeps the last
# Denoiser calls per training step, per frame: forward, backward (about twice a forward) and the forward
# that gradient checkpointing runs again.
CALLS_PER_TRAINING_STEP = 4
SIZE_MULTIPLE = 64  # SD 1.5: the VAE's 8 x the UNet's three down-samplings (the tiny preset needs 16)


class TuneAVideo(Engine):
    name = "tune-a-video"
    title = "Tune-A-Video"
    label = "Tune-A-Video (SD 1.5 tuned on one clip)"
    tabs = frozenset({"tune", "tuned"})
    inputs = frozenset({"base_model"})
    # Training as the authors' Space (8 consecutive frames from the start at stride 1, 300 steps at 3.5e-5, 512x512);
    # sampling as the official inference (DDIM inversion of the source, 50 DDIM steps, guidance 12.5); the clip
    # plays at the source's rate over the stride.
    recipes = {
        "tune": Recipe(steps=50, guidance_scale=12.5, frames=8, max_frames=24, fps=0.0,
                       extra={"training_steps": 300, "learning_rate": 3.5e-5, "stride": 1}),
        "tuned": Recipe(steps=50, guidance_scale=12.5, frames=0, max_frames=24, fps=0.0),
    }
    rules = Rules(frames=FrameRule(), size_multiple=SIZE_MULTIPLE)
    model_files = files.FILES
    model_source_files = (files.SOURCE_NAME,)
    training_ended_file = files.ENDED_NAME
    # Estimates' priors (modules/estimates.py). CPU: training 7.73 s a step for 8 x 128² in fp32 (4 calls a step:
    # 3.9 s a frame-step); the sample's inversion and sampling: SD 1.5's text-to-video step; a tuned run: the same
    # sampling. Tiny: not measured; training as the editing step, a tuned run as text to video. Derived.
    cpu_priors = {
        ("tune", False): Prior(fixed_s=2.0, pixel_s=13.5, step_s=4.0),
        ("tuned", False): Prior(fixed_s=1.0, pixel_s=13.5, step_s=9.5),
    }
    tiny_priors = {
        ("tune", False): Prior(fixed_s=0.86, step_s=0.28),
        ("tuned", False): Prior(fixed_s=0.23, step_s=0.47),
    }

    def __init__(self):
        self._base_queries: dict[str, dict] = {}  # base -> its own query weights, for models tuned on it

    def mode(self, tab: str, kind: str = "") -> str:
        return tab  # "tune" (a training run and its sample) or "tuned" (a tuned model's clip)

    def unet_calls(self, request, tab: str, frames: int) -> int:
        """UNet calls per frame: training steps (counted as CALLS_PER_TRAINING_STEP calls each), then DDIM
        inversion (one call a step) and sampling (two with guidance)."""
        steps = request.sample_steps if tab == "tune" else request.steps
        inversion = tab == "tune" or request.inversion
        calls = steps * (2 if request.guidance_scale > 1.0 else 1) + (steps if inversion else 0)
        return calls + (CALLS_PER_TRAINING_STEP * request.steps if tab == "tune" else 0)

    def load(self, manager, request, tab: str):
        """The base's components, and where a tuned model runs on another base than it was tuned on, the
        tuning base's own query weights (read once per base, about 100 MB for SD 1.5; loading that base
        first, as the manager holds one base at a time)."""
        tuned_on = request.tuned_on if tab == "tuned" else ""
        tuning_queries = None
        if tuned_on and tuned_on != request.model:
            from .attention import query_weights

            if tuned_on not in self._base_queries:
                self._base_queries[tuned_on] = query_weights(manager.components(tuned_on).unet)
            tuning_queries = self._base_queries[tuned_on]
        return manager.components(request.model, scheduler="ddim"), tuning_queries

    def sample(self, loaded, request, tab: str, inputs: JobInputs, *, chunk_size, control):
        from .attention import query_weights
        from .inference import generate
        from .weights import applied_to, rebased

        components, tuning_queries = loaded
        parts = (components.vae, components.text_encoder, components.tokenizer)
        if tab == "tune":
            sample_steps, inversion = request.sample_steps, True
            prompt = request.sample_prompt or request.prompt
            negative = ""
            calls = request.steps + 2 * sample_steps
            weights = self._train(components, request, inputs, control, calls)
            done = request.steps
        else:
            sample_steps, inversion = request.steps, request.inversion
            prompt, negative = request.prompt, request.negative_prompt
            calls = sample_steps * (2 if inversion else 1)
            weights, done = inputs.weights, 0
            if tuning_queries is not None:  # tuned on another base: its changes, added to this base's queries
                weights = rebased(weights, tuning_queries, query_weights(components.unet))

        def on_step(step: int, _total: int) -> None:
            if inversion and step <= sample_steps:  # inverting the source, then sampling: each `sample_steps`
                place = Place(step=step, steps=sample_steps, part=INVERTING)
            else:
                place = Place(step=step - sample_steps if inversion else step, steps=sample_steps)
            control.step(done + step, calls, place)

        with applied_to(components.unet, weights, components.device) as layers:
            return generate(layers, *parts, prompt, source_frames=inputs.frames, inversion=inversion,
                            steps=sample_steps, guidance_scale=request.guidance_scale, negative_prompt=negative,
                            seed=request.seed, on_step=on_step)

    def _train(self, components, request, inputs: JobInputs, control, calls: int) -> dict:
        """Tune the base on the clip; the model is saved every CHECKPOINT_EVERY steps, at the end, and
        when a Stop ends the run (then the Stop's message says where)."""
        from .train import tune
        from .weights import save_tuned

        folder = inputs.save_to
        if not folder.is_dir():  # made by the app's process: a worker on another machine must share it
            raise UserError(f"This worker can't see the tuned-models folder {folder.parent}. With workers on other "
                            "machines (the Ray backend), T2VZ_TUNED_DIR must be one folder that every host mounts "
                            "at the same path (README, Scaling).")
        started = time.monotonic()

        def save(step: int, parameters: dict) -> None:
            save_tuned(folder, parameters, base_model=request.model, training_prompt=request.prompt, steps=step,
                       learning_rate=request.learning_rate)

        def on_step(step: int, steps: int, loss: float) -> None:
            # From the first step on, a Stop saves the model (said now: the page may explain the Stop
            # before the worker reaches it).
            control.stopped_note = f"The model as trained until the stop is saved as {folder.name}: you can run it."
            left = (time.monotonic() - started) / step * (steps - step)
            detail = f"loss {loss:.4f}" + (f" · about {duration_text(left)} left" if step < steps else "")
            control.step(step, calls, Place(step=step, steps=steps, part=TRAINING, detail=detail), kept=True)

        try:
            parameters = tune(components.unet, components.vae, components.text_encoder, components.tokenizer,
                              inputs.frames, request.prompt, steps=request.steps, learning_rate=request.learning_rate,
                              seed=request.seed, on_step=on_step, dtype=components.dtype, on_checkpoint=save,
                              checkpoint_every=CHECKPOINT_EVERY, device=components.device)
            save(request.steps, parameters)
        finally:  # trained, failed or stopped (a Stop's save done): the caller may decide what to keep
            (folder / files.ENDED_NAME).touch()
        return parameters

    def keep_source(self, folder, frames, fps: float) -> None:
        from .weights import save_source

        save_source(folder, frames, fps)

    def keep_sample(self, folder, gif: str) -> None:
        import shutil
        from pathlib import Path

        shutil.copyfile(gif, Path(folder) / files.SAMPLE_NAME)

    def read_model(self, folder) -> MadeModel:
        from .weights import load_source, load_tuned

        weights, card = load_tuned(folder)
        try:
            frames, fps = load_source(folder)
        except FileNotFoundError:  # shared without its source clip: blank frames of the size it was tuned at
            return MadeModel(weights=weights, base_model=str(card.get("base_model") or ""), frames=_blank(folder),
                             fps=_info(folder).get("fps") or 8.0, source=False)
        return MadeModel(weights=weights, base_model=str(card.get("base_model") or ""), frames=frames, fps=fps)

    def upload_model(self, folder, files, *, repo_name, namespace, token, private) -> str:
        from .sharing import upload_tuned

        return upload_tuned(folder, repo_name=repo_name, namespace=namespace, token=token, private=private,
                            files=files)

    def download_model(self, repo_id, files, *, token=None, on_progress=None, max_bytes=0):
        from .sharing import download_tuned

        return download_tuned(repo_id, token=token, files=files, on_progress=on_progress, max_bytes=max_bytes)

    def scheduler_of(self, loaded, request, tab: str):
        return loaded[0].scheduler

    def record(self, request, tab: str, settings) -> dict:
        return {"engine": self.name, "model": request.model, "scheduler": "ddim",
                **({"inversion": True} if tab == "tune" else {})}


ENGINE = TuneAVideo()


def _info(folder) -> dict:
    """The app's own listing file beside a model (frames, width, height, fps), where it has one."""
    import json
    from pathlib import Path

    try:
        info = json.loads((Path(folder) / "tuned.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _blank(folder):
    """Frames the size of those a model was tuned on (from its listing file; 8 of 512x512 without one)."""
    import numpy as np

    info = _info(folder)

    def number(key: str, default: int, most: int) -> int:
        value = info.get(key)
        return int(value) if isinstance(value, (int, float)) and 0 < value <= most else default

    return np.zeros((number("frames", 8, 48), number("height", 512, 1024), number("width", 512, 1024), 3), np.uint8)
