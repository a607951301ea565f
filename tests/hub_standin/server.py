"""A local stand-in for the part of the Hugging Face Hub protocol that `huggingface_hub` 2.4.0 uses.

Stdlib only. Point `huggingface_hub` at it with :func:`hub_env` (sets ``HF_ENDPOINT`` *and* the copies of it that
``huggingface_hub`` / ``diffusers`` / ``transformers`` took at import time)::

    with HubStandIn({"owner/model": {"config.json": b"{}", "unet/w.safetensors": path}}) as hub:
        with hub_env(hub.url, cache_dir=tmp_path / "hub"):
            snapshot_download("owner/model", allow_patterns=["*.json"])
        assert hub.downloaded("owner/model") == {"config.json"}

What huggingface_hub 2.4.0 asks for (read from its source; the client is ``httpx2``, not ``requests``):

* ``model_info(repo, revision=None)``          -> ``GET /api/models/{repo}`` (``?blobs=true`` with
  ``files_metadata=True``, ``securityStatus``/``expand`` optional); with a revision
  ``GET /api/models/{repo}/revision/{quote(rev, safe="")}``. ``repo_info`` is the same for models.
* ``list_repo_tree`` / ``list_repo_files``     -> ``GET /api/models/{repo}/tree/{rev}[/{quote(path, safe="")}]``
  ``?recursive=true&expand=false`` (httpx2 lower-cases bools); next pages are followed through a
  ``Link: <abs-url>; rel="next"`` header.
* ``get_paths_info``                           -> ``POST /api/models/{repo}/paths-info/{rev}`` (form: paths, expand).
* ``hf_hub_download(repo, f)``                 -> ``HEAD /{repo}/resolve/{rev}/{quote(f)}`` (no redirect-following
  off-host; needs ``X-Repo-Commit``, ``X-Linked-Etag`` or ``ETag``, ``X-Linked-Size`` or ``Content-Length``), then
  ``GET`` of the same url (or of the ``Location`` of a redirect), resumed with ``Range: bytes=N-`` after a
  ``httpx2.RemoteProtocolError`` / ``ConnectError`` / timeout (up to 5 retries, 1 s apart, the count resets whenever
  bytes arrive), so a dropped connection is *healed* by a Range request, not raised.
* ``snapshot_download(repo, revision="main")`` -> ``GET /api/models/{repo}/revision/main`` (the commit sha), then
  ``GET /api/models/{repo}/tree/{sha}?recursive=true&expand=false`` (result cached on disk in
  ``<cache>/models--o--n/trees/{sha}.json``), then per selected file ``HEAD`` + ``GET`` of
  ``/{repo}/resolve/{sha}/{file}``. Files already in the cache are not requested at all.
* Xet is used only when a HEAD answer carries ``X-Xet-Hash`` plus a refresh route (``Link: <..>; rel="xet-auth"``
  or ``X-Xet-Refresh-Route``) or a tree entry has ``xetHash``. This server never sends them => plain HTTP.
* Errors: ``X-Error-Code`` ``RepoNotFound`` -> ``RepositoryNotFoundError``, ``RevisionNotFound`` ->
  ``RevisionNotFoundError``, ``EntryNotFound`` -> ``RemoteEntryNotFoundError`` (+ ``X-Repo-Commit`` on the 404 lets
  the client cache the non-existence in ``.no_exist/``). Note: the Hub's code is ``RepoNotFound``, not
  ``RepositoryNotFound``.

The upload side (``HubStandIn(..., tokens={"hf_x": "alice"}, orgs={"alice": ["studio-org"]})``), as huggingface_hub
2.4.0 sends it (hf_api.py, _commit_api.py, lfs.py); every call carries ``Authorization: Bearer <token>`` except the
storage PUTs:

* ``whoami(token)``                            -> ``GET /api/whoami-v2``: ``{"name", "orgs": [{"name"}], "auth":
  {"accessToken": {"role": "write"|"read"}}, ...}``.
* ``create_repo(id, private=, exist_ok=)``     -> ``POST /api/repos/create`` ``{"name", "organization": ns|None,
  "visibility": "private"|"public"}`` (no ``type`` for models) -> ``{"url", "name", "id"}``; 409 (with ``url``) when it
  exists, which ``exist_ok`` accepts; on a 401/402/403 ``exist_ok`` looks the repo up with ``GET /api/models/{id}``
  and re-raises if that fails. A new repo's first commit holds the Hub's default ``.gitattributes``.
* ``upload_folder`` / ``create_commit``:
  1. ``POST /api/validate-yaml`` ``{"content", "repoType"}`` when README.md is among the files (twice:
     ``upload_folder`` checks it, then ``create_commit``) -> ``{"errors": [], "warnings": []}``;
  2. ``POST /api/models/{id}/preupload/{rev}`` ``{"files": [{"path", "sample": b64 of 512 bytes, "size"}]}`` ->
     ``{"files": [{"path", "uploadMode": "lfs"|"regular", "shouldIgnore", "oid"?}]}``: LFS by the LFS rule
     (``is_lfs``) or for binary content (a NUL byte in the sample); ``oid`` of an existing file (sha256 for LFS, git
     blob sha1 otherwise) makes the client drop an unchanged file (and make no commit when nothing changed: it then
     reads ``GET /api/models/{id}/revision/main``). Empty files are always sent regular;
  3. for the LFS files: ``POST /{id}.git/info/lfs/objects/batch`` (``Accept``/``Content-Type``
     ``application/vnd.git-lfs+json``; ``{"operation": "upload", "transfers": ["basic", "multipart"], "objects":
     [{"oid": sha256, "size"}], "hash_algo": "sha256", "ref": {"name": "main"}}``) -> per object
     ``actions.upload.href`` (a pre-signed ``/lfs-upload/{ticket}`` url here) and ``actions.verify.href``, or no
     ``actions`` when the repo's storage has it; then ``PUT`` of the bytes to the href without a token (or, with
     ``header.chunk_size`` and numbered part urls: one ``PUT`` per part, each answered with an ``ETag``, then
     ``POST`` of ``{"oid", "parts": [{"partNumber", "etag"}]}`` to the href), then ``POST`` of ``{"oid", "size"}``
     to the verify href;
  4. ``POST /api/models/{id}/commit/{rev}`` (``Content-Type: application/x-ndjson``): a ``{"key": "header", "value":
     {"summary", "description", "parentCommit"?}}`` line, then ``file`` (``{"path", "content": b64, "encoding":
     "base64"}``), ``lfsFile`` (``{"path", "algo": "sha256", "oid", "size"}``), ``deletedFile``/``deletedFolder``
     lines -> ``{"commitOid", "commitUrl", ...}``. The new commit is the head of main at once (downloads see it);
     earlier commits stay readable by sha. A stale ``parentCommit`` is a 412, an ``lfsFile`` never uploaded a 400.
* Xet: with hf_xet installed the *client* uploads through Xet whatever the server says (``is_xet_available()``
  is all it checks), so :func:`hub_env` sets ``constants.HF_HUB_DISABLE_XET``: then it takes the plain path above,
  which the Hub still serves. This server never sends Xet headers or hashes, so downloads stay plain HTTP too.
* Tokens and rights, as the Hub answers: a token not in ``tokens`` is a 401 (``Invalid credentials in
  Authorization header``, no error code, so not read as RepoNotFound) on every route; no token on a write call or
  whoami is a 401; writing outside one's namespace and organisations, or with a read token, is a 403; a private repo
  is a 404 ``RepoNotFound`` to anyone but its namespace's members (the Hub answers anonymous callers 401
  ``RepoNotFound``: huggingface_hub raises RepositoryNotFoundError for both).

Proxies (checked in httpx2 2.16.2 / huggingface_hub 2.4.0): the shared client is
``httpx2.Client(follow_redirects=True, timeout=None)`` with the default ``trust_env=True``, so ``HTTP_PROXY`` /
``http_proxy`` / ``ALL_PROXY`` / ``NO_PROXY`` are honoured (read through ``urllib.request.getproxies()``: the
lower-case variable wins over the upper-case one). 127.0.0.1 and localhost are *not* exempt by default: they bypass
the proxy only when listed in ``NO_PROXY``/``no_proxy`` (or ``NO_PROXY=*``). The environment is read once, when
the shared client is built (first request); later changes are ignored until
``huggingface_hub.utils._http.close_session()`` (``hub_env`` calls it on entry and exit). ``proxies=`` kwargs
are no longer used by huggingface_hub 2.x.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import os
import pathlib
import re
import secrets
import socket
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Union

Content = Union[bytes, pathlib.Path, str, Callable[[], Any]]

CHUNK = 64 * 1024
DEFAULT_BRANCH = "main"

# Suffixes tracked with git-lfs by the Hub's default .gitattributes (plus anything over 10 MiB).
LFS_SUFFIXES = (
    ".7z", ".arrow", ".bin", ".bz2", ".ckpt", ".ftz", ".gz", ".h5", ".joblib", ".mlmodel", ".model", ".msgpack",
    ".npy", ".npz", ".onnx", ".ot", ".parquet", ".pb", ".pickle", ".pkl", ".pt", ".pth", ".rar", ".safetensors",
    ".tar", ".tflite", ".tgz", ".wasm", ".xz", ".zip", ".zst", ".gguf",
)  # fmt: skip
LFS_MIN_SIZE = 10 * 1024 * 1024


def default_is_lfs(path: str, size: int) -> bool:
    return path.lower().endswith(LFS_SUFFIXES) or size >= LFS_MIN_SIZE


def git_blob_oid(data: bytes) -> str:
    """Git object id of a blob (sha1 of ``b"blob <size>\\0" + content``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _never(path: str, size: int) -> bool:
    return False


def _always(path: str, size: int) -> bool:
    return True


# The .gitattributes the Hub puts in a new repo's first commit (LFS for these suffixes).
GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES).encode()
REPO_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?")
SHA256 = re.compile(r"[0-9a-f]{64}")


