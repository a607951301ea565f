"""The estimates on the page, in headless Chromium: Compare shows one, and a server that timed nothing says
"estimate", not "measured"; once the ticked engines' kinds were timed here it says "measured here"."""

import re

import pytest

from modules.jobs import CostLog, Measurement
from modules.request_types import CompareRequest
from tests.test_browser import browser, browsing, page, panel  # noqa: F401 - fixtures and helpers of the page tests

pytestmark = pytest.mark.slow

ABOUT = re.compile(r"About \d")


def test_compare_shows_an_estimate_that_says_estimate_until_its_kinds_ran_here(browser, served):  # noqa: F811
    studio = served[0]
    studio.runner.costs = CostLog()  # as a server that has run nothing (the session's app is shared)
    tab_page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        tab_page.goto(served[2])
        tab_page.get_by_text("Text2Video-Zero Studio").first.wait_for()
        for name in ("Text to video", "Compare engines"):
            tab = panel(tab_page, name)
            estimate = tab.get_by_text(ABOUT).first
            estimate.wait_for(timeout=30_000)
            text = estimate.inner_text()
            assert text.endswith("(estimate).") and "measured" not in text, (name, text)
        # Each offered engine's text-to-video kind timed here (as its prior said): Compare's sum is "measured here".
        settings = studio.settings
        request = CompareRequest(prompt="a clip").validate(settings)
        for engine in request.engines:
            for cost in studio.estimates.costs_of(request.for_engine(engine, settings), preview=False):
                studio.runner.costs.add(Measurement(cost=cost, device="cpu", seconds=cost.prior_s))
        tab.get_by_label("Prompt").fill("a red balloon")  # the estimate follows the form
        tab.get_by_text(re.compile(r"About \d.*\(measured here\)")).first.wait_for(timeout=30_000)
    finally:
        studio.runner.costs = CostLog()
        tab_page.close()
