"""The Tune tab's jobs through Studio (tiny preset): tune on a clip, run the tuned model with new prompts,
list it, stop a training run, share it on the Hub stand-in and run it by repo id from a fresh cache.

The engine contract tests (test_engine_contract.py) cover seeds, progress, Stop within a step, the
bfloat16 path and params.json for both tabs; these cover what is particular to tuned models.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from modules import video_io
from modules.errors import UserError
from modules.job_control import Cancelled, JobControl
from modules.request_types import Text2VideoRequest, VideoWindow
from modules.tune_requests import RunTunedRequest, TuneRequest, UploadTunedRequest
from modules.settings import Settings
from modules.studio import Studio
from tests.hub_standin.server import HubStandIn, hub_env

SIDE = 64
TOKEN = "hf_tune_tab_secret_token_42"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> str:
    """2 s of an orange box sliding right, 6 fps."""
    frames = np.zeros((12, SIDE, SIDE, 3), np.uint8)
    for i in range(len(frames)):
        frames[i, 20:44, 2 + 4 * i: 18 + 4 * i] = (230, 120, 30)
    return str(video_io.write_mp4(frames, tmp_path_factory.mktemp("clip") / "box.mp4", 6))


@pytest.fixture(scope="module")
def studio(tmp_path_factory) -> Studio:
    root = tmp_path_factory.mktemp("tune")
    return Studio(Settings.from_env(preset="tiny", device="cpu", dtype="float32", outputs_dir=str(root / "outputs"),
                                    tuned_dir=str(root / "tuned")))


def tune_request(clip: str, **more) -> TuneRequest:
    values = dict(video=clip, prompt="an orange box slides", steps=3, learning_rate=1e-3, sample_steps=2, num_frames=4,
                  seed=5, window=VideoWindow(resolution=SIDE))
    values.update(more)
    return TuneRequest(**values)


@pytest.fixture(scope="module")
def tuned(studio, clip):
    return studio.tune_video(tune_request(clip, name="box slides"))


def frames_of(path) -> np.ndarray:
    return video_io.read_video(path).frames


def test_tuning_keeps_the_model_its_card_source_and_sample_and_lists_it(studio, tuned):
    assert tuned.model == "box-slides"  # spaces become '-': also a valid Hub repo name
    folder = Path(tuned.folder)
    assert folder.parent == Path(studio.settings.tuned_dir)
    assert {p.name for p in folder.iterdir()} == {"tune_a_video.safetensors", "README.md", "source.safetensors",
                                                  "sample.gif", "tuned.json"}
    card = (folder / "README.md").read_text()
    assert "base_model: dreamlike-art/dreamlike-photoreal-2.0" in card and "training_steps: 3" in card
    assert "- text-to-video" in card and "- tune-a-video" in card and "license: creativeml-openrail-m" in card
    listed = studio.list_tuned()
    assert listed[0]["name"] == "box-slides" and listed[0]["training_prompt"] == "an orange box slides"
    assert (listed[0]["frames"], listed[0]["width"], listed[0]["height"]) == (4, SIDE, SIDE)
    assert tuned.video.num_frames == 4 and frames_of(tuned.video.video).shape == (4, SIDE, SIDE, 3)
    record = json.loads(Path(tuned.video.params).read_text())
    assert record["mode"] == "tune" and record["tuned_model"] == "box-slides"
    # The outputs' sweep never looks at the tuned models.
    assert Path(studio.settings.tuned_dir) not in Path(tuned.video.video).parents


def test_a_taken_name_gets_a_number_and_a_note(studio, clip, tuned):
    again = studio.tune_video(tune_request(clip, name="box-slides", steps=1))
    assert again.model == "box-slides-2"
    assert "A model called box-slides exists already, so this one is called box-slides-2." in again.video.notes


def test_run_tuned_makes_the_frames_asked_with_and_without_inversion(studio, tuned):
    with_inversion = studio.run_tuned(RunTunedRequest(tuned=tuned.model, prompt="a blue box slides", steps=2,
                                                      num_frames=3, seed=1))
    assert with_inversion.num_frames == 3 and frames_of(with_inversion.video).shape == (3, SIDE, SIDE, 3)
    # Inverted latents are a deterministic start: the seed changes nothing there, and everything from noise.
    other_seed = studio.run_tuned(RunTunedRequest(tuned=tuned.model, prompt="a blue box slides", steps=2,
                                                  num_frames=3, seed=2))
    assert np.array_equal(frames_of(other_seed.video), frames_of(with_inversion.video))
    from_noise = studio.run_tuned(RunTunedRequest(tuned=tuned.model, prompt="a blue box slides", steps=2,
                                                  num_frames=6, seed=1, inversion=False))
    assert from_noise.num_frames == 6 and not np.array_equal(frames_of(from_noise.video)[:3],
                                                               frames_of(with_inversion.video))
    record = json.loads(Path(from_noise.params).read_text())
    assert record["mode"] == "tuned" and record["request"]["model"] == "dreamlike-art/dreamlike-photoreal-2.0"
    assert any("has 4 frames, fewer than the 6 asked for" in note for note in from_noise.notes)
    assert from_noise.fps == pytest.approx(record["fps"])


def test_a_normal_job_after_tuning_and_running_gives_the_same_frames_as_before(tmp_path, clip):
    studio = Studio(Settings.from_env(preset="tiny", device="cpu", dtype="float32", outputs_dir=str(tmp_path / "o"),
                                      tuned_dir=str(tmp_path / "t")))
    request = Text2VideoRequest(prompt="a red ball", num_frames=4, width=SIDE, height=SIDE, steps=3, seed=3,
                                chunk_size=4)
    before = frames_of(studio.text2video(request).video)
    made = studio.tune_video(tune_request(clip, steps=2))
    studio.run_tuned(RunTunedRequest(tuned=made.model, prompt="a blue box", steps=2))
    assert np.array_equal(frames_of(studio.text2video(request).video), before)


def test_stop_keeps_the_model_trained_so_far_and_says_so(studio, clip):
    control = JobControl()
    seen = []

    def progress(fraction, text):
        seen.append(text)
        if text.startswith("training · step 2 of"):
            control.cancel()

    control.progress = progress
    with pytest.raises(Cancelled):
        studio.tune_video(tune_request(clip, name="stopped", steps=50), control)
    first = next(text for text in seen if text.startswith("training"))
    assert first.startswith("training · step 1 of 50 · loss ") and first.endswith(" left"), first
    # The Stop came during step 3, whose update is kept: the message says what the saved model is.
    assert control.stopped_message() == ("Stopped after step 3 of 50 (training). The model as trained until the stop "
                                         "is saved as stopped: you can run it.")
    assert "training_steps: 3" in (Path(studio.settings.tuned_dir) / "stopped" / "README.md").read_text()
    assert "stopped" in [model["name"] for model in studio.list_tuned()]
    assert studio.run_tuned(RunTunedRequest(tuned="stopped", prompt="a box", steps=1)).num_frames == 4


def test_a_stop_heard_before_a_remote_worker_saves_keeps_its_whole_model(studio, clip, monkeypatch):
    """On Ray the app hears of a Stop before the replica does: the replica trains on to its next step, saves and
    ends after the app's `Cancelled`. Here a thread is that replica (its own control, told of the Stop 0.3 s
    late). The app waits for the job's end before deciding what to keep: the model stays whole (info, source)."""
    import threading
    import time

    real_run = studio.runner.pool.run

    def remote_run(job, control, **options):
        replica = JobControl(progress=control.progress)

        def late_stop():
            control.cancel_event.wait()
            time.sleep(0.3)
            replica.cancel()

        def run():
            with contextlib.suppress(Cancelled):
                real_run(job, replica, **options)

        threading.Thread(target=late_stop, daemon=True).start()
        threading.Thread(target=run, daemon=True).start()
        control.reached_worker = True
        control.cancel_event.wait()
        raise Cancelled()

    control = JobControl()
    control.progress = lambda fraction, text: control.cancel() if text.startswith("training · step 1 of") else None
    monkeypatch.setattr(studio.runner.pool, "run", remote_run)
    with pytest.raises(Cancelled):
        studio.tune_video(tune_request(clip, name="remote-stop", steps=200), control)
    folder = Path(studio.settings.tuned_dir) / "remote-stop"
    assert {p.name for p in folder.iterdir()} == {"tune_a_video.safetensors", "README.md", "source.safetensors",
                                                  "tuned.json"}
    monkeypatch.undo()
    listed = next(model for model in studio.list_tuned() if model["name"] == "remote-stop")
    assert listed["frames"] == 4 and listed["fps"] and 1 <= listed["steps"] < 200, listed
    assert studio.run_tuned(RunTunedRequest(tuned="remote-stop", prompt="a box", steps=1)).num_frames == 4


