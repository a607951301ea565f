"""What an engine declares about itself, so that nothing else has to know it by name.

An engine is one module (or folder) under `modules/engines/` that defines one `Engine` subclass:
its name and label, licence notice, the tabs and inputs it serves, its published defaults and
the rules of its inputs, its fast recipe (or none), the model parts it needs (`ModelSpec`, with
their tiny builders), how a job loads and samples, what params.json records, and its cost. The
registry (`modules/engines/__init__.py`) holds one instance of each; request validation, the UI,
Studio, the model manager, `--download`, the docs test and the benchmarks read it.

This module is light on purpose (no torch): the UI reads the registry before any job runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from ..errors import UserError

if TYPE_CHECKING:
    import numpy as np

    from ..job_control import JobControl
    from ..models import ModelManager
    from ..settings import Settings

# The tabs an engine can serve. "control" is the Pose, Edge and Depth tabs (a ControlNet each).
TABS = ("text2video", "control", "edit", "tune", "tuned")  # "tune": train a model on a clip; "tuned": run one
CONTROL_KINDS = ("pose", "edge", "depth")
# Inputs beyond prompt, size, frames, steps, guidance and seed that an engine may take.
INPUTS = (
    "base_model",  # runs on the chosen SD 1.5 base (the Base model choice)
    "motion",  # the zero-shot latent motion: motion x/y and t0/t1
    "chunks",  # frames in chunks of `chunk_size` (and the out-of-memory retry with smaller chunks)
    "image",  # an uploaded picture as the first frame
    "storyboard",  # key-frame prompts ("0: ... / 16: ...")
)
# How Fast's refusal names a tab ("no few-step weights for Wan 2.1 in the Pose, Edge and Depth tabs").
TAB_PHRASES = {"text2video": "text to video", "control": "the Pose, Edge and Depth tabs", "edit": "video editing"}
FAST_MAX_GUIDANCE = 2.0  # few-step weights are distilled with guidance folded in; above ~2 frames over-saturate
GPU_SECONDS_PER_FRAME_STEP = 0.05  # a UNet call on one 512x512 frame on a ZeroGPU slice
# The same on a few CPU cores (SD 1.5, guidance on): the page's prior for an engine without figures of its own in
# modules/estimates.py (which has the measured ones).
CPU_SECONDS_PER_FRAME_STEP = 4.0
GPU_OVERHEAD_S = 20.0


UNIT = 512 * 512  # a "512x512 frame": the unit of the priors' sizes


@dataclass(frozen=True)
class Prior:
    """Seconds of a stage before this server timed one: fixed per job, per frame, per 512x512 frame and per
    unit of the engine's work (512x512 frame-steps)."""

    fixed_s: float = 0.0
    frame_s: float = 0.0
    pixel_s: float = 0.0
    step_s: float = 0.0

    def seconds(self, frames: int, width: int, height: int, work: float = 0.0) -> float:
        return (self.fixed_s + self.frame_s * frames + self.pixel_s * frames * width * height / UNIT
                + self.step_s * work)



@dataclass(frozen=True)
class FrameRule:
    """Frame counts the engine's model takes: `multiple * k + offset` (4k+1 for Wan, 8k+1 for CogVideoX)."""

    multiple: int = 1
    offset: int = 0

    @property
    def smallest(self) -> int:
        return self.offset if self.offset >= 1 else self.multiple

    def fits(self, frames: int) -> bool:
        return frames >= self.smallest and (frames - self.offset) % self.multiple == 0

    def nearest(self, frames: int) -> int:
        """The largest count that fits and is at most `frames` (the smallest that fits, below that)."""
        below = frames - (frames - self.offset) % self.multiple
        return max(below, self.smallest)

    def closest(self, frames: int, maximum: int | None = None) -> int:
        """The fitting count nearest to `frames` (the larger one on a tie), at most `maximum`: what a shared
        frame count becomes for this engine (8 frames: 9 for 4k+1 or 8k+1, not a 1-frame still)."""
        below = self.nearest(frames)
        above = below if below >= frames else below + self.multiple
        if maximum is not None and above > maximum:
            return below
        return above if above - frames <= frames - below else below

    def __str__(self) -> str:
        if self.multiple == 1:
            return "any number"
        return f"{self.multiple}k+{self.offset}" if self.offset else f"a multiple of {self.multiple}"


