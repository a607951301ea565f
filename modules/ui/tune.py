"""The Tune tab: train a model on one clip, run tuned models with new prompts, share them on the Hub.

Three parts, each wired to one Studio method: Tune (`/tune_video`, a queued GPU job), Run a tuned
model (`/run_tuned`, a queued GPU job; `/list_tuned` lists what can be run) and Share on the Hub
(`/upload_tuned`, not a GPU job). The engine serving the "tune" tab is the registry's.
"""

from __future__ import annotations

import gradio as gr

from .. import engines, video_io
from . import runs
from ..hub import format_bytes
from ..visitors import oauth_available, visitor_of
from ..errors import UserError
from ..request_types import MAX_FPS, MAX_GUIDANCE
from ..tune_requests import MAX_LEARNING_RATE, MAX_STRIDE, RunTunedRequest, TuneRequest, UploadTunedRequest
from ..tuning_jobs import tune_frames
from ..forms import tab_frame_cap
from .common import (
    ASSETS,
    VIDEO_TYPES,
    Dropdown,
    Number,
    Slider,
    output_column,
    params_upload,
    run_buttons,
    seed_input,
    steps_slider,
    uploaded,
    video_input,
    video_window_inputs,
    window,
)
from .running import (
    Prepare,
    gradio_errors,
    prepare_step,
    run_job,
    say_failures,
    video_outputs,
    wire_estimate,
    wire_job,
    wire_stop,
)
from .params_files import filled, load_params, request_from_params, wrong_mode_message

TAB = "Tune"  # the training part's status box
RUN_TAB = "Run a tuned model"
SHARE_TAB = "Share"
# The app's own clips (assets/), each with a sentence that describes it, as tuning needs.
EXAMPLES = [("edit_sea.mp4", "a sailboat on the sea"), ("edit_landscape.mp4", "clouds over a mountain landscape")]


def intro(engine) -> str:
    return (f"**{engine.title}**: fine-tune the base model on one clip and a sentence that describes it, then make "
            "new clips with any prompt that keep the clip's motion (\"a man is skiing\" → \"Spider-Man is skiing on "
            "the beach\"). Tuning takes minutes on a GPU (300 steps of 8 frames: about 4 min on an A100) and much "
            "longer on a CPU; the model is kept on this server and can be shared on the Hub.")


def tune_form_from_params(settings, data: dict, path: str) -> list:
    """The Tune part's input values (the clip kept) from a parsed params.json."""
    if data.get("mode") != "tune":
        raise UserError(wrong_mode_message(data, TAB))
    r = request_from_params(TuneRequest, data, settings, video_stand_in=path)
    w = r.window
    filled(f"Filled the form from params.json. Upload the same clip and press Tune (seed {r.seed}) to tune the same "
            "model again.")
    return [gr.skip(), r.prompt, r.name, r.model, r.steps, r.learning_rate, r.num_frames, r.sample_prompt,
            r.sample_steps, r.guidance_scale, r.seed, w.start, w.end, w.fps, w.resolution, r.stride]


def frames_used(settings, video, start, end, num_frames, stride) -> str:
    """Which frames and seconds of the uploaded clip tuning takes ("Frames 0, 1, …, 7 of the clip: 0.00–0.28 s
    at 25 fps"), from its header; "" before an upload or while a value is not a number yet."""
    path = video.get("path") if isinstance(video, dict) else video
    if not path:
        return ""
    try:
        start, end, num_frames, stride = float(start or 0), float(end or 0), int(num_frames), int(stride)
        info = video_io.probe_video(path)
    except (TypeError, ValueError):  # a value being typed, or a file that is no video (the job says why)
        return ""
    if start >= info.duration:
        return f"The start is past the end of the clip ({info.duration:.2f} s)."
    picks, _ = tune_frames(info, start, end or start + settings.limits.max_video_seconds, max(num_frames, 1),
                           max(stride, 1))
    shown = ", ".join(map(str, picks)) if len(picks) <= 4 else f"{picks[0]}, {picks[1]}, …, {picks[-1]}"
    text = (f"Frames {shown} of the clip: {picks[0] / info.fps:.2f}–{picks[-1] / info.fps:.2f} s at {info.fps:g} fps "
            f"(the model plays them at {info.fps / max(stride, 1):g} fps).")
    if len(picks) < num_frames:
        text += f" Only {len(picks)} of the {num_frames} frames are in the clip, so some repeat."
    return text


