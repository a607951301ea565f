"""The page in a real headless Chromium (Debian's /usr/bin/chromium driven by playwright)."""

import os
import re
import threading

import pytest

from tests.conftest import TEST_BACKEND

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
JOB_TIMEOUT_MS = 90_000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}: install Debian's package with "
                       "`sudo apt-get install chromium` (not `playwright install`), then run these again"),
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def browsing(browser):
    """One browser context a module: its pages share the HTTP cache, so the page's scripts load once, not per test
    (each page is still its own Gradio session)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    yield context
    context.close()


@pytest.fixture
def page(browsing, served):
    page = browsing.new_page()
    page.goto(served[2])
    page.get_by_text("Text2Video-Zero Studio").first.wait_for()
    yield page
    page.close()


def panel(page, tab: str):
    """The visible tab panel after clicking its tab button."""
    page.get_by_role("tab", name=tab).click()
    return page.locator('[role="tabpanel"]:visible').first


def pick_engine(page, tab, label: str) -> None:
    """Choose the engine whose name contains `label` in the tab's Engine dropdown."""
    tab.get_by_label("Engine").click()
    page.get_by_role("option", name=re.compile(label)).click()


def test_text_to_video_in_the_page_and_download(page, tmp_path):
    tab = panel(page, "Text to video")
    tab.get_by_label("Prompt").fill("a red balloon over a city")
    tab.get_by_label("number input for Frames").fill("4")
    tab.get_by_label("number input for Frames").press("Enter")
    tab.get_by_role("button", name="Generate").click()
    video = tab.locator("video").first
    video.wait_for(timeout=JOB_TIMEOUT_MS)
    assert re.search(r"video\.mp4", video.get_attribute("src") or "")
    seed = tab.get_by_label("Seed used")
    assert int(seed.input_value()) >= 0
    link = tab.locator("a[href*='video.gif']").first
    link.wait_for()
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / "result.gif"
    download.value.save_as(saved)
    assert saved.stat().st_size > 0 and saved.read_bytes()[:3] == b"GIF"
    page.screenshot(path=str(tmp_path / "text2video.png"), full_page=True)


def test_bad_input_shows_an_error_not_a_traceback(page):
    tab = panel(page, "Text to video")
    tab.get_by_role("button", name="Generate").click()  # empty prompt
    toast = page.get_by_text("Please enter a prompt.")
    toast.first.wait_for(timeout=JOB_TIMEOUT_MS)
    assert "Traceback" not in page.content()


def test_edge_example_preview_then_generate(page, served):
    if TEST_BACKEND == "local":  # (the Ray replicas' managers are in their own processes)
        served[0].manager.evict("all-extras")  # so that the status line has something to follow
    tab = panel(page, "Edge")
    tab.locator(".gallery-item, [data-testid='dataset'] tr, table tbody tr").first.click()
    tab.locator("video").first.wait_for(timeout=JOB_TIMEOUT_MS)  # the example is in the input before we go on
    tab.get_by_role("button", name="Preview control").click()
    tab.locator("video").nth(1).wait_for(timeout=JOB_TIMEOUT_MS)  # input + control maps
    tab.get_by_role("button", name="Generate").click()
    # The preview's maps are a video.mp4 too: the generation's result comes with its control.mp4.
    page.wait_for_function(
        "() => [...document.querySelectorAll('[role=tabpanel] video')].some(v => /control\\.mp4/.test(v.src))",
        timeout=JOB_TIMEOUT_MS,
    )
    # The status line above the tabs follows what each job loaded: now the edge ControlNet alone.
    if TEST_BACKEND == "local":
        page.get_by_text("Server details").click()  # the details are behind a click
        page.get_by_text(re.compile(r"loaded: base: .*, controlnets: edge( ·|$)")).first.wait_for(timeout=10_000)