@dataclass(frozen=True)
class Defaults:
    """The engine's main tab's published defaults, as earlier code reads them (`Engine.defaults`, made from
    that tab's `Recipe`)."""

    steps: int
    guidance_scale: float
    side: int  # the short side of the published size
    frames: int = 8
    fps: float = 4.0
    width: int = 0  # a non-square default size (e.g. 832x480); 0 = `side`
    height: int = 0
    training_steps: int = 0  # an engine that trains a model (the "tune" tab): its steps and learning rate
    learning_rate: float = 0.0

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the published default."""
        return self.width or self.side, self.height or self.side


@dataclass(frozen=True)
class Recipe:
    """An engine's published recipe for one tab: what its authors run (model card, the pipeline's `__call__`
    defaults, the official config). The page starts the tab's form at it when the engine is chosen; an API
    call that names the engine and leaves a value at the tab's default gets it (request_types). RECIPES.md
    is its table with each value's source, and tests check that what reaches the pipeline equals it."""

    steps: int
    guidance_scale: float
    negative_prompt: str = ""
    frames: int = 8  # the published clip (0: the input clip's, in the tabs that read a video)
    max_frames: int = 64  # the longest clip the engine makes in this tab (T2VZ_MAX_FRAMES overrides it)
    fps: float = 8.0  # 0: the input clip's
    width: int = 512
    height: int = 512
    scheduler: str = "DDIMScheduler"  # the class of the scheduler that samples
    scheduler_config: dict = field(default_factory=dict, hash=False)  # the config values the recipe sets
    extra: dict = field(default_factory=dict, hash=False)  # the tab's other request fields (conditioning_scale, ...)

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


@dataclass(frozen=True)
class Rules:
    """What the engine's model accepts; validation enforces it, with a note where a value is changed."""

    frames: FrameRule = FrameRule()
    size_multiple: int = 8
    min_steps: int = 1
    max_guidance: float = 30.0


@dataclass(frozen=True)
class FastRecipe:
    """Few-step sampling: which weights, which step counts, and each tab's steps/guidance (and scheduler)."""

    name: str  # what the note says, e.g. "LCM-LoRA"
    steps: tuple[int, ...]  # the step counts the weights are made for
    defaults: dict[str, dict]  # tab -> {"steps", "guidance_scale", ...}; "*" for every tab
    scheduler: str  # params.json's scheduler name in fast mode
    max_guidance: float = FAST_MAX_GUIDANCE
    # The engine's tabs the few-step weights serve (empty: all of them); in the others Fast says in a
    # sentence that there are none (Wan 2.1's AnyFlow is text-to-video: not the VACE control tabs).
    tabs: frozenset[str] = frozenset()

    def serves(self, tab: str) -> bool:
        return not self.tabs or tab in self.tabs

    def for_tab(self, tab: str) -> dict:
        return self.defaults.get(tab, self.defaults.get("*", {}))

    def steps_text(self) -> str:
        steps = list(self.steps)
        if steps == list(range(steps[0], steps[-1] + 1)) and len(steps) > 2:
            return f"{steps[0]}-{steps[-1]}"
        return ", ".join(map(str, steps[:-1])) + f" or {steps[-1]}" if len(steps) > 1 else str(steps[0])


