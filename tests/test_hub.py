"""bavae.load / bavae.zoo.push against the loopback Hub (tests/hub_server.py) with the real huggingface_hub client.

huggingface_hub reads HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE once, at import, so the client runs in worker
processes started with those variables set: one online, one with HF_HUB_OFFLINE=1. A worker stays up for the
whole module and runs snippets the tests send it (torch is imported once per worker, not once per step), while
the test, in this process, publishes repos and injects faults on the server between steps. Each test uses its own
repos and, through load(cache_dir=...), its own cache.
"""

import hashlib
import json
import select
import subprocess
import sys
import textwrap

import pytest
from helpers import run, save_tiny
from hub_server import HubServer

from bavae.model import BAVAE

WORKER = r"""
import hashlib, json, sys, traceback
reply, sys.stdout = sys.stdout, sys.stderr  # snippets may print; replies go to the real stdout, one JSON line each
import torch
import bavae
from bavae import zoo
from bavae.model import BAVAE, BAVAEConfig

def fingerprint(model):
    return hashlib.sha256(b"".join(v.cpu().numpy().tobytes() for _, v in sorted(model.state_dict().items()))).hexdigest()

for line in sys.stdin:
    result = {}
    try:
        exec(json.loads(line), {**globals(), "result": result})
        result["ok"] = True
    except BaseException as e:
        result.update(ok=False, error=type(e).__name__, message=str(e), traceback=traceback.format_exc())
    reply.write(json.dumps(result) + "\n")
    reply.flush()
"""


def fingerprint(model: BAVAE) -> str:
    return hashlib.sha256(
        b"".join(v.cpu().numpy().tobytes() for _, v in sorted(model.state_dict().items()))
    ).hexdigest()


class Worker:
    def __init__(self, env: dict, log_path):
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )

    def run(self, code: str, timeout: float = 90) -> dict:
        self.proc.stdin.write(json.dumps(textwrap.dedent(code)) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, f"worker gave no answer in {timeout} s"
        line = self.proc.stdout.readline()
        assert line, f"worker died: see {self.log.name}"
        return json.loads(line)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with HubServer(root=tmp_path_factory.mktemp("hub")) as server:
        yield server


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory):
    return tmp_path_factory.mktemp("hf-home")


def _worker(hub, hf_home, tmp_path_factory, **env):
    env = hub.client_env(hf_home, BAVAE_WEIGHTS_DIR=str(tmp_path_factory.mktemp("no-bundled")), **env)
    worker = Worker(env, tmp_path_factory.mktemp("logs") / "worker.log")
    return worker


@pytest.fixture(scope="module")
def online(hub, hf_home, tmp_path_factory):
    worker = _worker(hub, hf_home, tmp_path_factory)
    yield worker
    worker.close()


@pytest.fixture(scope="module")
def offline(hub, hf_home, tmp_path_factory):
    worker = _worker(hub, hf_home, tmp_path_factory, HF_HUB_OFFLINE="1")
    yield worker
    worker.close()


def publish(hub: HubServer, repo_id: str, folder, seed: int, revision: str = "main", **config) -> tuple[str, BAVAE]:
    """Save a tiny model to `folder` and commit its files to the loopback Hub; return (commit sha, model)."""
    model = save_tiny(folder, seed, **config)
    files = {f: (folder / f).read_bytes() for f in ("config.json", "model.safetensors", "README.md")}
    return hub.add_commit(repo_id, files, revision=revision), model


def load(repo: str, cache=None, **kw) -> str:
    args = ", ".join(
        [repr(repo), "device='cpu'", *(f"{k}={v!r}" for k, v in kw.items())]
        + ([f"cache_dir={str(cache)!r}"] if cache else [])
    )
    return f"m = bavae.load({args}); result['fp'] = fingerprint(m); result['training'] = m.training"


def blobs(cache) -> list[str]:
    return sorted(p.name for p in cache.rglob("blobs/*"))


def requests_since(hub: HubServer, n: int) -> list[tuple[str, str]]:
    return hub.request_log[n:]


