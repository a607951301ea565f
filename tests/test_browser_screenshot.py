"""The README's picture of the page (assets/page.png) is the page: this test takes it, in headless Chromium.

It opens the launched tiny app at 1280×800 and saves the first screen, overwriting assets/page.png; commit the
file it wrote when the page changes (the README shows it as the page a newcomer will see).
"""

import re
import struct
from pathlib import Path

import pytest

from tests.test_browser import browser, browsing, page  # noqa: F401  (fixtures: Chromium, and the page of the served app)
from tests.test_browser import pytestmark  # noqa: F401  (slow; skipped without Debian's chromium)

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "assets" / "page.png"
SIZE = (1280, 800)
MOST_BYTES = 300_000


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_the_readme_screenshot_is_the_pages_first_screen(page):  # noqa: F811
    page.set_viewport_size({"width": SIZE[0], "height": SIZE[1]})
    page.get_by_role("tab", name="Text to video").wait_for()
    # The status line above the tabs is filled on load: the picture shows it, not an empty line.
    page.locator("#status-line").get_by_text(re.compile("Ready|Busy")).first.wait_for(timeout=30_000)
    page.mouse.move(0, 0)  # no hover effect in the picture
    data = page.screenshot(path=str(SCREENSHOT), full_page=False)
    assert png_size(data) == SIZE
    assert SCREENSHOT.read_bytes() == data and len(data) < MOST_BYTES, len(data)
