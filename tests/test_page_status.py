"""What the page says about a tab's job (modules/ui/runs.py) and the components that never fail before our code."""

import logging
import re
import types

import gradio as gr
import pytest

from modules.errors import UserError
from modules.job_control import JobControl
from modules.ui import common, running, runs
from modules.ui.queue import line_sentence


@pytest.fixture(autouse=True)
def fresh_runs(monkeypatch):
    monkeypatch.setattr(runs, "_runs", type(runs._runs)())


class Pool(list):
    """A worker pool stand-in: its length is the number of workers."""


def studio_with(workers: int, job_s: float, running: list[tuple[str, str]] = ()):
    pool = Pool(types.SimpleNamespace(busy_log=[(0.0, job_s)]) for _ in range(workers))
    pool.workers = list(pool)
    return types.SimpleNamespace(pool=pool, activity=lambda: list(running))


def test_the_line_in_words():
    demo = types.SimpleNamespace()  # no queue yet: nobody waits
    assert line_sentence(demo, studio_with(1, 20.0)) == "Starting…"
    one = [("depth2video", "step 3 of 20")]
    assert line_sentence(demo, studio_with(1, 20.0, one)) == "Waiting for the worker: 1 job ahead of yours, about 20 s."
    assert line_sentence(demo, studio_with(2, 20.0, one)) == "Starting…"  # the other worker is free
    two = [*one, ("text2video", "step 1 of 4")]
    assert line_sentence(demo, studio_with(2, 20.0, two)) == "Waiting for the worker: 2 jobs ahead of yours, about 20 s."


def test_the_busy_line_names_each_job_by_its_tab():
    studio = studio_with(2, 20.0, [("depth2video", "frames 9–15 of 64 · step 12 of 30"), ("text2video", "step 1 of 4")])
    studio.manager = types.SimpleNamespace(loading=None)
    assert common.status_summary(studio) == ("**Busy:** a Depth job, frames 9–15 of 64 · step 12 of 30; "
                                             "a Text to video job, step 1 of 4. A new job waits for its turn.")
    free = studio_with(1, 1.0)
    free.manager = types.SimpleNamespace(loading=None)
    assert common.status_summary(free) == "**Ready:** the worker is free."
    free.manager.loading = "the base model"
    assert common.status_summary(free) == "**Ready:** loading the base model."


def test_an_outcome_is_said_until_the_next_run():
    run = runs.begin("Edge", "s1")
    assert runs.explain("Edge", "s1") is None  # refused before it ran, by nothing known: the page keeps its text
    runs.started("Edge")  # session "" outside an event: a record of its own
    runs.failed("Edge", "Please enter a prompt.")
    assert runs.explain("Edge", "") == "Please enter a prompt."
    runs.begin("Edge", "")  # the next run forgets it
    assert runs.explain("Edge", "") is None
    assert run is runs.current("Edge", "s1")


def test_stop_says_where_the_job_was():
    runs.begin("Text to video", "")
    runs.finished("Text to video", "Done.")  # a result is in the players
    control = JobControl()
    run = runs.started("Text to video", control)
    control.step(3, 10)
    runs.press_stop("Text to video", "")
    text = runs.explain("Text to video", "")
    assert re.search(r"Stopped after step 3 of 10", text) and "last finished result is kept" in text
    runs.begin("Video editing", "")
    runs.press_stop("Video editing", "")
    assert runs.explain("Video editing", "").startswith("**Stopped before it started.**")
    assert run.stop_pressed


def test_stop_claims_no_kept_result_where_there_was_none():
    runs.begin("Depth", "fresh")
    runs.press_stop("Depth", "fresh")
    text = runs.explain("Depth", "fresh")
    assert "last finished result" not in text and "ready for the next job" in text


def test_errors_go_to_the_status_box_invisibly_and_to_the_log(caplog):
    runs.begin("Pose", "")
    with caplog.at_level(logging.WARNING, logger="modules"), pytest.raises(gr.Error) as raised:
        with running.gradio_errors(tab="Pose"):
            raise UserError("The video is empty.")
    assert raised.value.message == "The video is empty." and raised.value.visible is False
    said = runs.explain("Pose", "")
    reference = re.search(r"reference ([0-9a-f]{8})", said).group(1)
    assert any(reference in r.getMessage() and "The video is empty." in r.getMessage() for r in caplog.records)
    with pytest.raises(gr.Error) as raised:  # without a tab (the API-only compare): a visible sentence
        with running.gradio_errors():
            raise UserError("Nope.")
    assert raised.value.visible is True


def test_input_components_hand_on_what_was_sent():
    """Our components leave every check to the request's validation, so each answer is the app's sentence."""
    from gradio.data_classes import FileData, ImageData

    assert common.Image(type="filepath").preprocess(ImageData(path="/up/a.png")) == "/up/a.png"
    assert common.Video().preprocess(FileData(path="/up/a.mp4")) == "/up/a.mp4"
    assert common.File(type="filepath").preprocess(FileData(path="/up/p.json")) == "/up/p.json"
    assert common.Image(type="filepath").preprocess(None) is None
    assert common.Dropdown(choices=["a", "b"]).preprocess("ANIMATEDIFF") == "ANIMATEDIFF"
    assert common.CheckboxGroup(choices=["a"]).preprocess(None) is None


def test_done_text_says_what_was_made_and_adjusted():
    result = types.SimpleNamespace(num_frames=8, width=512, height=320, fps=4.0, seed=7,
                                   notes=["The size was lowered to 512x320 to fit this server."])
    text = running.done_text(result, 12.34)
    assert text.startswith("**Done in 12.3 s:** 8 frames of 512×320 at 4 fps, seed 7.")
    assert "Notes:** The size was lowered" in text


def test_the_estimate_suggests_fast_where_a_job_takes_minutes():
    from modules.request_types import Text2VideoRequest
    from modules.studio import Estimate

    def estimate(request):
        return Estimate(seconds=20.0 if request.fast else 300.0, measured=not request.fast)

    studio = types.SimpleNamespace(estimate=estimate)
    text = running.estimate_text(studio, Text2VideoRequest(prompt="a cat"))
    assert text == "About **5 min** (measured here). Tick **Fast** for about 20 s."
    assert running.estimate_text(studio, Text2VideoRequest(prompt="a cat", fast=True)) == "About **20 s** (estimate)."
    assert running.estimate_text(types.SimpleNamespace(estimate=lambda request: None), Text2VideoRequest(prompt="")) == ""
