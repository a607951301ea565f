"""The local Hub stand-in, exercised with the real huggingface_hub client (no network needed)."""

import hashlib
import os
import socket
import types

import pytest

from tests.hub_standin.server import ForwardProxy, HubStandIn, hub_env

REPO = "owner/tiny-model"
UNET_W = bytes(range(256)) * 40  # 10240 bytes, LFS (safetensors)
TE_W = b"text-encoder-weights" * 300  # served from a file on disk
FILES = {
    "model_index.json": b'{"_class_name": "StableDiffusionPipeline"}',
    "README.md": b"# tiny\n",
    "unet/config.json": b'{"sample_size": 8}',
    "unet/diffusion_pytorch_model.safetensors": UNET_W,
    "unet/diffusion_pytorch_model.bin": b"pickle-weights",
    "text_encoder/config.json": b"{}",
}


@pytest.fixture
def hub(tmp_path):
    weights = tmp_path / "te.safetensors"
    weights.write_bytes(TE_W)
    repos = {
        REPO: {**FILES, "text_encoder/model.safetensors": weights},
        "single": {"config.json": lambda: b'{"lazy": true}'},
    }
    with HubStandIn(repos) as server:
        yield server


@pytest.fixture
def cache(tmp_path, hub):
    cache_dir = tmp_path / "hub"
    with hub_env(hub.url, cache_dir):
        yield cache_dir


@pytest.fixture
def no_sleep(monkeypatch):
    """http_get sleeps 1 s before each resume: skip it (only in huggingface_hub.file_download)."""
    import time

    import huggingface_hub.file_download as fd

    monkeypatch.setattr(fd, "time", types.SimpleNamespace(sleep=lambda s: None, time=time.time))


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def test_hub_standin_snapshot_download_fetches_exactly_the_allowed_files(hub, cache):
    from huggingface_hub import snapshot_download

    sha = hub.commit(REPO)
    folder = snapshot_download(REPO, allow_patterns=["*.json", "unet/*.safetensors"])

    expected = {
        "model_index.json",
        "unet/config.json",
        "text_encoder/config.json",
        "unet/diffusion_pytorch_model.safetensors",
    }
    assert hub.downloaded(REPO) == expected
    assert folder == str(cache / "models--owner--tiny-model" / "snapshots" / sha)
    assert _read(os.path.join(folder, "unet/diffusion_pytorch_model.safetensors")) == UNET_W
    assert not os.path.exists(os.path.join(folder, "README.md"))
    # The exact protocol: revision -> sha, recursive tree at the sha, then HEAD + GET per selected file.
    reqs = hub.requests
    assert reqs[0] == ("GET", f"/api/models/{REPO}/revision/main")
    assert reqs[1] == ("GET", f"/api/models/{REPO}/tree/{sha}")
    assert hub.records("tree")[0].query == {"recursive": ["true"], "expand": ["false"]}
    assert sorted(reqs[2:]) == sorted(
        (m, f"/{REPO}/resolve/{sha}/{p}") for p in expected for m in ("HEAD", "GET")
    )
    # LFS blobs are stored under their sha256, other files under their git blob oid.
    blob = os.path.realpath(os.path.join(folder, "unet/diffusion_pytorch_model.safetensors"))
    assert os.path.basename(blob) == hashlib.sha256(UNET_W).hexdigest()
    cfg = b'{"sample_size": 8}'
    git_oid = hashlib.sha1(b"blob %d\0" % len(cfg) + cfg).hexdigest()
    assert os.path.basename(os.path.realpath(os.path.join(folder, "unet/config.json"))) == git_oid

    # A second call with the files cached: only the revision lookup (the tree listing is cached on disk too).
    hub.clear_log()
    assert snapshot_download(REPO, allow_patterns=["*.json", "unet/*.safetensors"]) == folder
    assert hub.requests == [("GET", f"/api/models/{REPO}/revision/main")]
    assert hub.downloaded() == set()