def test_size_sliders_offer_only_sizes_that_fit(page):
    """Width's maximum follows height (and back) so that width x height stays within the pixel cap."""
    tab = panel(page, "Text to video")
    tab.get_by_text("Advanced").click()
    height = tab.get_by_label("number input for Height")
    height.fill("1024")
    height.press("Enter")
    width_max = tab.get_by_label("range slider for Width")
    page.wait_for_function("(e) => e.getAttribute('max') === '576'", arg=width_max.element_handle(), timeout=30_000)
    assert tab.get_by_label("number input for Height").input_value() == "1024"  # 576 x 1024 fits 768 x 768


def test_load_params_json_fills_the_form(page, served, sample_videos):
    from modules.request_types import ControlVideoRequest, Text2VideoRequest, VideoWindow

    studio = served[0]
    made = studio.text2video(Text2VideoRequest(prompt="a lighthouse at dusk", num_frames=3, width=96, height=64,
                                               steps=3, seed=4242, motion_x=-7))
    tab = panel(page, "Text to video")
    tab.get_by_text("Advanced").click()  # the seed is in there
    tab.get_by_text("Repeat a run: load its params.json").click()
    tab.locator(".t2vz-params input[type=file]").set_input_files(made.params)
    seed = tab.get_by_label("Seed (-1 = random)")
    page.wait_for_function("(e) => e.value === '4242'", arg=seed.element_handle(), timeout=JOB_TIMEOUT_MS)
    assert tab.get_by_label("Prompt", exact=True).input_value() == "a lighthouse at dusk"
    assert tab.get_by_label("number input for Frames").input_value() == "3"
    assert tab.get_by_label("number input for Motion δx").input_value() == "-7"
    page.get_by_text("Filled the form from params.json").first.wait_for(timeout=10_000)

    # Another tab's params.json is refused with where it belongs.
    other = studio.control_preview(ControlVideoRequest(kind="edge", video=sample_videos["mp4"], prompt="",
                                                       window=VideoWindow(end=0.5, fps=2, resolution=64)))
    tab.locator(".t2vz-params input[type=file]").set_input_files(other.params)
    page.get_by_text("This params.json is from the Edge tab; open that tab and load it there.").first.wait_for(
        timeout=JOB_TIMEOUT_MS)
    assert tab.get_by_label("Prompt", exact=True).input_value() == "a lighthouse at dusk"  # the form is kept


def test_window_note_is_shown_on_the_page(page):
    """An example at long side 1024 is more pixels than the server allows: the page says what it did."""
    tab = panel(page, "Edge")
    tab.locator(".gallery-item, [data-testid='dataset'] tr, table tbody tr").first.click()
    tab.locator("video").first.wait_for(timeout=JOB_TIMEOUT_MS)
    resolution = tab.get_by_label("number input for Resolution (long side, aspect kept; lowered to fit the server's pixel cap)")
    resolution.fill("1024")
    resolution.press("Enter")
    tab.get_by_role("button", name="Preview control").click()
    page.get_by_text(re.compile(r"to stay within this server's 589,824 pixels per frame")).first.wait_for(
        timeout=JOB_TIMEOUT_MS)


@pytest.mark.parametrize("engine, label, frames", [("animatediff", "AnimateDiff", 3), ("modelscope", "ModelScope", 3),
                                                   ("wan", "Wan 2.1", 5), ("cogvideox", "CogVideoX", 9)])  # 4k+1, 8k+1
def test_each_engine_makes_a_video_in_the_page(page, engine, label, frames):
    tab = panel(page, "Text to video")
    pick_engine(page, tab, label)
    motion = tab.get_by_label("number input for Motion δx")
    motion.wait_for(state="hidden")  # zero-shot only: hidden for the trained engines
    if engine == "modelscope":
        tab.get_by_text("non-commercial use only").first.wait_for()
    tab.get_by_label("Prompt", exact=True).fill("a red balloon over a city")
    tab.get_by_label("number input for Frames").fill(str(frames))
    tab.get_by_label("number input for Frames").press("Enter")
    tab.get_by_role("button", name="Generate").click()
    video = tab.locator("video").first
    video.wait_for(timeout=JOB_TIMEOUT_MS)
    assert re.search(r"video\.mp4", video.get_attribute("src") or "")


