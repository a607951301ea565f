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

import contextlib
import hashlib
import http.client
import json
import os
import pathlib
import socket
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator
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


@dataclass
class RequestRecord:
    method: str
    path: str  # unquoted, without the query string
    query: dict[str, list[str]]
    headers: dict[str, str]
    kind: str = "other"  # model_info | tree | paths_info | resolve | other
    repo_id: str | None = None
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
    repo_id: str
    sha: str
    files: dict[str, _RepoFile] = field(default_factory=dict)

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


class _HubHandler(_TrackedHandler):
    server: _Server

    # ---- plumbing ----------------------------------------------------------------------------------------------
    def _start(self) -> RequestRecord:
        split = urllib.parse.urlsplit(self.path)
        rec = RequestRecord(
            method=self.command,
            path=urllib.parse.unquote(split.path),
            query=urllib.parse.parse_qs(split.query, keep_blank_values=True),
            headers={k: v for k, v in self.headers.items()},
        )
        self.server.owner._record(rec)
        self._rec = rec
        self._raw_path = split.path
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

    def _json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers, "application/json; charset=utf-8")

    def _error(self, status: int, code: str | None, message: str, headers: dict[str, str] | None = None) -> None:
        h = dict(headers or {})
        if code:
            h["X-Error-Code"] = code
        h["X-Error-Message"] = message
        self._json({"error": message}, status, h)

    def _base_url(self) -> str:
        return f"http://{self.headers.get('Host') or self.server.owner.host_port}"

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        rec = self._start()
        owner: HubStandIn = self.server.owner
        parts = [urllib.parse.unquote(p) for p in self._raw_path.split("/")[1:]]
        try:
            if len(parts) >= 3 and parts[0] == "api" and parts[1] == "models":
                return self._api(owner, parts[2:])
            # /{repo_id}/resolve/{rev}/{path...}, repo ids of one ("name") or two ("owner/name") components
            if len(parts) > 3 and parts[1] == "resolve" and parts[0] in owner._repos:
                return self._resolve(owner, parts[0], parts[2], "/".join(parts[3:]))
            if len(parts) > 4 and parts[2] == "resolve":
                return self._resolve(owner, "/".join(parts[:2]), parts[3], "/".join(parts[4:]))
            if len(parts) > 3 and parts[1] == "resolve":
                return self._resolve(owner, parts[0], parts[2], "/".join(parts[3:]))
            self._error(404, None, "Not Found")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            if rec.status is None:
                rec.status = 0
            rec.done.set()

    def _repo_and_rest(self, owner: HubStandIn, parts: list[str]) -> tuple[_Repo | None, str, list[str]]:
        if len(parts) >= 2 and "/".join(parts[:2]) in owner._repos:
            return owner._repos["/".join(parts[:2])], "/".join(parts[:2]), parts[2:]
        if parts[0] in owner._repos:
            return owner._repos[parts[0]], parts[0], parts[1:]
        return None, "/".join(parts[:2]), []

    def _revision_ok(self, repo: _Repo, revision: str) -> bool:
        return revision in (DEFAULT_BRANCH, repo.sha) or self.server.owner._extra_revisions.get(repo.repo_id, {}).get(
            revision
        ) == repo.sha

    # ---- /api/models/... ---------------------------------------------------------------------------------------
    def _api(self, owner: HubStandIn, parts: list[str]) -> None:
        rec = self._rec
        repo, repo_id, rest = self._repo_and_rest(owner, parts)
        rec.repo_id = repo_id
        if repo is None:
            return self._error(404, "RepoNotFound", "Repository not found")
        if not rest or rest[0] == "revision":
            rec.kind = "model_info"
            if rest and (len(rest) < 2 or not self._revision_ok(repo, "/".join(rest[1:]))):
                return self._error(404, "RevisionNotFound", "Invalid rev id")
            return self._model_info(repo)
        if rest[0] == "tree" and len(rest) >= 2:
            rec.kind = "tree"
            if not self._revision_ok(repo, rest[1]):
                return self._error(404, "RevisionNotFound", "Invalid rev id")
            return self._tree(owner, repo, rest[1], "/".join(rest[2:]).strip("/"))
        if rest[0] == "paths-info" and len(rest) == 2 and self.command == "POST":
            rec.kind = "paths_info"
            if not self._revision_ok(repo, rest[1]):
                return self._error(404, "RevisionNotFound", "Invalid rev id")
            length = int(self.headers.get("Content-Length") or 0)
            form = urllib.parse.parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
            out = []
            for p in form.get("paths", []):
                p = p.strip("/")
                if p in repo.files:
                    out.append(repo.files[p].tree_entry())
                elif p in repo.dirs():
                    out.append(_dir_entry(repo, p))
            return self._json(out)
        return self._error(404, None, "Not Found")

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
            "private": False,
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
            return self._error(404, "EntryNotFound", f"{path} does not exist on {revision}")
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

    # ---- /{repo}/resolve/{rev}/{path} ----------------------------------------------------------------------------
    def _resolve(self, owner: HubStandIn, repo_id: str, revision: str, path: str) -> None:
        rec = self._rec
        rec.kind, rec.repo_id, rec.file = "resolve", repo_id, path
        repo = owner._repos.get(repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound", "Repository not found")
        if not self._revision_ok(repo, revision):
            return self._error(404, "RevisionNotFound", "Invalid rev id")
        f = repo.files.get(path)
        if f is None:
            return self._error(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": repo.sha})
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
    or size >= 10 MiB. Revisions accepted: "main", the repo's commit sha, and names in ``revisions``.
    """

    def __init__(
        self,
        repos: dict[str, dict[str, Content]],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        commits: dict[str, str] | None = None,
        revisions: dict[str, dict[str, str]] | None = None,
        is_lfs: Callable[[str, int], bool] = default_is_lfs,
        page_size: int = 1000,
    ):
        super().__init__(host, port)
        self.page_size = page_size
        self._lock = threading.Lock()
        self._repos: dict[str, _Repo] = {}
        for repo_id, files in repos.items():
            sha = (commits or {}).get(repo_id) or hashlib.sha1(f"hub-standin:{repo_id}".encode()).hexdigest()
            repo = _Repo(repo_id, sha)
            for path, content in files.items():
                path = path.strip("/")
                repo.files[path] = _RepoFile(path, content, is_lfs)
            self._repos[repo_id] = repo
        self._extra_revisions = {
            r: {name: self._repos[r].sha for name in names} for r, names in (revisions or {}).items()
        }
        self._failures: dict[tuple[str, str], list[_Failure]] = {}
        self.request_log: list[RequestRecord] = []

    def _make(self) -> _Server:
        return _Server((self.host, self._port), _HubHandler, self)

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
        return self._repos[repo_id].sha

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
      HF_ASSETS_CACHE, HF_XET_CACHE, HF_TOKEN_PATH, HF_STORED_TOKENS_PATH, HF_HUB_DISABLE_TELEMETRY;
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