def _fake_id(name: str) -> str:
    return hashlib.sha1(f"hub-standin-id:{name}".encode()).hexdigest()[:24]


def _checked_path(path: str) -> str:
    """A path in a repo as a commit may name it (no empty, absolute, ``..`` or ``.git/`` paths)."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(part in ("", ".", "..") for part in parts) or parts[0] == ".git":
        raise _HubError(400, None, f"Invalid path in the commit: {path!r}")
    return path


@dataclass
class _Ticket:
    """One pre-signed LFS upload url: the object it takes and, for a multipart upload, the parts received."""

    repo_id: str
    oid: str
    size: int
    parts: dict[int, tuple[str, bytes]] = field(default_factory=dict)  # part number -> (etag, bytes)


class _RepoFile:
    """One file of a repo: content resolved lazily, hashes computed once (streamed for files on disk)."""

    def __init__(self, path: str, source: Content, is_lfs: Callable[[str, int], bool]):
        self.path = path
        self._source = source
        self._is_lfs = is_lfs
        self._resolved: bytes | pathlib.Path | None = None
        self._meta: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def _content(self) -> bytes | pathlib.Path:
        if self._resolved is None:
            src = self._source
            if callable(src) and not isinstance(src, (bytes, pathlib.Path)):
                src = src()
            if isinstance(src, str):
                src = pathlib.Path(src)
            if isinstance(src, (bytearray, memoryview)):
                src = bytes(src)
            if not isinstance(src, (bytes, pathlib.Path)):
                raise TypeError(f"content of {self.path!r} must be bytes, a path or a callable returning one")
            self._resolved = src
        return self._resolved

    @property
    def size(self) -> int:
        c = self._content()
        return len(c) if isinstance(c, bytes) else c.stat().st_size

    def iter_bytes(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes [start, end) in chunks."""
        c = self._content()
        end = self.size if end is None else end
        if isinstance(c, bytes):
            for i in range(start, end, CHUNK):
                yield c[i : min(i + CHUNK, end)]
            return
        with c.open("rb") as f:
            f.seek(start)
            left = end - start
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    break
                left -= len(chunk)
                yield chunk

    def meta(self) -> dict[str, Any]:
        """size, sha256, git oid, lfs flag, pointer size (computed once)."""
        with self._lock:
            if self._meta is None:
                size = self.size
                sha256, sha1 = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % size)
                for chunk in self.iter_bytes():
                    sha256.update(chunk)
                    sha1.update(chunk)
                digest = sha256.hexdigest()
                lfs = bool(self._is_lfs(self.path, size))
                oid, pointer_size = sha1.hexdigest(), None
                if lfs:  # the git blob is the LFS pointer file
                    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{digest}\nsize {size}\n".encode()
                    oid, pointer_size = git_blob_oid(pointer), len(pointer)
                self._meta = {"size": size, "sha256": digest, "oid": oid, "lfs": lfs, "pointer_size": pointer_size}
            return self._meta

    @property
    def etag(self) -> str:
        """What the Hub sends as (X-Linked-)ETag: the sha256 for LFS files, the git blob oid otherwise."""
        m = self.meta()
        return m["sha256"] if m["lfs"] else m["oid"]

    def tree_entry(self) -> dict[str, Any]:
        m = self.meta()
        entry: dict[str, Any] = {"type": "file", "oid": m["oid"], "size": m["size"], "path": self.path}
        if m["lfs"]:
            entry["lfs"] = {"oid": m["sha256"], "size": m["size"], "pointerSize": m["pointer_size"]}
        return entry


class _Headers(dict):
    """A request's headers, looked up case-insensitively (httpx2 sends lower-case names), stored lower-case."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()):
        super().__init__((k.lower(), v) for k, v in items)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


@dataclass
class RequestRecord:
    method: str
    path: str  # unquoted, without the query string
    query: dict[str, list[str]]
    headers: dict[str, str]  # case-insensitive lookups
    # model_info | tree | paths_info | resolve | whoami | create_repo | validate_yaml | preupload | lfs_batch |
    # lfs_upload | lfs_verify | commit | other
    kind: str = "other"
    repo_id: str | None = None
    user: str | None = None  # whose token the request carried (None: no token)
    file: str | None = None  # path in repo, for resolve
    status: int | None = None
    bytes_sent: int = 0
    broken: bool = False  # connection dropped on purpose (fail_once)
    # Set when the handler is done with the request: a client can have read the whole body before the
    # server's thread counts the last bytes, so `records()` waits for it.
    done: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)


@dataclass
class _Failure:
    after_bytes: int
    times: int | None  # None: until cleared


@dataclass
class _Repo:
    """A repo: its head (``sha``, ``files``) and every commit's files (``history``).

    A commit never mutates a ``files`` dict: it puts a new one in place, so a view of one revision (a ``_Repo``
    holding that revision's sha and files, see ``HubStandIn._view``) stays consistent while commits happen."""

    repo_id: str
    sha: str
    files: dict[str, _RepoFile] = field(default_factory=dict)
    private: bool = False
    history: dict[str, dict[str, _RepoFile]] = field(default_factory=dict)  # sha -> files
    log: list[tuple[str, str]] = field(default_factory=list)  # (sha, summary), oldest first
    lfs_objects: set[str] = field(default_factory=set)  # sha256 of LFS objects uploaded to this repo

    @property
    def namespace(self) -> str | None:
        return self.repo_id.split("/")[0] if "/" in self.repo_id else None

    def dirs(self) -> set[str]:
        out = set()
        for p in self.files:
            parts = p.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                out.add("/".join(parts[:i]))
        return out


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, owner):
        self.owner = owner
        self.conns: set[socket.socket] = set()
        self.conns_lock = threading.Lock()
        super().__init__(addr, handler)

    def drop_connections(self) -> None:
        with self.conns_lock:
            conns = list(self.conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)