@dataclass(frozen=True)
class ModelSpec:
    """One model part an engine needs, beyond the shared SD 1.5 parts the manager keeps anyway.

    kind:
    - "pipeline": a diffusers model folder shaped as SD's (tokenizer, text encoder, UNet, VAE,
      scheduler); `module_class` names the UNet's class. `manager.model(spec)` gives an
      `engine.Components`.
    - "components": a diffusers model folder with components of its own: `components` maps each
      role (its subfolder: "tokenizer", "text_encoder", "transformer", "vae", "scheduler", ...) to
      its class name, diffusers' or transformers' ("T5TokenizerFast", "AutoTokenizer",
      "UMT5EncoderModel", "WanTransformer3DModel", "AutoencoderKLWan", "UniPCMultistepScheduler").
      A tokenizer role loads its folder's tokenizer files (tokenizer.json, else spiece.model); a
      scheduler role its scheduler_config.json; every other role its config.json and weights (one
      safetensors file, or the shards its `*.safetensors.index.json` lists). `dtypes` pins roles to
      a dtype whatever the app runs in (a VAE that must stay "float32"); `half_dtype` is what the
      other roles run in where the app runs float16 (on CUDA): "bfloat16" for a model whose
      activations overflow float16 (black frames). `stages`: each module role's offload stage
      (default: the role itself, so with CPU offload a text encoder leaves the device once the
      prompt is encoded and the peak is the largest single module). `build_tiny(seed)` returns
      {role: object} (the scheduler as an instance). `manager.model(spec)` gives a
      `ModelComponents`: the roles' objects, the scheduler a fresh instance per call.
      `shared_roles`: roles that are another spec's (the same weights published in both repos):
      they come from that spec's repo in its dtype, so the manager holds them once and `--download`
      fetches them once.
    - "module": one model at the repo's root (`module_class`); `manager.part(spec)`.
    - "file": one bare state-dict file of the repo, made into a module by `from_state`;
      `manager.part(spec, filename)`.
    """

    key: str  # the cache's name for it, and the key of `Settings.models` when `env` is set
    kind: str
    default_repo: str
    default_file: str = ""  # "file": what `--download all` fetches (a job may pick another file of the repo)
    env: str = ""  # T2VZ_<env> names another repo (or folder); "" = fixed
    description: str = ""  # for the env table
    module_class: str = ""  # diffusers class of the module ("pipeline": of the UNet)
    stage: str = "unet"  # which offload stage it runs with ("module", "file")
    keep_at_most: int = 1  # of this key (e.g. one adapter per step count: 2)
    build_tiny: Callable[[int], Any] | None = None  # seed -> module (the tiny preset); "components": {role: object}
    from_state: Callable[[dict], Any] | None = None  # "file": state dict -> module
    group: str = ""  # what the status line lists it under
    # "components" only (see above):
    components: dict[str, str] = field(default_factory=dict, hash=False)  # role -> class name
    dtypes: dict[str, str] = field(default_factory=dict, hash=False)  # role -> "float32" (kept whatever the app runs)
    half_dtype: str = "float16"  # the other roles' dtype where the app runs float16: "bfloat16" if float16 overflows
    stages: dict[str, str] = field(default_factory=dict, hash=False)  # role -> offload stage (default: the role)
    # role -> the spec (its key, or the ModelSpec) whose same role this is: loaded once from that spec's
    # repo, held once, and fetched once (`--download` skips it here). E.g. Wan 2.1's few-step and VACE
    # models carry the T2V model's UMT5 text encoder, tokenizer and VAE.
    shared_roles: dict[str, Any] = field(default_factory=dict, hash=False)

    def repo(self, settings: Settings) -> str:
        return settings.models.get(self.key, self.default_repo) if self.env else self.default_repo

    @property
    def own_roles(self) -> list[str]:
        """The "components" roles read from this spec's own repo (not another spec's `shared_roles`)."""
        return [role for role in self.components if role not in self.shared_roles]

    def stage_of(self, role: str) -> str:
        """The offload stage a "components" role runs in."""
        return self.stages.get(role, role)


@dataclass
class ModelComponents:
    """What `manager.model(spec)` gives for a "components" spec: every role's object (tokenizer,
    modules, a fresh scheduler for this generation) and the device the modules run on (with CPU
    offload they wait on the CPU and move there when they run, so their own `.device` is not where
    a pipeline's tensors go). `components["transformer"]`, `components.modules` as a pipeline's
    keyword arguments."""

    modules: dict[str, Any]
    device: Any  # torch.device
    dtype: Any  # the app's torch dtype (each module keeps its own: a float32 VAE stays float32)

    def __getitem__(self, role: str) -> Any:
        return self.modules[role]

    def __contains__(self, role: str) -> bool:
        return role in self.modules


