"""Tests of tests/hub_server.py with the real huggingface_hub client (no mocks).

In-process tests pass ``endpoint=``/``cache_dir=`` explicitly, because huggingface_hub reads HF_ENDPOINT,
HF_HOME and HF_HUB_OFFLINE once, at import time (see the hub_server docstring and
``test_env_vars_are_read_at_import_time``); code without an ``endpoint=`` argument runs in a subprocess.
"""

import functools
import hashlib
import json
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import huggingface_hub
import pytest
from hub_server import HubServer
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

# conftest.py drops HF_HUB_OFFLINE before huggingface_hub is imported; if something imported it earlier with the
# variable set, every download here would fail for that reason alone: say so instead of skipping.
assert not huggingface_hub.constants.HF_HUB_OFFLINE, (
    "huggingface_hub was imported with HF_HUB_OFFLINE set, before tests/conftest.py could clear it; "
    "run pytest from the repository root without a plugin that imports huggingface_hub"
)

REPO = "org/model"
CONFIG = b'{"width": 4}'
WEIGHTS = bytes(range(256)) * 40  # 10240 bytes, served as an LFS file (.safetensors)


@pytest.fixture
def hub(tmp_path):
    with HubServer(root=tmp_path / "hub") as server:
        yield server


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "hf-cache"


@pytest.fixture
def dl(hub, cache):
    """hf_hub_download against the test hub, as a user passing explicit arguments would call it."""
    return functools.partial(hf_hub_download, endpoint=hub.url, cache_dir=cache)


