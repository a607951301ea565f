"""Sharing tuned models (modules/engines/tune_a_video/sharing.py) against the local Hub stand-in, offline.

A tuned model made with `save_tuned` from the tiny UNet's video layers, plus its sample GIF and
source clip, is pushed with huggingface_hub's own upload calls (whoami, create_repo,
upload_folder) to the stand-in, then fetched by repo id into a fresh cache and read back with
`load_tuned`. Each failure is a UserError sentence; the token is in no log line nor error.
"""

from __future__ import annotations

import io
import logging
import traceback

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from modules import tiny
from modules.errors import UserError
from modules.engines.tune_a_video.attention import add_video_layers
from modules.engines.tune_a_video.files import CARD_NAME, SAMPLE_NAME, SOURCE_NAME, WEIGHTS_NAME
from modules.engines.tune_a_video.sharing import (
    TUNED_FILES,
    SharingError,
    check_repo_id,
    download_tuned,
    is_repo_id,
    upload_tuned,
)
from modules.engines.tune_a_video.weights import FORMAT, load_tuned, save_tuned
from tests.hub_standin.server import HubStandIn, hub_env

TOKEN = "hf_alice_secret_token_0123456789"  # alice: write, member of studio-org
BOB = "hf_bob_secret_token_abcdefghij"  # bob: write
READ = "hf_alice_read_token_zyxwvu"  # alice, read-only
PLAIN = "someone/plain-model"  # a public repo that is no tuned model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def parameters():
    """Tune-A-Video's trained parameters of the tiny UNet (randomised so no tensor is all zeros)."""
    unet = tiny.build_unet(seed=1)
    layers = add_video_layers(unet)
    state = layers.state_dict()
    layers.remove()
    generator = torch.Generator().manual_seed(0)
    return {key: torch.randn(value.shape, generator=generator) for key, value in state.items()}


def make_tuned(folder, parameters):
    """A tuned model's folder as the Tune tab leaves it, plus files that are not the model's."""
    save_tuned(folder, parameters, base_model="stable-diffusion-v1-5/stable-diffusion-v1-5",
               training_prompt="a man is skiing", steps=3, learning_rate=3.5e-5)
    from PIL import Image

    frames = (np.random.default_rng(0).random((3, 32, 32, 3)) * 255).astype(np.uint8)
    images = [Image.fromarray(frame) for frame in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=125, loop=0)
    (folder / SAMPLE_NAME).write_bytes(buffer.getvalue())
    save_file({"frames": torch.from_numpy(frames)}, str(folder / SOURCE_NAME), metadata={"format": FORMAT, "fps": "8"})
    (folder / "tuned.json").write_text('{"base_model": "sd15"}')  # the app's own listing file
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "step-1.safetensors").write_bytes(b"not for the Hub")
    return folder


@pytest.fixture
def tuned(tmp_path, parameters):
    return make_tuned(tmp_path / "tuned-models" / "skiing", parameters)


@pytest.fixture
def hub(tmp_path):
    with HubStandIn(
        {PLAIN: {"config.json": b"{}", "README.md": b"# not tuned\n"}},
        tokens={TOKEN: "alice", BOB: "bob", READ: ("alice", "read")},
        orgs={"alice": ["studio-org"]},
    ) as server, hub_env(server.url, tmp_path / "hub-cache"):
        yield server