# ------------------------------------------------------------------------------------------------ downloads
def test_download_into_cache_then_offline(hub, online, offline, hf_home, tmp_path):
    _, model = publish(hub, "user/dl", tmp_path / "m", seed=0)
    r = online.run(load("user/dl"))  # the default cache: $HF_HOME/hub
    assert r["ok"], r.get("traceback")
    assert r["fp"] == fingerprint(model) and r["training"] is False
    assert blobs(hf_home / "hub") and any(p.startswith("/_cdn/") for _, p in hub.request_log)
    n = len(hub.request_log)
    r = offline.run(load("user/dl"))
    assert r["ok"], r.get("traceback")
    assert r["fp"] == fingerprint(model) and requests_since(hub, n) == []  # HF_HUB_OFFLINE=1: not one request
    r = offline.run(load("user/never-downloaded"))
    assert r["error"] == "WeightsUnavailableError" and "HF_HUB_OFFLINE is set" in r["message"]


def test_pinned_revision_loads_older_weights(hub, online, tmp_path):
    sha1, v1 = publish(hub, "user/rev", tmp_path / "v1", seed=1)
    hub.create_tag("user/rev", "v1")
    _, v2 = publish(hub, "user/rev", tmp_path / "v2", seed=2)
    cache = tmp_path / "cache"
    for revision, expected in ((sha1, v1), ("v1", v1), (None, v2), ("main", v2)):
        r = online.run(load("user/rev", cache, revision=revision))
        assert r["ok"] and r["fp"] == fingerprint(expected), (revision, r.get("traceback"))