def test_hub_standin_hf_hub_download_one_file(hub, cache):
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(REPO, "text_encoder/model.safetensors")
    assert _read(path) == TE_W
    assert hub.requests == [
        ("HEAD", f"/{REPO}/resolve/main/text_encoder/model.safetensors"),
        ("GET", f"/{REPO}/resolve/main/text_encoder/model.safetensors"),
    ]
    assert hub.downloaded(REPO) == {"text_encoder/model.safetensors"}
    assert os.path.basename(os.path.realpath(path)) == hub.sha256(REPO, "text_encoder/model.safetensors")
    ref = cache / "models--owner--tiny-model" / "refs" / "main"
    assert ref.read_text() == hub.commit(REPO)

    # Repo ids without an owner, lazily generated content.
    assert _read(hf_hub_download("single", "config.json")) == b'{"lazy": true}'
    # Cached now: one HEAD (to check the commit), no GET.
    hub.clear_log()
    assert hf_hub_download(REPO, "text_encoder/model.safetensors") == path
    assert [m for m, _ in hub.requests] == ["HEAD"]


def test_hub_standin_model_info_and_tree(tmp_path):
    from huggingface_hub import HfApi, list_repo_files, model_info

    files = {f"f{i}.json": b"x" * i for i in range(5)}
    files["sub/deep/w.safetensors"] = b"w" * 100
    with HubStandIn({REPO: files}, page_size=2) as hub, hub_env(hub.url, tmp_path / "hub"):
        info = model_info(REPO, files_metadata=True)  # the module-level HfApi: endpoint patched by hub_env
        assert info.id == REPO and info.sha == hub.commit(REPO)
        sizes = {s.rfilename: s.size for s in info.siblings}
        assert sizes == {p: len(c) for p, c in files.items()}
        lfs = {s.rfilename: s.lfs for s in info.siblings if s.lfs}
        assert list(lfs) == ["sub/deep/w.safetensors"]
        assert lfs["sub/deep/w.safetensors"].sha256 == hashlib.sha256(b"w" * 100).hexdigest()
        assert hub.records("model_info")[0].query == {"blobs": ["true"]}

        plain = HfApi().model_info(REPO, revision=hub.commit(REPO))
        assert {s.rfilename for s in plain.siblings} == set(files) and all(s.size is None for s in plain.siblings)
        assert hub.requests[-1] == ("GET", f"/api/models/{REPO}/revision/{hub.commit(REPO)}")

        # Paginated (page_size=2) recursive listing, followed through the Link header.
        hub.clear_log()
        assert sorted(list_repo_files(REPO)) == sorted(files)
        assert len(hub.records("tree")) == 4  # 5 files + 2 folders = 7 entries
        top = {e.path for e in HfApi().list_repo_tree(REPO)}
        assert top == {*(p for p in files if "/" not in p), "sub"}
        deep = list(HfApi().list_repo_tree(REPO, path_in_repo="sub/deep"))
        assert [(e.path, e.size, e.lfs.size) for e in deep] == [("sub/deep/w.safetensors", 100, 100)]
        paths = HfApi().get_paths_info(REPO, ["f1.json", "sub", "missing"])
        assert {p.path for p in paths} == {"f1.json", "sub"}


def test_hub_standin_errors_map_to_hub_exceptions(hub, cache):
    from huggingface_hub import hf_hub_download, model_info
    from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(REPO, "nope.json")
    # The 404 carries X-Repo-Commit => the non-existence is cached.
    assert (cache / "models--owner--tiny-model" / ".no_exist" / hub.commit(REPO) / "nope.json").exists()
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("owner/missing", "config.json")
    with pytest.raises(RepositoryNotFoundError):
        model_info("owner/missing")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "model_index.json", revision="v9")
    assert hub.downloaded() == set()


