"""Whether control maps carry anything a ControlNet could follow, and the sentences that say they don't.

A pose job on a clip with nobody in view, an edge job on a flat clip or a depth job whose maps are
flat would sample for minutes on blank maps and make a video that ignores the control. The control
job checks its maps after detection and before sampling (`check`) and stops with `EmptyControlMaps`
unless the request says to go on (`allow_empty_maps`); the preview and a job that went on say so in a
note (`note`).

The rules, per frame (numpy only, so the page's process can use them without loading any detector):
- pose and edge maps are drawn on black: a frame is empty when no pixel has a channel above
  `DRAWN_LEVEL`, a level far above what video compression leaves on black (an uploaded skeleton
  video is an mp4 too) and far below the colours OpenPose draws limbs in or Canny's white;
- depth maps are normalised frame by frame to 0..255, so any variation fills the range: a frame is
  flat when its values span at most `FLAT_RANGE` (a constant map, as a uniform picture gives).

A clip is refused only when every frame is empty. A clip where the person, or the outlines, are in
view for part of the time is a normal clip (someone walks into the picture): its empty frames follow
the prompt alone, which the note says, but refusing it would stop a job the user wants, and a
"most frames" rule would hinge on a share nobody sees on the page.
"""

from __future__ import annotations

import numpy as np

from .errors import UserError

DRAWN_LEVEL = 32  # of 255: a channel above this is drawn (a limb, an edge), not compression noise on black
FLAT_RANGE = 8  # of 255: a depth frame whose values span no more than this has no nearer or farther parts
GO_ON = "Go on with empty maps"  # the control tabs' checkbox (ControlVideoRequest.allow_empty_maps)


class EmptyControlMaps(UserError):
    """The maps carry nothing to follow: the job stopped before sampling. `maps` are the maps found, so that
    the caller can keep them for the run that goes on (they travel back from a Ray replica or a ZeroGPU child
    with the error, which pickles with them)."""

    def __init__(self, message: str, maps: np.ndarray | None = None):
        super().__init__(message)
        self.maps = maps


def empty_frames(kind: str, maps: np.ndarray) -> np.ndarray:
    """One bool per frame of uint8 (F, H, W, 3) `maps`: whether that frame's map carries nothing."""
    maps = np.asarray(maps)
    frames = maps.reshape(len(maps), -1)
    if kind == "depth":
        return (frames.max(axis=1).astype(int) - frames.min(axis=1)) <= FLAT_RANGE
    return frames.max(axis=1) <= DRAWN_LEVEL


def check(kind: str, maps: np.ndarray, *, is_skeleton: bool = False, canny: tuple[int, int] = (100, 200)) -> None:
    """Raise `EmptyControlMaps` (carrying `maps`) when no frame's map carries anything."""
    empty = empty_frames(kind, maps)
    if len(empty) and empty.all():
        raise EmptyControlMaps(_refusal(kind, len(empty), is_skeleton, canny), maps)


def note(kind: str, maps: np.ndarray, *, went_on: bool = False, is_skeleton: bool = False) -> str | None:
    """A sentence for the preview (or, `went_on`, a job that went on with empty maps) when some or all of the
    frames' maps are empty; None when every frame has something to follow."""
    empty = empty_frames(kind, maps)
    count, total = int(empty.sum()), len(empty)
    if count == 0:
        return None
    if count == total:
        found = _nothing_found(kind, total, is_skeleton)
        if went_on:
            return f"{found}, so the video was made from empty {kind} maps, as asked: it follows the prompt alone."
        return f"{found}, so the {kind} maps are empty and a video made from them would not follow {_what(kind)}."
    return (f"{_nothing_found(kind, total, is_skeleton, count)}: in {'that frame' if count == 1 else 'those'} the "
            f"video {'follows' if went_on else 'would follow'} the prompt alone.")


def _refusal(kind: str, total: int, is_skeleton: bool, canny: tuple[int, int]) -> str:
    found = _nothing_found(kind, total, is_skeleton)
    if kind == "pose" and is_skeleton:
        choose = ("Upload a skeleton video with a pose drawn in it (or untick \"Input is already a pose skeleton "
                  "video\" to find the pose in a clip)")
    else:
        choose = {"pose": "Choose a clip with a person in view",
                  "edge": f"Choose a clip with clear outlines, lower the Canny thresholds ({canny[0]} and "
                          f"{canny[1]} now)",
                  "depth": "Choose a clip with nearer and farther parts in view"}[kind]
    maps = "" if kind == "depth" else f" the {kind} maps are empty and"
    return (f"{found}, so{maps} the video would not follow {_what(kind)}. {choose}, tick \"{GO_ON}\" to generate "
            f"anyway, or use the Text to video tab.")


def _nothing_found(kind: str, total: int, is_skeleton: bool = False, count: int | None = None) -> str:
    """"No person was found in any of the 16 frames" / "... in 5 of the 16 frames"."""
    if count is None:
        where = "the only frame" if total == 1 else f"any of the {total} frames"
    else:
        where = f"{count} of the {total} frames"
    if kind == "pose":
        return f"No skeleton is drawn in {where} of the skeleton video" if is_skeleton else f"No person was found in {where}"
    if kind == "edge":
        return f"No edges were found in {where}"
    if count is None:
        return "The depth map of the only frame is flat" if total == 1 else f"The depth maps of all {total} frames are flat"
    return f"The depth maps of {where} are flat"


def _what(kind: str) -> str:
    return {"pose": "a pose", "edge": "any outline", "depth": "any depth"}[kind]