def run_form_from_params(settings, data: dict) -> list:
    """The Run part's input values from a parsed params.json."""
    if data.get("mode") != "tuned":
        raise UserError(wrong_mode_message(data, RUN_TAB))
    r = request_from_params(RunTunedRequest, data, settings)
    filled(f"Filled the form from params.json. Press Generate (seed {r.seed}) to make the same clip.")
    return [r.tuned, r.prompt, r.negative_prompt, r.model, r.num_frames, r.steps, r.guidance_scale, r.fps, r.seed,
            r.inversion]


def tuned_choices(studio, visitor=None) -> list[str]:
    return [model["name"] for model in studio.list_tuned(visitor)]


def upload_files_text(studio, name, include_source, visitor=None) -> str:
    """What Upload will push of the model `name`, in words ("" before a model is picked)."""
    if not name or "/" in str(name):
        return ""
    try:
        files = studio.upload_files(name, visitor, include_source)
    except UserError as error:
        return str(error)
    listed = ", ".join(f"`{file}` ({format_bytes(size)})" for file, size in files)
    text = f"Upload pushes {listed}, and nothing else of the model's folder."
    sources = [file for file in engines.default("tune").model_source_files if file not in dict(files)]
    if sources:
        text += (f" Not the clip it was tuned on ({', '.join(f'`{file}`' for file in sources)}): tick \"Include the "
                 "source clip\" to share it; without it the model runs from noise (no DDIM inversion).")
    return text