def test_hub_standin_cache_serves_when_server_stopped(hub, tmp_path):
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache_dir = tmp_path / "hub"
    patterns = ["*.json"]
    with hub_env(hub.url, cache_dir):
        folder = snapshot_download(REPO, allow_patterns=patterns)
        single = hf_hub_download("single", "config.json")
    url = hub.url
    hub.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=2).close()

    with hub_env(url, cache_dir, offline=True):
        assert snapshot_download(REPO, allow_patterns=patterns) == folder
        assert hf_hub_download("single", "config.json") == single
        with pytest.raises(LocalEntryNotFoundError):
            hf_hub_download(REPO, "unet/diffusion_pytorch_model.safetensors")
    with hub_env(url, cache_dir, offline=False):  # online mode, but the server is gone
        assert snapshot_download(REPO, allow_patterns=patterns, local_files_only=True) == folder
        assert hf_hub_download("single", "config.json", local_files_only=True) == single
        # Without local_files_only the failed connection falls back to the cache as well.
        assert hf_hub_download("single", "config.json") == single


def test_hub_standin_fail_once_is_healed_by_huggingface_hub(hub, cache, no_sleep):
    """A dropped body is not raised: http_get retries at once. It resumes from the bytes it had *yielded*, and
    httpx2 yields in DOWNLOAD_CHUNK_SIZE (10 MiB) pieces, so a small file is simply fetched again from 0."""
    from huggingface_hub import hf_hub_download

    target = "unet/diffusion_pytorch_model.safetensors"
    hub.fail_once(REPO, target, after_bytes=1000)
    path = hf_hub_download(REPO, target)
    assert _read(path) == UNET_W
    gets = [r for r in hub.records("resolve") if r.method == "GET"]
    assert [(r.status, r.bytes_sent, r.broken, r.headers.get("Range")) for r in gets] == [
        (200, 1000, True, None),
        (200, len(UNET_W), False, None),
    ]


def test_hub_standin_fail_once_resumes_with_a_range_request(hub, cache, no_sleep, monkeypatch):
    import huggingface_hub.constants as C
    from huggingface_hub import hf_hub_download

    monkeypatch.setattr(C, "DOWNLOAD_CHUNK_SIZE", 256)  # read at call time by http_get
    target = "unet/diffusion_pytorch_model.safetensors"
    hub.fail_once(REPO, target, after_bytes=1000)
    path = hf_hub_download(REPO, target)
    assert _read(path) == UNET_W
    gets = [r for r in hub.records("resolve") if r.method == "GET"]
    assert [(r.status, r.bytes_sent, r.broken, r.headers.get("Range")) for r in gets] == [
        (200, 1000, True, None),
        (206, len(UNET_W) - 768, False, "bytes=768-"),  # 3 whole 256-byte chunks had been written
    ]


def test_hub_standin_broken_download_raises_then_retry_succeeds(hub, cache, no_sleep):
    import httpx2
    from huggingface_hub import hf_hub_download

    target = "unet/diffusion_pytorch_model.safetensors"
    # huggingface_hub retries a dropped body 5 times (the counter resets whenever bytes arrive):
    # 6 drops with no byte at all exhaust it.
    hub.fail_once(REPO, target, after_bytes=0, times=6)
    with pytest.raises(httpx2.RemoteProtocolError):
        hf_hub_download(REPO, target)
    assert len([r for r in hub.records("resolve") if r.method == "GET"]) == 6
    blobs = cache / "models--owner--tiny-model" / "blobs"
    assert not any(p.name.endswith(".incomplete") for p in blobs.iterdir())  # no partial file left behind

    path = hf_hub_download(REPO, target)  # the failure is used up: a plain retry works
    assert _read(path) == UNET_W
    assert hashlib.sha256(_read(path)).hexdigest() == hub.etag(REPO, target)