def test_a_stop_before_the_first_step_leaves_no_model(studio, clip):
    control = JobControl()
    control.cancel()
    with pytest.raises(Cancelled):
        studio.tune_video(tune_request(clip, name="never"), control)
    assert not (Path(studio.settings.tuned_dir) / "never").exists()
    assert "never" not in [model["name"] for model in studio.list_tuned()]


def test_a_worker_that_cannot_see_the_tuned_models_folder_says_to_share_it(studio, clip, monkeypatch, tmp_path):
    """A Ray replica on another machine sees none of the app's folders: training says to share T2VZ_TUNED_DIR."""
    run = studio.pool.run

    def on_another_machine(job, control, **options):
        (Path(studio.settings.tuned_dir) / "elsewhere").rename(tmp_path / "elsewhere")  # not there for this worker
        return run(job, control, **options)

    monkeypatch.setattr(studio.pool, "run", on_another_machine)
    with pytest.raises(UserError, match="This worker can't see the tuned-models folder .*T2VZ_TUNED_DIR must be one "
                                        "folder that every host mounts at the same path"):
        studio.tune_video(tune_request(clip, name="elsewhere", steps=1))
    assert "elsewhere" not in [model["name"] for model in studio.list_tuned()]


def test_a_short_clip_is_tuned_on_what_it_has_with_a_note(studio, clip):
    made = studio.tune_video(tune_request(clip, steps=1, num_frames=16, stride=2))  # 6 of the 12 frames
    assert made.video.num_frames == 16
    assert any(note.startswith("The clip has 6 frames, fewer than the 16 asked for, so some frames repeat")
               for note in made.video.notes)