def same_model(a, b):
    (pa, ca), (pb, cb) = load_tuned(a), load_tuned(b)
    assert ca == cb and ca["base_model"] == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)
    for name in (SAMPLE_NAME, SOURCE_NAME):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_upload_then_download_from_a_fresh_cache_gives_the_same_model(hub, tuned, tmp_path):
    repo_id = upload_tuned(tuned, repo_name="tuned-skiing", token=TOKEN)
    assert repo_id == "alice/tuned-skiing"
    assert hub.is_private(repo_id)  # private by default
    # Only the model's files: not the app's listing file, nor checkpoints.
    assert set(hub.contents(repo_id)) == {".gitattributes", *TUNED_FILES}
    assert hub.history(repo_id)[-1][1] == "Upload Tune-A-Video model: a man is skiing"

    reports = []
    with hub_env(hub.url, tmp_path / "fresh-cache"):
        folder = download_tuned(repo_id, token=TOKEN, on_progress=lambda f, text: reports.append((f, text)))
        assert folder.name == hub.commit(repo_id) and (tmp_path / "fresh-cache") in folder.parents
        same_model(folder, tuned)
        assert hub.downloaded(repo_id) == set(TUNED_FILES)
        assert any(text.startswith(f"downloading {repo_id}: ") and " / " in text for _, text in reports), reports
        assert all(0.0 <= f <= 1.0 for f, _ in reports) and reports[-1] == (1.0, f"{repo_id} is ready")

        # Again: the cached copy, after asking the Hub (may this token read it? which commit is main?).
        hub.clear_log()
        assert download_tuned(repo_id, token=TOKEN) == folder
        assert hub.requests == [("GET", f"/api/models/{repo_id}"), ("GET", f"/api/models/{repo_id}/revision/main")]
        # A cached private model is no one else's: the Hub's refusal stands (huggingface_hub alone would fall
        # back to the cached copy).
        with pytest.raises(SharingError, match="it is private and the token you signed in with has no access"):
            download_tuned(repo_id, token=BOB)
        with pytest.raises(SharingError, match="it is private and you are not signed in"):
            download_tuned(repo_id)
        with pytest.raises(SharingError, match="The Hub rejected the token"):
            download_tuned(repo_id, token="hf_not_a_token_of_anyone")

        # Uploading the same model again changes nothing; a re-tuned model is a new commit that a run fetches.
        commits = len(hub.history(repo_id))
        assert upload_tuned(tuned, repo_name="tuned-skiing", token=TOKEN) == repo_id
        assert len(hub.history(repo_id)) == commits
        changed = {k: v + 1 for k, v in load_tuned(tuned)[0].items()}
        save_tuned(tuned, changed, base_model="stable-diffusion-v1-5/stable-diffusion-v1-5",
                   training_prompt="a man is skiing", steps=3, learning_rate=3.5e-5)
        upload_tuned(tuned, repo_name="tuned-skiing", token=TOKEN)
        assert len(hub.history(repo_id)) == commits + 1
        newer = download_tuned(repo_id, token=TOKEN)
        assert newer != folder and torch.equal(load_tuned(newer)[0][next(iter(changed))], next(iter(changed.values())))


def test_private_by_default_public_when_asked(hub, tuned):
    private = upload_tuned(tuned, repo_name="mine", token=TOKEN)
    with pytest.raises(SharingError, match=r"alice/mine is not on the Hub, or it is private and you are not signed in"):
        download_tuned(private)
    with pytest.raises(SharingError, match="the token you signed in with has no access to it"):
        download_tuned(private, token=BOB)
    assert download_tuned(private, token=READ).is_dir()  # a read token of the owner reads it

    public = upload_tuned(tuned, repo_name="for-everyone", token=TOKEN, private=False)
    assert not hub.is_private(public)
    same_model(download_tuned(public), tuned)


def test_upload_to_an_organisation(hub, tuned, monkeypatch):
    assert upload_tuned(tuned, repo_name="team-model", namespace="studio-org", token=TOKEN) == "studio-org/team-model"
    assert hub.is_private("studio-org/team-model")
    same_model(download_tuned("studio-org/team-model", token=TOKEN), tuned)
    with pytest.raises(SharingError, match="not a member of the organisation other-org: share to your own namespace"):
        upload_tuned(tuned, repo_name="team-model", namespace="other-org", token=TOKEN)

    # The Hub has the last word: an organisation the user is in but can't write to (a fine-grained token, a
    # read-only role) is refused by the Hub itself (403).
    from huggingface_hub import HfApi

    whoami = HfApi.whoami
    monkeypatch.setattr(HfApi, "whoami", lambda self, token=None, **kw: {**whoami(self, token=token),
                                                                        "orgs": [{"name": "other-org"}]})
    with pytest.raises(SharingError, match="The token has no write access to other-org"):
        upload_tuned(tuned, repo_name="team-model", namespace="other-org", token=TOKEN)
    assert hub.repo_ids() == {PLAIN, "studio-org/team-model"}


