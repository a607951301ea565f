"""A public server (issue 30): visitors sign in with Hugging Face, the owner's token serves only the owner, each
visitor's tuned models are theirs, uploads say what they push, and no token travels or shows.

The app tests share ONE app launched as on a Space (SPACE_ID and the owner's HF_TOKEN set, HF_DEBUG=1), with
the Hub stand-in as the Hub. Visitors are gradio_client Clients: each its own browser session; a signed-in one
passes its token as Gradio's public `Client(..., oauth_token=...)`, which reaches the handlers' `gr.OAuthToken`
parameter exactly as the page's Sign in does on a Space, and the stand-in's whoami says whose it is. Gradio's
own local sign-in mock (gradio/oauth.py) signs everyone in as the server token's account with a fake token, so it
is never offered off a Space (`oauth_available`, checked against Gradio's own test below).
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import pytest

from modules.errors import UserError
from modules.settings import Settings, decide_public
from modules.tuned_models import TunedModels
from modules.visitors import OWNER, Visitor, oauth_available
from tests.conftest import sliding_box_clip
from tests.hub_standin.server import HubStandIn, hub_env

OWNER_TOKEN = "hf_owner_secret_token_PUBLIC_0042"  # the server's HF_TOKEN: the owner's, member of owner-org
BOB_TOKEN = "hf_bob_visitor_token_PUBLIC_9917"  # a visitor who signs in
MARKER = "tune_a_video.safetensors"


# ----------------------------------------------------------------------------------------------- no app
@pytest.mark.parametrize("env, host, share, public", [
    ({}, "127.0.0.1", False, False),
    ({}, "localhost", False, False),
    ({}, "::1", False, False),
    ({"SPACE_ID": "owner/studio"}, "127.0.0.1", False, True),
    ({}, "0.0.0.0", False, True),
    ({}, "studio.example.org", False, True),
    ({}, "127.0.0.1", True, True),
    ({"T2VZ_PUBLIC": "1"}, "127.0.0.1", False, True),
    ({"T2VZ_PUBLIC": "0", "SPACE_ID": "owner/studio"}, "0.0.0.0", True, False),
])
def test_public_or_private_is_decided_once_from_where_it_serves(env, host, share, public):
    assert decide_public(host, share, env)[0] is public


def test_public_mode_is_in_the_settings_and_the_server_details(monkeypatch):
    from types import SimpleNamespace

    from modules.ui.common import server_details

    monkeypatch.setenv("SPACE_ID", "owner/studio")
    settings = Settings.from_env(preset="tiny")
    assert settings.public and "owner/studio" in settings.public_reason
    assert not Settings.from_env(preset="tiny", public=False).public  # a flag or caller may decide
    monkeypatch.setenv("T2VZ_PUBLIC", "maybe")
    with pytest.raises(ValueError, match="T2VZ_PUBLIC"):
        Settings.from_env(preset="tiny")
    manager = SimpleNamespace(resident=lambda: {}, loading="", device="cpu", dtype_reason="float32")
    line = server_details(SimpleNamespace(manager=manager, settings=settings, pool=[None]))
    assert "**public**" in line


def test_public_sign_in_is_offered_only_where_gradio_does_real_oauth(monkeypatch):
    """Gradio's own test of running on a Space (gradio.utils.get_space: SYSTEM=spaces and SPACE_ID) is the one
    place this app leans on; if Gradio changes it, this fails."""
    from gradio.utils import get_space

    for system, space, client in [("spaces", "o/s", "id"), ("spaces", "o/s", ""), ("", "o/s", "id"), ("spaces", "", "id")]:
        env = {"SYSTEM": system, "SPACE_ID": space, "OAUTH_CLIENT_ID": client}
        for name, value in env.items():
            monkeypatch.setenv(name, value) if value else monkeypatch.delenv(name, raising=False)
        assert oauth_available() == (get_space() is not None and bool(client))


def test_public_tune_tab_has_a_login_button_on_a_space_with_oauth_only(monkeypatch, tmp_path):
    import gradio as gr

    from app import create_app

    import gradio.oauth

    # What a Space with `hf_oauth: true` sets (Gradio reads these at import): its OAuth routes need them.
    for name in ("OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_SCOPES", "OPENID_PROVIDER_URL"):
        monkeypatch.setattr(gradio.oauth, name, "https://hub.invalid" if name == "OPENID_PROVIDER_URL" else "x")

    def login_buttons(env, **settings) -> int:
        for name in ("SYSTEM", "SPACE_ID", "OAUTH_CLIENT_ID"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        studio, demo = create_app(Settings.from_env(preset="tiny", tuned_dir=str(tmp_path), outputs_dir=str(tmp_path),
                                                    **settings))
        studio.pool.close() if hasattr(studio.pool, "close") else None
        return sum(isinstance(block, gr.LoginButton) for block in demo.blocks.values())

    assert login_buttons({"SYSTEM": "spaces", "SPACE_ID": "o/s", "OAUTH_CLIENT_ID": "x"}) == 1
    assert login_buttons({"SYSTEM": "spaces", "SPACE_ID": "o/s"}) == 0  # no hf_oauth in the README
    assert login_buttons({"SPACE_ID": "o/s"}) == 0  # Gradio would mock it with the owner's account
    assert login_buttons({"SYSTEM": "spaces", "SPACE_ID": "o/s", "OAUTH_CLIENT_ID": "x"}, public=False) == 0


def test_public_replicas_get_no_token_in_their_runtime_environment():
    from modules.ray_cluster import replica_env

    env = replica_env({"HF_TOKEN": OWNER_TOKEN, "HUGGING_FACE_HUB_TOKEN": OWNER_TOKEN, "HF_ENDPOINT": "http://hub",
                       "T2VZ_PRESET": "tiny", "OMP_NUM_THREADS": "1", "PATH": "/bin", "T2VZ_API_KEY": "k"})
    assert env == {"HF_ENDPOINT": "http://hub", "T2VZ_PRESET": "tiny", "OMP_NUM_THREADS": "1"}


def fake_model(folder: Path, created: float = 1.0) -> Path:
    folder.mkdir(parents=True)
    (folder / MARKER).write_bytes(b"w")
    (folder / "tuned.json").write_text(f'{{"created": {created}}}')
    return folder


def test_public_visitors_see_their_own_models_and_the_owners_offer_only(tmp_path):
    base = TunedModels(tmp_path / "tuned", (MARKER, "README.md"))
    fake_model(tmp_path / "shared" / "owners-pick")
    alice, bob = (base.view(Visitor("account", name).folder, shared=tmp_path / "shared", keep=2)
                  for name in ("alice", "bob"))
    name, folder = alice.new_folder("skiing")
    fake_model(folder.parent / "boxes")
    (folder / MARKER).write_bytes(b"w")
    assert [m["name"] for m in [m.summary() for m in alice.list()]] == ["boxes", "skiing", "owners-pick"]
    assert alice.list()[-1].shared and not alice.list()[0].shared
    assert [m.name for m in bob.list()] == ["owners-pick"]
    # Another visitor's name and a missing one: the same sentence (no existence leak).
    with pytest.raises(UserError) as theirs:
        bob.find("skiing")
    with pytest.raises(UserError) as missing:
        bob.find("nobody-has-this")
    assert str(theirs.value).replace("skiing", "X") == str(missing.value).replace("nobody-has-this", "X")
    with pytest.raises(UserError, match="There is no tuned model called owners-pick"):
        bob.delete("owners-pick")  # the owner's offer is read-only
    with pytest.raises(UserError, match="You keep 2 tuned models on this server, the most one visitor may"):
        alice.new_folder("a-third")
    alice.delete("boxes")
    assert alice.new_folder("owners-pick")[0] == "owners-pick-2"  # a name the owner offers stays theirs
    assert base.list() == []  # private mode's one folder holds none of the visitors'


def test_public_anonymous_models_expire_after_the_ttl(tmp_path):
    import os
    import time

    base = TunedModels(tmp_path, (MARKER,))
    session = base.view(Visitor("session", "abc").folder)
    account = base.view(Visitor("account", "alice").folder)
    old, kept = fake_model(session.root / "old"), fake_model(account.root / "kept")
    hour_ago = time.time() - 3600
    for path in (old, old / MARKER, old / "tuned.json", kept, kept / MARKER, kept / "tuned.json"):
        os.utime(path, (hour_ago, hour_ago))
    fresh = fake_model(session.root / "fresh")
    base.sweep_sessions(ttl_s=1800)
    assert not old.exists() and fresh.exists() and kept.exists()


def test_public_visitor_is_a_small_value_that_never_shows_its_token():
    bob = Visitor("account", "bob", BOB_TOKEN)
    assert BOB_TOKEN not in repr(bob) and bob == Visitor("account", "bob") and not bob.server_token
    assert OWNER.server_token and OWNER.folder == "" and bob.folder == "hf-bob"
    session = Visitor("session", "the-session-hash")
    assert session.anonymous and "the-session-hash" not in session.folder
    with pytest.raises(ValueError):
        Visitor("session", "")


def test_public_studio_refuses_a_tuned_model_call_without_its_visitor(tmp_path):
    from modules.studio import Studio

    studio = Studio(Settings.from_env(preset="tiny", public=True, tuned_dir=str(tmp_path), outputs_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="need the visitor"):
        studio.list_tuned()
    assert studio.list_tuned(Visitor("session", "s")) == []


# ----------------------------------------------------------------------------------------------- the app
@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> str:
    return sliding_box_clip(tmp_path_factory.mktemp("public-clip"), frames=4, height=64, width=64, step=8)


class Captured:
    """Everything the app and its clients said: log records (DEBUG, huggingface_hub's HF_DEBUG lines
    included), stdout/stderr of each test, the answers the clients got."""

    def __init__(self):
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setLevel(logging.DEBUG)
        self.answers: list[str] = []

    def text(self) -> str:
        return self.stream.getvalue() + "\n".join(self.answers)


@pytest.fixture(scope="module")
def public_app(app_factory, tmp_path_factory):
    """The tiny app launched as on a Space: SPACE_ID and the owner's HF_TOKEN set, HF_DEBUG=1, the Hub stand-in
    as the Hub. (studio, url, hub, captured, folders written)."""
    import huggingface_hub.constants as constants
    from huggingface_hub.utils import logging as hub_logging

    root = tmp_path_factory.mktemp("public")
    captured = Captured()
    # Records reach the root's handlers whatever the root's level: only our loggers and huggingface_hub's (as
    # HF_DEBUG=1 sets it at import) go down to DEBUG, not every library's.
    root_logger, hub_logger, ours = logging.getLogger(), hub_logging.get_logger(), logging.getLogger("modules")
    levels = ours.level, hub_logger.level
    with HubStandIn(tokens={OWNER_TOKEN: "owner", BOB_TOKEN: "bob"}, orgs={"owner": ["owner-org"]}) as hub, \
            hub_env(hub.url, root / "hub-cache", extra_env={"HF_TOKEN": OWNER_TOKEN, "HF_DEBUG": "1",
                                                            "SPACE_ID": "owner/t2vz-studio"}), \
            pytest.MonkeyPatch.context() as patch:
        patch.setattr(constants, "HF_DEBUG", True)
        root_logger.addHandler(captured.handler)
        ours.setLevel(logging.DEBUG)
        hub_logging.set_verbosity_debug()
        try:
            studio, _, url = app_factory(backend="local", outputs_dir=root / "outputs", tuned_dir=str(root / "tuned"))
            assert studio.settings.public
            yield studio, url, hub, captured, root
        finally:
            root_logger.removeHandler(captured.handler)
            ours.setLevel(levels[0])
            hub_logger.setLevel(levels[1])


def client(url, tmp_path, **more):
    from gradio_client import Client

    return Client(url, analytics_enabled=False, verbose=False, download_files=str(tmp_path), **more)


def tune(visitor, clip, name):
    from gradio_client import handle_file

    return visitor.predict(video=handle_file(clip), prompt="an orange box slides", name=name, model="", steps=1,
                           learning_rate=1e-3, num_frames=2, sample_prompt="", sample_steps=1, guidance_scale=12.5,
                           seed=3, start=0, end=0, fps=0, resolution=64, api_name="/tune_video")


def run(visitor, tuned):
    return visitor.predict(tuned=tuned, prompt="a green box", negative_prompt="", model="", num_frames=2, steps=1,
                           guidance_scale=12.5, fps=0, seed=1, inversion=True, api_name="/run_tuned")


def names(visitor) -> list[str]:
    return [entry["name"] for entry in visitor.predict(api_name="/list_tuned")]


def refusal(call) -> str:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as error:
        call()
    return str(error.value)


@pytest.fixture(scope="module")
def visitors(public_app, clip, tmp_path_factory):
    """A (anonymous) has tuned a-box; B (anonymous) and Bob (signed in) are other visitors."""
    studio, url, hub, captured, root = public_app
    folder = tmp_path_factory.mktemp("downloads")
    a, b, bob = client(url, folder), client(url, folder), client(url, folder, oauth_token=BOB_TOKEN)
    made = tune(a, clip, "a-box")
    captured.answers.append(repr(made))
    return a, b, bob


def test_public_visitor_b_neither_lists_nor_runs_visitor_as_model(public_app, visitors, capfd):
    studio, url, hub, captured, root = public_app
    a, b, bob = visitors
    assert names(a) == ["a-box"] and names(b) == [] and names(bob) == []
    theirs = refusal(lambda: run(b, "a-box"))
    missing = refusal(lambda: run(b, "no-such-box"))
    assert "There is no tuned model called a-box" in theirs
    assert theirs.replace("a-box", "X") == missing.replace("no-such-box", "X")  # no existence leak
    assert "There is no tuned model called a-box" in refusal(lambda: b.predict(
        tuned="a-box", repo_name="", namespace="", private=True, token="", api_name="/upload_tuned"))
    assert run(a, "a-box")[0]  # its owner runs it
    captured.answers += [theirs, missing, capfd.readouterr().out, capfd.readouterr().err]


def test_public_upload_without_sign_in_is_refused_and_the_owners_token_serves_no_visitor(public_app, visitors, capfd):
    studio, url, hub, captured, root = public_app
    a, b, bob = visitors
    said = refusal(lambda: a.predict(tuned="a-box", repo_name="", namespace="", private=True, token="",
                                     api_name="/upload_tuned"))
    assert re.search(r"sign in with hugging face", said, re.I), said
    assert not hub.repo_ids()  # nothing was pushed with the owner's token
    # A private model the owner's token can read is not read for a visitor: by Hub id only with their own token.
    from modules.engines.tune_a_video.sharing import upload_tuned

    mine = next((root / "tuned").glob("visitors/session-*/a-box"))
    with pytest.MonkeyPatch.context() as env:
        env.delenv("HF_DEBUG")
        upload_tuned(mine, repo_name="secret-box", namespace="owner-org", token=OWNER_TOKEN, private=True)
    hidden = refusal(lambda: run(a, "owner-org/secret-box"))
    assert "owner-org/secret-box is not on the Hub, or it is private and you are not signed in" in hidden
    captured.answers += [said, hidden, capfd.readouterr().out, capfd.readouterr().err]


def test_public_signed_in_visitor_uploads_to_their_own_namespace(public_app, visitors, clip, capfd):
    studio, url, hub, captured, root = public_app
    a, b, bob = visitors
    made = tune(bob, clip, "bob-box")
    assert names(bob) == ["bob-box"] and "bob-box" not in names(a)
    said = bob.predict(tuned="bob-box", repo_name="", namespace="", private=True, token="", api_name="/upload_tuned")
    assert "bob/bob-box" in said and hub.is_private("bob/bob-box")
    assert not any(repo.startswith("owner") for repo in hub.repo_ids() - {"owner-org/secret-box"})
    # The source clip stays home unless asked (public default); the listing says what is pushed.
    assert set(hub.contents("bob/bob-box")) == {".gitattributes", MARKER, "README.md", "sample.gif", "tuned.json"}
    listed = studio.upload_files("bob-box", Visitor("account", "bob", BOB_TOKEN), None)
    assert "source.safetensors" not in dict(listed) and dict(listed)[MARKER] > 0
    # Bob fetches it by repo id with his own sign-in, outside the GPU queue (the page's Run does this first),
    # within the server's cap (sized on the Hub before any byte comes), then runs it (without its source clip:
    # from noise, with a note).
    from dataclasses import replace

    settings = studio.settings
    studio.settings = replace(settings, limits=replace(settings.limits, max_tuned_download_mb=0.001))
    try:
        capped = refusal(lambda: bob.predict("bob/bob-box", api_name="/fetch_tuned"))
    finally:
        studio.settings = settings
    assert re.search(r"bob/bob-box is [0-9.]+ [KM]B to download, more than the 1.0 KB this server takes", capped)
    assert bob.predict("bob/bob-box", api_name="/fetch_tuned") == "bob/bob-box is downloaded: run it."
    assert bob.predict("bob-box", api_name="/fetch_tuned") == "bob-box is tuned here: nothing to download."
    video, gif, params, seed = bob.predict(tuned="bob/bob-box", prompt="a red box", negative_prompt="", model="",
                                           num_frames=2, steps=1, guidance_scale=12.5, fps=0, seed=1, inversion=True,
                                           api_name="/run_tuned")
    assert "shared without its source clip" in Path(params).read_text()
    # Into an existing public repo, a private upload is refused with a sentence.
    bob.predict(tuned="bob-box", repo_name="open-box", namespace="", private=False, token="", include_source=True,
                api_name="/upload_tuned")
    assert not hub.is_private("bob/open-box") and "source.safetensors" in hub.contents("bob/open-box")
    public = refusal(lambda: bob.predict(tuned="bob-box", repo_name="open-box", namespace="", private=True, token="",
                                         api_name="/upload_tuned"))
    assert "bob/open-box exists and is public" in public
    # Another visitor's namespace (the owner's) stays theirs.
    theirs = refusal(lambda: bob.predict(tuned="bob-box", repo_name="", namespace="owner-org", private=True,
                                         token="", api_name="/upload_tuned"))
    assert "not a member of the organisation owner-org" in theirs
    captured.answers += [repr(made), said, public, theirs, Path(params).read_text(), capfd.readouterr().out,
                         capfd.readouterr().err]


def test_public_no_token_in_any_log_answer_or_file(public_app, visitors, capfd):
    """After the runs and uploads above (HF_DEBUG=1): neither the owner's token nor a visitor's is in any log
    line, answer, output or file written (outputs, params.json, tuned models, Gradio's files, the Hub cache)."""
    import os

    studio, url, hub, captured, root = public_app
    captured.answers += [capfd.readouterr().out, capfd.readouterr().err]
    text = captured.text()
    assert "/api/whoami-v2" in text and "curl" in text and "<TOKEN>" in text  # HF_DEBUG's lines were captured
    for secret in (OWNER_TOKEN, BOB_TOKEN):
        assert secret not in text
        for folder in (root, Path(os.environ["GRADIO_TEMP_DIR"])):
            for path in folder.rglob("*"):
                if path.is_file() and path.stat().st_size < 50_000_000:
                    assert secret.encode() not in path.read_bytes(), path