def build(demo: gr.Blocks, studio) -> list:
    settings = studio.settings
    engine = engines.default("tune")
    limits = settings.limits
    gr.Markdown(intro(engine))
    with gr.Accordion("1 · Tune a model on a clip", open=True):
        tune_defaults = TuneRequest(video="", prompt="")
        with gr.Row():
            with gr.Column():
                video_in = video_input(f"Clip to tune on ({', '.join(VIDEO_TYPES)})", settings)
                prompt = gr.Textbox(label="What the clip shows", lines=1, placeholder="a man is skiing")
                with gr.Row():
                    name = gr.Textbox(label="Model name (empty = from the prompt)", max_lines=1)
                    model = Dropdown(label="Base model", choices=list(settings.base_models),
                                     value=settings.default_base_model)
                with gr.Row():
                    train_steps = Slider(label="Training steps", minimum=1, maximum=limits.max_tune_steps, step=1,
                                         value=min(tune_defaults.steps, limits.max_tune_steps))
                    frames = Slider(label="Frames (consecutive, from the start)", minimum=1,
                                    maximum=tab_frame_cap("tune", settings), step=1, value=min(tune_defaults.num_frames,
                                                                                 tab_frame_cap("tune", settings)))
                    stride = Slider(label="Stride (source frames between those tuned on; 1 = every frame)",
                                    minimum=1, maximum=MAX_STRIDE, step=1, value=tune_defaults.stride)
                start, end, fps, resolution = video_window_inputs(settings)
                fps.visible = False  # tuning reads the clip at its own rate: Stride picks the frames
                used = gr.Markdown("")
                sample_prompt = gr.Textbox(label="Sample prompt (a clip made after tuning; empty = the same)",
                                           placeholder="Spider-Man is skiing on the beach, cartoon style")
                with gr.Accordion("Advanced", open=False):
                    learning_rate = Number(label="Learning rate", value=tune_defaults.learning_rate, minimum=0,
                                           maximum=MAX_LEARNING_RATE)
                    with gr.Row():
                        sample_steps = steps_slider(settings, tune_defaults.sample_steps, label="Sample steps")
                        guidance = Slider(label="Guidance scale", minimum=0, maximum=MAX_GUIDANCE, step=0.5,
                                          value=tune_defaults.guidance_scale)
                    seed = seed_input()
                tune_run, tune_stop, tune_estimate = run_buttons()
                tune_run.value = "Tune"
                tune_load = params_upload()
                examples = [[str(ASSETS / name), text] for name, text in EXAMPLES if (ASSETS / name).is_file()]
                if examples:
                    gr.Examples(examples, [video_in, prompt])
            with gr.Column():
                tune_status, tune_out, tune_gif, tune_params, tune_seed = output_column()
                made = gr.Textbox(label="Tuned model (run it below, or by this name through /run_tuned)",
                                  interactive=False)

    # Parts 2 and 3 start closed (the tab would be ~2,900 px tall); a finished tuning opens part 2.
    with gr.Accordion("2 · Run a tuned model", open=False) as run_part:
        run_defaults = RunTunedRequest(tuned="", prompt="")
        with gr.Row():
            with gr.Column():
                with gr.Row():
                    tuned = Dropdown(label="Tuned model (one tuned here, or a Hub repo id: owner/name)", choices=[],
                                     value=None, allow_custom_value=True, scale=4)
                    refresh = gr.Button("Refresh list", scale=1)
                    delete = gr.Button("Delete", scale=1, variant="stop")
                run_prompt = gr.Textbox(label="Prompt", lines=2, placeholder="Spider-Man is skiing on the beach")
                inversion = gr.Checkbox(label="Start from the source clip (DDIM inversion: keeps its motion; the seed "
                                              "then changes nothing)", value=run_defaults.inversion)
                with gr.Row():
                    run_frames = Slider(label="Frames (0 = the source clip's)", minimum=0, maximum=tab_frame_cap("tuned", settings),
                                        step=1, value=0)
                    run_fps = Number(label="FPS (0 = the source clip's)", value=0.0, minimum=0.0, maximum=MAX_FPS)
                with gr.Accordion("Advanced", open=False):
                    run_negative = gr.Textbox(label="Negative prompt", lines=2)
                    run_model = Dropdown(label="Base model (empty = the one it was tuned on)",
                                         choices=["", *settings.base_models], value="")
                    with gr.Row():
                        run_steps = steps_slider(settings, run_defaults.steps)
                        run_guidance = Slider(label="Guidance scale", minimum=0, maximum=MAX_GUIDANCE, step=0.5,
                                              value=run_defaults.guidance_scale)
                    run_seed = seed_input()
                run_run, run_stop, run_estimate = run_buttons()
                run_load = params_upload()
            with gr.Column():
                run_status, run_video, run_gif, run_params, run_used_seed = output_column()

    with gr.Accordion("3 · Share a tuned model on the Hub", open=False):
        if settings.public:  # each visitor shares with their own account: the server's token is the owner's
            gr.Markdown("Share with your own Hugging Face account: sign in"
                        + (" (the button below)" if oauth_available() else "") + " or paste a write token. "
                        "Models tuned without signing in belong to this page's session and are kept for "
                        f"{settings.tuned_ttl_s / 3600:g} h.")
            if oauth_available():
                gr.LoginButton()
        with gr.Row():
            share_model = Dropdown(label="Tuned model", choices=[], value=None, allow_custom_value=True)
            repo_name = gr.Textbox(label="Repo name (empty = the model's name)", max_lines=1)
            namespace = gr.Textbox(label="User or organisation (empty = yours)", max_lines=1)
        with gr.Row():
            private = gr.Checkbox(label="Private", value=True)
            include_source = gr.Checkbox(label="Include the source clip (DDIM inversion on the Hub starts from it)",
                                         value=not settings.public)
            token = gr.Textbox(label=("Hub write token (empty = your Hugging Face sign-in; never stored nor logged)"
                                      if settings.public else
                                      "Hub write token (empty = the server's HF_TOKEN; never stored nor logged)"),
                               type="password", max_lines=1)
            upload = gr.Button("Upload")
        pushed = gr.Markdown("", elem_classes=["t2vz-share-files"])
        shared = gr.Markdown("", elem_classes=["t2vz-share-status"])

    # ------------------------------------------------------------------ Tune
    def tune_request_of(video, prompt, name, model, steps, learning_rate, num_frames, sample_prompt, sample_steps,
                        guidance_scale, seed, start, end, fps, resolution, stride) -> TuneRequest:
        return TuneRequest(video=uploaded(video, "video"), prompt=prompt, name=name, model=model, steps=steps,
                           learning_rate=learning_rate, num_frames=num_frames, sample_prompt=sample_prompt,
                           sample_steps=sample_steps, guidance_scale=guidance_scale, seed=seed,
                           window=window(start, end, fps, resolution), stride=stride)

    # `stride` is the endpoint's last parameter, with a default: calls written before it keep working.
    def tune_video(video, prompt, name, model, steps, learning_rate, num_frames, sample_prompt, sample_steps,
                   guidance_scale, seed, start, end, fps, resolution, stride=1, progress=gr.Progress(),
                   http: gr.Request = None, oauth: gr.OAuthToken | None = None):
        made_here: dict = {}

        def method(request, control):
            visitor = visitor_of(settings, http, oauth)
            result = studio.tune_video(request, control, visitor)
            made_here["model"] = result.model
            made_here["kept"] = (f" It is kept for {settings.tuned_ttl_s / 3600:g} h in this page's session (a reload "
                                 "starts a new one): sign in with Hugging Face to keep it, or share it on the Hub."
                                 if visitor.anonymous else "")
            return result.video

        def request() -> TuneRequest:
            return tune_request_of(video, prompt, name, model, steps, learning_rate, num_frames, sample_prompt,
                                   sample_steps, guidance_scale, seed, start, end, fps, resolution, stride)

        result = run_job(demo, method, request, progress, TAB,
                         done=lambda: f"The model is saved as **{made_here['model']}**: run it below.{made_here['kept']}")
        return (*video_outputs(result), made_here["model"])

    tune_inputs = [video_in, prompt, name, model, train_steps, learning_rate, frames, sample_prompt, sample_steps,
                   guidance, seed, start, end, fps, resolution, stride]
    tune_event = wire_job(demo, studio, TAB, tune_run, tune_video, tune_inputs,
                          [tune_out, tune_gif, tune_params, tune_seed, made], status=tune_status, seed=tune_seed,
                          api_name="tune_video")
    wire_stop(tune_stop, TAB, [tune_event])
    wire_estimate(demo, studio, tune_estimate, tune_inputs,
                  lambda video, prompt, *rest: tune_request_of(video, prompt or "a clip", *rest))
    used_inputs = [video_in, start, end, frames, stride]
    gr.on([component.change for component in used_inputs], lambda *values: frames_used(settings, *values),
          used_inputs, used, queue=False, show_progress="hidden", trigger_mode="always_last", api_visibility="private")
    tune_load.upload(
        lambda path: load_params(path, lambda data: tune_form_from_params(settings, data, path), len(tune_inputs)),
        tune_load, [*tune_inputs, tune_load, tune_status], api_name="load_tune_params", api_visibility="private",
    )

    # ------------------------------------------------------------------ Run a tuned model
    def run_request_of(tuned, prompt, negative_prompt, model, num_frames, steps, guidance_scale, fps, seed,
                       inversion) -> RunTunedRequest:
        return RunTunedRequest(tuned=tuned, prompt=prompt, negative_prompt=negative_prompt, model=model,
                               num_frames=num_frames, steps=steps, guidance_scale=guidance_scale, fps=fps, seed=seed,
                               inversion=inversion)

    def run_tuned(tuned, prompt, negative_prompt, model, num_frames, steps, guidance_scale, fps, seed, inversion,
                  progress=gr.Progress(), http: gr.Request = None, oauth: gr.OAuthToken | None = None):
        def request() -> RunTunedRequest:
            return run_request_of(tuned, prompt, negative_prompt, model, num_frames, steps, guidance_scale, fps, seed,
                                  inversion)

        def method(request, control):
            return studio.run_tuned(request, control, visitor_of(settings, http, oauth))

        return video_outputs(run_job(demo, method, request, progress, RUN_TAB))

    run_inputs = [tuned, run_prompt, run_negative, run_model, run_frames, run_steps, run_guidance, run_fps, run_seed,
                  inversion]
    def fetch_tuned(tuned, progress=gr.Progress(), http: gr.Request = None, oauth: gr.OAuthToken | None = None) -> str:
        """Download a tuned model given by Hub id (owner/name) into this server's cache with your token (sized on
        the Hub first: T2VZ_MAX_TUNED_DOWNLOAD_MB), outside the GPU queue; `/run_tuned` then starts at once. A
        model tuned here needs nothing. Returns a sentence."""
        return prepare_step(demo, RUN_TAB, progress,
                            lambda control: studio.fetch_tuned(tuned, control, visitor_of(settings, http, oauth)),
                            "downloading the tuned model")

    run_event = wire_job(demo, studio, RUN_TAB, run_run, run_tuned, run_inputs,
                         [run_video, run_gif, run_params, run_used_seed], status=run_status, seed=run_used_seed,
                         prepare=Prepare(fetch_tuned, [tuned], api_name="fetch_tuned"), stop=run_stop,
                         api_name="run_tuned")
    wire_estimate(demo, studio, run_estimate, run_inputs,
                  lambda tuned, prompt, *rest: run_request_of(tuned, prompt or "a clip", *rest))
    run_load.upload(
        lambda path: load_params(path, lambda data: run_form_from_params(settings, data), len(run_inputs)),
        run_load, [*run_inputs, run_load, run_status], api_name="load_tuned_params", api_visibility="private",
    )

    # ------------------------------------------------------------------ the list, and sharing
    def list_tuned(http: gr.Request = None, oauth: gr.OAuthToken | None = None) -> list[dict]:
        """The models you may run here, newest first (name, base model, training prompt, steps, frames, size, fps;
        on a public server your own, and those the owner offers marked `shared`)."""
        with gradio_errors("listing the tuned models", tab=RUN_TAB):
            return studio.list_tuned(visitor_of(settings, http, oauth))

    def choices(current_run, current_share, http: gr.Request = None, oauth: gr.OAuthToken | None = None):
        try:
            names = tuned_choices(studio, visitor_of(settings, http, oauth))
        except UserError:  # the Hub can't say who a signed-in visitor is: Refresh says why
            return gr.skip(), gr.skip()
        pick = names[0] if names else None
        current_run = current_run if current_run in names or "/" in str(current_run or "") else None
        current_share = current_share if current_share in names else None
        return (gr.update(choices=names, value=current_run or pick), gr.update(choices=names, value=current_share or pick))

    def chosen(model, http: gr.Request = None, oauth: gr.OAuthToken | None = None):
        try:
            names = tuned_choices(studio, visitor_of(settings, http, oauth))
        except UserError:
            names = [model]
        return (gr.update(choices=names, value=model), gr.update(choices=names, value=model), gr.Accordion(open=True))

    listed = gr.JSON(visible=False)
    listing = refresh.click(list_tuned, None, listed, api_name="list_tuned")
    listing.then(choices, [tuned, share_model], [tuned, share_model], queue=False, api_visibility="private")
    say_failures(listing, RUN_TAB, run_status)
    demo.load(choices, [tuned, share_model], [tuned, share_model], api_visibility="private")
    tune_event.success(chosen, made, [tuned, share_model, run_part], queue=False, api_visibility="private")

    def delete_tuned(name, http: gr.Request = None, oauth: gr.OAuthToken | None = None) -> str:
        """Remove one of your tuned models from this server (a model shared on the Hub stays there)."""
        runs.begin(RUN_TAB)
        with gradio_errors("deleting the tuned model", tab=RUN_TAB):
            studio.delete_tuned(name, visitor_of(settings, http, oauth))
        return f"Deleted **{name}** from this server."

    deleting = delete.click(delete_tuned, tuned, run_status, api_name="delete_tuned", concurrency_limit=1,
                            concurrency_id="hub")
    deleting.success(choices, [gr.State(None), gr.State(None)], [tuned, share_model], queue=False,
                     api_visibility="private")
    say_failures(deleting, RUN_TAB, run_status)

    def files_text(name, include, http: gr.Request = None, oauth: gr.OAuthToken | None = None) -> str:
        try:
            return upload_files_text(studio, name, include, visitor_of(settings, http, oauth))
        except UserError as error:
            return str(error)

    gr.on([share_model.change, include_source.change], files_text, [share_model, include_source], pushed,
          queue=False, show_progress="hidden", api_visibility="private")

    def upload_tuned(tuned, repo_name, namespace, private, token, include_source=None, http: gr.Request = None,
                     oauth: gr.OAuthToken | None = None) -> str:
        """Push one of your tuned models to the Hub (the source clip where `include_source`; empty: on a public
        server not, else so). The token is the one given, else your Hugging Face sign-in (`gr.OAuthToken`: the
        page's Sign in, or gradio_client's `oauth_token`), else, on a private server only, the server's HF_TOKEN;
        it is never stored nor logged."""
        runs.begin(SHARE_TAB)
        with gradio_errors("uploading the tuned model", tab=SHARE_TAB):
            repo_id = studio.upload_tuned(UploadTunedRequest(tuned=tuned, repo_name=repo_name,
                                                             namespace=namespace, private=private, token=token),
                                          visitor_of(settings, http, oauth), include_source=include_source)
        return f"Uploaded as **{repo_id}**. Run it anywhere with its repo id."

    uploading = upload.click(upload_tuned, [share_model, repo_name, namespace, private, token, include_source], shared,
                             api_name="upload_tuned", concurrency_limit=1, concurrency_id="hub")
    say_failures(uploading, SHARE_TAB, shared)
    return [tune_event, run_event]
