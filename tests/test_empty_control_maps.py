"""Empty control maps (issue 29): the rule per kind on synthetic maps, the sentence, and a tiny-preset pose job
on a clip with nobody in view that stops before sampling, then goes on with the maps it found."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace

import cv2
import numpy as np
import pytest

from modules.empty_maps import DRAWN_LEVEL, GO_ON, EmptyControlMaps, check, empty_frames, note


def black(frames: int = 4, size: int = 64) -> np.ndarray:
    return np.zeros((frames, size, size, 3), np.uint8)


def skeleton_drawn(maps: np.ndarray, frame: int) -> np.ndarray:
    """One OpenPose-like limb (its colours at 0.6, as controlnet-aux draws them) in one frame."""
    cv2.line(maps[frame], (20, 10), (30, 40), (153, 0, 0), 4)
    return maps


def test_pose_and_edge_maps_are_empty_only_where_nothing_is_drawn():
    noise = black()
    noise[:, ::7, ::5] = DRAWN_LEVEL  # what compression leaves on a black skeleton video: still empty
    for kind in ("pose", "edge"):
        assert empty_frames(kind, black()).tolist() == [True] * 4
        assert empty_frames(kind, noise).tolist() == [True] * 4
    assert empty_frames("pose", skeleton_drawn(black(), 2)).tolist() == [True, True, False, True]
    edges = black()
    edges[1, 30, 10:50] = 255  # one Canny line
    assert empty_frames("edge", edges).tolist() == [True, False, True, True]


def test_depth_maps_are_empty_where_flat():
    maps = black(3)
    maps[1] = 128  # constant: flat whatever its level
    maps[2] = np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None]  # near to far
    assert empty_frames("depth", maps).tolist() == [True, True, False]
    slight = np.full((1, 64, 64, 3), 100, np.uint8)
    slight[0, :8] = 106  # a few levels of wobble is no depth either
    assert empty_frames("depth", slight).tolist() == [True]


def test_only_a_clip_empty_in_every_frame_is_refused_with_a_sentence_that_carries_the_maps():
    check("pose", skeleton_drawn(black(16), 15))  # a person in one frame of 16: no refusal
    maps = black(16)
    with pytest.raises(EmptyControlMaps) as refused:
        check("pose", maps)
    assert str(refused.value) == (
        "No person was found in any of the 16 frames, so the pose maps are empty and the video would not follow a "
        f"pose. Choose a clip with a person in view, tick \"{GO_ON}\" to generate anyway, or use the Text to video tab.")
    assert refused.value.maps is maps
    with pytest.raises(EmptyControlMaps, match=r"^No edges were found in any of the 4 frames, .*Canny thresholds "
                                               r"\(50 and 90 now\)"):
        check("edge", black(), canny=(50, 90))
    with pytest.raises(EmptyControlMaps, match=r"^The depth maps of all 4 frames are flat, so the video would not "
                                               r"follow any depth\."):
        check("depth", np.full((4, 8, 8, 3), 7, np.uint8))
    with pytest.raises(EmptyControlMaps, match=r"^No skeleton is drawn in the only frame of the skeleton video.*untick"):
        check("pose", black(1), is_skeleton=True)


def test_the_refusal_crosses_a_pickle_with_its_maps():
    """A Ray replica and a ZeroGPU child send the error back pickled (zerogpu.portable_error): the maps come
    along, so that the page's process keeps them for the run that goes on."""
    from modules.zerogpu import portable_error

    maps = black(2)
    maps[0, 0, 0] = 9
    error = portable_error(EmptyControlMaps("No person was found.", maps))
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is EmptyControlMaps and str(back) == "No person was found."
    assert (back.maps == maps).all()


def test_notes_for_empty_and_partly_empty_maps():
    assert note("pose", skeleton_drawn(black(), 0)) is not None  # 3 of 4 empty
    assert note("pose", skeleton_drawn(skeleton_drawn(skeleton_drawn(skeleton_drawn(black(), 0), 1), 2), 3)) is None
    assert note("edge", black(4)) == ("No edges were found in any of the 4 frames, so the edge maps are empty and "
                                      "a video made from them would not follow any outline.")
    assert note("pose", skeleton_drawn(black(), 0), went_on=True) == (
        "No person was found in 3 of the 4 frames: in those the video follows the prompt alone.")
    assert note("pose", black(), went_on=True) == ("No person was found in any of the 4 frames, so the video was "
                                                   "made from empty pose maps, as asked: it follows the prompt alone.")


# --------------------------------------------------------------------------- the job, on the tiny preset


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    from modules.settings import Settings
    from modules.studio import Studio

    return Studio(Settings.from_env(preset="tiny", device="cpu", outputs_dir=str(tmp_path_factory.mktemp("empty"))))


@pytest.fixture(scope="module")
def plain_clip(tmp_path_factory) -> str:
    """A plain grey clip (8 frames at 8 fps), written by the app's own writer: nobody in view, no edges."""
    from modules import video_io

    return str(video_io.write_mp4(np.full((8, 64, 64, 3), 120, np.uint8),
                                  tmp_path_factory.mktemp("plain") / "plain.mp4", 8))


def test_a_pose_job_with_nobody_in_view_stops_before_sampling_and_goes_on_when_asked(studio, plain_clip, monkeypatch):
    """The tiny preset's OpenPose has random weights with silent heads (annotators._quiet_heads): it finds nobody
    in any clip, as the real one finds nobody in a plain grey one."""
    from modules import annotators, engines
    from modules.request_types import ControlVideoRequest, VideoWindow

    engine = engines.get("text2video-zero")
    sampled, detected = [], []
    sample, detect = engine.sample, annotators.control_maps
    monkeypatch.setattr(engine, "sample", lambda *args, **kwargs: sampled.append(1) or sample(*args, **kwargs))
    monkeypatch.setattr(annotators, "control_maps", lambda *args, **kwargs: detected.append(1) or detect(*args, **kwargs))
    request = ControlVideoRequest(kind="pose", video=plain_clip, prompt="a dancer", steps=2, seed=1,
                                  window=VideoWindow(resolution=64, fps=2))  # 2 frames: OpenPose is slow on a CPU
    with pytest.raises(EmptyControlMaps, match=r"^No person was found in any of the 2 frames, so the pose maps are "
                                               r"empty .* or use the Text to video tab\.$") as refused:
        studio.control_video(request)
    assert sampled == [] and detected == [1]
    assert refused.value.maps is None  # kept here for the next run, not held by the error the page shows
    result = studio.control_video(replace(request, allow_empty_maps=True))
    assert sampled == [1] and detected == [1]  # the maps found before the refusal: no second detection
    record = json.loads(open(result.params).read())
    assert record["request"]["allow_empty_maps"] is True and record["control_maps"] == "reused from an earlier run"
    assert "No person was found in any of the 2 frames, so the video was made from empty pose maps" in result.note
    preview = studio.control_preview(request)  # the preview makes its maps and says they are empty
    assert "a video made from them would not follow a pose" in preview.note