@pytest.mark.parametrize("var", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_hub_standin_proxy_env_is_respected(hub, tmp_path, var):
    from huggingface_hub import hf_hub_download

    names = ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy")
    before = {k: os.environ.get(k) for k in names}
    clear = dict.fromkeys(names)
    with ForwardProxy() as proxy:
        with hub_env(hub.url, tmp_path / "hub", extra_env={**clear, var: proxy.url}):
            path = hf_hub_download(REPO, "model_index.json")
        assert _read(path) == FILES["model_index.json"]
        target = f"{hub.url}/{REPO}/resolve/main/model_index.json"
        assert proxy.requests == [("HEAD", target), ("GET", target)]
        assert hub.downloaded(REPO) == {"model_index.json"}

        # NO_PROXY listing the host bypasses it (127.0.0.1 is not exempt by default).
        with hub_env(hub.url, tmp_path / "hub2", extra_env={**clear, var: proxy.url, "NO_PROXY": "127.0.0.1"}):
            hf_hub_download(REPO, "README.md")
        assert proxy.count == 2
    assert {k: os.environ.get(k) for k in names} == before  # hub_env restored the proxy env


def test_hub_standin_hub_env_patches_and_restores(hub, tmp_path):
    import huggingface_hub.constants as C
    import huggingface_hub.hf_api as hf_api

    before = (C.ENDPOINT, C.HF_HUB_OFFLINE, C.HF_HUB_CACHE, hf_api.api.endpoint, os.environ.get("HF_HUB_OFFLINE"))
    with hub_env(hub.url, tmp_path / "hub") as env:
        assert C.ENDPOINT == hub.url == hf_api.api.endpoint == os.environ["HF_ENDPOINT"] == env["HF_ENDPOINT"]
        assert C.HF_HUB_OFFLINE is False and os.environ["HF_HUB_OFFLINE"] == "0"
        assert C.HF_HUB_CACHE == str(tmp_path / "hub")
        assert C.HUGGINGFACE_CO_URL_TEMPLATE.startswith(hub.url + "/")
    after = (C.ENDPOINT, C.HF_HUB_OFFLINE, C.HF_HUB_CACHE, hf_api.api.endpoint, os.environ.get("HF_HUB_OFFLINE"))
    assert after == before


# ---------------------------------------------------------------------------------------------------------------------
# The upload side: accounts, repo creation, preupload + LFS + commit, visibility
# ---------------------------------------------------------------------------------------------------------------------

ALICE, BOB, READER = "hf_alice_token", "hf_bob_token", "hf_alice_read_token"
WEIGHTS = bytes(range(256)) * 64  # 16 KiB, LFS by suffix
GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00" * 40  # no LFS suffix, but binary (NUL bytes): LFS as well
CARD = b"---\nlicense: mit\ntags:\n- tune-a-video\n---\n# a card\n"


@pytest.fixture
def accounts(tmp_path):
    """A stand-in with accounts: alice (write token, member of studio-org, and a read-only token), bob (write)."""
    repos = {REPO: dict(FILES), "owner/secret": {"config.json": b'{"secret": 1}'}}
    with HubStandIn(
        repos,
        tokens={ALICE: "alice", BOB: "bob", READER: ("alice", "read")},
        orgs={"alice": ["studio-org"]},
        private={"owner/secret"},
    ) as server, hub_env(server.url, tmp_path / "hub"):
        yield server


def _folder(root, files):
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


def test_hub_standin_whoami_and_create_repo(accounts):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi()
    me = api.whoami(token=ALICE)
    assert me["name"] == "alice" and me["type"] == "user"
    assert [o["name"] for o in me["orgs"]] == ["studio-org"] and me["auth"]["accessToken"]["role"] == "write"
    assert api.whoami(token=READER)["auth"]["accessToken"]["role"] == "read"
    assert accounts.records("whoami")[0].headers["Authorization"] == f"Bearer {ALICE}"

    url = api.create_repo("alice/new-model", private=True, token=ALICE)
    assert url.repo_id == "alice/new-model" and url == f"{accounts.url}/alice/new-model"
    assert accounts.is_private("alice/new-model")
    # A new repo has one commit: the Hub's default .gitattributes.
    assert list(accounts.contents("alice/new-model")) == [".gitattributes"]
    assert len(accounts.history("alice/new-model")) == 1
    sha = accounts.commit("alice/new-model")

    # Again: 409 (exist_ok takes it as success); nothing changes.
    with pytest.raises(HfHubHTTPError) as conflict:
        api.create_repo("alice/new-model", token=ALICE)
    assert conflict.value.response.status_code == 409
    assert api.create_repo("alice/new-model", private=True, exist_ok=True, token=ALICE).repo_id == "alice/new-model"
    assert accounts.commit("alice/new-model") == sha
    body = [r for r in accounts.records("create_repo")]
    assert [r.status for r in body] == [200, 409, 409]

    # No namespace: the token's user's; an organisation of the user; a public repo.
    assert api.create_repo("bare-name", token=ALICE).repo_id == "alice/bare-name"
    assert not accounts.is_private("alice/bare-name")
    assert api.create_repo("studio-org/shared", private=True, token=ALICE).repo_id == "studio-org/shared"
    # Names huggingface_hub would refuse before sending: the server refuses them too.
    import httpx2

    for name in ("bad--name", "-dash", "x" * 97, ""):
        answer = httpx2.post(f"{accounts.url}/api/repos/create", json={"name": name, "organization": None},
                             headers={"Authorization": f"Bearer {ALICE}"})
        assert answer.status_code == 400, name


def test_hub_standin_upload_folder_then_download_from_a_fresh_cache(accounts, tmp_path):
    from huggingface_hub import HfApi, hf_hub_download, model_info, snapshot_download

    folder = _folder(tmp_path / "model", {
        "README.md": CARD, "weights.safetensors": WEIGHTS, "sample.gif": GIF, "notes/todo.txt": b"plain text\n",
        "empty.txt": b"",
    })  # fmt: skip
    api = HfApi(token=ALICE)
    api.create_repo("alice/uploaded", private=True, exist_ok=True)
    first = accounts.commit("alice/uploaded")
    accounts.clear_log()
    info = api.upload_folder(repo_id="alice/uploaded", folder_path=folder, commit_message="first upload")

    sha = accounts.commit("alice/uploaded")
    assert info.oid == sha != first and info.commit_url.endswith(f"/alice/uploaded/commit/{sha}")
    assert accounts.history("alice/uploaded") == [(first, "initial commit"), (sha, "first upload")]
    # The protocol, in order: README's YAML checked (twice: upload_folder, then create_commit), upload modes
    # asked, the LFS objects negotiated, PUT and verified, then one NDJSON commit. All with alice's token but the
    # PUTs to the pre-signed storage urls.
    kinds = [r.kind for r in accounts.records()]
    assert kinds[:4] == ["validate_yaml", "validate_yaml", "preupload", "lfs_batch"] and kinds[-1] == "commit"
    assert sorted(kinds[4:-1]) == ["lfs_upload", "lfs_upload", "lfs_verify", "lfs_verify"]
    for r in accounts.records():
        assert r.headers.get("Authorization") == (None if r.kind == "lfs_upload" else f"Bearer {ALICE}")
    commit = accounts.records("commit")[0]
    assert commit.path == "/api/models/alice/uploaded/commit/main"
    assert commit.headers["Content-Type"] == "application/x-ndjson"

    # LFS by suffix and for binary content; plain text and empty files are regular git blobs.
    tree = {e.path: e for e in api.list_repo_tree("alice/uploaded", recursive=True) if hasattr(e, "lfs")}
    assert {p for p, e in tree.items() if e.lfs} == {"weights.safetensors", "sample.gif"}
    assert accounts.contents("alice/uploaded") == {
        ".gitattributes": accounts.contents("alice/uploaded", first)[".gitattributes"],
        "README.md": CARD, "weights.safetensors": WEIGHTS, "sample.gif": GIF, "notes/todo.txt": b"plain text\n",
        "empty.txt": b"",
    }  # fmt: skip
    assert model_info("alice/uploaded", token=ALICE).private is True

    # Downloaded again, from a fresh cache, through the download routes.
    with hub_env(accounts.url, tmp_path / "fresh-cache"):
        out = snapshot_download("alice/uploaded", token=ALICE, allow_patterns=["*.safetensors", "*.gif", "*.md"])
        assert out.endswith(sha)
        assert _read(os.path.join(out, "weights.safetensors")) == WEIGHTS
        assert _read(os.path.join(out, "sample.gif")) == GIF
        assert _read(os.path.join(out, "README.md")) == CARD
        assert accounts.downloaded("alice/uploaded") == {"weights.safetensors", "sample.gif", "README.md"}

        # Unchanged files are not uploaded again: no LFS PUT, no commit.
        accounts.clear_log()
        again = api.upload_folder(repo_id="alice/uploaded", folder_path=folder)
        assert again.oid == sha and not accounts.records("commit") and not accounts.records("lfs_upload")

        # A changed file: a new commit; the old one stays downloadable by its sha.
        (folder / "weights.safetensors").write_bytes(WEIGHTS[::-1])
        accounts.clear_log()
        newer = api.upload_folder(repo_id="alice/uploaded", folder_path=folder, allow_patterns=["*.safetensors"])
        assert newer.oid == accounts.commit("alice/uploaded") != sha
        assert [r.kind for r in accounts.records() if r.kind.startswith("lfs")] == ["lfs_batch", "lfs_upload",
                                                                                   "lfs_verify"]
        assert _read(hf_hub_download("alice/uploaded", "weights.safetensors", token=ALICE)) == WEIGHTS[::-1]
        old = hf_hub_download("alice/uploaded", "weights.safetensors", revision=sha, token=ALICE)
        assert _read(old) == WEIGHTS


def test_hub_standin_multipart_lfs_upload(tmp_path):
    from huggingface_hub import HfApi, hf_hub_download

    big = os.urandom(10_000)
    with HubStandIn(tokens={ALICE: "alice"}, lfs_multipart_chunk=4096) as hub, hub_env(hub.url, tmp_path / "hub"):
        api = HfApi(token=ALICE)
        api.create_repo("alice/parts")
        api.upload_folder(repo_id="alice/parts", folder_path=_folder(tmp_path / "f", {"big.safetensors": big}))
        storage = [(r.method, r.path.count("/")) for r in hub.records("lfs_upload")]
        assert storage == [("PUT", 3), ("PUT", 3), ("PUT", 3), ("POST", 2)]  # 3 parts, then the completion
        assert _read(hf_hub_download("alice/parts", "big.safetensors")) == big


def test_hub_standin_private_repos_are_invisible_without_a_token_of_their_namespace(accounts, tmp_path):
    from huggingface_hub import HfApi, hf_hub_download, model_info, snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError

    api = HfApi()
    api.create_repo("studio-org/private-one", private=True, token=ALICE)
    api.upload_folder(repo_id="studio-org/private-one", folder_path=_folder(tmp_path / "f", {"w.safetensors": WEIGHTS}),
                      token=ALICE)
    for repo in ("studio-org/private-one", "owner/secret"):
        for token in (None, BOB):
            with pytest.raises(RepositoryNotFoundError):
                model_info(repo, token=token)
            with pytest.raises(RepositoryNotFoundError):
                snapshot_download(repo, token=token, cache_dir=tmp_path / "other")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("studio-org/private-one", "w.safetensors", cache_dir=tmp_path / "other")
    statuses = {(r.kind, r.status) for r in accounts.records() if r.repo_id == "studio-org/private-one"}
    assert ("model_info", 404) in statuses and ("resolve", 404) in statuses
    # A member of the organisation (alice, even with her read token) sees it; bob can't tell it from a missing repo.
    assert model_info("studio-org/private-one", token=READER).private is True
    assert _read(hf_hub_download("studio-org/private-one", "w.safetensors", token=ALICE)) == WEIGHTS
    # Public repos need no token.
    assert model_info(REPO).private is False


def test_hub_standin_401_for_missing_or_unknown_tokens_403_without_write_access(accounts, tmp_path):
    import httpx2
    from huggingface_hub import HfApi, hf_hub_download, model_info
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    api = HfApi()
    folder = _folder(tmp_path / "f", {"w.safetensors": WEIGHTS, "README.md": CARD})

    def status(call) -> int:
        with pytest.raises(HfHubHTTPError) as error:
            call()
        assert not isinstance(error.value, RepositoryNotFoundError)
        return error.value.response.status_code

    # 401: an unknown token, on any route (downloads of public repos included); no token on write calls.
    assert status(lambda: api.whoami(token="hf_unknown")) == 401
    assert status(lambda: model_info(REPO, token="hf_unknown")) == 401
    assert status(lambda: hf_hub_download(REPO, "README.md", token="hf_unknown")) == 401
    assert status(lambda: api.create_repo("alice/x", token="hf_unknown")) == 401
    assert status(lambda: api.create_repo("alice/x", token=False)) == 401
    assert httpx2.get(f"{accounts.url}/api/whoami-v2").status_code == 401
    assert httpx2.post(f"{accounts.url}/api/models/{REPO}/preupload/main", json={"files": []}).status_code == 401
    assert "Invalid credentials in Authorization header" in {r.headers.get("X-Error-Message") for r in [
        httpx2.get(f"{accounts.url}/api/whoami-v2", headers={"Authorization": "Bearer hf_unknown"})]}

    # 403: another user's namespace or an organisation one isn't in; a read-only token; another user's repo.
    assert status(lambda: api.create_repo("bob/x", token=ALICE)) == 403
    assert status(lambda: api.create_repo("other-org/x", token=ALICE)) == 403
    assert status(lambda: api.create_repo("alice/x", token=READER)) == 403
    api.create_repo("bob/public", token=BOB)
    assert status(lambda: api.upload_folder(repo_id="bob/public", folder_path=folder, token=ALICE)) == 403
    assert status(lambda: api.upload_folder(repo_id=REPO, folder_path=folder, token=ALICE)) == 403
    # exist_ok with no right to create: the repo is looked up, and the 403 stands when it isn't there.
    assert api.create_repo("bob/public", exist_ok=True, token=ALICE).repo_id == "bob/public"
    assert status(lambda: api.create_repo("bob/missing", exist_ok=True, token=ALICE)) == 403
    assert accounts.repo_ids() == {REPO, "owner/secret", "bob/public"}
    assert len(accounts.history("bob/public")) == 1  # nothing was committed


def test_hub_standin_commit_checks_its_operations(accounts, tmp_path):
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=ALICE)
    api.create_repo("alice/ops")
    api.upload_folder(repo_id="alice/ops", folder_path=_folder(tmp_path / "f", {"a/1.txt": b"1", "a/2.txt": b"2",
                                                                               "b.txt": b"b"}))
    sha = accounts.commit("alice/ops")
    api.create_commit("alice/ops", [CommitOperationDelete("a/"), CommitOperationAdd("c.txt", b"c")], commit_message="m")
    assert set(accounts.contents("alice/ops")) == {".gitattributes", "b.txt", "c.txt"}
    with pytest.raises(HfHubHTTPError) as stale:  # parent_commit no longer the head
        api.create_commit("alice/ops", [CommitOperationAdd("d.txt", b"d")], commit_message="m", parent_commit=sha)
    assert stale.value.response.status_code == 412
    with pytest.raises(HfHubHTTPError) as missing:
        api.create_commit("alice/ops", [CommitOperationDelete("nope.txt")], commit_message="m")
    assert missing.value.response.status_code == 404
    assert set(accounts.contents("alice/ops")) == {".gitattributes", "b.txt", "c.txt"}


def test_hub_standin_hub_env_keeps_uploads_off_xet(hub, tmp_path):
    import huggingface_hub.constants as C
    from huggingface_hub.utils._runtime import is_xet_available

    before = C.HF_HUB_DISABLE_XET
    with hub_env(hub.url, tmp_path / "hub"):
        assert C.HF_HUB_DISABLE_XET is True and not is_xet_available()
    assert C.HF_HUB_DISABLE_XET == before
