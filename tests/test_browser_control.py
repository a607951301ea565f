"""The control tabs in a real headless Chromium: an empty control map is a sentence in the tab, and the page's
"Go on with empty maps" box goes on (issue 29)."""

import json
import re

import numpy as np
import pytest

from tests.test_browser import JOB_TIMEOUT_MS, browser, browsing, page, panel  # noqa: F401 - the fixtures

pytestmark = [pytest.mark.slow]


def test_a_pose_clip_with_nobody_in_view_is_a_sentence_then_goes_on_with_the_box(page, served, tmp_path):
    """A plain grey clip has nobody in view (and the tiny preset's OpenPose finds nobody anywhere: its heads are
    silent, annotators._quiet_heads): Generate stops before sampling with the sentence in the tab's status box;
    ticked, the box makes the video from the maps found then."""
    from modules import video_io

    clip = video_io.write_mp4(np.full((2, 64, 64, 3), 120, np.uint8), tmp_path / "nobody.mp4", 2)  # 2 frames: 1 s
    tab = panel(page, "Pose")
    tab.locator(".t2vz-video-in input[type=file]").set_input_files(str(clip))
    tab.locator(".t2vz-video-in video").wait_for(timeout=JOB_TIMEOUT_MS)
    tab.get_by_label("Prompt", exact=True).fill("a dancer")
    tab.get_by_role("button", name="Generate").click()
    status = tab.locator(".t2vz-status").first
    status.get_by_text(re.compile(r"No person was found in any of the 2 frames, so the pose maps are empty and the "
                                  r"video would not follow a pose\. Choose a clip with a person in view, tick "
                                  r".Go on with empty maps. to generate anyway")).wait_for(timeout=JOB_TIMEOUT_MS)
    assert tab.locator("video[src*='video.mp4']").count() == 0  # nothing was sampled

    tab.get_by_role("checkbox", name=re.compile(r"^Go on with empty maps")).check()
    tab.get_by_role("button", name="Generate").click()
    tab.locator("video[src*='control.mp4']").first.wait_for(timeout=JOB_TIMEOUT_MS)
    status.get_by_text(re.compile(r"the video was made from empty pose maps, as asked")).wait_for(timeout=10_000)
    newest = max(served[0].outputs.root.glob("*-pose2video-*"), key=lambda folder: folder.stat().st_mtime)
    record = json.loads((newest / "params.json").read_text())
    assert record["request"]["allow_empty_maps"] is True
    assert record["control_maps"] == "reused from an earlier run"  # the maps found before the sentence