class _TrackedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections give up after this

    def setup(self) -> None:
        super().setup()
        with self.server.conns_lock:
            self.server.conns.add(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        with self.server.conns_lock:
            self.server.conns.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr logging
        pass


class _HubError(Exception):
    """An error answer (status, X-Error-Code, message) raised inside a route and sent by `_dispatch`."""

    def __init__(self, status: int, code: str | None, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def _repo_not_found() -> _HubError:
    return _HubError(404, "RepoNotFound", "Repository not found")


def _revision_not_found() -> _HubError:
    return _HubError(404, "RevisionNotFound", "Invalid rev id")


# What the Hub answers for a token it doesn't know (any route), and for a write call without a token.
INVALID_TOKEN = "Invalid credentials in Authorization header"
NO_TOKEN = "Invalid username or password."
LFS_JSON = "application/vnd.git-lfs+json"


class _HubHandler(_TrackedHandler):
    server: _Server

    # ---- plumbing ----------------------------------------------------------------------------------------------
    def _start(self) -> RequestRecord:
        split = urllib.parse.urlsplit(self.path)
        rec = RequestRecord(
            method=self.command,
            path=urllib.parse.unquote(split.path),
            query=urllib.parse.parse_qs(split.query, keep_blank_values=True),
            headers=_Headers(self.headers.items()),
        )
        self.server.owner._record(rec)
        self._rec = rec
        self._raw_path = split.path
        self._user: str | None = None
        self._role: str | None = None
        return rec

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, ctype: str = "") -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        self._rec.status = status

    def _json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None, ctype: str = "") -> None:
        self._send(status, json.dumps(obj).encode(), headers, ctype or "application/json; charset=utf-8")

    def _error(self, status: int, code: str | None, message: str, headers: dict[str, str] | None = None) -> None:
        h = dict(headers or {})
        if code:
            h["X-Error-Code"] = code
        h["X-Error-Message"] = message
        self._json({"error": message}, status, h)

    def _base_url(self) -> str:
        return f"http://{self.headers.get('Host') or self.server.owner.host_port}"

    def _read_body(self) -> bytes:
        """The request body (Content-Length or chunked), read whole before any answer so that a keep-alive
        connection never holds an unread body when the next request comes."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _json_body(self) -> Any:
        try:
            return json.loads(self._body or b"null")
        except ValueError:
            raise _HubError(400, None, "Invalid JSON body") from None

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        rec = self._start()
        owner: HubStandIn = self.server.owner
        parts = [urllib.parse.unquote(p) for p in self._raw_path.split("/")[1:]]
        try:
            self._body = self._read_body() if self.command in ("POST", "PUT") else b""
            self._route(owner, parts)
        except _HubError as error:
            self._error(error.status, error.code, error.message, error.headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            if rec.status is None:
                rec.status = 0
            rec.done.set()

    def _route(self, owner: HubStandIn, parts: list[str]) -> None:
        if parts and parts[0] == "lfs-upload":  # pre-signed storage urls: no token, the ticket is the credential
            return self._lfs_storage(owner, parts[1:])
        self._authenticate(owner)
        if parts[:2] == ["api", "whoami-v2"] and len(parts) == 2:
            return self._whoami(owner)
        if parts[:3] == ["api", "repos", "create"] and len(parts) == 3 and self.command == "POST":
            return self._create_repo(owner)
        if parts[:2] == ["api", "validate-yaml"] and len(parts) == 2 and self.command == "POST":
            return self._validate_yaml()
        if len(parts) >= 3 and parts[0] == "api" and parts[1] == "models":
            return self._api(owner, parts[2:])
        # /{repo_id}.git/info/lfs/objects/(batch|verify)
        for i, part in enumerate(parts):
            if part.endswith(".git") and parts[i + 1 : i + 4] == ["info", "lfs", "objects"] and len(parts) == i + 5:
                repo_id = "/".join([*parts[:i], part[: -len(".git")]])
                return self._lfs_api(owner, repo_id, parts[i + 4])
        # /{repo_id}/resolve/{rev}/{path...}, repo ids of one ("name") or two ("owner/name") components
        if len(parts) > 3 and parts[1] == "resolve" and parts[0] in owner._repos:
            return self._resolve(owner, parts[0], parts[2], "/".join(parts[3:]))
        if len(parts) > 4 and parts[2] == "resolve":
            return self._resolve(owner, "/".join(parts[:2]), parts[3], "/".join(parts[4:]))
        if len(parts) > 3 and parts[1] == "resolve":
            return self._resolve(owner, parts[0], parts[2], "/".join(parts[3:]))
        raise _HubError(404, None, "Not Found")

    # ---- tokens and rights -----------------------------------------------------------------------------------------
    def _authenticate(self, owner: HubStandIn) -> None:
        """Who the request's bearer token belongs to; a token the Hub doesn't know is a 401 on every route."""
        value = self.headers.get("Authorization") or ""
        if not value:
            return
        scheme, _, token = value.partition(" ")
        known = owner._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if known is None:
            raise _HubError(401, None, INVALID_TOKEN)
        self._user, self._role = known
        self._rec.user = self._user

    def _require_user(self) -> str:
        if self._user is None:
            raise _HubError(401, None, NO_TOKEN)
        return self._user

    def _require_write(self, owner: HubStandIn, repo: _Repo) -> None:
        user = self._require_user()
        if not owner._can_write(user, self._role, repo.namespace):
            raise _HubError(403, None, f"You don't have write access to {repo.repo_id}: use a write token of a member "
                                       f"of {repo.namespace or 'its owner'}")

    def _readable(self, owner: HubStandIn, repo_id: str) -> _Repo:
        repo = owner._repos.get(repo_id)
        if repo is None or not owner._can_read(self._user, repo):
            raise _repo_not_found()  # private repos are invisible to everyone but their namespace's members
        return repo

    def _repo_and_rest(self, owner: HubStandIn, parts: list[str]) -> tuple[_Repo | None, str, list[str]]:
        if len(parts) >= 2 and "/".join(parts[:2]) in owner._repos:
            return owner._repos["/".join(parts[:2])], "/".join(parts[:2]), parts[2:]
        if parts[0] in owner._repos:
            return owner._repos[parts[0]], parts[0], parts[1:]
        return None, "/".join(parts[:2]), []

    # ---- /api/whoami-v2, /api/repos/create, /api/validate-yaml ----------------------------------------------------
    def _whoami(self, owner: HubStandIn) -> None:
        self._rec.kind = "whoami"
        user = self._require_user()
        orgs = [{"type": "org", "name": org, "fullname": org, "id": _fake_id(org), "roleInOrg": "write",
                 "isEnterprise": False} for org in owner._orgs.get(user, ())]
        self._json({
            "type": "user", "id": _fake_id(user), "name": user, "fullname": user, "email": f"{user}@example.invalid",
            "emailVerified": True, "canPay": False, "isPro": False, "periodEnd": None, "avatarUrl": "", "orgs": orgs,
            "auth": {"type": "access_token", "accessToken": {
                "displayName": "hub stand-in", "role": self._role, "createdAt": "2024-01-01T00:00:00.000Z"}},
        })  # fmt: skip

    def _create_repo(self, owner: HubStandIn) -> None:
        rec = self._rec
        rec.kind = "create_repo"
        user = self._require_user()
        body = self._json_body()
        if not isinstance(body, dict):
            raise _HubError(400, None, "Invalid JSON body")
        name, organization = body.get("name"), body.get("organization")
        if body.get("type", "model") != "model":
            raise _HubError(400, None, "The Hub stand-in only hosts model repos")
        namespace = organization or user
        if not isinstance(name, str) or not REPO_NAME.fullmatch(name) or "--" in name or ".." in name:
            raise _HubError(400, None, "Repository name must use alphanumeric characters, '-', '_' or '.', start and "
                                       "end with an alphanumeric character, and be at most 96 characters long")
        repo_id = rec.repo_id = f"{namespace}/{name}"
        if not owner._can_write(user, self._role, namespace):
            raise _HubError(403, None, "You don't have the rights to create a model under this namespace")
        private = body.get("visibility") == "private" or body.get("private") is True
        url = f"{self._base_url()}/{repo_id}"
        if not owner._create(repo_id, private, user):
            return self._json({"error": "You already created this model repo", "url": url}, 409,
                              {"X-Error-Message": "You already created this model repo"})
        self._json({"url": url, "name": repo_id, "id": _fake_id(repo_id)})

    def _validate_yaml(self) -> None:
        self._rec.kind = "validate_yaml"
        body = self._json_body()
        content = body.get("content", "") if isinstance(body, dict) else ""
        if content.startswith("---") and "\n---" not in content[3:]:
            return self._json({"errors": [{"message": "The YAML metadata block is not closed by a '---' line"}],
                               "warnings": []}, 400)
        self._json({"errors": [], "warnings": []})

    # ---- /api/models/... ---------------------------------------------------------------------------------------
    def _api(self, owner: HubStandIn, parts: list[str]) -> None:
        rec = self._rec
        repo, repo_id, rest = self._repo_and_rest(owner, parts)
        rec.repo_id = repo_id
        tail = rest if repo is not None else parts[2:]
        kinds = {"revision": "model_info", "tree": "tree", "paths-info": "paths_info", "preupload": "preupload",
                 "commit": "commit"}
        rec.kind = kinds.get(tail[0], "other") if tail else "model_info"
        if repo is None or not owner._can_read(self._user, repo):
            raise _repo_not_found()
        if not rest or rest[0] == "revision":
            if rest and len(rest) < 2:
                raise _revision_not_found()
            return self._model_info(self._view(owner, repo, "/".join(rest[1:]) if rest else DEFAULT_BRANCH))
        if rest[0] == "tree" and len(rest) >= 2:
            return self._tree(owner, self._view(owner, repo, rest[1]), rest[1], "/".join(rest[2:]).strip("/"))
        if rest[0] == "paths-info" and len(rest) == 2 and self.command == "POST":
            view = self._view(owner, repo, rest[1])
            form = urllib.parse.parse_qs(self._body.decode(), keep_blank_values=True)
            out = []
            for p in form.get("paths", []):
                p = p.strip("/")
                if p in view.files:
                    out.append(view.files[p].tree_entry())
                elif p in view.dirs():
                    out.append(_dir_entry(view, p))
            return self._json(out)
        if rest[0] in ("preupload", "commit") and len(rest) >= 2 and self.command == "POST":
            self._require_write(owner, repo)
            if "/".join(rest[1:]) != DEFAULT_BRANCH:
                raise _revision_not_found()  # the stand-in has one branch
            if _truthy(rec.query.get("create_pr")):
                raise _HubError(400, None, "The Hub stand-in does not open pull requests")
            return self._preupload(owner, repo) if rest[0] == "preupload" else self._commit(owner, repo)
        raise _HubError(404, None, "Not Found")

    def _view(self, owner: HubStandIn, repo: _Repo, revision: str) -> _Repo:
        view = owner._view(repo, revision)
        if view is None:
            raise _revision_not_found()
        return view

    def _model_info(self, repo: _Repo) -> None:
        q = self._rec.query
        blobs = _truthy(q.get("blobs"))
        siblings = []
        for path in sorted(repo.files):
            s: dict[str, Any] = {"rfilename": path}
            if blobs:
                m = repo.files[path].meta()
                s["size"] = m["size"]
                s["blobId"] = m["oid"]
                if m["lfs"]:
                    s["lfs"] = {"size": m["size"], "sha256": m["sha256"], "pointerSize": m["pointer_size"]}
            siblings.append(s)
        owner_name = repo.repo_id.split("/")[0] if "/" in repo.repo_id else None
        info: dict[str, Any] = {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": owner_name,
            "sha": repo.sha,
            "lastModified": "2024-01-01T00:00:00.000Z",
            "createdAt": "2024-01-01T00:00:00.000Z",
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "library_name": "diffusers",
            "siblings": siblings,
            "spaces": [],
        }
        if blobs:
            info["usedStorage"] = sum(s.get("size", 0) for s in siblings)
        if _truthy(q.get("securityStatus")):
            info["securityRepoStatus"] = {"scansDone": True, "filesWithIssues": []}
        expand = q.get("expand") or q.get("expand[]")
        if expand:
            info = {k: v for k, v in info.items() if k in {"_id", "id", *expand}}
        self._json(info)

    def _tree(self, owner: HubStandIn, repo: _Repo, revision: str, path: str) -> None:
        q = self._rec.query
        recursive = _truthy(q.get("recursive"))
        dirs = repo.dirs()
        if path and path not in dirs:
            raise _HubError(404, "EntryNotFound", f"{path} does not exist on {revision}")
        prefix = f"{path}/" if path else ""
        entries: list[dict[str, Any]] = []
        for d in sorted(dirs):
            if d.startswith(prefix) and (recursive or "/" not in d[len(prefix) :]):
                entries.append(_dir_entry(repo, d))
        for p in sorted(repo.files):
            if p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :]):
                entries.append(repo.files[p].tree_entry())
        size = owner.page_size
        cursor = int((q.get("cursor") or ["0"])[0] or 0)
        page = entries[cursor : cursor + size]
        headers = {}
        if cursor + size < len(entries):
            params = {k: v[0] for k, v in q.items() if k != "cursor"}
            params["cursor"] = str(cursor + size)
            next_url = f"{self._base_url()}{self._raw_path}?{urllib.parse.urlencode(params)}"
            headers["Link"] = f'<{next_url}>; rel="next"'
        self._json(page, headers=headers)

    # ---- upload: preupload, LFS, commit ----------------------------------------------------------------------------
    def _preupload(self, owner: HubStandIn, repo: _Repo) -> None:
        """Which files go through LFS: the repo's LFS rule (the default .gitattributes suffixes, 10 MiB), or binary
        content (a NUL byte in the 512-byte sample), as the Hub decides; ``oid`` of a file already there lets the
        client skip an unchanged file."""
        body = self._json_body()
        files = body.get("files") if isinstance(body, dict) else None
        if not isinstance(files, list):
            raise _HubError(400, None, "Invalid preupload payload: expected {files: [...]}")
        head = self._view(owner, repo, DEFAULT_BRANCH)
        out = []
        for item in files:
            path, size = str(item.get("path", "")).strip("/"), int(item.get("size", 0))
            sample = base64.b64decode(item.get("sample") or "")
            entry: dict[str, Any] = {
                "path": item.get("path"),
                "uploadMode": "lfs" if owner._is_lfs(path, size) or b"\0" in sample else "regular",
                "shouldIgnore": False,
            }
            if path in head.files:
                entry["oid"] = head.files[path].etag
            out.append(entry)
        self._json({"files": out, "commitOid": head.sha})

    def _commit(self, owner: HubStandIn, repo: _Repo) -> None:
        lines = []
        for raw in self._body.splitlines():
            if raw.strip():
                try:
                    lines.append(json.loads(raw))
                except ValueError:
                    raise _HubError(400, None, "Invalid NDJSON line in the commit payload") from None
        if not lines or not isinstance(lines[0], dict) or lines[0].get("key") != "header":
            raise _HubError(400, None, "The commit payload must start with a header line")
        header = lines[0].get("value") or {}
        sha = owner._apply_commit(repo, [line for line in lines[1:]], str(header.get("summary") or ""),
                                  header.get("parentCommit"))
        self._json({"success": True, "commitOid": sha, "commitUrl": f"{self._base_url()}/{repo.repo_id}/commit/{sha}",
                    "hookOutput": ""})

    def _lfs_api(self, owner: HubStandIn, repo_id: str, action: str) -> None:
        rec = self._rec
        rec.repo_id = repo_id
        if self.command != "POST" or action not in ("batch", "verify"):
            raise _HubError(404, None, "Not Found")
        rec.kind = f"lfs_{action}"
        repo = self._readable(owner, repo_id)
        self._require_write(owner, repo)
        body = self._json_body()
        if not isinstance(body, dict):
            raise _HubError(400, None, "Invalid JSON body")
        if action == "verify":
            if body.get("oid") not in repo.lfs_objects or owner._blob_size(body["oid"]) != body.get("size"):
                raise _HubError(404, None, f"LFS object {body.get('oid')} was not uploaded")
            return self._json({"success": True}, ctype=LFS_JSON)
        if body.get("operation") != "upload":
            raise _HubError(422, None, "The Hub stand-in's LFS batch endpoint takes uploads only")
        if "basic" not in (body.get("transfers") or ["basic"]):
            raise _HubError(422, None, "The Hub stand-in's LFS endpoint transfers with basic/multipart only")
        base = self._base_url()
        objects = []
        for obj in body.get("objects") or []:
            oid, size = obj.get("oid"), obj.get("size")
            if not isinstance(oid, str) or not SHA256.fullmatch(oid) or not isinstance(size, int) or size < 0:
                objects.append({"oid": str(oid), "size": size if isinstance(size, int) else 0,
                                "error": {"code": 422, "message": "Invalid object: oid must be a sha256, size an int"}})
                continue
            entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if oid not in repo.lfs_objects:  # already in the repo's storage: no actions, the client skips it
                entry["actions"] = owner._upload_actions(base, repo_id, oid, size)
            objects.append(entry)
        self._json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"}, ctype=LFS_JSON)

    def _lfs_storage(self, owner: HubStandIn, parts: list[str]) -> None:
        """The storage side of LFS (S3's pre-signed urls on the Hub): ``PUT /lfs-upload/{ticket}`` (basic),
        ``PUT /lfs-upload/{ticket}/{part}`` and ``POST /lfs-upload/{ticket}`` (multipart completion)."""
        rec = self._rec
        rec.kind = "lfs_upload"
        ticket = owner._tickets.get(parts[0]) if parts else None
        if ticket is None or len(parts) > 2:
            raise _HubError(403, None, "Invalid or expired upload url")
        rec.repo_id = ticket.repo_id
        if len(parts) == 2 and self.command == "PUT":
            etag = hashlib.md5(self._body).hexdigest()
            with owner._lock:
                ticket.parts[int(parts[1])] = (etag, self._body)
            rec.bytes_sent = len(self._body)
            return self._send(200, b"", {"ETag": f'"{etag}"'})
        if len(parts) == 1 and self.command == "PUT":
            data = self._body
        elif len(parts) == 1 and self.command == "POST":  # multipart completion
            body = self._json_body()
            listed = [(int(p["partNumber"]), str(p["etag"]).strip('"')) for p in (body or {}).get("parts", [])]
            stored = sorted(ticket.parts.items())
            if [(n, e) for n, (e, _) in stored] != listed:
                raise _HubError(400, None, "The parts listed do not match the parts uploaded")
            data = b"".join(chunk for _, (_, chunk) in stored)
        else:
            raise _HubError(405, None, "Method not allowed")
        if len(data) != ticket.size or hashlib.sha256(data).hexdigest() != ticket.oid:
            raise _HubError(400, None, "The uploaded content does not match the object's sha256 and size")
        owner._store_blob(ticket.repo_id, ticket.oid, data)
        self._send(200)

    # ---- /{repo}/resolve/{rev}/{path} ----------------------------------------------------------------------------
    def _resolve(self, owner: HubStandIn, repo_id: str, revision: str, path: str) -> None:
        rec = self._rec
        rec.kind, rec.repo_id, rec.file = "resolve", repo_id, path
        repo = self._view(owner, self._readable(owner, repo_id), revision)
        f = repo.files.get(path)
        if f is None:
            raise _HubError(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": repo.sha})
        m = f.meta()
        total = m["size"]
        headers = {
            "X-Repo-Commit": repo.sha,
            "ETag": f'"{f.etag}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'attachment; filename="{path.rsplit("/", 1)[-1]}";',
        }
        if m["lfs"]:
            headers["X-Linked-Etag"] = f'"{m["sha256"]}"'
            headers["X-Linked-Size"] = str(total)
        start, end, status = 0, total, 200
        rng = self.headers.get("Range")
        if rng:
            parsed = _parse_range(rng, total)
            if parsed is None:
                return self._send(416, b"", {**headers, "Content-Range": f"bytes */{total}"})
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{total}"
        failure = owner._take_failure(repo_id, path) if self.command == "GET" else None
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(end - start))
        self.end_headers()
        rec.status = status
        if self.command == "HEAD":
            return
        limit = end - start if failure is None else min(failure.after_bytes, end - start)
        sent = 0
        for chunk in f.iter_bytes(start, start + limit):
            self.wfile.write(chunk)
            sent += len(chunk)
            rec.bytes_sent = sent
        if failure is not None:
            rec.broken = True
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)


def _dir_entry(repo: _Repo, d: str) -> dict[str, Any]:
    return {"type": "directory", "oid": hashlib.sha1(f"{repo.sha}:{d}".encode()).hexdigest(), "size": 0, "path": d}


def _truthy(values: list[str] | None) -> bool:
    return bool(values) and values[-1].lower() in ("1", "true", "yes", "on")


def _parse_range(value: str, total: int) -> tuple[int, int] | None:
    """'bytes=a-b' / 'bytes=a-' / 'bytes=-n' -> [start, end) or None if unsatisfiable/unsupported."""
    unit, _, spec = value.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    a, _, b = spec.strip().partition("-")
    try:
        if a == "":
            n = int(b)
            if n <= 0:
                return None
            return max(total - n, 0), total
        start = int(a)
        end = min(int(b) + 1, total) if b else total
    except ValueError:
        return None
    if start >= total or end <= start:
        return None
    return start, end


class _Background:
    """Shared start/stop/context-manager logic for the two servers."""

    _server: _Server | None = None
    _thread: threading.Thread | None = None

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host = host
        self._port = port

    def _make(self) -> _Server:
        raise NotImplementedError

    def start(self):
        if self._server is None:
            self._server = self._make()
            self._thread = threading.Thread(
                target=self._server.serve_forever, args=(0.05,), name=type(self).__name__, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: the listening port is closed and open keep-alive connections are dropped."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return self._server.server_address[1]

    @property
    def host_port(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host_port}"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class HubStandIn(_Background):
    """Local Hub stand-in. ``repos``: repo id ("owner/name" or "name") -> {path in repo -> content}.

    Content: ``bytes``; a ``pathlib.Path`` (or ``str`` path) served from disk, streamed; or a zero-argument callable
    returning either (called lazily, once). LFS-ness (etag = sha256, ``X-Linked-*`` headers, ``lfs`` in listings)
    follows ``is_lfs(path, size)``, by default the Hub's default .gitattributes suffixes (*.safetensors, *.bin, ...)
    or size >= 10 MiB. Revisions accepted: "main", the repo's commit sha (and any earlier commit's), and names in
    ``revisions``.

    Accounts (the upload side): ``tokens`` maps a token to its user, ``"alice"`` (a write token) or
    ``("alice", "read")``; ``orgs`` maps a user to the organisations they can write to. A user writes to their own
    namespace and their organisations'; repos in ``private`` (and repos created private) are visible only to those
    users. A request with a token not in ``tokens`` is answered 401 on every route, as the Hub does.
    ``lfs_multipart_chunk``: LFS objects larger than this are uploaded in parts of this size (the Hub's multipart
    transfer); None: always one PUT.
    """

    def __init__(
        self,
        repos: dict[str, dict[str, Content]] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        commits: dict[str, str] | None = None,
        revisions: dict[str, dict[str, str]] | None = None,
        is_lfs: Callable[[str, int], bool] = default_is_lfs,
        page_size: int = 1000,
        tokens: dict[str, str | tuple[str, str]] | None = None,
        orgs: dict[str, Iterable[str]] | None = None,
        private: Iterable[str] = (),
        lfs_multipart_chunk: int | None = None,
    ):
        super().__init__(host, port)
        self.page_size = page_size
        self._lock = threading.Lock()
        self._is_lfs = is_lfs
        self._repos: dict[str, _Repo] = {}
        private = set(private)
        for repo_id, files in (repos or {}).items():
            sha = (commits or {}).get(repo_id) or hashlib.sha1(f"hub-standin:{repo_id}".encode()).hexdigest()
            repo = _Repo(repo_id, sha, private=repo_id in private)
            for path, content in files.items():
                path = path.strip("/")
                repo.files[path] = _RepoFile(path, content, is_lfs)
            repo.history[sha] = repo.files
            repo.log.append((sha, "initial commit"))
            self._repos[repo_id] = repo
        unknown = private - set(self._repos)
        if unknown:
            raise ValueError(f"private names repos that aren't served: {sorted(unknown)}")
        self._extra_revisions = {
            r: {name: self._repos[r].sha for name in names} for r, names in (revisions or {}).items()
        }
        self._tokens: dict[str, tuple[str, str]] = {
            token: (who, "write") if isinstance(who, str) else (who[0], who[1]) for token, who in (tokens or {}).items()
        }
        self._orgs: dict[str, frozenset[str]] = {user: frozenset(names) for user, names in (orgs or {}).items()}
        self._multipart_chunk = lfs_multipart_chunk
        self._blobs: dict[str, bytes] = {}  # LFS storage: sha256 -> content
        self._tickets: dict[str, _Ticket] = {}
        self._failures: dict[tuple[str, str], list[_Failure]] = {}
        self.request_log: list[RequestRecord] = []

    def _make(self) -> _Server:
        return _Server((self.host, self._port), _HubHandler, self)

    # ---- accounts, revisions, commits (called by the handler) ----------------------------------------------------
    def _can_write(self, user: str | None, role: str | None, namespace: str | None) -> bool:
        return (
            user is not None and role != "read" and namespace is not None
            and (namespace == user or namespace in self._orgs.get(user, ()))
        )  # fmt: skip

    def _can_read(self, user: str | None, repo: _Repo) -> bool:
        if not repo.private:
            return True
        ns = repo.namespace
        return user is not None and ns is not None and (ns == user or ns in self._orgs.get(user, ()))

    def _view(self, repo: _Repo, revision: str) -> _Repo | None:
        """The repo at `revision` ("main", a commit sha, a name of `revisions`), or None if there is none."""
        with self._lock:
            if revision in (DEFAULT_BRANCH, repo.sha):
                return _Repo(repo.repo_id, repo.sha, repo.files, repo.private)
            sha = self._extra_revisions.get(repo.repo_id, {}).get(revision, revision)
            files = repo.history.get(sha)
            return None if files is None else _Repo(repo.repo_id, sha, files, repo.private)

    def _create(self, repo_id: str, private: bool, user: str) -> bool:
        """A new repo whose first commit holds the Hub's default .gitattributes; False if it exists."""
        with self._lock:
            if repo_id in self._repos:
                return False
            sha = hashlib.sha1(f"hub-standin:{repo_id}:{len(self._repos)}:created".encode()).hexdigest()
            files = {".gitattributes": _RepoFile(".gitattributes", GITATTRIBUTES, _never)}
            repo = _Repo(repo_id, sha, files, private)
            repo.history[sha] = files
            repo.log.append((sha, "initial commit"))
            self._repos[repo_id] = repo
            return True

    def _apply_commit(self, repo: _Repo, operations: list[dict], summary: str, parent: str | None) -> str:
        """Apply the commit's operations (file, lfsFile, deletedFile, deletedFolder) to the head of main as one new
        commit; raise _HubError (nothing applied) for a bad one. Returns the new commit's sha."""
        with self._lock:
            if parent is not None and parent != repo.sha:
                raise _HubError(412, None, "A commit has happened since. Please refresh and try again.")
            files = dict(repo.files)
            for op in operations:
                key, value = (op.get("key"), op.get("value") or {}) if isinstance(op, dict) else (None, {})
                path = str(value.get("path", ""))
                if key in ("file", "lfsFile", "deletedFile", "deletedFolder"):
                    path = _checked_path(path.rstrip("/") if key == "deletedFolder" else path)
                if key == "file":
                    encoding = value.get("encoding", "base64")
                    try:
                        data = base64.b64decode(value.get("content", ""), validate=True) if encoding == "base64" \
                            else str(value.get("content", "")).encode()
                    except ValueError:
                        raise _HubError(400, None, f"{path}: content is not valid base64") from None
                    if b"\0" in data:
                        raise _HubError(400, None, "Your push was rejected because it contains binary files: "
                                                   f"{path}. Please use LFS (or Xet) to store binary files.")
                    files[path] = _RepoFile(path, data, _never)
                elif key == "lfsFile":
                    oid = value.get("oid")
                    if value.get("algo", "sha256") != "sha256" or oid not in repo.lfs_objects:
                        raise _HubError(400, None, "Your push was rejected because an LFS pointer pointed to a file "
                                                   f"that does not exist: {path} ({oid})")
                    data = self._blobs[oid]
                    if value.get("size") is not None and value["size"] != len(data):
                        raise _HubError(400, None, f"{path}: size {value['size']} does not match LFS object {oid}")
                    files[path] = _RepoFile(path, data, _always)
                elif key == "deletedFile":
                    if files.pop(path, None) is None:
                        raise _HubError(404, "EntryNotFound", f"A file with this name doesn't exist: {path}")
                elif key == "deletedFolder":
                    gone = [p for p in files if p.startswith(path + "/")]
                    if not gone:
                        raise _HubError(404, "EntryNotFound", f"A folder with this name doesn't exist: {path}")
                    for p in gone:
                        del files[p]
                else:
                    raise _HubError(400, None, f"Unknown commit operation: {key!r}")
            digest = hashlib.sha1(f"{repo.sha}\n{summary}\n".encode())
            for p in sorted(files):
                digest.update(f"{p}\0{files[p].meta()['oid']}\n".encode())
            sha = digest.hexdigest()
            repo.files, repo.sha = files, sha
            repo.history[sha] = files
            repo.log.append((sha, summary))
            return sha

    def _upload_actions(self, base: str, repo_id: str, oid: str, size: int) -> dict[str, Any]:
        """The LFS batch answer's actions for one object: a pre-signed upload url (one PUT, or parts plus a
        completion POST) and the verify call."""
        name = secrets.token_hex(16)
        with self._lock:
            self._tickets[name] = _Ticket(repo_id, oid, size)
        href = f"{base}/lfs-upload/{name}"
        upload: dict[str, Any] = {"href": href, "expires_at": "2099-01-01T00:00:00.000Z"}
        chunk = self._multipart_chunk
        if chunk is not None and size > chunk:
            count = -(-size // chunk)
            upload["header"] = {"chunk_size": str(chunk), **{f"{i:05d}": f"{href}/{i}" for i in range(1, count + 1)}}
        return {"upload": upload, "verify": {"href": f"{base}/{repo_id}.git/info/lfs/objects/verify"}}

    def _store_blob(self, repo_id: str, oid: str, data: bytes) -> None:
        with self._lock:
            self._blobs[oid] = data
            self._repos[repo_id].lfs_objects.add(oid)

    def _blob_size(self, oid: str) -> int | None:
        blob = self._blobs.get(oid)
        return None if blob is None else len(blob)

    # ---- introspection -------------------------------------------------------------------------------------------
    def _record(self, rec: RequestRecord) -> None:
        with self._lock:
            self.request_log.append(rec)

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every request so far, path unquoted and without query string."""
        with self._lock:
            return [(r.method, r.path) for r in self.request_log]

    def downloaded(self, repo_id: str | None = None) -> set[str]:
        """Repo file paths whose content was sent by a GET of resolve (200/206, broken transfers included).

        With ``repo_id=None``: the union over all repos (paths only).
        """
        with self._lock:
            return {
                r.file
                for r in self.request_log
                if r.kind == "resolve"
                and r.method == "GET"
                and r.status in (200, 206)
                and (repo_id is None or r.repo_id == repo_id)
            }

    def records(self, kind: str | None = None, repo_id: str | None = None, wait_s: float = 10.0) -> list[RequestRecord]:
        """The requests so far, each complete (its handler finished, waiting up to `wait_s` for it)."""
        with self._lock:
            found = list(self.request_log)
        for r in found:
            r.done.wait(wait_s)
        return [r for r in found if (kind is None or r.kind == kind) and (repo_id is None or r.repo_id == repo_id)]

    def clear_log(self) -> None:
        with self._lock:
            self.request_log.clear()

    def commit(self, repo_id: str) -> str:
        """The sha of the head of main."""
        return self._repos[repo_id].sha

    def history(self, repo_id: str) -> list[tuple[str, str]]:
        """(sha, summary) of each commit of the repo, oldest first (the first is its initial commit)."""
        with self._lock:
            return list(self._repos[repo_id].log)

    def repo_ids(self) -> set[str]:
        with self._lock:
            return set(self._repos)

    def is_private(self, repo_id: str) -> bool:
        return self._repos[repo_id].private

    def contents(self, repo_id: str, revision: str = DEFAULT_BRANCH) -> dict[str, bytes]:
        """{path: content} of the repo at `revision` (what a commit put there)."""
        view = self._view(self._repos[repo_id], revision)
        if view is None:
            raise KeyError(f"{repo_id} has no revision {revision}")
        return {path: b"".join(f.iter_bytes()) for path, f in view.files.items()}

    def etag(self, repo_id: str, path: str) -> str:
        """Blob name huggingface_hub will use in its cache (sha256 for LFS files, git blob oid otherwise)."""
        return self._repos[repo_id].files[path].etag

    def sha256(self, repo_id: str, path: str) -> str:
        return self._repos[repo_id].files[path].meta()["sha256"]

    # ---- failure injection ---------------------------------------------------------------------------------------
    def fail_once(self, repo_id: str, path: str, after_bytes: int = 0, times: int | None = 1) -> None:
        """The next ``times`` GETs of that file (None: until ``clear_failures``) send the normal status and headers
        (full Content-Length), then ``after_bytes`` bytes of the body, then drop the connection."""
        with self._lock:
            self._failures.setdefault((repo_id, path.strip("/")), []).append(_Failure(after_bytes, times))

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def _take_failure(self, repo_id: str, path: str) -> _Failure | None:
        with self._lock:
            queue = self._failures.get((repo_id, path))
            if not queue:
                return None
            failure = queue[0]
            if failure.times is not None:
                failure.times -= 1
                if failure.times <= 0:
                    queue.pop(0)
            return failure


# ---------------------------------------------------------------------------------------------------------------------
# Forward proxy
# ---------------------------------------------------------------------------------------------------------------------

_HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailers",
    "transfer-encoding", "upgrade",
}  # fmt: skip


class _ProxyHandler(_TrackedHandler):
    server: _Server

    def _forward(self) -> None:
        owner: ForwardProxy = self.server.owner
        owner._count(self.command, self.path)
        target = urllib.parse.urlsplit(self.path)
        if target.scheme != "http" or not target.hostname:
            body = b"only absolute http:// URIs are proxied (no CONNECT)"
            self.send_response(501)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        conn = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=30)
        path = target.path or "/"
        if target.query:
            path += "?" + target.query
        try:
            conn.request(self.command, path, body=body, headers=headers)
            resp = conn.getresponse()
        except OSError:
            conn.close()
            self.send_response(502)
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            return
        try:
            self.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in _HOP_BY_HOP:
                    self.send_header(k, v)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            if self.command != "HEAD":
                while True:
                    try:
                        chunk = resp.read1(CHUNK)
                    except (http.client.IncompleteRead, OSError):
                        break  # upstream dropped: drop downstream too
                    if not chunk:
                        break
                    self.wfile.write(chunk)
        finally:
            conn.close()

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_CONNECT = _forward


class ForwardProxy(_Background):
    """Minimal plain-HTTP forward proxy (absolute-URI requests; no CONNECT) that counts what passes through it.

    Use as ``HTTP_PROXY=proxy.url`` (with 127.0.0.1 absent from NO_PROXY) to show the Hub client honours proxy env.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        super().__init__(host, port)
        self._lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []  # (method, absolute url)

    def _make(self) -> _Server:
        return _Server((self.host, self._port), _ProxyHandler, self)

    def _count(self, method: str, url: str) -> None:
        with self._lock:
            self.requests.append((method, url))

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)