def fill_compare(tab, prompt: str, engines_kept: list[str] | None = None) -> None:
    """The Compare form at 2 frames (each engine fits its own count to it) and 2 steps for every engine (0 would
    be each one's default, up to 50), with only `engines_kept` ticked when given."""
    from modules import engines

    tab.get_by_label("Prompt").fill(prompt)
    if engines_kept is not None:
        for name in engines.names("text2video"):
            if name not in engines_kept:
                tab.get_by_label(engines.get(name).label, exact=True).uncheck()
    tab.get_by_label("number input for Frames").fill("2")
    tab.get_by_label("number input for Frames").press("Enter")
    tab.get_by_role("button", name="Advanced").click()
    tab.get_by_label("Steps (0 = each engine's default)").fill("2")
    tab.get_by_label("Steps (0 = each engine's default)").press("Enter")


def test_compare_tab_returns_the_side_by_side_video(page):
    tab = panel(page, "Compare engines")
    fill_compare(tab, "a lighthouse")
    tab.get_by_role("button", name="Compare").click()
    tab.locator("video[src*='compare.mp4']").wait_for(timeout=3 * JOB_TIMEOUT_MS)
    from modules import engines

    count = len(engines.names("text2video"))  # every engine is ticked at first
    assert tab.locator("video[src*='video.mp4']").count() == count  # each engine's job filled its own slot


@pytest.mark.parametrize("when", ["while its job runs", "before its job exists", "before its turn"])
def test_compare_tab_stop_one_engine_and_the_others_still_run(page, served, monkeypatch, when):
    """Each engine is its own queued job with its own Stop: stopping one leaves the others, and the
    side-by-side holds those that finished. A Stop pressed before that engine's job exists (while the
    Compare click is still being prepared, or while an earlier engine runs) skips it all the same."""
    from modules import engines

    studio = served[0]
    names = list(engines.names("text2video")[:3])  # three engines, the Stop's place among them is what matters
    first = names[0]
    stopped = names[-1] if when == "before its turn" else first
    running, pressed = threading.Event(), threading.Event()
    if when == "before its job exists":
        prepare = studio.prepare_compare

        def slow_prepare(request):
            assert pressed.wait(30), "Stop was not pressed"  # the Stop lands before any engine's job is queued
            return prepare(request)

        monkeypatch.setattr(studio, "prepare_compare", slow_prepare)
    else:
        run = studio.compare_engine

        def watched(request, name, *args, **kwargs):
            if name == first:
                running.set()
                pressed.wait(30)  # still running when the Stop is pressed
            return run(request, name, *args, **kwargs)

        monkeypatch.setattr(studio, "compare_engine", watched)
    tab = panel(page, "Compare engines")
    fill_compare(tab, "a windmill", names)
    tab.get_by_role("button", name="Compare").click()
    if when != "before its job exists":
        assert running.wait(JOB_TIMEOUT_MS / 1000)
    tab.get_by_role("button", name=f"Stop {engines.get(stopped).title}", exact=True).click()
    pressed.set()
    tab.locator("video[src*='compare.mp4']").wait_for(timeout=3 * JOB_TIMEOUT_MS)
    assert tab.locator("video:not([src*='compare.mp4'])").count() == len(names) - 1
    seconds = re.sub(r"\s+", "", tab.locator("[data-testid='json']").inner_text())
    assert all(f'"{name}"' in seconds for name in names if name != stopped) and f'"{stopped}"' not in seconds
    tab.get_by_text(f"{engines.get(stopped).title}: stopped").wait_for(timeout=JOB_TIMEOUT_MS)


