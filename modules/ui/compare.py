"""Compare tab: one prompt and one seed through each chosen engine, side by side (Studio.compare)."""

from __future__ import annotations

import time
from dataclasses import asdict

import gradio as gr

from .. import engines as registry
from ..request_types import MAX_FPS, SIZE_MULTIPLE, CompareRequest
from . import runs
from ..forms import tab_frame_cap
from ..forms import side_bounds, side_maximum
from .common import (
    CheckboxGroup,
    Dropdown,
    PLAYER_HEIGHT,
    Number,
    Slider,
    gpu_options,
    seed_input,
    status_box,
)
from .running import (
    gradio_errors,
    gradio_job_control,
    follow_live,
    live_text,
    live_timer,
    progress_sink,
    wire_estimate,
)

TAB = "Compare engines"
STOPPED_ALL = ("**Stopped.** No further engine runs; each one that finished is in its own player "
               "(press Compare again for the side by side).")


def build(demo: gr.Blocks, studio) -> list:
    ENGINES = registry.names("text2video")  # noqa: N806 - the offered engines, fixed for the page
    LABELS = {e.name: e.label for e in registry.for_tab("text2video")}  # noqa: N806
    TITLES = {e.name: e.title for e in registry.for_tab("text2video")}  # noqa: N806
    notices = [e.notice for e in registry.for_tab("text2video") if e.notice]
    on_base = [e.title for e in registry.for_tab("text2video") if "base_model" in e.inputs]
    settings = studio.settings
    limits = settings.limits
    low, _ = side_bounds(settings)
    side = min(max(settings.default_resolution, low), side_maximum(settings, settings.default_resolution))
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(label="Prompt", placeholder="a corgi running on a beach (prompts work best in English)",
                                lines=2)
            engines = CheckboxGroup(label="Engines", choices=[(LABELS[e], e) for e in ENGINES], value=list(ENGINES))
            for notice in notices:
                gr.Markdown(notice)
            model = Dropdown(label=f"SD 1.5 base ({' and '.join(on_base)})", choices=list(settings.base_models),
                                value=settings.default_base_model)
            with gr.Row():
                num_frames = Slider(label="Frames", minimum=1, maximum=tab_frame_cap("text2video", settings), step=1,
                                    value=min(8, tab_frame_cap("text2video", settings)))
                fps = Slider(label="FPS", minimum=1, maximum=MAX_FPS, step=1, value=4)
            with gr.Accordion("Advanced", open=False):
                negative_prompt = gr.Textbox(label="Negative prompt", value="", lines=2)
                with gr.Row():
                    width = Slider(label="Width", minimum=low, maximum=side_maximum(settings, side), step=SIZE_MULTIPLE, value=side)
                    height = Slider(label="Height", minimum=low, maximum=side_maximum(settings, side), step=SIZE_MULTIPLE, value=side)
                steps = Number(label="Steps (0 = each engine's default)", value=0, precision=0, minimum=0, maximum=limits.max_steps)
                seed = seed_input()
            with gr.Row():
                run = gr.Button("Compare", variant="primary")
                stop = gr.Button("Stop all", variant="stop")
            estimate = gr.Markdown("")  # the ticked engines' estimates, summed (follows the form)
            api_trigger = gr.Button("compare (API)", visible=False)  # /compare: the whole comparison in one call
        with gr.Column():
            status = status_box()
            gr.Markdown("**Side by side** (each engine's name and seconds under its clip)")
            video = gr.Video(label="Side by side", show_label=False, format=None, autoplay=True, loop=True,
                             height=PLAYER_HEIGHT)
            slots, columns = {}, {}
            with gr.Row():
                for name in ENGINES:  # one queued job per engine: its own progress here, its own Stop
                    with gr.Column(min_width=160) as columns[name]:  # shown while its engine is ticked
                        slots[name] = (gr.Video(label=LABELS[name], format=None, loop=True, height=PLAYER_HEIGHT // 2),
                                       gr.Button(f"Stop {TITLES[name]}", size="sm"), gr.State())
            videos = gr.File(label="Each engine's own video", file_count="multiple")
            timings = gr.JSON(label="Seconds per engine")
            used_seed = gr.Number(label="Seed used", precision=0, interactive=False, visible=False)  # shown after a run
    prepared = gr.State()  # the validated request (seed fixed) every engine's job runs
    live = live_timer()  # the status box follows the comparison while it runs
    # Stop: the frontend cancels only jobs it has already queued, so a Stop pressed earlier (while the
    # click is prepared, or before the chain reaches that engine) is also kept here and read when the
    # engine's turn comes: an engine whose Stop was pressed after its Compare click is skipped.
    pressed_at = gr.State()  # when this Compare was clicked (time.monotonic())
    stopped_at = gr.State({})  # engine -> when its Stop (or Stop all) was last pressed

    def request_of(prompt, engines, negative_prompt, model, num_frames, width, height, steps, seed, fps):
        return CompareRequest(prompt=prompt, engines=engines, negative_prompt=negative_prompt, model=model,
                              num_frames=num_frames, width=width, height=height, steps=steps, seed=seed, fps=fps)

    def answer(run):
        """Run one Studio call; our errors as sentences on the page or to the client."""
        with gradio_errors("comparing the engines"):
            return run()

    def outputs_of(result) -> tuple:
        seconds = {name: info["seconds"] for name, info in result.engines.items()}
        return result.video, [info["video"] for info in result.engines.values()], seconds, result.seed

    def compare(prompt, engines, negative_prompt, model, num_frames, width, height, steps, seed, fps,
                progress=gr.Progress()):
        request = request_of(prompt, engines, negative_prompt, model, num_frames, width, height, steps, seed, fps)
        return outputs_of(answer(lambda: studio.compare(request, gradio_job_control(demo, progress))))

    def prepare(prompt, engines, negative_prompt, model, num_frames, width, height, steps, seed, fps,
                request: gr.Request):
        pressed = time.monotonic()  # first thing: a Stop pressed after this click counts for this run
        cleared = [None] * (2 * len(ENGINES))  # each slot's video and run
        runs.begin(TAB, request.session_hash)
        try:
            with gradio_errors("comparing the engines", tab=TAB):
                compare_request = studio.prepare_compare(request_of(prompt, engines, negative_prompt, model,
                                                                    num_frames, width, height, steps, seed, fps))
        except gr.Error as error:
            return [None, pressed, gr.skip(), gr.skip(), gr.skip(), gr.skip(), str(error.message), *cleared, gr.skip()]
        first = TITLES[compare_request.engines[0]]
        text = f"Comparing {len(compare_request.engines)} engine(s), one after the other: {first} first."
        return [asdict(compare_request), pressed, None, None, None, gr.update(value=compare_request.seed, visible=False),
                text, *cleared, gr.Timer(active=True)]

    def press_stop(names):
        def press(stopped):
            stopped.update(dict.fromkeys(names, time.monotonic()))  # in place: two Stops at once both count
            return stopped

        return press

    def is_stopped(name, pressed, stopped) -> bool:
        return pressed is not None and stopped.get(name, float("-inf")) >= pressed

    def run_engine(name: str):
        def run(prepared_request, pressed, stopped, progress=gr.Progress()):
            if not prepared_request or name not in prepared_request["engines"] or is_stopped(name, pressed, stopped):
                return gr.skip(), gr.skip()
            compare_request = CompareRequest(**{**prepared_request, "engines": tuple(prepared_request["engines"])})
            record = runs.started(TAB)
            control = gradio_job_control(demo, progress, record, what=TITLES[name])
            record.control = control
            try:
                with gradio_errors("comparing the engines", tab=TAB):
                    result = studio.compare_engine(compare_request, name, control)
            except gr.Error as error:  # a stop ends here too: its event is gone, nothing is shown
                return gr.skip(), {"error": str(error.message)}
            return result["video"], result

        return run

    def combine(prepared_request, *engine_runs):
        if not prepared_request:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        chosen = {name: run for name, run in zip(ENGINES, engine_runs) if name in prepared_request["engines"]}
        done = {name: run for name, run in chosen.items() if run and "error" not in run}
        said = [f"{TITLES[name]}: {run['error']}" if run else f"{TITLES[name]}: stopped" for name, run in chosen.items()
                if name not in done]
        if not done:
            runs.finished(TAB, text := "**Nothing to compare.** " + " ".join(said))
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), text
        compare_request = CompareRequest(**{**prepared_request, "engines": tuple(done)})
        try:
            with gradio_errors("comparing the engines", tab=TAB):
                result = studio.combine_compare(compare_request, done)
        except gr.Error as error:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), str(error.message)
        side_by_side, files, seconds, seed = outputs_of(result)
        text = f"**Done:** {', '.join(f'{TITLES[n]} {s:.1f} s' for n, s in seconds.items())}; seed {seed}."
        notes = [note for run in done.values() for note in run.get("notes", [])]
        if notes:
            text += " " + " ".join(notes)
        if said:
            text += " Not in the comparison: " + "; ".join(said) + "."
        runs.finished(TAB, text)
        return side_by_side, files, seconds, gr.update(value=seed, visible=True), text

    inputs = [prompt, engines, negative_prompt, model, num_frames, width, height, steps, seed, fps]
    wire_estimate(demo, studio, estimate, inputs, lambda prompt, *values: request_of(prompt or "a clip", *values))
    api_event = api_trigger.click(compare, inputs, [video, videos, timings, used_seed], api_name="compare",
                                  **gpu_options(studio))
    slot_outputs = [component for name in ENGINES for component in (slots[name][0], slots[name][2])]
    chain = run.click(prepare, inputs, [prepared, pressed_at, video, videos, timings, used_seed, status, *slot_outputs,
                                        live],
                      queue=False, show_progress="hidden", api_visibility="private")
    events = []
    for name in ENGINES:  # separate queue entries on the shared worker, one after the other
        slot_video, slot_stop, slot_run = slots[name]
        chain = chain.then(run_engine(name), [prepared, pressed_at, stopped_at], [slot_video, slot_run],
                           show_progress_on=[progress_sink()], api_visibility="private",
                           **gpu_options(studio))
        slot_stop.click(press_stop([name]), stopped_at, stopped_at, queue=False, api_visibility="private",
                        cancels=[chain])
        events.append(chain)
    final = chain.then(combine, [prepared, *(slots[name][2] for name in ENGINES)],
                       [video, videos, timings, used_seed, status], show_progress="hidden", api_visibility="private")
    final.then(lambda: gr.Timer(active=False), None, live, queue=False, show_progress="hidden",
               api_visibility="private")

    def follow(request: gr.Request):
        """Which engine runs and how far ("**Working** (12 s): <engine title>: step 3 of 20."); before the first one
        starts, the box keeps saying what will run."""
        run = runs.current(TAB, request.session_hash)
        return gr.skip() if run is None or run.state == "queued" else live_text(demo, studio, TAB, request.session_hash)

    follow_live(live, status, follow)
    engines.change(lambda ticked: [gr.update(visible=name in (ticked or ())) for name in ENGINES], engines,
                   [columns[name] for name in ENGINES], queue=False, show_progress="hidden", api_visibility="private")
    def stop_all(stopped, request: gr.Request):
        """Every engine's Stop; the status box says so only when a comparison was under way."""
        run = runs.current(TAB, request.session_hash)
        under_way = run is not None and run.state in ("queued", "running")
        if under_way:
            runs.stopped(TAB, request.session_hash)
        return press_stop(ENGINES)(stopped), STOPPED_ALL if under_way else gr.skip(), gr.Timer(active=False)

    stop.click(stop_all, stopped_at, [stopped_at, status, live], queue=False, show_progress="hidden",
               api_visibility="private", cancels=[*events, final, api_event])
    return [api_event, *events]