@pytest.mark.parametrize("request_, message", [
    (RunTunedRequest(tuned="no-such-model", prompt="a box"), "There is no tuned model called no-such-model."),
    (RunTunedRequest(tuned="../etc", prompt="a box"), "is neither a model tuned here nor a Hub repo id"),
    (RunTunedRequest(tuned="box-slides", prompt=""), "Please enter a prompt."),
    (RunTunedRequest(tuned="box-slides", prompt="a box", model="some/other-base"), "is not offered here"),
])
def test_run_tuned_answers_bad_input_in_a_sentence(studio, tuned, request_, message):
    with pytest.raises(UserError, match=message.replace(".", r"\.").replace("(", r"\(")):
        studio.run_tuned(request_)


def test_a_damaged_model_or_a_base_not_offered_is_a_sentence(studio, clip, tmp_path):
    made = studio.tune_video(tune_request(clip, name="damaged", steps=1))
    (Path(made.folder) / "source.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(UserError, match="The tuned model damaged is incomplete or damaged"):
        studio.run_tuned(RunTunedRequest(tuned="damaged", prompt="a box", steps=1))
    narrow = Studio(replace(studio.settings, base_models=("stable-diffusion-v1-5/stable-diffusion-v1-5",)))
    with pytest.raises(UserError, match="was tuned on dreamlike-art/dreamlike-photoreal-2.0, which this server"):
        narrow.run_tuned(RunTunedRequest(tuned="box-slides", prompt="a box", steps=1))


def test_upload_to_the_hub_then_run_by_repo_id_from_a_fresh_cache(studio, tuned, tmp_path, caplog):
    caplog.set_level("DEBUG")
    with HubStandIn(tokens={TOKEN: "alice"}) as hub:
        with hub_env(hub.url, tmp_path / "cache-1"):
            repo_id = studio.upload_tuned(UploadTunedRequest(tuned=tuned.model, token=TOKEN))
        assert repo_id == "alice/box-slides" and hub.is_private(repo_id)
        with hub_env(hub.url, tmp_path / "fresh-cache"), pytest.MonkeyPatch.context() as env:
            env.setenv("HF_TOKEN", TOKEN)
            result = studio.run_tuned(RunTunedRequest(tuned=repo_id, prompt="a green box slides", steps=2))
            assert result.num_frames == 4
            assert (tmp_path / "fresh-cache") in next((tmp_path / "fresh-cache").rglob("tune_a_video.safetensors")).parents
        record = json.loads(Path(result.params).read_text())
        assert record["tuned_model"] == repo_id
    assert TOKEN not in caplog.text and TOKEN not in repr(UploadTunedRequest(tuned="x", token=TOKEN))
    assert not any(TOKEN in Path(p).read_text() for p in (result.params, tuned.video.params))


def test_upload_without_a_token_says_how_to_sign_in(studio, tuned, tmp_path):
    with HubStandIn(tokens={TOKEN: "alice"}) as hub, hub_env(hub.url, tmp_path / "cache"):
        os.environ.pop("HF_TOKEN", None)
        with pytest.raises(UserError, match="Sign in"):
            studio.upload_tuned(UploadTunedRequest(tuned=tuned.model))
    with pytest.raises(UserError, match="is a Hub repo already"):
        studio.upload_tuned(UploadTunedRequest(tuned="alice/box-slides"))


def test_the_estimate_covers_training_and_tuned_runs_without_fetching(studio, clip, tuned):
    """The page's estimate: a prior before any job, then scaled from the jobs measured here; no estimate (and no
    download) for a Hub model not fetched yet."""
    short, long = (studio.estimate(tune_request(clip, steps=steps)) for steps in (10, 100))
    assert short is not None and long is not None and long.seconds > 3 * short.seconds
    assert short.measured  # this module's tuning ran first
    run = studio.estimate(RunTunedRequest(tuned=tuned.model, prompt="a box", steps=10))
    assert run is not None and run.seconds > 0
    assert studio.estimate(RunTunedRequest(tuned="someone/not-fetched", prompt="a box")) is None


# ---------------------------------------------------------------------------------------------- the authors' recipe


@pytest.fixture(scope="module")
def clip_25fps(tmp_path_factory) -> str:
    """4 s at 25 fps: a box that moves and brightens every frame, so each frame differs from the others."""
    frames = np.zeros((100, SIDE, SIDE, 3), np.uint8)
    for i in range(len(frames)):
        frames[i, 20:44, i % 48: i % 48 + 16] = (100 + i, 120, 30)
    return str(video_io.write_mp4(frames, tmp_path_factory.mktemp("clip25") / "box25.mp4", 25))


@pytest.mark.parametrize("stride, start", [(1, 0.0), (3, 1.0)])
def test_tuning_takes_consecutive_frames_at_the_stride_as_its_authors_do(studio, clip_25fps, stride, start):
    """showlab/Tune-A-Video samples `list(range(0, len(vr), sample_frame_rate))[sample_start_idx:][:n_sample_frames]`:
    frames in a row at the source's own rate, `stride` apart, from the start; the model plays them at fps / stride."""
    from modules.engines.tune_a_video.weights import load_source

    made = studio.tune_video(tune_request(clip_25fps, name=f"stride-{stride}", steps=1, sample_steps=1, num_frames=5,
                                          stride=stride, window=VideoWindow(start=start, resolution=SIDE)))
    record = json.loads(Path(made.video.params).read_text())
    first = round(start * 25)
    assert record["source_frames"] == [first + stride * k for k in range(5)] and record["stride"] == stride
    assert record["request"]["stride"] == stride
    assert made.video.fps == pytest.approx(25 / stride) and record["fps"] == pytest.approx(25 / stride)
    # The model keeps exactly those frames of the file, at that rate: its sample and its runs play at it.
    whole = video_io.read_video(clip_25fps, long_side=SIDE, multiple=16).frames
    source, fps = load_source(made.folder)
    assert np.array_equal(source, whole[record["source_frames"]]) and fps == pytest.approx(25 / stride)
    assert studio.run_tuned(RunTunedRequest(tuned=made.model, prompt="a box", steps=1, num_frames=3)).fps == \
        pytest.approx(25 / stride)


def test_stride_is_checked_in_a_sentence(studio, clip):
    with pytest.raises(UserError, match=r"Stride must be a whole number from 1 to 16 \(source frames between"):
        studio.tune_video(tune_request(clip, stride=0))


def test_the_tune_tab_says_which_frames_and_seconds_are_used(studio, clip_25fps):
    from modules.ui.tune import frames_used

    settings = studio.settings
    assert frames_used(settings, clip_25fps, 0, 0, 8, 1) == ("Frames 0, 1, …, 7 of the clip: 0.00–0.28 s at 25 fps "
                                                             "(the model plays them at 25 fps).")
    assert frames_used(settings, clip_25fps, 1, 0, 3, 2).startswith("Frames 25, 27, 29 of the clip: 1.00–1.16 s")
    assert frames_used(settings, clip_25fps, 3.9, 0, 8, 2).endswith("Only 2 of the 8 frames are in the clip, so some "
                                                                   "repeat.")
    assert frames_used(settings, None, 0, 0, 8, 1) == ""


def applied_weights(monkeypatch) -> list[dict]:
    """Spy on the engine's `applied_to`: the query and temporal weights the UNet runs with, per job."""
    from modules.engines.tune_a_video import weights

    seen, applied_to = [], weights.applied_to

    def spy(unet, parameters, device=None):
        with applied_to(unet, parameters, device) as layers:
            seen.append(layers.state_dict())
            yield layers

    monkeypatch.setattr(weights, "applied_to", contextlib.contextmanager(spy))
    return seen


def test_on_another_base_the_tuning_changes_are_added_to_its_weights(studio, tuned, monkeypatch):
    """Queries from the chosen base plus what the tuning changed, keys from the chosen base: not one model's queries
    against another's keys. Temporal layers, which no base has, come as tuned."""
    from modules.engines.tune_a_video.attention import query_weights
    from modules.engines.tune_a_video.weights import load_tuned

    tuned_on, other = studio.settings.base_models[:2]
    trained, _ = load_tuned(tuned.folder)
    seen = applied_weights(monkeypatch)
    result = studio.run_tuned(RunTunedRequest(tuned=tuned.model, prompt="a box", steps=1, model=other))
    assert (f"box-slides was tuned on {tuned_on}, run on {other}: the tuning's changes were added to {other}'s "
            "weights.") in result.notes
    assert json.loads(Path(result.params).read_text())["request"]["tuned_on"] == tuned_on
    tuning_base, base = (query_weights(studio.manager.components(name).unet) for name in (tuned_on, other))
    assert not torch.equal(tuning_base[next(iter(base))], base[next(iter(base))])  # two different bases
    applied = seen[-1]
    assert set(applied) == set(trained) and base.keys() < trained.keys()
    for key, value in trained.items():
        expected = base[key] + (value - tuning_base[key]) if key in base else value
        assert torch.equal(applied[key], expected), key


def test_on_its_own_base_a_tuned_model_runs_its_weights_as_they_are(studio, tuned, monkeypatch):
    from modules.engines.tune_a_video.weights import load_tuned

    trained, _ = load_tuned(tuned.folder)
    seen = applied_weights(monkeypatch)
    runs = [studio.run_tuned(RunTunedRequest(tuned=tuned.model, prompt="a box", steps=2, model=model))
            for model in ("", studio.settings.base_models[0])]
    assert all(set(applied) == set(trained) and all(torch.equal(applied[k], v) for k, v in trained.items())
               for applied in seen)
    assert np.array_equal(frames_of(runs[0].video), frames_of(runs[1].video))
    assert not any("was tuned on" in note for run in runs for note in run.notes)


def test_a_numbered_copy_of_a_long_name_is_a_name_that_can_be_run(tmp_path):
    """The 96-character cut of a name may end in '-': its copy is 'name-2', never 'name--2' (which no request
    accepts, so the model could not be run by name)."""
    from modules.tune_requests import MAX_TUNED_NAME, RunTunedRequest
    from modules.settings import Settings
    from modules.tuned_models import TunedModels

    models = TunedModels(tmp_path)
    wanted = "a" * (MAX_TUNED_NAME - 3) + "-bb"  # the copy's cut lands just after the '-'
    first, _ = models.new_folder(wanted)
    second, _ = models.new_folder(wanted)
    assert first == wanted and len(second) <= MAX_TUNED_NAME and "--" not in second and second.endswith("-2")
    settings = Settings.from_env(preset="tiny", outputs_dir=str(tmp_path))
    RunTunedRequest(tuned=second, prompt="a clip").validate(settings)  # a name a request takes


def test_the_list_shows_the_steps_trained_not_the_steps_asked(tmp_path):
    """A run of 1000 steps stopped at 17 saved its model at 17 (its card says so): the list says 17."""
    from modules.engines.tune_a_video.weights import model_card
    from modules.tuned_models import INFO_NAME, TunedModels

    models = TunedModels(tmp_path, files=("weights.bin",))
    name, folder = models.new_folder("stopped-early")
    models.write_info(folder, {"base_model": "b", "training_prompt": "a cat", "steps": 1000, "frames": 8})
    (folder / "weights.bin").write_bytes(b"0")
    (folder / "README.md").write_text(model_card(base_model="b", training_prompt="a cat", steps=17,
                                                 learning_rate=3e-5), encoding="utf-8")
    assert (folder / INFO_NAME).is_file()
    [listed] = [model.summary() for model in models.list()]
    assert listed["steps"] == 17 and listed["frames"] == 8 and listed["name"] == name