def test_fast_switch_follows_the_engine(page):
    """Fast on AnimateDiff sets Lightning's 4 steps and guidance 1 and makes a video; ModelScope has no
    fast mode, so picking it hides the switch and turns it off."""
    tab = panel(page, "Text to video")
    pick_engine(page, tab, "AnimateDiff")
    tab.get_by_label("number input for Motion δx").wait_for(state="hidden")
    fast = tab.get_by_role("checkbox", name=re.compile(r"Fast \(4 steps"))
    fast.check()
    tab.get_by_role("button", name="Advanced").click()
    steps = tab.get_by_label("number input for Steps")
    page.wait_for_function("el => el.value === '4'", arg=steps.element_handle(), timeout=10_000)
    assert tab.get_by_label("number input for Guidance scale").input_value() == "1"
    tab.get_by_label("Prompt", exact=True).fill("a paper boat on a river")
    tab.get_by_label("number input for Frames").fill("3")
    tab.get_by_label("number input for Frames").press("Enter")
    tab.get_by_role("button", name="Generate").click()
    video = tab.locator("video").first
    video.wait_for(timeout=JOB_TIMEOUT_MS)
    assert re.search(r"video\.mp4", video.get_attribute("src") or "")
    pick_engine(page, tab, "ModelScope")
    fast.wait_for(state="hidden")
    pick_engine(page, tab, "AnimateDiff")
    fast.wait_for()
    assert not fast.is_checked()  # ModelScope turned it off


# --------------------------------------------------------------------------- what the page tells the user


@pytest.fixture
def slow_steps(monkeypatch):
    """Call it, and every denoising step of every job takes 0.4 s longer until the test ends: time to watch and
    to press Stop. Here, and on the Ray replicas of T2VZ_TEST_BACKEND=ray through a flag file (tests/ray_faults.py)."""
    import time
    from pathlib import Path

    from modules.job_control import JobControl
    from tests.ray_faults import SLOW_STEP_S, SLOW_STEPS_FLAG

    flag = Path(os.environ[SLOW_STEPS_FLAG])
    step = JobControl.step

    def slow(self, *args, **kwargs):
        time.sleep(SLOW_STEP_S)
        return step(self, *args, **kwargs)

    def start() -> None:
        monkeypatch.setattr(JobControl, "step", slow)
        flag.touch()

    yield start
    flag.unlink(missing_ok=True)


def generate(tab, prompt: str, frames: int, steps: int | None = None) -> None:
    tab.get_by_label("Prompt", exact=True).fill(prompt)
    tab.get_by_label("number input for Frames").fill(str(frames))
    tab.get_by_label("number input for Frames").press("Enter")
    if steps is not None:
        tab.get_by_text("Advanced").click()
        tab.get_by_label("number input for Steps").fill(str(steps))
        tab.get_by_label("number input for Steps").press("Enter")
    tab.get_by_role("button", name="Generate").click()


def test_an_error_stays_in_the_result_area_and_is_logged(page, served, monkeypatch, caplog):
    """The sentence is shown once, in the tab's result area (no pop-up, no "Error" badge on each output),
    stays until the next run, and the terminal has it with its reference."""
    import logging

    from modules.errors import UserError

    said = "The base model is not downloaded yet and this server is offline: run `python app.py --download` first."

    def offline(request, control):
        raise UserError(said)

    monkeypatch.setattr(served[0], "text2video", offline)
    tab = panel(page, "Text to video")
    with caplog.at_level(logging.WARNING, logger="modules"):
        tab.get_by_label("Prompt", exact=True).fill("a cat")
        tab.get_by_role("button", name="Generate").click()
        message = tab.get_by_text("is not downloaded yet")
        message.wait_for(timeout=JOB_TIMEOUT_MS)
        page.wait_for_timeout(1500)
    assert message.count() == 1 and message.is_visible()
    assert page.locator(".toast-body").count() == 0  # no pop-up that closes itself
    assert tab.get_by_text("Error", exact=True).count() == 0  # no bare badges on the outputs
    logged = [r.getMessage() for r in caplog.records if "is not downloaded yet" in r.getMessage()]
    assert logged and re.search(r"reference [0-9a-f]{8}", logged[0])