def test_the_token_comes_from_hf_token_when_not_given(hub, tuned, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert upload_tuned(tuned, repo_name="from-env") == "alice/from-env"
    same_model(download_tuned("alice/from-env"), tuned)  # private: HF_TOKEN reads it too
    assert upload_tuned(tuned, repo_name="from-field", token=f"  {BOB}\n") == "bob/from-field"  # the field wins


def test_every_upload_failure_is_a_sentence(hub, tuned, tmp_path, parameters):
    def fails(match, folder=tuned, **kwargs):
        with pytest.raises(SharingError, match=match) as error:
            upload_tuned(folder, **{"repo_name": "model", "token": TOKEN, **kwargs})
        assert isinstance(error.value, UserError)
        return str(error.value)

    assert fails("Sign in to share on the Hub: set HF_TOKEN", token=None).endswith("/settings/tokens.")
    fails("Sign in", token="   ")
    fails("The Hub rejected the token", token="hf_not_a_token_of_anyone")
    fails("This token can only read: sharing needs a write token", token=READ)
    fails("'bad name!' can't name a Hub repo", repo_name="bad name!")
    fails("'a--b' can't name a Hub repo", repo_name="a--b")
    fails("'some/where' is not a Hub user or organisation name", namespace="some/where")

    # Folders that are no tuned model.
    fails("There is no tuned model at", folder=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    fails(f"empty is not a tuned model: it has no {WEIGHTS_NAME} or {CARD_NAME}", folder=tmp_path / "empty")
    half = tmp_path / "half"
    save_tuned(half, parameters, base_model="b", training_prompt="p", steps=1, learning_rate=1e-5)
    (half / CARD_NAME).unlink()
    fails(f"half is not a tuned model: it has no {CARD_NAME}", folder=half)
    other = make_tuned(tmp_path / "other", parameters)
    save_file({"conv_in.weight": torch.zeros(1)}, str(other / WEIGHTS_NAME), metadata={"format": FORMAT})
    fails(f"other: {WEIGHTS_NAME} is not Tune-A-Video weights", folder=other)
    (other / WEIGHTS_NAME).write_bytes(b"garbage")
    fails(f"other: {WEIGHTS_NAME} can't be read", folder=other)

    with hub_env(hub.url, tmp_path / "offline-cache", offline=True):
        fails("HF_HUB_OFFLINE=1 is set, so nothing can be uploaded")
    assert hub.repo_ids() == {PLAIN}  # nothing was created by any of these
    assert not hub.records("create_repo")


def test_every_download_failure_is_a_sentence(hub, tuned, tmp_path):
    def fails(match, repo_id, **kwargs):
        with pytest.raises(SharingError, match=match) as error:
            download_tuned(repo_id, **kwargs)
        assert isinstance(error.value, UserError)

    for text in ("tuned-skiing", "a/b/c", "", " / x", "alice/", "alice/bad--name", "-alice/x"):
        fails(r'is not a Hugging Face model id: expected "owner/name"', text)
    assert not hub.requests  # checked before asking the Hub

    upload_tuned(tuned, repo_name="exists", token=TOKEN, private=False)
    fails("alice/nothing is not on the Hub, or it is private", "alice/nothing", token=TOKEN)
    fails("alice/exists has no revision 'v9': leave the revision empty", "alice/exists", revision="v9")
    fails("The Hub rejected the token", "alice/exists", token="hf_not_a_token_of_anyone")
    fails(f"{PLAIN} is not a Tune-A-Video model: it has no {WEIGHTS_NAME}", PLAIN)
    with hub_env(hub.url, tmp_path / "offline-cache", offline=True):
        fails("alice/exists is not downloaded and HF_HUB_OFFLINE=1 is set", "alice/exists")


def test_a_model_past_the_servers_cap_is_refused_before_any_byte_is_downloaded(hub, tuned, tmp_path):
    repo_id = upload_tuned(tuned, repo_name="heavy", token=TOKEN, private=False)
    weighs = sum(path.stat().st_size for path in tuned.iterdir() if path.name in TUNED_FILES)
    hub.clear_log()
    with hub_env(hub.url, tmp_path / "capped-cache"):
        with pytest.raises(SharingError, match=rf"{repo_id} is [0-9.]+ [KM]B to download, more than the 1.0 KB this "
                                               r"server takes for a tuned model \(T2VZ_MAX_TUNED_DOWNLOAD_MB\)"):
            download_tuned(repo_id, max_bytes=1000)
        assert not any("/resolve/" in path for _, path in hub.requests), hub.requests  # sized from the listing
        assert download_tuned(repo_id, max_bytes=weighs).is_dir()  # exactly the cap is taken


def test_a_stop_during_a_download_passes_through_and_a_retry_finishes(hub, tuned, tmp_path):
    from modules.job_control import Cancelled

    repo_id = upload_tuned(tuned, repo_name="stopped", token=TOKEN, private=False)

    def stop(fraction, text):
        raise Cancelled()

    with hub_env(hub.url, tmp_path / "stopped-cache"):
        with pytest.raises(Cancelled):  # not a SharingError nor an "unexpected" reference: the caller's Stop
            download_tuned(repo_id, on_progress=stop)
        same_model(download_tuned(repo_id), tuned)


def test_a_downloaded_model_runs_offline_and_without_the_hub(hub, tuned, tmp_path):
    repo_id = upload_tuned(tuned, repo_name="portable", token=TOKEN)
    cache = tmp_path / "run-cache"
    with hub_env(hub.url, cache):
        folder = download_tuned(repo_id, token=TOKEN)
    url = hub.url
    hub.stop()
    with hub_env(url, cache, offline=True):
        assert download_tuned(repo_id) == folder  # offline: no token needed for the cached copy
    with hub_env(url, cache):
        assert download_tuned(repo_id, token=TOKEN) == folder  # the Hub out of reach: the cached copy
        with pytest.raises(SharingError, match="alice/other is not downloaded and the Hub can't be reached"):
            download_tuned("alice/other", token=TOKEN)
        with pytest.raises(SharingError, match=r"The Hub can't be reached \(.*Connection refused\)"):
            upload_tuned(tuned, repo_name="portable", token=TOKEN)
    same_model(folder, tuned)


def test_is_repo_id_tells_hub_ids_from_local_names():
    for text in ("alice/tuned-skiing", "studio-org/model.v2", "a/b", " alice/x "):
        assert is_repo_id(text), text
    for text in ("tuned-skiing", "skiing-2", "", "a/b/c", "/abs/path", "./x/y", "alice/-x", "alice/x-", "a--b/c",
                 "alice/x" + "y" * 96, None, 3, "alice/x y"):
        assert not is_repo_id(text), text
    assert check_repo_id(" alice/x ") == "alice/x"


def test_the_token_is_never_logged_nor_in_any_error(hub, tuned, tmp_path, caplog, monkeypatch):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_DEBUG", True)  # huggingface_hub then logs every request as a curl command
    caplog.set_level(logging.DEBUG)
    for name in ("huggingface_hub", "httpx2", "httpcore", "httpx", "modules", "filelock"):
        caplog.set_level(logging.DEBUG, logger=name)
    wrong = "hf_wrong_secret_token_9876543210"
    seen: list[str] = []

    def failure(call):
        with pytest.raises(UserError) as error:
            call()
        seen.append("".join(traceback.format_exception(error.value)))  # the message and every chained exception
        seen.extend(repr(arg) for arg in error.value.args)

    repo_id = upload_tuned(tuned, repo_name="secret-check", token=TOKEN)
    seen.append(repr(repo_id))
    seen.append(repr(download_tuned(repo_id, token=TOKEN)))
    failure(lambda: upload_tuned(tuned, repo_name="x", token=wrong))
    failure(lambda: upload_tuned(tuned, repo_name="x", token=READ))
    failure(lambda: upload_tuned(tuned, repo_name="x", namespace="other-org", token=TOKEN))
    failure(lambda: download_tuned(repo_id, token=BOB))
    failure(lambda: download_tuned("alice/missing", token=TOKEN))
    failure(lambda: download_tuned(repo_id, token=wrong))
    monkeypatch.setenv("HF_TOKEN", BOB)
    failure(lambda: upload_tuned(tuned, repo_name="x", namespace="alice"))
    hub.stop()
    failure(lambda: upload_tuned(tuned, repo_name="x", token=TOKEN))
    failure(lambda: download_tuned("alice/never-fetched", token=TOKEN))

    logged = caplog.text
    assert "curl" in logged and "/api/whoami-v2" in logged  # the capture saw huggingface_hub's request log
    assert "sharing tuned model skiing as alice/secret-check (private)" in logged
    for secret in (TOKEN, wrong, READ, BOB):
        assert secret not in logged
        assert not any(secret in text for text in seen)
        assert not any(secret in str(record.args) for record in caplog.records)


def test_a_hub_refusal_says_the_hubs_reason_not_an_exception_class():
    """The Hub puts its reason on the line after "Bad request:": the sentence has it, and no class name."""
    import httpx
    from huggingface_hub.errors import BadRequestError

    from modules.engines.tune_a_video.sharing import _upload_failure

    response = httpx.Response(400, request=httpx.Request("POST", "https://huggingface.co/api/repos/create"))
    error = BadRequestError("Bad request:\nInvalid repo name: it must not contain '--'", response=response)
    said = str(_upload_failure(error, "me/a--b", "me", "hf_secret"))
    assert "Invalid repo name: it must not contain '--'" in said and "Error" not in said, said
    transport = str(_upload_failure(ConnectionError("Server disconnected\nwithout sending a response."), "me/x", "me", "hf_secret"))
    assert "Server disconnected; without sending a response" in transport and "ConnectionError" not in transport
