"""A small, real, Hugging Face Hub-compatible HTTP server for tests (stdlib only).

It lets the *real* ``huggingface_hub`` client (no mocks, no monkeypatching) talk to
``http://127.0.0.1:PORT``::

    with HubServer(root=tmp_path / "hub") as hub:
        sha = hub.add_commit("org/model", {"config.json": b"{}", "model.safetensors": weights})
        path = hf_hub_download("org/model", "config.json", endpoint=hub.url, cache_dir=tmp_path / "cache")

Written against huggingface_hub 2.4.0 (httpx2 based). What the client needs, and what is served
------------------------------------------------------------------------------------------------
* ``HEAD|GET /[datasets/|spaces/]{repo_id}/resolve/{revision}/{path}`` -- ``revision`` is a branch, a tag or
  a full 40-hex sha, URL-encoded by the client (``refs%2Fpr%2F1``).  Regular files answer 200 with
  ``ETag: "<git blob sha1>"``, ``X-Repo-Commit``, ``Content-Length`` and honour ``Range`` (206), which the
  client uses to resume an interrupted download.  "LFS" files (suffix in ``LFS_SUFFIXES`` or >= 10 MiB)
  answer 302 like the real Hub: ``X-Linked-Etag: "<sha256>"``, ``X-Linked-Size``, ``X-Repo-Commit`` and an
  absolute ``Location`` on a *different origin* (``http://localhost:PORT/_cdn/<sha256>``, same socket), so the
  client treats it as a CDN: it keeps the 302 headers as metadata, names the cache blob after the sha256 and
  drops the Authorization header.  A repo renamed with ``rename_repo`` answers 307 with a *relative*
  ``Location`` (the client follows it with ``urljoin``).
* ``GET /api/{models|datasets|spaces}/{repo_id}[/revision/{revision}]`` -- ``model_info``/``repo_info``
  (``sha``, ``siblings``; with ``?blobs=1`` also sizes and LFS info); ``snapshot_download`` calls it first.
* ``GET  .../tree/{revision}[/{path}]?recursive=true`` -- ``list_repo_tree``/``list_repo_files`` (no pagination);
  ``snapshot_download`` lists the tree of the resolved sha, then does a HEAD+GET per file.
* ``POST .../paths-info/{rev}``, ``GET .../refs``, ``POST|DELETE .../tag/{rev|tag}``, ``POST|DELETE .../branch/{b}``.
* ``POST /api/repos/create`` (409 when it exists: the client turns that into success with ``exist_ok=True``;
  a new repo gets an initial commit with a ``.gitattributes``, as on the Hub), ``DELETE /api/repos/delete``.
* ``POST .../preupload/{rev}`` answers ``uploadMode: "regular"`` for every file (plus the current git oid,
  so unchanged files are skipped by the client), so no LFS/Xet upload API is needed: the contents arrive
  base64-encoded in the NDJSON body of ``POST .../commit/{rev}`` (``header``/``file``/``deletedFile``/
  ``deletedFolder``, and ``lfsFile`` for blobs the server already has).  ``parentCommit`` is checked (412).
  With ``hf_xet`` installed (it is here) ``upload_folder`` goes through ``_upload_pipeline``; with all files
  "regular" it never touches Xet.  ``POST /api/validate-yaml`` (called for README.md) always validates.
* ``GET /api/agent-harnesses`` -- the client fetches it once per process from ``constants.ENDPOINT`` to build
  its User-Agent (unless ``HF_HUB_DISABLE_TELEMETRY=1``).  It is answered, but neither logged in
  ``request_log`` nor subject to injected faults.
* Errors carry ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound`` -- note: the client
  matches ``RepoNotFound``, not ``RepositoryNotFound``) and ``X-Error-Message``, so the client raises
  ``RepositoryNotFoundError``, ``RevisionNotFoundError``, ``RemoteEntryNotFoundError``.  Any token (or none)
  is accepted.  Deviation: a file's git oid is always the sha1 of its content (the Hub uses the LFS pointer's).

Environment variables are read at IMPORT time
---------------------------------------------
``huggingface_hub.constants`` reads ``HF_ENDPOINT`` (-> ``constants.ENDPOINT``), ``HF_HOME``/``HF_HUB_CACHE``,
``HF_HUB_OFFLINE`` (``is_offline_mode()`` returns the module constant), ``HF_HUB_DISABLE_TELEMETRY`` ... once,
when the module is first imported.  Changing ``os.environ`` afterwards has no effect (``test_hub_server`` checks
this).  Hence, in tests either
  * pass the explicit per-call arguments: ``endpoint=`` (``hf_hub_download``, ``snapshot_download``,
    ``HfApi(endpoint=...)``), ``cache_dir=``, ``local_files_only=True`` (the per-call ``HF_HUB_OFFLINE``); or
  * run the client in a subprocess with ``env=hub.client_env(hf_home, ...)`` -- required for code that has no
    ``endpoint=`` argument, e.g. ``PyTorchModelHubMixin.push_to_hub``/``from_pretrained``; or
  * start one server at the top of a ``conftest.py`` and set ``os.environ`` there, before anything imports
    ``huggingface_hub`` (then the whole test process talks to it).
Without ``HF_HUB_DISABLE_TELEMETRY=1`` the first request of a process also tries ``{HF_ENDPOINT or
https://huggingface.co}/api/agent-harnesses`` (3 s timeout, result cached in ``$HF_HOME``).  ``hf_xet`` reads
``HF_XET_CACHE``/``HF_HOME`` itself when its (process-global) session is created by the first ``upload_folder``,
and writes logs there (default ``~/.cache/huggingface/xet/logs``).

Client behaviour observed with huggingface_hub 2.4.0 (asserted in test_hub_server.py)
------------------------------------------------------------------------------------
* 5xx on the metadata HEAD of ``hf_hub_download``: the first HEAD is not retried; if the file is cached for
  that revision the cached path is returned (no GET), otherwise the HEAD is repeated with backoff retries
  (408/429/5xx and connection errors; sleeps 1, 2, 4, 8, 8 s), so one injected 500 costs no sleep.
* 5xx on the file GET: not retried (only 408/429 are) -> ``HfHubHTTPError``; nothing is left in the cache.
* Truncated body (``RemoteProtocolError``): after a 1 s sleep the GET is repeated, resuming with
  ``Range: bytes=N-`` where N counts only whole 10 MiB chunks (a small file is re-fetched from byte 0);
  up to 5 attempts without progress.  The partial file has a unique ``*.incomplete`` name and is deleted on
  failure, so it is never used as complete.  The size is checked against Content-Length/X-Linked-Size,
  the *content is never checked* against the ETag/sha256 (``corrupt_file`` bytes land in the cache).
* Hub unreachable (connection refused): ``hf_hub_download``/``snapshot_download`` return the cached file/
  snapshot of ``refs/<revision>`` at once, by themselves (HF_HUB_OFFLINE unset).  Not cached:
  ``snapshot_download`` raises ``LocalEntryNotFoundError`` at once, ``hf_hub_download`` after ~23 s of retries.
  ``HfApi`` calls such as ``model_info`` are not retried.
* ``HF_HUB_OFFLINE=1`` (at import) or ``local_files_only=True``: no request at all; cached path returned,
  ``LocalEntryNotFoundError`` otherwise.

Fault injection (set between requests; thread-safe)
---------------------------------------------------
``fail_next``, ``truncate_next``, ``corrupt_file``, ``go_down``/``come_up``.  A request is subject to the
*oldest* pending fault matching its method and path, so ``truncate_next(1); fail_next(1, method="GET")``
truncates one GET and fails the next (e.g. the client's resume request).  ``request_log`` holds
``(method, raw_path_without_query)`` for every request, ``request_headers`` its headers (lower-case names).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Mapping
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".onnx", ".msgpack", ".npz", ".npy", ".gguf")
LFS_THRESHOLD = 10 * 1024 * 1024
GITATTRIBUTES = "".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in LFS_SUFFIXES).encode()
_URL_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_REPO_ACTIONS = {"revision", "tree", "paths-info", "preupload", "commit", "refs", "tag", "branch"}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class FileEntry:
    size: int
    oid: str  # git blob sha1 of the content: ETag of regular files, "oid"/"blobId" in listings
    sha256: str  # key in the blob store; ETag (X-Linked-Etag) of LFS files
    lfs: bool


@dataclass
class Commit:
    sha: str
    parent: str | None
    message: str
    files: dict[str, FileEntry]  # the full tree at this commit
    date: str


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool = False
    created_at: str = field(default_factory=_now)
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


class HubError(Exception):
    """Raised inside a request handler; becomes an HTTP answer."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.code, self.headers, self.extra = status, message, code, headers or {}, extra


