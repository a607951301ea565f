"""What a job tells the page while it runs and before it runs (tiny preset, every engine via the registry).

- Progress in plain words, the same for every engine: "step 2 of 3", "frames 4–5 of 5 · step 2 of 3",
  "finding edges in frame 3 of 5", "decoding the frames", "writing the video", with a bar that only rises.
- Stop says how far the job got (`JobControl.stopped_message`).
- `Studio.estimate`: the engine's prior first, then scaled from jobs of its kind measured here; None for what is no
  valid request; cheap (no torch, the upload's header probed once).
- A Preview's control maps serve the Generate that follows on the same clip and options.
- `Studio.activity`: what each running job is doing.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from modules import annotators, engines, video_io
from modules.engine import resolve_t0_t1
from modules.job_control import Cancelled, JobControl
from modules.request_types import ControlVideoRequest, EditVideoRequest, Text2VideoRequest, VideoWindow
from modules.settings import Settings
from modules.studio import Estimate, Studio
from tests.tuning_tabs import TRAINING_STEPS, TUNING_TABS, run_tuning, tuning_request

SIDE = 64
STEPS = 3
FRAMES = 5  # in chunks of 3: frames 1–3, then the anchor again with frames 4–5
ROOT = Path(__file__).resolve().parents[1]
CASES = [pytest.param(engine, tab, id=f"{engine.name}-{tab}") for engine in engines.all_engines()
         for tab in engines.TABS if tab in engine.tabs]
CHUNKED = [case for case in CASES if "chunks" in case.values[0].inputs]
CANNY_LOWS = itertools.count(20)


class Recorder(JobControl):
    """A JobControl that keeps every (fraction, text) shown, and can cancel after the k-th step."""

    def __init__(self, cancel_after_step: int | None = None):
        super().__init__(progress=lambda fraction, text: self.shown.append((fraction, text)))
        self.shown: list[tuple[float, str]] = []
        self.steps_seen = 0
        self.cancel_after_step = cancel_after_step

    def step(self, done, total, phase="", **options):
        self.steps_seen += 1
        super().step(done, total, phase, **options)
        if self.steps_seen == self.cancel_after_step:
            self.cancel()

    @property
    def texts(self) -> list[str]:
        """What the job said after loading (the model manager's texts come first, when it loads)."""
        return [text for _, text in self.shown if not text.startswith(("loading ", "downloading "))]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> str:
    """A 1 s clip of 6 frames; a window at 5 fps reads `FRAMES` frames of it."""
    frames = np.zeros((6, SIDE, SIDE, 3), np.uint8)
    for i in range(len(frames)):
        frames[i, 10:40, 8 + 4 * i: 30 + 4 * i] = (200, 120, 40)
    return str(video_io.write_mp4(frames, tmp_path_factory.mktemp("clip") / "clip.mp4", 6))


@pytest.fixture(scope="module")
def studio(tmp_path_factory) -> Studio:
    return Studio(Settings.from_env(preset="tiny", device="cpu", outputs_dir=str(tmp_path_factory.mktemp("out"))))


def make_request(engine, tab: str, clip: str, *, frames: int, chunk_size: int | None = None, studio=None, **more):
    chunk = {"chunk_size": chunk_size or frames} if "chunks" in engine.inputs else {}
    if tab in TUNING_TABS:
        return tuning_request(studio, tab, clip, frames=frames, steps=STEPS, seed=1, side=SIDE, **more)
    if tab == "text2video":
        return Text2VideoRequest(prompt="a red ball rolling", engine=engine.name, num_frames=frames, width=SIDE,
                                 height=SIDE, steps=STEPS, seed=1, fps=4, **chunk, **more)
    window = VideoWindow(resolution=SIDE, fps=frames)  # `frames` frames of the 1 s clip
    if tab == "control":  # thresholds of its own: each job finds its maps (none reuses another's)
        return ControlVideoRequest(kind="edge", video=clip, prompt="a golden box", engine=engine.name, steps=STEPS,
                                   seed=1, window=window, canny_low=next(CANNY_LOWS), **chunk, **more)
    return EditVideoRequest(video=clip, prompt="make it snow", steps=STEPS, seed=1, window=window, **chunk, **more)


def run(studio: Studio, tab: str, request, control: JobControl | None = None):
    if tab in TUNING_TABS:
        return run_tuning(studio, tab, request, control)
    method = {"text2video": studio.text2video, "control": studio.control_video, "edit": studio.edit_video}[tab]
    return method(request, control)


def expected_texts(engine, tab: str, frames: int, passes: list[str]) -> list[str]:
    """What a job says from its first step (or control map) to the end; `passes`: each pass's frames."""
    texts = [f"finding edges in frame {i} of {frames}" for i in range(1, frames + 1)] if tab == "control" else []
    if tab == "tune":  # training (its loss and time left are checked in test_tune_studio), then the sample
        texts += [f"training · step {k} of {TRAINING_STEPS}" for k in range(1, TRAINING_STEPS + 1)]
    if tab in TUNING_TABS:  # the source clip's DDIM inversion first
        texts += [f"inverting the source · step {k} of {STEPS}" for k in range(1, STEPS + 1)]
    first_step = 1
    if tab == "text2video" and "motion" in engine.inputs:
        # The zero-shot method first denoises the first frame alone down to t0; then every pass
        # takes the schedule's steps from t1 on (Khachatryan et al. 2023, sect. 3.3).
        t0, t1 = resolve_t0_t1(STEPS)
        texts += [f"first frame · step {k} of {STEPS}" for k in range(1, STEPS - t0)]
        first_step = STEPS - t1
    for where in passes:
        prefix = f"{where} · " if where else ""
        texts += [f"{prefix}step {k} of {STEPS}" for k in range(first_step, STEPS + 1)]
        texts.append(f"{prefix}decoding the frames")
    return [*texts, "writing the video"]


def assert_bar_rises(shown: list[tuple[float, str]]) -> None:
    fractions = [fraction for fraction, _ in shown]
    assert all(0.0 <= f <= 1.0 for f in fractions), fractions
    assert fractions == sorted(fractions), shown


# ---------------------------------------------------------------- progress in plain words
@pytest.mark.parametrize("engine, tab", CASES)
def test_a_single_pass_reads_step_k_of_n_then_decoding_and_writing(engine, tab, studio, clip):
    frames = engine.rules.frames.nearest(FRAMES)
    control = Recorder()
    run(studio, tab, make_request(engine, tab, clip, frames=frames, studio=studio), control)
    texts = [text.split(" · loss ")[0] for text in control.texts]
    assert texts == expected_texts(engine, tab, frames, [""])
    assert_bar_rises(control.shown)
    assert control.last_text == "writing the video" and control.running is False


@pytest.mark.parametrize("engine, tab", CHUNKED)
def test_a_chunked_run_names_the_frames_of_each_pass_and_restarts_the_steps(engine, tab, studio, clip):
    control = Recorder()
    run(studio, tab, make_request(engine, tab, clip, frames=FRAMES, chunk_size=3), control)
    assert control.texts == expected_texts(engine, tab, FRAMES, ["frames 1–3 of 5", "frames 4–5 of 5"])
    assert_bar_rises(control.shown)


# ---------------------------------------------------------------- Stop says where
@pytest.mark.parametrize("engine, tab", CHUNKED[:1])
def test_stopped_message_names_the_last_step_and_its_frames(engine, tab, studio, clip):
    request = make_request(engine, tab, clip, frames=FRAMES, chunk_size=3)
    step_texts = [t for t in expected_texts(engine, tab, FRAMES, ["frames 1–3 of 5", "frames 4–5 of 5"])
                  if " step " in f" {t}"]
    k = step_texts.index("frames 4–5 of 5 · step 2 of 3") + 1
    control = Recorder(cancel_after_step=k)
    with pytest.raises(Cancelled):
        run(studio, tab, request, control)
    assert control.stopped_message() == "Stopped after step 2 of 3 (frames 4–5 of 5)."
    assert control.steps_seen == k + 1  # the step after the cancel raised: none ran after it

    waiting = JobControl()
    waiting.cancel()  # stopped in the queue: nothing ran
    with pytest.raises(Cancelled):
        run(studio, tab, request, waiting)
    assert waiting.stopped_message() == "Stopped before the first step."


def test_stopped_message_of_a_single_pass_and_of_control_maps():
    control = JobControl()
    control.step(12, 30)
    assert (control.last_text, control.stopped_message()) == ("step 12 of 30", "Stopped after step 12 of 30.")
    maps = JobControl()
    maps.frame_done("finding pose", 12, 64)
    assert maps.last_text == "finding pose in frame 12 of 64"
    assert maps.stopped_message() == "Stopped while finding pose, after frame 12 of 64."


def test_stages_share_one_rising_bar():
    shown = []
    control = JobControl(progress=lambda fraction, text: shown.append(round(fraction, 6)))
    with control.within(0.0, 0.5):
        control.report(0.2, "downloading")  # a fifth of the first half
        with control.within(0.5, 1.0):
            control.report(0.5, "half of the second quarter")
        control.report(0.0, "downloading the next file")  # it starts at 0 again: the bar stays
    control.report(0.9, "nearly done")
    assert shown == [0.1, 0.375, 0.375, 0.9]


# ---------------------------------------------------------------- what a job will cost
def tiny_text2video(engine=None, **more) -> Text2VideoRequest:
    engine = engine or engines.default("text2video")
    return Text2VideoRequest(**{**dict(prompt="a cat", engine=engine.name, num_frames=engine.rules.frames.nearest(4),
                                       width=SIDE, height=SIDE, steps=STEPS, seed=1), **more})


def test_estimate_is_the_prior_then_scaled_from_a_job_measured_here(tmp_path):
    studio = Studio(Settings.from_env(preset="tiny", device="cpu", outputs_dir=str(tmp_path)))
    request = tiny_text2video()
    prior = studio.estimate(request)
    assert isinstance(prior, Estimate) and prior.seconds > 0 and prior.measured is False
    others = [e for e in engines.for_tab("text2video") if e is not engines.default("text2video")]
    studio.text2video(request)  # loads and warms up
    took = []
    for _ in range(3):
        started = time.monotonic()
        studio.text2video(request)
        took.append(time.monotonic() - started)
    estimate, typical = studio.estimate(request), sorted(took)[1]
    assert estimate.measured is True
    assert typical / 2 <= estimate.seconds <= typical * 2, (estimate, took)
    now, bigger = studio.estimate(request), studio.estimate(tiny_text2video(steps=2 * STEPS))
    assert bigger.measured and now.seconds < bigger.seconds < 2 * now.seconds  # twice the steps, the same writing
    for other in others:  # no job of theirs yet: an estimate (this device's speed informs it), not "measured"
        assert studio.estimate(tiny_text2video(other)).measured is False


def test_estimate_is_none_for_what_is_no_valid_request_and_fast(studio, clip, tmp_path):
    assert studio.estimate(tiny_text2video(prompt="")) is None
    assert studio.estimate(tiny_text2video(steps=10_000)) is None
    assert studio.estimate("not a request") is None
    window = VideoWindow(resolution=SIDE)
    assert studio.estimate(EditVideoRequest(video=str(tmp_path / "gone.mp4"), prompt="snow", window=window)) is None
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all" * 100)
    assert studio.estimate(EditVideoRequest(video=str(garbage), prompt="snow", window=window)) is None
    assert studio.estimate(EditVideoRequest(video=clip, prompt="snow", window=VideoWindow(start=5.0))) is None
    requests = [tiny_text2video(), EditVideoRequest(video=clip, prompt="snow", window=window),
                ControlVideoRequest(kind="pose", video=clip, prompt="a dancer", window=window)]
    for request in requests:
        assert studio.estimate(request).seconds > 0  # the first probes the clip's header
    started = time.perf_counter()
    for _ in range(20):
        for request in requests:
            studio.estimate(request)
    assert (time.perf_counter() - started) / 60 < 0.05


def test_estimate_imports_no_torch(clip):
    """The page shows an estimate before any job ran: it must not wait for torch to load."""
    script = f"""
import sys
from modules.settings import Settings
from modules.studio import Studio
from modules.request_types import ControlVideoRequest, Text2VideoRequest, VideoWindow
studio = Studio(Settings.from_env(preset="tiny"))
assert studio.estimate(Text2VideoRequest(prompt="a cat", num_frames=4, width=64, height=64)).seconds > 0
assert studio.estimate(ControlVideoRequest(kind="depth", video={clip!r}, prompt="a cat",
                                           window=VideoWindow(resolution=64))).seconds > 0
assert "torch" not in sys.modules, "torch was imported"
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


# ---------------------------------------------------------------- a Preview's maps serve Generate
def test_control_maps_of_a_preview_are_reused_by_generate(tmp_path, clip, monkeypatch):
    studio = Studio(Settings.from_env(preset="tiny", device="cpu", outputs_dir=str(tmp_path)))
    detections = []
    detect = annotators.control_maps

    def counting(kind, frames, **options):
        detections.append(kind)
        return detect(kind, frames, **options)

    monkeypatch.setattr(annotators, "control_maps", counting)
    request = ControlVideoRequest(kind="edge", video=clip, prompt="a golden box", steps=2, seed=1,
                                  window=VideoWindow(resolution=SIDE, fps=4), canny_low=50, canny_high=150)
    preview = studio.control_preview(request)
    other_maps = replace(request, canny_high=200)
    assert studio.estimate(request).seconds < studio.estimate(other_maps).seconds  # no detection left to do
    result = studio.control_video(request)
    assert len(detections) == 1
    assert json.loads(Path(result.params).read_text())["control_maps"] == "reused from the preview"
    np.testing.assert_array_equal(video_io.read_video(result.control).frames,
                                  video_io.read_video(preview.video).frames)
    studio.control_video(other_maps)  # another option: detected again
    assert len(detections) == 2


# ---------------------------------------------------------------- what the workers are doing
def test_activity_lists_the_running_job_with_its_progress(studio):
    request = tiny_text2video()
    seen = []
    control = JobControl(progress=lambda fraction, text: seen.append(studio.activity()))
    assert studio.activity() == []
    studio.text2video(request, control)
    mode = engines.default("text2video").mode("text2video")
    assert [mode, control.last_step.text()] in [[m, t] for entries in seen for m, t in entries]
    assert all(len(entries) == 1 and entries[0][0] == mode for entries in seen if entries)
    assert studio.activity() == []


def test_the_control_map_cache_is_bounded_in_entries_and_bytes():
    from modules.studio import LastUsed

    cache = LastUsed(4, lambda entry: entry[0].nbytes, 250)
    for key in range(5):
        cache.put(key, (np.zeros(100, np.uint8), "the preview"))
    assert cache.get(0) is None and cache.get(4) is not None and cache.get(2) is None  # 250 bytes: the last two
    cache.put("large", (np.zeros(1000, np.uint8), "the preview"))
    assert cache.get("large") is not None and cache.get(4) is None  # the newest stays, alone


def test_a_job_in_another_process_sends_where_it_stands_and_its_stop_note():
    """A ZeroGPU child's or a Ray replica's reports carry the step, the frames and the job's own Stop note, so
    that the page's Stop message there reads as locally ("... saved as X: you can run it.")."""
    from modules.job_control import TRAINING, Place

    there, here = JobControl(), JobControl()
    sent = []
    there.progress = lambda fraction, text: sent.append(there.report_message(fraction, text))
    there.stopped_note = "The model as trained until the stop is saved as box: you can run it."
    there.step(3, 40, Place(step=3, steps=40, part=TRAINING), kept=True)
    for message in sent:
        assert message[0] == "progress"
        here.publish(*message[1:])
    assert here.stopped_message() == ("Stopped after step 3 of 40 (training). The model as trained until the stop "
                                      "is saved as box: you can run it.")
    assert here.last_text == there.last_text and here.last_fraction == there.last_fraction