def test_zoo_record_downloads_only_its_weights_and_uses_the_cache_first(hub, online, tmp_path):
    _, model = publish(hub, "zoo/pinned", tmp_path / "m", seed=3)
    sha256 = hashlib.sha256((tmp_path / "m" / "model.safetensors").read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    n = len(hub.request_log)
    r = online.run(register("test-pinned", "zoo/pinned", sha256, model) + load("test-pinned", cache))
    assert r["ok"] and r["fp"] == fingerprint(model), r.get("traceback")
    assert not any("config.json" in p for _, p in requests_since(hub, n))  # the record holds the config
    n = len(hub.request_log)
    assert online.run(load("test-pinned", cache))["fp"] == fingerprint(model)
    assert requests_since(hub, n) == []  # in the cache: the Hub is not even asked


def test_celeba64_downloads_from_the_hub_when_published(hub, online, offline, tmp_path):
    # Published under the record's own repo id; until its sha256 is in the record, the Hub's hash is checked.
    _, model = publish(hub, "bavae/bavae-celeba64", tmp_path / "m", seed=4, image_size=64, channels=3)
    r = online.run(load("bavae-celeba64", tmp_path / "cache"))
    assert r["ok"] and r["fp"] == fingerprint(model), r.get("traceback")
    r = offline.run(load("bavae-celeba64", tmp_path / "other-cache"))
    assert r["error"] == "WeightsUnavailableError" and "bavae train --dataset celeba" in r["message"]


# ------------------------------------------------------------------------------------------------ faults
def test_corrupted_file_is_rejected_and_the_cache_stays_usable(hub, online, tmp_path):
    _, model = publish(hub, "user/corrupt", tmp_path / "m", seed=5)
    published = hub.file_entry("user/corrupt", "model.safetensors").sha256
    cache = tmp_path / "cache"
    hub.corrupt_file("user/corrupt", "model.safetensors")  # same size, same advertised sha256, other bytes
    r = online.run(load("user/corrupt", cache))
    assert r["error"] == "WeightsError", r
    assert "model.safetensors" in r["message"] and published in r["message"]
    assert published not in blobs(cache)  # the bad bytes were evicted, not kept for a later load
    # The Hub serves the good file again (its blob store is root/blobs/<sha256>, see HubServer).
    (hub.root / "blobs" / published).write_bytes((tmp_path / "m" / "model.safetensors").read_bytes())
    r = online.run(load("user/corrupt", cache))
    assert r["ok"] and r["fp"] == fingerprint(model), r.get("traceback")


def test_corrupted_cache_file_is_downloaded_again(hub, online, tmp_path):
    _, model = publish(hub, "user/bitrot", tmp_path / "m", seed=6)
    cache = tmp_path / "cache"
    assert online.run(load("user/bitrot", cache))["ok"]
    blob = next(p for p in cache.rglob("blobs/*") if len(p.name) == 64)
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    n = len(hub.request_log)
    r = online.run(load("user/bitrot", cache))
    assert r["ok"] and r["fp"] == fingerprint(model), r.get("traceback")
    assert any(p.startswith("/_cdn/") for _, p in requests_since(hub, n))  # fetched once more


def register(name: str, repo_id: str, sha256: str, model: BAVAE) -> str:
    """Worker code registering a pinned zoo record (overwriting any earlier one of that name)."""
    return (
        f"zoo.register_pretrained(zoo.ModelRecord(name={name!r}, hf_hub_id={repo_id!r}, sha256={sha256!r}, "
        f"config={model.config.to_dict()!r}), overwrite=True)\n"
    )


def test_pinned_record_refuses_a_hub_file_that_is_not_its_own(hub, online, tmp_path):
    """The Hub serves a consistent file (its advertised sha256 is the file's), but not the one the record pins:
    the record is the source of truth, so the load fails naming the record's sha256 and keeps nothing."""
    _, model = publish(hub, "zoo/replaced", tmp_path / "served", seed=15)
    served = hashlib.sha256((tmp_path / "served" / "model.safetensors").read_bytes()).hexdigest()
    assert hub.file_entry("zoo/replaced", "model.safetensors").sha256 == served  # self-consistent
    save_tiny(tmp_path / "pinned", seed=16)
    pinned = hashlib.sha256((tmp_path / "pinned" / "model.safetensors").read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    r = online.run(register("test-replaced", "zoo/replaced", pinned, model) + load("test-replaced", cache))
    assert r["error"] == "WeightsError", r
    assert pinned in r["message"] and served in r["message"] and "sha256 mismatch" in r["message"]
    assert served not in blobs(cache)


def test_offline_a_corrupt_cache_is_refused(hub, online, offline, tmp_path):
    """HF_HUB_OFFLINE=1 and a cached weight file that no longer hashes right (a plain Hub repo, checked against the
    Hub's hash, and a pinned record, checked against its own): refused, deleted, and the message says why."""
    _, model = publish(hub, "user/offline-rot", tmp_path / "m", seed=17)
    sha256 = hashlib.sha256((tmp_path / "m" / "model.safetensors").read_bytes()).hexdigest()
    for name, code in (
        ("user/offline-rot", ""),
        ("test-offline-rot", register("test-offline-rot", "user/offline-rot", sha256, model)),
    ):
        cache = tmp_path / name.replace("/", "-")
        assert online.run(code + load(name, cache))["ok"]
        blob = next(p for p in cache.rglob("blobs/*") if p.name == sha256)
        data = bytearray(blob.read_bytes())
        data[-1] ^= 0x01  # still a valid safetensors file, other weights
        blob.write_bytes(bytes(data))
        n = len(hub.request_log)
        r = offline.run(code + load(name, cache))
        assert r["error"] == "WeightsError", (name, r)
        assert sha256 in r["message"] and "sha256 mismatch" in r["message"], (name, r)
        assert not blob.exists() and requests_since(hub, n) == []  # deleted; offline: not one request


def test_server_errors_are_retried_or_reported(hub, online, tmp_path):
    _, model = publish(hub, "user/flaky", tmp_path / "m", seed=7)
    hub.fail_next(2, 500, path_contains="/resolve/", method="HEAD")  # the client retries its metadata request
    hub.fail_next(1, 500, path_contains="/_cdn/")  # bavae retries the download once
    r = online.run(load("user/flaky", tmp_path / "cache"))
    assert r["ok"] and r["fp"] == fingerprint(model), r.get("traceback")
    assert hub.pending_faults == 0
    publish(hub, "user/down500", tmp_path / "m2", seed=8)
    hub.fail_next(10, 500, path_contains="/_cdn/")
    try:
        r = online.run(load("user/down500", tmp_path / "cache2"))
    finally:
        hub.clear_faults()
    assert r["error"] == "WeightsUnavailableError" and "answered 500" in r["message"], r
    assert len(blobs(tmp_path / "cache2")) == 1  # config.json only: no weight file, whole or half


def test_truncated_downloads_are_resumed_or_reported(hub, online, tmp_path):
    _, model = publish(hub, "user/cut", tmp_path / "m", seed=9)
    hub.truncate_next(2, path_contains="/_cdn/")  # the client resumes with a Range request
    r = online.run(load("user/cut", tmp_path / "cache"))
    assert r["ok"] and r["fp"] == fingerprint(model), r.get("traceback")
    publish(hub, "user/cut-always", tmp_path / "m2", seed=10)
    hub.truncate_next(100, path_contains="/_cdn/")
    try:
        r = online.run(load("user/cut-always", tmp_path / "cache2"))
    finally:
        hub.clear_faults()
    assert r["error"] == "WeightsUnavailableError" and "user/cut-always/model.safetensors" in r["message"], r
    assert len(blobs(tmp_path / "cache2")) == 1  # config.json only


def test_hub_down_after_a_download_loads_from_the_cache(hub, online, tmp_path):
    _, model = publish(hub, "user/away", tmp_path / "m", seed=11)
    cache = tmp_path / "cache"
    assert online.run(load("user/away", cache))["ok"]
    hub.go_down()  # HF_HUB_OFFLINE is not set: the client finds the Hub gone and falls back to its cache
    try:
        r = online.run(load("user/away", cache))
    finally:
        hub.come_up()
    assert r["ok"] and r["fp"] == fingerprint(model), r.get("traceback")


# ------------------------------------------------------------------------------------------------ publishing
def test_push_then_load_back(hub, online, tmp_path):
    model = save_tiny(tmp_path / "run", seed=12)
    (tmp_path / "run" / "eval.json").write_text(json.dumps({"fid": 42.0}))
    r = online.run(f"result['commit'] = zoo.push({str(tmp_path / 'run')!r}, 'user/pushed').oid")
    assert r["ok"], r.get("traceback")
    assert hub.resolve("user/pushed") == r["commit"]
    card = hub.file_bytes("user/pushed", "README.md").decode()  # ours, not the generic save_pretrained card
    assert "library_name: bavae" in card and "bavae.load('user/pushed')" in card and "| fid | 42 |" in card
    r = online.run(load("user/pushed", tmp_path / "cache"))
    assert r["ok"] and r["fp"] == fingerprint(model), r.get("traceback")


def test_push_to_hub_then_load_back(hub, online, tmp_path):
    model = save_tiny(tmp_path / "run", seed=14)
    r = online.run(f"BAVAE.from_pretrained({str(tmp_path / 'run')!r}).push_to_hub('user/mixin-pushed')")
    assert r["ok"], r.get("traceback")
    r = online.run(load("user/mixin-pushed", tmp_path / "cache"))
    assert r["ok"] and r["fp"] == fingerprint(model), r.get("traceback")


def test_cli_push_says_when_the_weights_hold_training_codes(hub, online, hf_home, tmp_path):
    """A model whose neighbour sampler keeps its training codes is pushed as asked, with one line saying so."""
    import torch

    from bavae.samplers import NeighbourSampler

    model = save_tiny(tmp_path / "run", seed=14)
    model.set_latent_sampler(NeighbourSampler.fit(torch.randn(40, model.config.latent_dim), 3))
    model.save_pretrained(tmp_path / "run")
    proc = run(
        sys.executable, "-m", "bavae", "push", tmp_path / "run", "--repo-id", "user/nb", env=hub.client_env(hf_home)
    )
    assert proc.returncode == 0, proc.stderr
    assert "keeps the codes of 40 training pictures" in proc.stderr, proc.stderr
    assert f"bavae fit-sampler {tmp_path / 'run'} --kind gmm" in proc.stderr
    card = hub.file_bytes("user/nb", "README.md").decode()  # and so does the card people read before they load it
    assert "## Training pictures in the weights" in card and "codes of the 40 training pictures" in card
    r = online.run(load("user/nb", tmp_path / "cache"))
    assert r["ok"] and r["fp"] == fingerprint(model), r.get("traceback")


def test_cli_push(hub, online, hf_home, tmp_path):
    model = save_tiny(tmp_path / "run", seed=13)
    proc = run(
        sys.executable,
        "-m",
        "bavae",
        "push",
        tmp_path / "run",
        "--repo-id",
        "user/cli",
        "--branch",
        "dev",
        env=hub.client_env(hf_home),
    )
    assert proc.returncode == 0, proc.stderr
    assert "user/cli" in proc.stdout and hub.file_entry("user/cli", "model.safetensors", "dev")
    assert "training pictures" not in proc.stderr  # no stored codes, no note
    r = online.run(load("user/cli", tmp_path / "cache", revision="dev"))
    assert r["ok"] and r["fp"] == fingerprint(model), r.get("traceback")