# ---------------------------------------------------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------------------------------------------------

_MISSING = object()

# Env vars that feed huggingface_hub.constants at import time (and that would otherwise leak in from the outside).
_ENV_KEYS = (
    "HF_ENDPOINT", "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_ASSETS_CACHE", "HF_XET_CACHE",
    "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN_PATH", "HF_TOKEN", "HF_HUB_DISABLE_TELEMETRY",
    "HF_HUB_DISABLE_XET", "HUGGINGFACE_CO_STAGING", "HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT",
)  # fmt: skip


def _close_hub_session() -> None:
    try:
        from huggingface_hub.utils._http import close_session
    except ImportError:  # pragma: no cover
        return
    close_session()


@contextlib.contextmanager
def hub_env(
    url: str,
    cache_dir: str | os.PathLike | None = None,
    *,
    offline: bool = False,
    hf_home: str | os.PathLike | None = None,
    extra_env: dict[str, str | None] | None = None,
) -> Iterator[dict[str, str]]:
    """Point huggingface_hub (and diffusers/transformers) at ``url`` for the duration, then restore everything.

    Sets the env vars (HF_ENDPOINT, HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE=1/0, ...; removes TRANSFORMERS_OFFLINE,
    HF_TOKEN) *and* the values read from them at import time:

    * ``huggingface_hub.constants``: ENDPOINT, HUGGINGFACE_CO_URL_TEMPLATE (used by ``hf_hub_url``), HF_URL_HOSTS,
      HF_HUB_OFFLINE (``is_offline_mode()`` reads it on each request), HF_HOME, HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE,
      HF_ASSETS_CACHE, HF_XET_CACHE, HF_TOKEN_PATH, HF_STORED_TOKENS_PATH, HF_HUB_DISABLE_TELEMETRY and
      HF_HUB_DISABLE_XET (True: ``upload_folder``/``create_commit`` take the plain preupload + LFS + commit path
      this server implements instead of hf_xet's, which the client picks on its own whenever hf_xet is installed);
    * ``huggingface_hub.hf_api.api.endpoint``: the module-level HfApi behind ``huggingface_hub.model_info``,
      ``repo_info``, ``list_repo_files``... keeps the endpoint it had at import;
    * ``huggingface_hub.utils._http._HUB_ORIGINS`` (which redirects keep auth) and
      ``huggingface_hub.utils._cache_manager.HF_HUB_CACHE`` (``scan_cache_dir`` default);
    * diffusers' copies: ``HF_HUB_OFFLINE`` in ``diffusers.loaders.lora_base`` (decides whether LoRA loading lists
      the repo), ``diffusers.utils.hub_utils`` (telemetry), ``diffusers.models.attention_dispatch``; and
      ``HUGGINGFACE_CO_RESOLVE_ENDPOINT`` (error messages only) in ``diffusers.utils(.constants|.hub_utils)`` and
      ``diffusers.configuration_utils``;
    * transformers reads ``huggingface_hub.is_offline_mode()`` live; only its lazily created shared ``HfApi``
      (``transformers.utils.hub._hf_api``) keeps an endpoint.

    Modules not yet imported are not imported here; if one gets imported inside the block it sees the patched
    values, and it is reset to the outside values on exit. The shared httpx2 client is closed on entry and exit so
    proxy env changes apply and no keep-alive connection outlives the block.
    """
    import huggingface_hub.constants as C

    url = url.rstrip("/")
    home = pathlib.Path(hf_home) if hf_home is not None else None
    hub_cache = pathlib.Path(cache_dir) if cache_dir is not None else None
    if home is None:
        home = hub_cache.parent / "hf_home" if hub_cache is not None else None
    if home is None:
        raise ValueError("hub_env needs cache_dir or hf_home")
    if hub_cache is None:
        hub_cache = home / "hub"
    home, hub_cache = str(home), str(hub_cache)

    env: dict[str, str | None] = {
        "HF_ENDPOINT": url,
        "HF_HOME": home,
        "HF_HUB_CACHE": hub_cache,
        "HUGGINGFACE_HUB_CACHE": None,
        "HF_ASSETS_CACHE": os.path.join(home, "assets"),
        "HF_XET_CACHE": os.path.join(home, "xet"),
        "HF_HUB_OFFLINE": "1" if offline else "0",
        "TRANSFORMERS_OFFLINE": None,
        "HF_TOKEN_PATH": os.path.join(home, "token"),
        "HF_TOKEN": None,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_XET": "1",
        "HUGGINGFACE_CO_STAGING": None,
        **(extra_env or {}),
    }
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").lower()
    hub_values = {
        "ENDPOINT": url,
        "HUGGINGFACE_CO_URL_TEMPLATE": url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_URL_HOSTS": frozenset(C.HF_URL_HOSTS | {host}),
        "HF_HUB_OFFLINE": offline,
        "HF_HOME": home,
        "HF_HUB_CACHE": hub_cache,
        "HUGGINGFACE_HUB_CACHE": hub_cache,
        "HF_ASSETS_CACHE": env["HF_ASSETS_CACHE"],
        "HF_XET_CACHE": env["HF_XET_CACHE"],
        "HF_TOKEN_PATH": env["HF_TOKEN_PATH"],
        "HF_STORED_TOKENS_PATH": os.path.join(home, "stored_tokens"),
        "HF_HUB_DISABLE_TELEMETRY": True,
        # Read per call by is_xet_available(): with hf_xet installed, uploads would go to a Xet CAS server.
        "HF_HUB_DISABLE_XET": True,
    }
    outside_endpoint = C.ENDPOINT
    outside_offline = C.HF_HUB_OFFLINE
    outside_resolve = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    # (module, attribute, inside value, value to reset to if the module was imported inside the block)
    targets: list[tuple[str, str, Any, Any]] = [
        ("huggingface_hub.constants", k, v, _MISSING) for k, v in hub_values.items()
    ]
    targets += [
        ("huggingface_hub.utils._cache_manager", "HF_HUB_CACHE", hub_cache, C.HF_HUB_CACHE),
        ("diffusers.loaders.lora_base", "HF_HUB_OFFLINE", offline, outside_offline),
        ("diffusers.utils.hub_utils", "HF_HUB_OFFLINE", offline, outside_offline),
        ("diffusers.models.attention_dispatch", "HF_HUB_OFFLINE", offline, outside_offline),
        ("diffusers.utils.constants", "HUGGINGFACE_CO_RESOLVE_ENDPOINT", url, outside_resolve),
        ("diffusers.utils", "HUGGINGFACE_CO_RESOLVE_ENDPOINT", url, outside_resolve),
        ("diffusers.utils.hub_utils", "HUGGINGFACE_CO_RESOLVE_ENDPOINT", url, outside_resolve),
        ("diffusers.configuration_utils", "HUGGINGFACE_CO_RESOLVE_ENDPOINT", url, outside_resolve),
    ]
    saved_env = {k: os.environ.get(k, _MISSING) for k in set(_ENV_KEYS) | set(env)}
    saved_attrs: list[tuple[Any, str, Any]] = []
    patched_objs: list[tuple[Any, str, Any]] = []

    def set_attr(obj: Any, name: str, value: Any) -> None:
        saved_attrs.append((obj, name, getattr(obj, name, _MISSING)))
        setattr(obj, name, value)

    try:
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for mod_name, attr, inside, _ in targets:
            mod = sys.modules.get(mod_name)
            if mod is not None and hasattr(mod, attr):
                set_attr(mod, attr, inside)
        # Endpoint-holding objects created at import time.
        import huggingface_hub.hf_api as hf_api_mod
        import huggingface_hub.utils._http as http_mod

        set_attr(hf_api_mod.api, "endpoint", url)
        set_attr(http_mod, "_HUB_ORIGINS", frozenset(http_mod._HUB_ORIGINS | {http_mod._url_origin(url)}))
        tf_hub = sys.modules.get("transformers.utils.hub")
        if tf_hub is not None and getattr(tf_hub, "_hf_api", None) is not None:
            patched_objs.append((tf_hub._hf_api, "endpoint", tf_hub._hf_api.endpoint))
            tf_hub._hf_api.endpoint = url
        _close_hub_session()
        yield {k: v for k, v in env.items() if v is not None}
    finally:
        _close_hub_session()
        for obj, name, old in reversed(saved_attrs):
            if old is _MISSING:
                with contextlib.suppress(AttributeError):
                    delattr(obj, name)
            else:
                setattr(obj, name, old)
        for obj, name, old in patched_objs:
            obj.endpoint = old
        already = {(id(o), n) for o, n, _ in saved_attrs}
        for mod_name, attr, _, outside in targets:  # modules first imported inside the block
            mod = sys.modules.get(mod_name)
            if mod is not None and outside is not _MISSING and (id(mod), attr) not in already and hasattr(mod, attr):
                setattr(mod, attr, outside)
        tf_hub = sys.modules.get("transformers.utils.hub")
        if tf_hub is not None and getattr(tf_hub, "_hf_api", None) is not None and tf_hub._hf_api.endpoint == url:
            tf_hub._hf_api.endpoint = outside_endpoint
        for k, v in saved_env.items():
            if v is _MISSING:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