@dataclass
class JobInputs:
    """What Studio read for the job: a first-frame picture, control maps, or the source clip's frames."""

    first_frame: np.ndarray | None = None
    maps: np.ndarray | None = None
    frames: np.ndarray | None = None
    weights: dict | None = None  # weights applied for this job only (a tuned model's parameters)
    save_to: Any = None  # the folder a job that makes a model saves it in (pathlib.Path)


@dataclass
class MadeModel:
    """A model an engine trained on a clip (the "tune" tab), as the "tuned" tab runs it."""

    weights: dict  # the trained parameters, applied to the base for one job
    base_model: str  # the base it was trained on
    frames: np.ndarray  # the clip it was trained on (uint8); blank frames of its size where it came without it
    fps: float
    source: bool = True  # False: shared without its source clip, so it runs from noise (no DDIM inversion)


class Engine:
    """An engine: declarations (class attributes) and how a job of each tab loads and samples."""

    name: str = ""  # the API's and params.json's value
    title: str = ""  # its name in sentences
    label: str = ""  # its name in the engine choice
    notice: str = ""  # shown beside the engine on the page (e.g. a non-commercial licence)
    licence: str = ""  # params.json records it where set
    tabs: frozenset[str] = frozenset({"text2video"})
    inputs: frozenset[str] = frozenset()
    recipes: dict[str, Recipe] = {}  # tab -> its published recipe: one for every tab in `tabs`
    rules: Rules = Rules()
    fast: FastRecipe | None = None
    models: tuple[ModelSpec, ...] = ()
    gpu_seconds_per_frame_step: float = GPU_SECONDS_PER_FRAME_STEP
    cpu_seconds_per_frame_step: float = CPU_SECONDS_PER_FRAME_STEP
    # The page's estimates before this server timed a job of a kind (modules/estimates.py): sampling's seconds per
    # (tab, fast) on a CPU at the real weights (from the benchmarks) and on the tiny preset (`--mode estimates`).
    cpu_priors: dict[tuple[str, bool], Prior] = {}
    tiny_priors: dict[tuple[str, bool], Prior] = {}
    # An engine that trains models (the "tune" tab): the files of a model's folder, the first marking a
    # saved model (what the list shows, the Hub upload pushes and a download fetches).
    model_files: tuple[str, ...] = ()
    # Of those, the ones that hold the clip a model was tuned on: an upload may leave them out (`read_model` then
    # gives blank frames and `MadeModel.source` False).
    model_source_files: tuple[str, ...] = ()
    # A file the training job writes into the model's folder when it ended where it ran (trained, failed or stopped,
    # its last save done): after a Stop, the app waits for it before it decides what to keep, since a worker in
    # another process (a Ray replica) may still be saving when the caller hears of the Stop.
    training_ended_file: str = ""

    # ------------------------------------------------------------------ declarations, read by others
    def recipe(self, tab: str) -> Recipe:
        """The published recipe of `tab` (the Pose, Edge and Depth tabs share "control")."""
        return self.recipes[tab]

    @property
    def defaults(self) -> Defaults:
        """The first tab's recipe (text to video where served) in the shape earlier code reads."""
        recipe = self.recipe(next(tab for tab in TABS if tab in self.tabs))
        training = self.recipes.get("tune", Recipe(steps=0, guidance_scale=0.0)).extra
        return Defaults(steps=recipe.steps, guidance_scale=recipe.guidance_scale, side=min(recipe.size),
                        frames=recipe.frames, fps=recipe.fps, width=recipe.width, height=recipe.height,
                        training_steps=training.get("training_steps", 0),
                        learning_rate=training.get("learning_rate", 0.0))

    def serves(self, tab: str, input_name: str | None = None) -> bool:
        return tab in self.tabs and (input_name is None or input_name in self.inputs)

    def mode(self, tab: str, kind: str = "") -> str:
        """params.json's "mode" (and the output folder's tag) for a job of `tab`."""
        return f"{kind}2video" if tab == "control" else tab

    def download_models(self, settings: Settings) -> list[tuple[str, str]]:
        """(kind, repo) pairs that `--download all` fetches for this engine (see download.py)."""
        kinds = {"pipeline": "video_model", "components": "components:{key}", "module": "module", "file": "file:{file}"}
        return [(kinds[spec.kind].format(key=spec.key, file=spec.default_file), spec.repo(settings))
                for spec in self.models]

    # ------------------------------------------------------------------ fast mode policy
    def fast_settings(self, request, tab: str):
        """The request that runs in fast mode, and notes: out-of-recipe steps, guidance or scheduler
        become the recipe's, said in a sentence (params.json keeps the request that ran)."""
        if not getattr(request, "fast", False):
            return request, []
        recipe = self.fast_recipe(request, tab)
        if recipe is None:
            from . import with_fast  # the registry: which engines have a recipe

            offer = " or ".join(f"{e.title} ({e.fast.name})" for e in with_fast(tab)
                                if e is not self and e.fast.serves(tab))
            raise UserError(f"Fast mode has no few-step weights for {self.fast_missing(request, tab)}; switch Fast off"
                            + (f", or pick {offer}." if offer else "."))
        defaults = recipe.for_tab(tab)
        changes = {}
        if request.steps not in recipe.steps:
            changes["steps"] = defaults["steps"]
            if hasattr(request, "t0"):
                changes.update(t0=-1, t1=-1)  # the paper's t0/t1, scaled to the fast steps
        if request.guidance_scale > recipe.max_guidance:
            changes["guidance_scale"] = defaults["guidance_scale"]
        unsaid = {"t0", "t1"}  # follow the steps
        if "scheduler" in defaults and getattr(request, "scheduler", defaults["scheduler"]) != defaults["scheduler"]:
            changes["scheduler"] = defaults["scheduler"]
            if request.scheduler == next(f.default for f in fields(request) if f.name == "scheduler"):
                unsaid.add("scheduler")  # the tab's own scheduler, not one the user chose: nothing to tell
        if not changes:
            return request, []
        used = ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in changes.items() if name not in unsaid)
        if not used:
            return replace(request, **changes), []
        note = (f"Fast mode ({recipe.name}) runs {recipe.steps_text()} steps with guidance up to "
                f"{recipe.max_guidance:g}: used {used}.")
        return replace(request, **changes), [note]

    def fast_recipe(self, request, tab: str) -> FastRecipe | None:
        """The few-step recipe a fast job of `tab` runs (None: no few-step weights for it; Fast says so)."""
        return self.fast if self.fast is not None and self.fast.serves(tab) else None

    def fast_missing(self, request, tab: str) -> str:
        """What Fast's refusal says has no few-step weights: the engine, or the engine in this tab where
        its recipe serves others ("Wan 2.1 in the Pose, Edge and Depth tabs (AnyFlow is for text to video only)")."""
        if self.fast is None:
            return self.title
        served = " and ".join(TAB_PHRASES.get(t, t) for t in sorted(self.fast.tabs))
        return f"{self.title} in {TAB_PHRASES.get(tab, f'the {tab} tab')} ({self.fast.name} is for {served} only)"

    def fit_notes(self, request, tab: str, frames: int, width: int, height: int) -> list[str]:
        """Sentences saying what sampling changes of a job of `frames` x `width` x `height` (the read clip's
        shape) to fit the model's rules, for the result's notes (Wan 2.1's VACE cuts a control window to
        4k+1 frames and sides of 16). Values a request sets are checked by validation instead."""
        return []

    def form_defaults(self, tab: str, fast: bool) -> dict:
        """Steps, guidance, side and size (width, height) the form shows for this engine (fast mode's
        steps and guidance where Fast is on)."""
        recipe = self.recipe(tab)
        values = {"steps": recipe.steps, "guidance_scale": recipe.guidance_scale, "side": min(recipe.size),
                  "size": recipe.size}
        if fast and self.fast is not None and self.fast.serves(tab):
            values.update({k: v for k, v in self.fast.for_tab(tab).items() if k in ("steps", "guidance_scale")})
        return values

    # ------------------------------------------------------------------ a job (override per engine)
    def unet_calls(self, request, tab: str, frames: int) -> int:
        """Denoiser calls per frame of the job (the GPU-seconds estimate's unit)."""
        return int(request.steps)

    def work(self, request, tab: str, frames: int, width: int, height: int) -> float:
        """Denoising work of a job in 512x512 frame-steps (frames per pass x UNet calls): the unit that
        a job's measured seconds scale by to estimate another's."""
        return self.unet_calls(request, tab, frames) * frames * (width * height) / 512**2

    def estimate_s(self, request, tab: str, frames: int, width: int, height: int) -> float:
        """GPU seconds of sampling, generously: what ZeroGPU is asked for."""
        return GPU_OVERHEAD_S + self.work(request, tab, frames, width, height) * self.gpu_seconds_per_frame_step

    def chunk_size(self, request, tab: str) -> int | None:
        """Frames per pass (None: one pass, no smaller-chunk retry after an out-of-memory)."""
        return getattr(request, "chunk_size", None) if "chunks" in self.inputs else None

    def load(self, manager: ModelManager, request, tab: str) -> Any:
        """What sampling needs, loaded on the worker outside the GPU function (it may download)."""
        raise NotImplementedError

    def sample(self, loaded, request, tab: str, inputs: JobInputs, *, chunk_size: int | None,
               control: JobControl) -> np.ndarray:
        """Frames (F, H, W, 3) in [0, 1]; `control.step(done, total)` after every step (it raises to stop)."""
        raise NotImplementedError

    def record(self, request, tab: str, settings: Settings) -> dict:
        """What params.json records beyond the request (the models and scheduler that ran)."""
        return {"engine": self.name}

    def scheduler_of(self, loaded, request, tab: str) -> Any:
        """The scheduler object a job samples with, from what `load` gave: params.json records its class and
        config as loaded (`scheduler_config`), not as declared. None: the engine has none to show."""
        return None

    def ran_with(self, loaded, request, tab: str) -> dict:
        """What params.json records of the loaded objects a job runs: the scheduler's class and its own config."""
        scheduler = self.scheduler_of(loaded, request, tab)
        if scheduler is None:
            return {}
        config = {key: value for key, value in dict(scheduler.config).items() if not key.startswith("_")}
        return {"scheduler_config": {"class": type(scheduler).__name__, **config}}

    # ------------------------------------------------------------------ engines that train models
    def keep_source(self, folder, frames: np.ndarray, fps: float) -> None:
        """Keep the clip a model is trained on in its folder, before training starts."""
        raise NotImplementedError

    def keep_sample(self, folder, gif: str) -> None:
        """Keep the sample clip a training job made (a GIF) in the model's folder."""
        raise NotImplementedError

    def read_model(self, folder) -> MadeModel:
        """A saved model, ready for a job of the "tuned" tab (OSError or ValueError where it is damaged)."""
        raise NotImplementedError

    def upload_model(self, folder, files: tuple[str, ...], *, repo_name: str, namespace: str,
                     token: str | bool | None, private: bool) -> str:
        """Push a saved model's `files` to a Hub repo (created where needed); its repo id. UserError sentences.
        `token` None: the server's own (HF_TOKEN); False: none at all (a public server's visitor)."""
        raise NotImplementedError

    def download_model(self, repo_id: str, files: tuple[str, ...], *, token: str | bool | None = None,
                       on_progress=None, max_bytes: int = 0):
        """The folder (in the Hugging Face cache) of the Hub repo `repo_id`'s model `files` (`token` as for
        `upload_model`), the bytes told to `on_progress(fraction, text)`; refused before downloading where the
        files weigh more than `max_bytes` on the Hub (0: no cap). UserError sentences."""
        raise NotImplementedError


@dataclass
class Registry:
    """The engines, in the order the UI offers them (the first serving a tab is its default)."""

    engines: dict[str, Engine] = field(default_factory=dict)

    def register(self, engine: Engine) -> Engine:
        if not engine.name or engine.name in self.engines:
            raise ValueError(f"engine name {engine.name!r} is empty or taken")
        unknown = set(engine.tabs) - set(TABS) | set(engine.inputs) - set(INPUTS)
        if unknown:
            raise ValueError(f"engine {engine.name!r} declares unknown tabs or inputs: {sorted(unknown)}")
        if set(engine.recipes) != set(engine.tabs):
            raise ValueError(f"engine {engine.name!r} declares recipes for {sorted(engine.recipes)}, not its tabs "
                             f"{sorted(engine.tabs)}")
        self.engines[engine.name] = engine
        return engine