@dataclass
class _Fault:
    kind: str  # "fail" | "truncate"
    remaining: int
    status: int
    path_contains: str | None
    method: str | None

    def matches(self, method: str, path: str) -> bool:
        return (
            self.remaining > 0
            and self.method in (None, method)
            and (self.path_contains is None or self.path_contains in path)
        )


@dataclass
class _Request:
    method: str
    path: str  # raw (percent-encoded) path, no query
    parts: list[str]  # decoded path segments
    query: dict[str, list[str]]
    raw_query: str
    body: bytes
    headers: Mapping[str, str]
    base: str  # scheme://host:port as the client addressed us

    def flag(self, name: str) -> bool:
        return self.query.get(name, [""])[-1].lower() in ("1", "true")

    def json(self):
        return json.loads(self.body or b"{}")


class HubServer:
    """In-process Hub on 127.0.0.1.  ``start()``/``stop()`` or ``with HubServer(root) as hub:``.

    Repos, commits and refs live in memory; blob contents are stored under ``root/blobs/<sha256>``
    (``root`` defaults to a temporary directory removed by ``stop()``).  The port is kept across
    ``go_down()``/``come_up()``.  ``stop()`` is final.  Do not call ``stop``/``go_down`` from a request handler.
    """

    def __init__(self, root: str | os.PathLike | None = None, *, host: str = "127.0.0.1", cdn_host: str = "localhost"):
        if cdn_host == host:  # the client must see the LFS redirect target as another origin (a CDN)
            raise ValueError("cdn_host must differ from host")
        self._tmp_root = None if root is not None else tempfile.mkdtemp(prefix="hub-server-")
        self.root = Path(root if root is not None else self._tmp_root)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        self.host, self.cdn_host, self.port = host, cdn_host, 0
        self.request_log: list[tuple[str, str]] = []
        self.request_headers: list[dict[str, str]] = []
        self._repos: dict[tuple[str, str], Repo] = {}
        self._renamed: dict[tuple[str, str], str] = {}
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()
        self._counter = itertools.count()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "HubServer":
        if self._httpd is None:
            httpd = _HTTPServer((self.host, self.port), _Handler)
            httpd.hub = self
            self.port = httpd.server_address[1]
            self._httpd = httpd
            self._thread = threading.Thread(
                target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"hub-server-{self.port}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        self._close_listener()
        if self._tmp_root is not None:
            shutil.rmtree(self._tmp_root, ignore_errors=True)
            self._tmp_root = None

    def go_down(self) -> None:
        """Close the listening socket and every open connection: new requests get 'connection refused'."""
        self._close_listener()

    def come_up(self) -> None:
        """Listen again, on the same port (the data is kept)."""
        self.start()

    @property
    def is_up(self) -> bool:
        return self._httpd is not None

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _close_listener(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()  # returns within poll_interval
            httpd.server_close()
            self._thread.join(timeout=5)
        with self._lock:
            conns = list(self._conns)
        for conn in conns:  # idle keep-alive connections would otherwise keep being served
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def client_env(self, hf_home: str | os.PathLike, **extra: str) -> dict[str, str]:
        """Environment for a client subprocess: os.environ without HF_* variables, plus HF_ENDPOINT etc."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
        env.update(
            HF_ENDPOINT=self.url,
            HF_HOME=str(hf_home),
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
            HF_HUB_DISABLE_UPDATE_CHECK="1",
        )
        env.update({k: str(v) for k, v in extra.items()})
        return env

    # ------------------------------------------------------------------ setup (no HTTP)
    def create_repo(self, repo_id: str, *, repo_type: str = "model", private: bool = False) -> str:
        """Create a repo with an initial commit holding a ``.gitattributes`` (like the Hub); return its sha."""
        with self._lock:
            if (repo_type, repo_id) in self._repos:
                raise ValueError(f"{repo_type} repo {repo_id} exists")
            self._repos[(repo_type, repo_id)] = Repo(repo_type, repo_id, private=private)
            return self.add_commit(repo_id, {".gitattributes": GITATTRIBUTES}, "initial commit", repo_type=repo_type)

    def add_commit(
        self,
        repo_id: str,
        files: Mapping[str, bytes | str | None],
        message: str = "Update files",
        revision: str = "main",
        *,
        repo_type: str = "model",
    ) -> str:
        """Commit ``files`` (path -> content; ``None`` deletes) on top of branch ``revision``; return the sha.

        Creates the repo (without initial commit) and the branch (from ``main``'s head) when missing.
        """
        with self._lock:
            repo = self._repos.setdefault((repo_type, repo_id), Repo(repo_type, repo_id))
            if revision not in repo.branches and "main" in repo.branches:
                repo.branches[revision] = repo.branches["main"]
            return self._commit(repo, revision, files, message)

    def create_tag(self, repo_id: str, tag: str, revision: str = "main", *, repo_type: str = "model") -> str:
        """Point ``tag`` at ``revision`` (branch, tag or sha); return the sha."""
        with self._lock:
            repo = self._repo(repo_type, repo_id)
            repo.tags[tag] = self._resolve(repo, revision).sha
            return repo.tags[tag]

    def create_branch(self, repo_id: str, branch: str, revision: str = "main", *, repo_type: str = "model") -> str:
        with self._lock:
            repo = self._repo(repo_type, repo_id)
            repo.branches[branch] = self._resolve(repo, revision).sha
            return repo.branches[branch]

    def resolve(self, repo_id: str, revision: str = "main", *, repo_type: str = "model") -> str:
        with self._lock:
            return self._resolve(self._repo(repo_type, repo_id), revision).sha

    def file_bytes(self, repo_id: str, path: str, revision: str = "main", *, repo_type: str = "model") -> bytes:
        """The bytes the server currently serves for a file (after any ``corrupt_file``)."""
        with self._lock:
            return self._read_blob(self._entry(repo_id, path, revision, repo_type).sha256)

    def file_entry(self, repo_id: str, path: str, revision: str = "main", *, repo_type: str = "model") -> FileEntry:
        with self._lock:
            return self._entry(repo_id, path, revision, repo_type)

    def rename_repo(self, old_id: str, new_id: str, *, repo_type: str = "model") -> None:
        """Move a repo; requests to the old id get a 307 with a relative Location (as on the Hub)."""
        with self._lock:
            repo = self._repos.pop((repo_type, old_id))
            repo.repo_id = new_id
            self._repos[(repo_type, new_id)] = repo
            self._renamed[(repo_type, old_id)] = new_id

    # ------------------------------------------------------------------ fault injection
    def fail_next(self, n: int = 1, status: int = 500, path_contains: str | None = None, method: str | None = None):
        """The next ``n`` matching requests (any method unless ``method`` is given) get ``status``."""
        with self._lock:
            self._faults.append(_Fault("fail", n, status, path_contains, method and method.upper()))

    def truncate_next(self, n: int = 1, path_contains: str | None = None) -> None:
        """The next ``n`` matching successful GETs with a body announce the full Content-Length but send
        only the first half of the bytes, then close the connection."""
        with self._lock:
            self._faults.append(_Fault("truncate", n, 200, path_contains, "GET"))

    @property
    def pending_faults(self) -> int:
        """Injected failures/truncations not consumed yet."""
        with self._lock:
            return sum(f.remaining for f in self._faults)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def corrupt_file(self, repo_id: str, path: str, revision: str = "main", *, repo_type: str = "model") -> None:
        """Add 1 to every byte of the stored blob; size and advertised ETag/sha256/oid stay the same.

        The blob store is content-addressed, so every file with the same content is affected.
        """
        with self._lock:
            entry = self._entry(repo_id, path, revision, repo_type)
            if entry.size == 0:
                raise ValueError("cannot corrupt an empty file")
            blob = self.root / "blobs" / entry.sha256
            blob.write_bytes(bytes((b + 1) & 0xFF for b in blob.read_bytes()))

    # ------------------------------------------------------------------ storage
    def _repo(self, repo_type: str, repo_id: str) -> Repo:
        repo = self._repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _resolve(self, repo: Repo, revision: str) -> Commit:
        sha = repo.branches.get(revision) or repo.tags.get(revision) or revision
        if sha not in repo.commits:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return repo.commits[sha]

    def _entry(self, repo_id: str, path: str, revision: str, repo_type: str) -> FileEntry:
        return self._resolve(self._repo(repo_type, repo_id), revision).files[path]

    def _put_blob(self, path: str, data: bytes) -> FileEntry:
        sha256 = hashlib.sha256(data).hexdigest()
        blob = self.root / "blobs" / sha256
        if not blob.exists():
            tmp = blob.with_suffix(f".tmp{next(self._counter)}")
            tmp.write_bytes(data)
            tmp.replace(blob)
        lfs = path.endswith(LFS_SUFFIXES) or len(data) >= LFS_THRESHOLD
        return FileEntry(size=len(data), oid=_git_oid(data), sha256=sha256, lfs=lfs)

    def _read_blob(self, sha256: str) -> bytes:
        try:
            return (self.root / "blobs" / sha256).read_bytes()
        except FileNotFoundError:
            raise HubError(404, "Blob not found", "EntryNotFound") from None

    def _commit(self, repo: Repo, branch: str, changes: Mapping[str, bytes | str | None], message: str) -> str:
        parent = repo.branches.get(branch)
        files = dict(repo.commits[parent].files) if parent else {}
        for path, data in changes.items():
            if data is None:
                files.pop(path, None)
            else:
                files[path] = self._put_blob(path, data.encode() if isinstance(data, str) else bytes(data))
        seed = f"{parent}\n{message}\n{sorted((p, e.oid) for p, e in files.items())}\n{next(self._counter)}"
        sha = hashlib.sha1(f"{seed}\n{id(self)}\n{_now()}".encode()).hexdigest()
        repo.commits[sha] = Commit(sha, parent, message, files, _now())
        repo.branches[branch] = sha
        return sha

    # ------------------------------------------------------------------ HTTP
    def _track(self, conn: socket.socket, alive: bool) -> None:
        with self._lock:
            (self._conns.add if alive else self._conns.discard)(conn)

    def _take_fault(self, kind: str, method: str, path: str) -> _Fault | None:
        """Consume the oldest fault matching this request if it is of ``kind``: faults apply in injection order."""
        with self._lock:
            fault = next((f for f in self._faults if f.matches(method, path)), None)
            if fault is None or fault.kind != kind:
                return None
            fault.remaining -= 1
            self._faults = [f for f in self._faults if f.remaining > 0]
            return fault

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        split = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        req = _Request(
            method=h.command,
            path=split.path,
            parts=[unquote(p) for p in split.path.strip("/").split("/")],
            query=parse_qs(split.query),
            raw_query=split.query,
            body=body,
            headers=h.headers,
            base=f"http://{h.headers.get('Host') or f'{self.host}:{self.port}'}",
        )
        housekeeping = req.path == "/api/agent-harnesses"
        if not housekeeping:
            with self._lock:
                self.request_log.append((req.method, req.path))
                self.request_headers.append({k.lower(): v for k, v in h.headers.items()})
        try:
            fault = None if housekeeping else self._take_fault("fail", req.method, req.path)
            if fault is not None:
                raise HubError(fault.status, f"Injected failure ({fault.status})")
            with self._lock:
                status, headers, payload = self._route(req)
        except HubError as e:
            status, headers, payload = e.status, dict(e.headers), json.dumps({"error": e.message, **e.extra}).encode()
            headers.setdefault("Content-Type", "application/json")
            if e.status >= 400:
                headers["X-Error-Message"] = e.message
                if e.code:
                    headers["X-Error-Code"] = e.code
        except Exception as e:  # a bug in this server: make it visible to the client
            status, headers, payload = 500, {"X-Error-Message": f"hub_server bug: {e!r}"}, b""
        truncate = (
            status in (200, 206) and payload and not housekeeping and self._take_fault("truncate", req.method, req.path)
        )
        h.send_response(status)
        for key, value in {"Content-Length": str(len(payload)), **headers}.items():
            h.send_header(key, value)
        h.end_headers()
        if req.method != "HEAD":
            h.wfile.write(payload[: len(payload) // 2] if truncate else payload)
        if truncate:
            h.close_connection = True

    def _route(self, req: _Request) -> tuple[int, dict, bytes]:
        parts, method = req.parts, req.method
        if req.path == "/api/agent-harnesses":
            return _json({"standardEnvVars": [], "harnesses": {}})
        if parts[0] == "_cdn" and len(parts) == 2 and method in ("GET", "HEAD"):
            return self._serve_blob(req, parts[1], etag=parts[1], headers={})
        if parts[0] == "api" and len(parts) >= 2:
            if parts[1:] == ["repos", "create"] and method == "POST":
                return self._create_repo_http(req)
            if parts[1:] == ["repos", "delete"] and method == "DELETE":
                return self._delete_repo_http(req)
            if parts[1:] == ["validate-yaml"] and method == "POST":
                return _json({"errors": [], "warnings": []})
            if parts[1] in _URL_TYPES and len(parts) >= 3:
                return self._api(req, _URL_TYPES[parts[1]], parts[2:])
        else:
            repo_type = {"datasets": "dataset", "spaces": "space"}.get(parts[0], "model")
            rest = parts[1:] if repo_type != "model" else parts
            for i in (1, 2):
                if len(rest) > i + 2 and rest[i] == "resolve" and method in ("GET", "HEAD"):
                    repo_id = "/".join(rest[:i])
                    self._check_renamed(repo_type, repo_id, req)
                    return self._resolve_file(req, self._repo(repo_type, repo_id), rest[i + 1], "/".join(rest[i + 2 :]))
        raise HubError(404, f"Not found: {method} {req.path}")

    def _check_renamed(self, repo_type: str, repo_id: str, req: _Request) -> None:
        new_id = self._renamed.get((repo_type, repo_id))
        if new_id is not None and (repo_type, repo_id) not in self._repos:
            location = (req.path + "/").replace(f"/{repo_id}/", f"/{new_id}/", 1)[:-1]
            location += f"?{req.raw_query}" if req.raw_query else ""
            raise HubError(307, "Moved", headers={"Location": location})  # relative, as on the Hub

    def _resolve_file(self, req: _Request, repo: Repo, revision: str, path: str) -> tuple[int, dict, bytes]:
        commit = self._resolve(repo, revision)
        entry = commit.files.get(path)
        if entry is None:
            msg = f"Entry not found: {path} does not exist on {revision!r}"
            raise HubError(404, msg, "EntryNotFound", {"X-Repo-Commit": commit.sha})
        headers = {"X-Repo-Commit": commit.sha, "Accept-Ranges": "bytes"}
        if entry.lfs:  # like the Hub: 302 to a CDN on another origin; metadata is on the 302 itself
            headers.update(
                {
                    "Location": f"http://{self.cdn_host}:{self.port}/_cdn/{entry.sha256}",
                    "X-Linked-Etag": f'"{entry.sha256}"',
                    "X-Linked-Size": str(entry.size),
                    "ETag": f'"{entry.oid}"',
                }
            )
            return 302, headers, b""
        return self._serve_blob(req, entry.sha256, etag=entry.oid, headers=headers)

    def _serve_blob(self, req: _Request, sha256: str, etag: str, headers: dict) -> tuple[int, dict, bytes]:
        data = self._read_blob(sha256)
        headers = {**headers, "ETag": f'"{etag}"', "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        rng = req.headers.get("Range")
        if not rng:
            return 200, headers, data
        m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", rng)
        size = len(data)
        if m and m.group(1):
            start, end = int(m.group(1)), min(int(m.group(2) or size - 1), size - 1)
        elif m and m.group(2):
            start, end = max(size - int(m.group(2)), 0), size - 1
        else:
            start, end = size, -1
        if start >= size or start > end:
            raise HubError(416, f"Range not satisfiable: {rng}", headers={"Content-Range": f"bytes */{size}"})
        return 206, {**headers, "Content-Range": f"bytes {start}-{end}/{size}"}, data[start : end + 1]

    # ---- /api/{type}s/{repo_id}/...
    def _api(self, req: _Request, repo_type: str, rest: list[str]) -> tuple[int, dict, bytes]:
        if len(rest) >= 2 and rest[1] in _REPO_ACTIONS:
            repo_id, action, args = rest[0], rest[1], rest[2:]
        elif len(rest) >= 3 and rest[2] in _REPO_ACTIONS:
            repo_id, action, args = "/".join(rest[:2]), rest[2], rest[3:]
        else:
            repo_id, action, args = "/".join(rest), "info", []
        self._check_renamed(repo_type, repo_id, req)
        repo, method = self._repo(repo_type, repo_id), req.method
        arg = args[0] if args else None
        match (action, method):
            case ("info", "GET") | ("revision", "GET"):
                return _json(self._info(repo, self._resolve(repo, arg or "main"), blobs=req.flag("blobs")))
            case ("tree", "GET") if arg:
                commit = self._resolve(repo, arg)
                return _json(self._tree(commit, "/".join(args[1:]).strip("/"), recursive=req.flag("recursive")))
            case ("paths-info", "POST") if arg:
                commit = self._resolve(repo, arg)
                paths = parse_qs(req.body.decode()).get("paths", [])
                return _json([e for p in paths if (e := self._path_info(commit, p))])
            case ("preupload", "POST") if arg:
                files = self._resolve(repo, arg).files
                return _json(
                    {
                        "files": [
                            {
                                "path": f["path"],
                                "uploadMode": "regular",
                                "shouldIgnore": False,
                                "oid": files[f["path"]].oid if f["path"] in files else None,
                            }
                            for f in req.json().get("files", [])
                        ]
                    }
                )
            case ("commit", "POST") if arg:
                return self._commit_http(req, repo, arg)
            case ("refs", "GET"):

                def refs(kind: str, names: dict[str, str]) -> list[dict]:
                    return [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": s} for n, s in names.items()]

                return _json(
                    {
                        "branches": refs("heads", repo.branches),
                        "tags": refs("tags", repo.tags),
                        "converts": [],
                        "pullRequests": [],
                    }
                )
            case ("tag", "POST") if arg:
                tag = req.json()["tag"]
                if tag in repo.tags:
                    raise HubError(409, f"Tag {tag} already exists")
                repo.tags[tag] = self._resolve(repo, arg).sha
                return _json({})
            case ("branch", "POST") if arg:
                if arg in repo.branches:
                    raise HubError(409, f"Branch {arg} already exists")
                repo.branches[arg] = self._resolve(repo, req.json().get("startingPoint") or "main").sha
                return _json({})
            case ("tag", "DELETE") | ("branch", "DELETE") if arg:
                refs = repo.tags if action == "tag" else repo.branches
                if refs.pop(arg, None) is None:
                    raise HubError(404, f"Invalid rev id: {arg}", "RevisionNotFound")
                return _json({})
        raise HubError(404, f"Not found: {method} {req.path}")

    def _info(self, repo: Repo, commit: Commit, blobs: bool) -> dict:
        def sibling(path: str, e: FileEntry) -> dict:
            if not blobs:
                return {"rfilename": path}
            lfs = {"lfs": {"sha256": e.sha256, "size": e.size, "pointerSize": 134}} if e.lfs else {}
            return {"rfilename": path, "size": e.size, "blobId": e.oid, **lfs}

        return {
            "_id": commit.sha[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0] if "/" in repo.repo_id else None,
            "sha": commit.sha,
            "lastModified": commit.date,
            "createdAt": repo.created_at,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": [sibling(p, e) for p, e in sorted(commit.files.items())],
            "usedStorage": sum(e.size for e in commit.files.values()),
        }

    @staticmethod
    def _file_json(path: str, e: FileEntry) -> dict:
        lfs = {"lfs": {"oid": e.sha256, "size": e.size, "pointerSize": 134}} if e.lfs else {}
        return {"type": "file", "oid": e.oid, "size": e.size, "path": path, **lfs}

    @staticmethod
    def _dir_json(commit: Commit, path: str) -> dict:
        return {
            "type": "directory",
            "oid": hashlib.sha1(f"{commit.sha}:{path}".encode()).hexdigest(),
            "size": 0,
            "path": path,
        }

    def _tree(self, commit: Commit, sub: str, recursive: bool) -> list[dict]:
        prefix = f"{sub}/" if sub else ""
        files = {p: e for p, e in sorted(commit.files.items()) if p.startswith(prefix)}
        if sub and not files:
            raise HubError(404, f"Entry not found: {sub}", "EntryNotFound", {"X-Repo-Commit": commit.sha})
        entries: dict[str, dict] = {}
        for path, entry in files.items():
            rel = path[len(prefix) :].split("/")
            for i in range(1, len(rel) if recursive else min(len(rel), 2)):
                d = prefix + "/".join(rel[:i])
                entries.setdefault(d, self._dir_json(commit, d))
            if recursive or len(rel) == 1:
                entries[path] = self._file_json(path, entry)
        return list(entries.values())

    def _path_info(self, commit: Commit, path: str) -> dict | None:
        if path in commit.files:
            return self._file_json(path, commit.files[path])
        if any(p.startswith(f"{path}/") for p in commit.files):
            return self._dir_json(commit, path)
        return None

    def _create_repo_http(self, req: _Request) -> tuple[int, dict, bytes]:
        p = req.json()
        repo_type = p.get("type") or "model"
        repo_id = f"{p['organization']}/{p['name']}" if p.get("organization") else p["name"]
        url = f"{req.base}/{_URL_PREFIX.get(repo_type, '')}{repo_id}"
        if (repo_type, repo_id) in self._repos:
            raise HubError(409, f"You already created this {repo_type} repo", url=url)  # the client reads "url"
        private = p.get("visibility") == "private" or bool(p.get("private"))
        self.create_repo(repo_id, repo_type=repo_type, private=private)
        return _json({"url": url, "name": repo_id, "id": repo_id})

    def _delete_repo_http(self, req: _Request) -> tuple[int, dict, bytes]:
        p = req.json()
        repo_type = p.get("type") or "model"
        repo_id = f"{p['organization']}/{p['name']}" if p.get("organization") else p["name"]
        self._repo(repo_type, repo_id)
        del self._repos[(repo_type, repo_id)]
        return _json({})

    def _commit_http(self, req: _Request, repo: Repo, branch: str) -> tuple[int, dict, bytes]:
        if req.flag("create_pr"):
            raise HubError(400, "create_pr is not supported by the test hub server")
        if branch not in repo.branches:
            self._resolve(repo, branch)  # 404 RevisionNotFound if unknown
            raise HubError(400, f"Cannot commit to {branch!r}: not a branch")
        files = repo.commits[repo.branches[branch]].files
        changes: dict[str, bytes | None] = {}
        header: dict = {}
        for line in req.body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file":
                content = value["content"]
                b64 = value.get("encoding") == "base64"
                changes[value["path"]] = base64.b64decode(content) if b64 else content.encode()
            elif key == "lfsFile":
                changes[value["path"]] = self._read_blob(value["oid"])
            elif key == "deletedFile":
                if value["path"] not in files:
                    raise HubError(404, f"A file with this name doesn't exist: {value['path']}", "EntryNotFound")
                changes[value["path"]] = None
            elif key == "deletedFolder":
                folder = value["path"].rstrip("/") + "/"
                changes.update({p: None for p in files if p.startswith(folder)})
            else:
                raise HubError(400, f"Unknown commit operation {key!r}")
        parent = header.get("parentCommit")
        if parent and parent != repo.branches[branch]:
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        message = "\n\n".join(s for s in (header.get("summary"), header.get("description")) if s)
        sha = self._commit(repo, branch, changes, message or "Commit")
        commit_url = f"{req.base}/{_URL_PREFIX.get(repo.repo_type, '')}{repo.repo_id}/commit/{sha}"
        return _json(
            {"success": True, "commitOid": sha, "commitUrl": commit_url, "hookOutput": "", "pullRequestUrl": None}
        )


def _json(obj) -> tuple[int, dict, bytes]:
    return 200, {"Content-Type": "application/json"}, json.dumps(obj).encode()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must never wait for handler threads
    hub: HubServer

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # client went away / go_down(): not worth a traceback
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as with the real Hub
    timeout = 10  # idle keep-alive connections end after this
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.hub._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.hub._track(self.connection, False)

    def log_message(self, format, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self.server.hub._handle(self)

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET
