"""The page in a real headless Chromium (Debian's /usr/bin/chromium driven by playwright)."""

import os
import re
from pathlib import Path

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

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")


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
    tab.get_by_role("button", name="Preview control").click()
    tab.locator("video").nth(1).wait_for(timeout=JOB_TIMEOUT_MS)  # input + control maps
    tab.get_by_role("button", name="Generate").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('[role=tabpanel] video')].some(v => /video\\.mp4/.test(v.src))",
        timeout=JOB_TIMEOUT_MS,
    )
    # The status line above the tabs follows what each job loaded: now the edge ControlNet alone.
    page.get_by_text(re.compile(r"loaded: base: .*, controlnets: edge$")).first.wait_for(timeout=10_000)
