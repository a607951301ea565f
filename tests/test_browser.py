"""The page in a real headless Chromium (Debian's /usr/bin/chromium driven by playwright)."""

import os
import re
import threading

import pytest

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


@pytest.fixture
def page(browser, served):
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
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
    page.get_by_text(re.compile(r"loaded: base: .*, controlnets: edge$")).first.wait_for(timeout=10_000)


def test_size_sliders_offer_only_sizes_that_fit(page):
    """Width's maximum follows height (and back) so that width x height stays within the pixel cap."""
    tab = panel(page, "Text to video")
    tab.get_by_text("Advanced").click()
    height = tab.get_by_label("number input for Height")
    height.fill("1024")
    height.press("Enter")
    width_max = tab.get_by_label("range slider for Width")
    page.wait_for_function("(e) => e.getAttribute('max') === '576'", arg=width_max.element_handle(), timeout=10_000)
    assert tab.get_by_label("number input for Height").input_value() == "1024"  # 576 x 1024 fits 768 x 768


def test_load_params_json_fills_the_form(page, served, sample_videos):
    from modules.request_types import ControlVideoRequest, Text2VideoRequest, VideoWindow

    studio = served[0]
    made = studio.text2video(Text2VideoRequest(prompt="a lighthouse at dusk", num_frames=3, width=96, height=64,
                                               steps=3, seed=4242, motion_x=-7))
    tab = panel(page, "Text to video")
    tab.get_by_text("Advanced").click()  # the seed is in there
    tab.locator('input[type="file"][accept=".json"]').set_input_files(made.params)
    seed = tab.get_by_label("Seed (-1 = random)")
    page.wait_for_function("(e) => e.value === '4242'", arg=seed.element_handle(), timeout=JOB_TIMEOUT_MS)
    assert tab.get_by_label("Prompt", exact=True).input_value() == "a lighthouse at dusk"
    assert tab.get_by_label("number input for Frames").input_value() == "3"
    assert tab.get_by_label("number input for Motion δx").input_value() == "-7"
    page.get_by_text("Filled the form from params.json").first.wait_for(timeout=10_000)

    # Another tab's params.json is refused with where it belongs.
    other = studio.control_preview(ControlVideoRequest(kind="edge", video=sample_videos["mp4"], prompt="",
                                                       window=VideoWindow(end=0.5, fps=2, resolution=64)))
    tab.locator('input[type="file"][accept=".json"]').set_input_files(other.params)
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


@pytest.mark.parametrize("engine, label", [("animatediff", "AnimateDiff"), ("modelscope", "ModelScope")])
def test_each_engine_makes_a_video_in_the_page(page, engine, label):
    tab = panel(page, "Text to video")
    pick_engine(page, tab, label)
    motion = tab.get_by_label("number input for Motion δx")
    motion.wait_for(state="hidden")  # zero-shot only: hidden for the trained engines
    if engine == "modelscope":
        tab.get_by_text("non-commercial use only").first.wait_for()
    tab.get_by_label("Prompt", exact=True).fill("a red balloon over a city")
    tab.get_by_label("number input for Frames").fill("3")
    tab.get_by_label("number input for Frames").press("Enter")
    tab.get_by_role("button", name="Generate").click()
    video = tab.locator("video").first
    video.wait_for(timeout=JOB_TIMEOUT_MS)
    assert re.search(r"video\.mp4", video.get_attribute("src") or "")


def test_compare_tab_returns_the_side_by_side_video(page):
    tab = panel(page, "Compare engines")
    tab.get_by_label("Prompt").fill("a lighthouse")
    tab.get_by_label("number input for Frames").fill("2")
    tab.get_by_label("number input for Frames").press("Enter")
    tab.get_by_role("button", name="Compare").click()
    tab.locator("video[src*='compare.mp4']").wait_for(timeout=3 * JOB_TIMEOUT_MS)
    assert tab.locator("video[src*='video.mp4']").count() == 3  # each engine's job filled its own slot


@pytest.mark.parametrize("when", ["while its job runs", "before its job exists"])
def test_compare_tab_stop_one_engine_and_the_others_still_run(page, served, monkeypatch, when):
    """Each engine is its own queued job with its own Stop: stopping the first leaves the others,
    and the side-by-side holds those that finished. A Stop pressed before that engine's job exists
    (while the Compare click is still being prepared) skips it all the same."""
    studio, first = served[0], "text2video-zero"
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
    tab.get_by_label("Prompt").fill("a windmill")
    tab.get_by_role("button", name="Compare").click()
    if when == "while its job runs":
        assert running.wait(JOB_TIMEOUT_MS / 1000)
    tab.get_by_role("button", name=f"Stop {first}").click()
    pressed.set()
    tab.locator("video[src*='compare.mp4']").wait_for(timeout=3 * JOB_TIMEOUT_MS)
    assert tab.locator("video[src*='video.mp4']").count() == 2
    seconds = re.sub(r"\s+", "", tab.locator("[data-testid='json']").inner_text())
    assert '"animatediff"' in seconds and '"modelscope"' in seconds and first not in seconds


def test_fast_switch_follows_the_engine(page):
    """Fast on AnimateDiff sets Lightning's 4 steps and guidance 1 and makes a video; ModelScope has no
    fast mode, so picking it hides the switch and turns it off."""
    tab = panel(page, "Text to video")
    pick_engine(page, tab, "AnimateDiff")
    tab.get_by_label("number input for Motion δx").wait_for(state="hidden")
    fast = tab.get_by_role("checkbox", name=re.compile(r"Fast \(4 steps"))
    fast.check()
    tab.get_by_role("button", name="Advanced").click()
    steps = tab.get_by_label("number input for Steps (DDIM)")
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