def test_stop_says_where_it_stopped_and_keeps_the_last_result(page, slow_steps):
    tab = panel(page, "Text to video")
    generate(tab, "a first clip", 2)
    video = tab.locator("video[src*='video.mp4']").first
    video.wait_for(timeout=JOB_TIMEOUT_MS)
    first_src, first_seed = video.get_attribute("src"), tab.get_by_label("Seed used").input_value()
    tab.get_by_text(re.compile(r"Done in [\d.]+ s")).wait_for(timeout=10_000)

    slow_steps()
    generate(tab, "a long clip", 2, steps=20)
    status = tab.get_by_text(re.compile(r"step \d+ of 20")).first
    status.wait_for(timeout=JOB_TIMEOUT_MS)
    # One progress display per tab: the job's words appear once, in the status box.
    assert tab.get_by_text(re.compile(r"step \d+ of 20")).count() == 1
    # Every tab says the worker is busy (the status line above the tabs follows it).
    page.get_by_text(re.compile(r"Busy:.* a Text to video job, ")).first.wait_for(timeout=20_000)
    tab.get_by_role("button", name="Stop", exact=True).click()
    tab.get_by_text(re.compile(r"Stopped after step \d+ of 20")).wait_for(timeout=JOB_TIMEOUT_MS)
    assert tab.locator("video").first.get_attribute("src") == first_src  # the last finished result is kept
    assert tab.get_by_label("Seed used").input_value() == first_seed
    page.get_by_text("The worker is free.").first.wait_for(timeout=JOB_TIMEOUT_MS)


def test_a_fresh_page_is_quiet_and_says_what_it_is(page):
    tab = panel(page, "Text to video")
    page.get_by_text("Tiny preset: random weights, so every output is noise.").wait_for()
    assert "work best in English" in tab.get_by_label("Prompt", exact=True).get_attribute("placeholder")
    assert tab.get_by_label("Seed used").count() == 0  # no "0" before any run
    tab.get_by_role("button", name="Stop", exact=True).click()  # nothing runs: nothing happens
    page.wait_for_timeout(1000)
    assert page.locator(".toast-body").count() == 0 and "Stopped" not in tab.inner_text()
    depth = panel(page, "Depth")
    assert depth.get_by_text("no options").count() == 0 and depth.get_by_text("Depth detection").count() == 0
    compare = panel(page, "Compare engines")
    from modules import engines

    for engine in engines.for_tab("text2video"):
        compare.get_by_role("button", name=f"Stop {engine.title}", exact=True).wait_for()
    compare.get_by_role("button", name="Stop all", exact=True).click()
    page.wait_for_timeout(1000)
    assert "Stopped" not in compare.inner_text()


def test_a_typed_value_past_a_slider_says_what_is_used(page, served):
    tab = panel(page, "Text to video")
    frames = tab.get_by_label("number input for Frames")
    frames.fill("1000")
    frames.press("Enter")
    from modules import engines, forms

    maximum = forms.frame_cap(engines.default("text2video"), "text2video", served[0].settings)
    tab.get_by_text(f"1000 is more than this server allows here: {maximum} is used.").wait_for(timeout=10_000)
    frames.fill("3")
    frames.press("Enter")
    tab.get_by_text("is more than this server allows").wait_for(state="detached", timeout=10_000)


def test_switching_engine_applies_its_published_frames(page, served):
    """Each engine's recipe (RECIPES.md) fills the form: frames, and the negative prompt (empty for CogVideoX)."""
    from modules import engines, forms

    tab = panel(page, "Text to video")
    tab.get_by_text("Advanced").click()
    for engine in engines.for_tab("text2video")[::-1]:
        pick_engine(page, tab, engine.title)
        expected = forms.form_values(engine, "text2video", served[0].settings)
        frames = tab.get_by_label("number input for Frames")
        page.wait_for_function("([e, v]) => e.value === v", arg=[frames.element_handle(), str(expected["num_frames"])],
                               timeout=10_000)
        negative = tab.get_by_label("Negative prompt")
        page.wait_for_function("([e, v]) => e.value === v", arg=[negative.element_handle(), expected["negative_prompt"]],
                               timeout=10_000)


def test_recipe_follows_the_engine_in_the_control_tabs(page, served):
    """Picking Wan in the Pose tab sets VACE's recipe (guidance 5, Wan's negative prompt) and hides what VACE
    does not take; back on Text2Video-Zero, its ControlNet recipe returns (guidance 9)."""
    from modules import engines, forms

    tab = panel(page, "Pose")
    tab.get_by_text("Advanced").click()
    guidance = tab.get_by_label("number input for Guidance scale")
    negative = tab.get_by_label("Negative prompt")
    for name in ("wan", "text2video-zero"):
        engine = engines.get(name)
        expected = forms.form_values(engine, "control", served[0].settings)
        pick_engine(page, tab, engine.title)
        page.wait_for_function("([e, v]) => Number(e.value) === v",
                               arg=[guidance.element_handle(), expected["guidance_scale"]], timeout=10_000)
        page.wait_for_function("([e, v]) => e.value === v", arg=[negative.element_handle(), expected["negative_prompt"]],
                               timeout=10_000)
        assert tab.get_by_label("Base model").is_visible() == ("base_model" in engine.inputs)


def test_a_portrait_upload_does_not_push_the_buttons_away(page, tmp_path):
    import numpy as np

    from modules import video_io
    from modules.ui.common import PLAYER_HEIGHT

    clip = video_io.write_mp4(np.full((4, 640, 160, 3), 90, np.uint8), tmp_path / "portrait.mp4", 4)
    tab = panel(page, "Video editing")
    tab.locator('input[type="file"]').first.set_input_files(str(clip))
    player = tab.locator("video").first
    player.wait_for(timeout=JOB_TIMEOUT_MS)
    page.wait_for_timeout(500)
    assert player.bounding_box()["height"] <= PLAYER_HEIGHT
    assert tab.get_by_role("button", name="Generate").is_visible()
    assert tab.get_by_role("button", name="Generate").bounding_box()["y"] < 1000 + PLAYER_HEIGHT


def test_the_estimate_follows_the_form(page):
    tab = panel(page, "Text to video")
    estimate = tab.get_by_text(re.compile(r"About \*?\*?\d+"))
    estimate.first.wait_for(timeout=JOB_TIMEOUT_MS)
    before = estimate.first.inner_text()
    frames = tab.get_by_label("number input for Frames")
    frames.fill("60")
    frames.press("Enter")
    page.wait_for_function("(b) => ![...document.querySelectorAll('[role=tabpanel] .prose')].some(e => e.innerText === b)",
                           arg=before, timeout=10_000)