def run_client(hub: HubServer, hf_home: Path, code: str, **env: str) -> dict:
    """Run ``code`` in a fresh interpreter configured by environment variables; it prints one JSON line."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=hub.client_env(hf_home, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cache_files(cache: Path) -> list[str]:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file() or p.is_symlink())


def test_download_matches_stored_bytes(hub, dl, cache):
    sha = hub.add_commit(REPO, {"config.json": CONFIG, "model.safetensors": WEIGHTS})
    config = dl(REPO, "config.json")
    weights = dl(REPO, "model.safetensors")
    assert Path(config).read_bytes() == CONFIG and Path(weights).read_bytes() == WEIGHTS
    assert f"snapshots/{sha}/" in config
    # Cache blobs are named after the ETag: git sha1 for regular files, sha256 for LFS files (X-Linked-Etag).
    assert Path(config).resolve().name == hub.file_entry(REPO, "config.json").oid
    assert Path(weights).resolve().name == hashlib.sha256(WEIGHTS).hexdigest()
    assert hub.request_log == [
        ("HEAD", "/org/model/resolve/main/config.json"),
        ("GET", "/org/model/resolve/main/config.json"),
        ("HEAD", "/org/model/resolve/main/model.safetensors"),  # 302 -> "CDN" on another origin
        ("GET", f"/_cdn/{hashlib.sha256(WEIGHTS).hexdigest()}"),
    ]
    # Already cached: a HEAD only.
    assert dl(REPO, "config.json") == config and hub.request_log[-1][0] == "HEAD"

    info = HfApi(endpoint=hub.url).model_info(REPO, files_metadata=True)
    assert info.sha == sha and info.id == REPO
    sizes = {s.rfilename: s.size for s in info.siblings}
    assert sizes == {"config.json": len(CONFIG), "model.safetensors": len(WEIGHTS)}
    assert info.siblings[1].lfs.sha256 == hashlib.sha256(WEIGHTS).hexdigest()


def test_errors_map_to_client_exceptions(hub, dl):
    hub.add_commit(REPO, {"config.json": CONFIG})
    with pytest.raises(RepositoryNotFoundError):
        dl("org/missing", "config.json")
    with pytest.raises(RevisionNotFoundError):
        dl(REPO, "config.json", revision="nope")
    with pytest.raises(RemoteEntryNotFoundError):
        dl(REPO, "missing.json")
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub.url).model_info("org/missing")


def test_pinned_revisions(hub, dl):
    old = hub.add_commit(REPO, {"config.json": b"v1", "model.safetensors": b"w1"})
    hub.create_tag(REPO, "v1.0")
    new = hub.add_commit(REPO, {"config.json": b"v2", "model.safetensors": b"w2"})
    branch = hub.add_commit(REPO, {"config.json": b"v3"}, revision="release/v3")  # needs URL-encoding
    assert Path(dl(REPO, "config.json")).read_bytes() == b"v2"
    assert Path(dl(REPO, "config.json", revision="v1.0")).read_bytes() == b"v1"
    assert Path(dl(REPO, "model.safetensors", revision=old)).read_bytes() == b"w1"
    assert Path(dl(REPO, "model.safetensors", revision=new)).read_bytes() == b"w2"
    assert Path(dl(REPO, "config.json", revision="release/v3")).read_bytes() == b"v3"
    assert ("HEAD", "/org/model/resolve/release%2Fv3/config.json") in hub.request_log
    assert HfApi(endpoint=hub.url).model_info(REPO, revision="release/v3").sha == branch
    assert {t.name: t.target_commit for t in HfApi(endpoint=hub.url).list_repo_refs(REPO).tags} == {"v1.0": old}


def test_snapshot_download(hub, cache):
    files = {"config.json": CONFIG, "model.safetensors": WEIGHTS, "extra/notes.txt": b"notes", "extra/deep/x.bin": b"x"}
    sha = hub.add_commit(REPO, files)
    folder = Path(snapshot_download(REPO, endpoint=hub.url, cache_dir=cache))
    assert folder.name == sha
    assert {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == files
    assert hub.request_log[:2] == [
        ("GET", f"/api/models/{REPO}/revision/main"),
        ("GET", f"/api/models/{REPO}/tree/{sha}"),
    ]
    assert HfApi(endpoint=hub.url).list_repo_files(REPO) == sorted(files)
    only = Path(snapshot_download(REPO, endpoint=hub.url, cache_dir=cache, allow_patterns="extra/*", revision=sha))
    assert only == folder

    hub.add_commit("org/data", {"train.csv": b"a,b\n1,2\n"}, repo_type="dataset")
    data = Path(snapshot_download("org/data", repo_type="dataset", endpoint=hub.url, cache_dir=cache))
    assert (data / "train.csv").read_bytes() == b"a,b\n1,2\n" and "datasets--org--data" in str(data)


def test_create_repo_upload_folder_round_trip(hub, tmp_path, dl, monkeypatch):
    # hf_xet (used by upload_folder) reads this when its process-wide session is first created: keep its logs
    # out of ~/.cache/huggingface (no effect if an earlier upload in this process created the session).
    monkeypatch.setenv("HF_XET_CACHE", str(tmp_path / "xet"))
    api = HfApi(endpoint=hub.url, token="any-token")
    url = api.create_repo("org/new")
    assert url.repo_id == "org/new"
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo("org/new")
    assert exc.value.response.status_code == 409
    api.create_repo("org/new", exist_ok=True)

    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "config.json").write_bytes(CONFIG)
    (src / "model.safetensors").write_bytes(WEIGHTS)
    (src / "sub" / "notes.txt").write_text("notes")
    (src / "README.md").write_text("---\nlicense: mit\n---\n# model\n")
    info = api.upload_folder(repo_id="org/new", folder_path=src, commit_message="upload")
    assert hub.resolve("org/new") == info.oid
    expected = [".gitattributes", "README.md", "config.json", "model.safetensors", "sub/notes.txt"]
    assert api.list_repo_files("org/new") == expected
    assert Path(dl("org/new", "model.safetensors")).read_bytes() == WEIGHTS
    assert Path(dl("org/new", "sub/notes.txt")).read_bytes() == b"notes"

    # Unchanged files are skipped (preupload returns their oid): no new commit.
    n_commits = sum(1 for _, p in hub.request_log if p.endswith("/commit/main"))
    assert api.upload_folder(repo_id="org/new", folder_path=src).oid == info.oid
    assert sum(1 for _, p in hub.request_log if p.endswith("/commit/main")) == n_commits

    api.delete_file("sub/notes.txt", repo_id="org/new")
    api.create_tag("org/new", tag="v1")
    assert "sub/notes.txt" not in api.list_repo_files("org/new", revision="v1")


def test_500_on_head_is_retried_once_without_sleep(hub, dl):
    hub.add_commit(REPO, {"config.json": CONFIG})
    hub.fail_next(1, status=500, method="HEAD")
    t0 = time.monotonic()
    assert Path(dl(REPO, "config.json")).read_bytes() == CONFIG
    assert time.monotonic() - t0 < 1  # the 2nd HEAD (with retries enabled) succeeds at once: no backoff sleep
    assert [m for m, _ in hub.request_log] == ["HEAD", "HEAD", "GET"]


def test_500_on_get_raises_and_caches_nothing(hub, dl, cache):
    hub.add_commit(REPO, {"config.json": CONFIG})
    hub.fail_next(1, status=500, method="GET")
    with pytest.raises(HfHubHTTPError) as exc:  # the file GET is retried on 408/429 only
        dl(REPO, "config.json")
    assert exc.value.response.status_code == 500
    assert not [f for f in cache_files(cache) if "/blobs/" in f or "/snapshots/" in f]
    assert Path(dl(REPO, "config.json")).read_bytes() == CONFIG


def test_5xx_and_hub_down_fall_back_to_cache(hub, dl, cache):
    hub.add_commit(REPO, {"config.json": CONFIG, "model.safetensors": WEIGHTS})
    path = dl(REPO, "config.json")
    folder = snapshot_download(REPO, endpoint=hub.url, cache_dir=cache)

    hub.fail_next(1, status=503, method="HEAD")
    n = len(hub.request_log)
    assert dl(REPO, "config.json") == path  # HEAD failed (not retried): cached file returned, no GET
    assert hub.request_log[n:] == [("HEAD", f"/{REPO}/resolve/main/config.json")]

    hub.go_down()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", hub.port), timeout=2).close()
    t0 = time.monotonic()
    assert dl(REPO, "config.json") == path  # ConnectError -> refs/main -> cached snapshot
    assert dl(REPO, "config.json", local_files_only=True) == path  # the per-call HF_HUB_OFFLINE
    assert snapshot_download(REPO, endpoint=hub.url, cache_dir=cache) == folder
    assert time.monotonic() - t0 < 1
    with pytest.raises(LocalEntryNotFoundError):  # nothing cached for this cache_dir: clear error, no retries
        snapshot_download(REPO, endpoint=hub.url, cache_dir=cache / "empty")

    hub.come_up()
    assert dl(REPO, "model.safetensors", force_download=True)


@pytest.mark.parametrize("size", [len(WEIGHTS), 21 * 2**20])
def test_truncated_get_is_retried(hub, dl, cache, size):
    weights = WEIGHTS[:256] * (size // 256)
    hub.add_commit(REPO, {"model.safetensors": weights})
    hub.truncate_next(1, path_contains="/_cdn/")
    path = dl(REPO, "model.safetensors")  # RemoteProtocolError -> sleep 1 s -> GET again
    assert Path(path).read_bytes() == weights
    gets = [i for i, (m, _) in enumerate(hub.request_log) if m == "GET"]
    assert len(gets) == 2
    # The client writes only whole DOWNLOAD_CHUNK_SIZE (10 MiB) chunks, so it resumes from the last one:
    # a small file is fetched again from byte 0, a big one with "Range: bytes=10485760-" (answered 206).
    if size > huggingface_hub.constants.DOWNLOAD_CHUNK_SIZE:
        assert hub.request_headers[gets[1]]["range"].startswith("bytes=")
    assert not [f for f in cache_files(cache) if f.endswith(".incomplete")]


def test_truncated_then_failed_get_leaves_no_partial_file(hub, dl, cache):
    hub.add_commit(REPO, {"model.safetensors": WEIGHTS})
    hub.truncate_next(1, path_contains="/_cdn/")
    hub.fail_next(1, status=500, path_contains="/_cdn/", method="GET")  # hits the resume request
    with pytest.raises(HfHubHTTPError):
        dl(REPO, "model.safetensors")
    assert hub.pending_faults == 0
    assert not [f for f in cache_files(cache) if "/blobs/" in f or "/snapshots/" in f]
    assert Path(dl(REPO, "model.safetensors")).read_bytes() == WEIGHTS


def test_corrupt_file_keeps_etag(hub, dl):
    hub.add_commit(REPO, {"model.safetensors": WEIGHTS})
    hub.corrupt_file(REPO, "model.safetensors")
    path = Path(dl(REPO, "model.safetensors"))
    data = path.read_bytes()
    assert len(data) == len(WEIGHTS) and data != WEIGHTS  # the client does not verify the sha256 itself
    assert path.resolve().name == hashlib.sha256(WEIGHTS).hexdigest() != hashlib.sha256(data).hexdigest()


def test_renamed_repo_relative_redirect(hub, dl):
    hub.add_commit("org/old", {"config.json": CONFIG})
    hub.rename_repo("org/old", "org/new")
    assert Path(dl("org/old", "config.json")).read_bytes() == CONFIG
    assert hub.request_log[:2] == [
        ("HEAD", "/org/old/resolve/main/config.json"),  # 307, Location: /org/new/resolve/main/config.json
        ("HEAD", "/org/new/resolve/main/config.json"),
    ]
    assert HfApi(endpoint=hub.url).model_info("org/old").id == "org/new"


def test_lifecycle(tmp_path):
    hub = HubServer(root=tmp_path / "hub").start()
    port = hub.port
    hub.add_commit(REPO, {"config.json": CONFIG})
    with socket.create_connection(("127.0.0.1", port)) as keep_alive:
        keep_alive.sendall(f"HEAD /{REPO}/resolve/main/config.json HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert b"X-Repo-Commit" in keep_alive.recv(4096)
        hub.go_down()
        assert keep_alive.recv(4096) == b""  # open connections are closed too
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    hub.come_up()
    assert hub.port == port and hub.url == f"http://127.0.0.1:{port}"
    socket.create_connection(("127.0.0.1", port)).close()
    t0 = time.monotonic()
    hub.stop()
    hub.stop()
    assert time.monotonic() - t0 < 2


def test_env_vars_are_read_at_import_time(hub, tmp_path):
    hub.add_commit(REPO, {"config.json": CONFIG})
    code = f"""
        import json, os
        from huggingface_hub import constants, hf_hub_download
        os.environ["HF_HUB_OFFLINE"] = "1"  # too late: already read at import
        os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
        path = hf_hub_download({REPO!r}, "config.json")
        print(json.dumps({{"path": path, "offline": constants.is_offline_mode(), "endpoint": constants.ENDPOINT}}))
    """
    out = run_client(hub, tmp_path / "home", code)
    assert out == {"path": out["path"], "offline": False, "endpoint": hub.url}
    assert out["path"].startswith(str(tmp_path / "home" / "hub"))
    assert len(hub.request_log) == 2  # HEAD + GET on the test hub

    offline = f"""
        import json
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import LocalEntryNotFoundError
        path = hf_hub_download({REPO!r}, "config.json")
        try:
            hf_hub_download({REPO!r}, "not-cached.json")
            missing = None
        except LocalEntryNotFoundError as e:
            missing = type(e).__name__
        print(json.dumps({{"path": path, "missing": missing}}))
    """
    assert run_client(hub, tmp_path / "home", offline, HF_HUB_OFFLINE="1") == {
        "path": out["path"],
        "missing": "LocalEntryNotFoundError",
    }
    assert len(hub.request_log) == 2  # offline: no request at all


def test_pytorch_model_hub_mixin_round_trip(hub, tmp_path):
    code = """
        import json, torch
        from huggingface_hub import PyTorchModelHubMixin

        class Net(torch.nn.Module, PyTorchModelHubMixin):
            def __init__(self, width: int = 3):
                super().__init__()
                self.lin = torch.nn.Linear(width, 2)

        net = Net(width=5)
        net.push_to_hub("org/net")
        loaded = Net.from_pretrained("org/net")
        same = all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), loaded.state_dict().values()))
        print(json.dumps({"same": same, "width": loaded.lin.in_features}))
    """
    assert run_client(hub, tmp_path / "home", code) == {"same": True, "width": 5}
    assert {"config.json", "model.safetensors", "README.md"} <= set(HfApi(endpoint=hub.url).list_repo_files("org/net"))