def test_tune_tab_tunes_runs_and_stops(page, served, slow_steps, tmp_path):
    """Tune on an uploaded clip, see where the model is saved, run it with a new prompt, then stop a long
    training run and read that the model trained so far is kept."""
    import numpy as np

    from modules import video_io

    frames = np.zeros((8, 64, 96, 3), np.uint8)
    for i in range(len(frames)):
        frames[i, 16:48, 4 + 6 * i: 28 + 6 * i] = (230, 120, 30)
    clip = video_io.write_mp4(frames, tmp_path / "slide.mp4", 8)

    tab = panel(page, "Tune on a clip")
    tab.locator("input[type=file]").first.set_input_files(str(clip))
    tab.locator("video").first.wait_for(timeout=JOB_TIMEOUT_MS)
    tab.get_by_label("What the clip shows").fill("an orange box slides")
    tab.get_by_label("Model name (empty = from the prompt)").fill("browser-box")
    for label, value in (("Training steps", "2"), ("Frames (consecutive, from the start)", "3")):
        tab.get_by_label(f"number input for {label}").fill(value)
        tab.get_by_label(f"number input for {label}").press("Enter")
    tab.get_by_role("button", name="Tune", exact=True).click()
    tab.get_by_text(re.compile(r"saved as browser-box")).wait_for(timeout=JOB_TIMEOUT_MS)
    tab.locator("video[src*='video.mp4']").first.wait_for(timeout=JOB_TIMEOUT_MS)
    page.screenshot(path=str(tmp_path / "tune.png"), full_page=True)
    assert tab.get_by_label("Tuned model (run it below, or by this name through /run_tuned)").input_value() == "browser-box"

    # The Run part offers the new model at once.
    assert tab.get_by_label("Tuned model (one tuned here, or a Hub repo id: owner/name)").input_value() == "browser-box"
    tab.get_by_label("Prompt", exact=True).fill("a blue box slides")
    tab.get_by_role("button", name="Generate").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('[role=tabpanel] video')].filter(v => /video\\.mp4/.test(v.src)).length >= 2",
        timeout=JOB_TIMEOUT_MS)

    # A long training run, stopped: the box says where, and that the model so far is kept.
    slow_steps()
    tab.get_by_label("Model name (empty = from the prompt)").fill("browser-stopped")
    tab.get_by_label("number input for Training steps").fill("40")
    tab.get_by_label("number input for Training steps").press("Enter")
    tab.get_by_role("button", name="Tune", exact=True).click()
    tab.get_by_text(re.compile(r"training · step \d+ of 40 · loss")).first.wait_for(timeout=JOB_TIMEOUT_MS)
    tab.get_by_role("button", name="Stop", exact=True).first.click()
    tab.get_by_text(re.compile(r"Stopped after step \d+ of 40 \(training\)\. The model as trained until the stop "
                               r"is saved as browser-stopped")).wait_for(timeout=JOB_TIMEOUT_MS)
    page.get_by_text("The worker is free.").first.wait_for(timeout=JOB_TIMEOUT_MS)  # it reached the stop, and saved
    assert "browser-stopped" in [model["name"] for model in served[0].list_tuned()]


def test_wan_in_the_edge_tab_and_its_fast_mode_in_text_to_video(page):
    """Wan 2.1 through VACE from the Edge tab's example, and AnyFlow's few steps from Text to video's Fast."""
    tab = panel(page, "Edge")
    tab.locator(".gallery-item, [data-testid='dataset'] tr, table tbody tr").first.click()
    tab.locator("video").first.wait_for(timeout=JOB_TIMEOUT_MS)
    pick_engine(page, tab, "Wan 2.1")
    tab.get_by_label("Prompt", exact=True).fill("a golden robot")
    tab.get_by_role("button", name="Generate").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('[role=tabpanel] video')].some(v => /control\\.mp4/.test(v.src))",
        timeout=JOB_TIMEOUT_MS)
    tab.get_by_text(re.compile(r"Done in [\d.]+ s")).wait_for(timeout=10_000)

    tab = panel(page, "Text to video")
    pick_engine(page, tab, "Wan 2.1")
    tab.get_by_role("checkbox", name=re.compile(r"^Fast \(")).check()
    tab.get_by_label("Prompt", exact=True).fill("a red balloon")
    tab.get_by_label("number input for Frames").fill("5")
    tab.get_by_label("number input for Frames").press("Enter")
    tab.get_by_role("button", name="Generate").click()
    tab.get_by_text(re.compile(r"Done in [\d.]+ s")).wait_for(timeout=JOB_TIMEOUT_MS)
    assert tab.get_by_text(re.compile("AnyFlow")).count() >= 1
