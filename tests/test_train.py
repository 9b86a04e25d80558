"""The training entrypoint, run for real in subprocesses: datasets, resume after kill -9, fine-tuning, torchrun."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import bavae

FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
TINY = ["--width", "8", "--latent-dim", "4", "--posterior-noise-dim", "4", "--batch-size", "8", "--log-every", "1"]


def run_train(*args: str, check: bool = True, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "bavae.train", *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"train failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


def make_folder(root: Path, n: int = 12) -> Path:
    """A folder of photos of assorted sizes and modes, plus a corrupt image and a non-image file."""
    rng = np.random.default_rng(0)
    (root / "nested").mkdir(parents=True)
    for i in range(n):
        size = (40 + 7 * i, 30 + 5 * i)
        arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        img = Image.fromarray(arr).convert(["RGB", "L", "RGBA", "P"][i % 4])
        suffix = "png" if img.mode in ("RGBA", "P") else "jpg"
        img.save(root / ("nested" if i % 5 == 0 else ".") / f"img{i}.{suffix}")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.mark.skipif(not FASHION.exists(), reason="needs the Debian package dataset-fashion-mnist")
def test_fashion_mnist_run_writes_a_loadable_model(tmp_path):
    out = tmp_path / "fm"
    run_train(
        "--dataset",
        "fashion-mnist",
        "--arch",
        "dcgan",
        "--steps",
        "6",
        "--limit",
        "64",
        "--sample-every",
        "3",
        "--checkpoint-every",
        "3",
        "--out",
        str(out),
        *TINY,
    )
    for name in ("config.json", "model.safetensors", "training_state.safetensors", "metrics.csv"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "samples").glob("*.png")) == ["step_0000003.png", "step_0000006.png"]
    assert any(out.glob("events.out.tfevents.*"))
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    assert rows[0].startswith("step,") and len(rows) == 7  # header + one row per step
    model = bavae.load(str(out))
    assert model.config.image_size == 32 and model.sample(2).shape == (2, 1, 32, 32)
    mode = (out / "model.safetensors").stat().st_mode & 0o777
    assert mode == 0o666 & ~_umask(), oct(mode)  # as open() would make it, not mkstemp's 0600

    # the same --out again without --resume: refused in one line, the run left as it was
    before = weights(out)
    proc = run_train(
        "--dataset", "fashion-mnist", "--steps", "2", "--limit", "64", "--out", str(out), *TINY, check=False
    )
    assert proc.returncode == 2 and "already holds a training run" in proc.stderr and f"--resume {out}" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    after = weights(out)
    assert all(torch.equal(before[k], after[k]) for k in before)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_dsprites_subset(tmp_path):
    out = tmp_path / "ds"
    run_train(
        "--dataset",
        "dsprites",
        "--data-dir",
        str(tmp_path / "cache"),
        "--arch",
        "dcgan",
        "--steps",
        "2",
        "--limit",
        "32",
        "--out",
        str(out),
        *TINY,
    )
    assert bavae.load(str(out)).config.image_size == 64


def test_celeba_layout(tmp_path):
    celeba = tmp_path / "celeba" / "img_align_celeba"
    celeba.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(16):
        Image.fromarray(rng.integers(0, 255, (218, 178, 3), dtype=np.uint8)).save(celeba / f"{i:06d}.jpg")
    out = tmp_path / "cb"
    run_train(
        "--dataset",
        "celeba",
        "--data-dir",
        str(tmp_path / "celeba"),
        "--arch",
        "dcgan",
        "--steps",
        "2",
        "--out",
        str(out),
        *TINY,
    )
    cfg = bavae.load(str(out)).config
    assert (cfg.image_size, cfg.channels) == (64, 3)


def test_folder_with_bad_files_then_finetune(tmp_path):
    folder = make_folder(tmp_path / "photos")
    base = tmp_path / "base"
    proc = run_train(
        "--dataset",
        "folder",
        "--data-dir",
        str(folder),
        "--arch",
        "mlp",
        "--image-size",
        "32",
        "--channels",
        "3",
        "--steps",
        "2",
        "--out",
        str(base),
        *TINY,
    )
    assert "skipped 2 of 14 files: 1 unreadable (broken.png), 1 not an image (notes.txt)" in proc.stderr  # one line
    assert proc.stderr.count("skipped") == 1

    # --init: fine-tuning keeps the config and changes the weights
    tuned = tmp_path / "tuned"
    run_train(
        "--dataset",
        "folder",
        "--data-dir",
        str(folder),
        "--init",
        str(base),
        "--steps",
        "3",
        "--out",
        str(tuned),
        "--batch-size",
        "8",
    )  # (--width here is refused: the model's config wins, see tests/bad_inputs.py)
    assert json.loads((tuned / "config.json").read_text()) == json.loads((base / "config.json").read_text())
    before, after = weights(base), weights(tuned)
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))


def test_kill_9_then_resume_is_bit_identical(tmp_path):
    args = [
        "--dataset",
        "folder",
        "--data-dir",
        str(make_folder(tmp_path / "photos", n=24)),
        "--arch",
        "mlp",
        "--image-size",
        "28",
        "--channels",
        "1",
        "--steps",
        "300",
        "--checkpoint-every",
        "5",
        "--sample-every",
        "0",
        *TINY,
    ]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run_train(*args, "--out", str(straight))

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bavae.train", *args, "--out", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    state = killed / "training_state.safetensors"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:  # kill it mid-run, after a checkpoint past step 0
        if (
            state.exists()
            and (killed / "metrics.csv").exists()
            and len((killed / "metrics.csv").read_text().splitlines()) > 30
        ):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    run_train("--resume", str(killed))
    assert not list(killed.glob(".*.tmp")), "a finished run leaves no temporary files"
    a, b = weights(straight), weights(killed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from an uninterrupted run"
    state_a, state_b = load_file(str(straight / "training_state.safetensors")), load_file(str(state))
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a if k.startswith(("model.", "opt_")))
    steps = [int(r.split(",")[0]) for r in (killed / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == sorted(set(steps)) and steps[-1] == 300  # no duplicated rows after the resume


def test_bad_options_exit_2_with_one_line(tmp_path):
    cases = [
        ["--dataset", "imagenet"],
        ["--dataset", "folder", "--data-dir", str(tmp_path / "missing")],
        ["--dataset", "fashion-mnist", "--arch", "dcgan", "--image-size", "28"],
        ["--dataset", "fashion-mnist", "--arch", "transformer"],
        ["--resume", str(tmp_path)],
    ]
    (tmp_path / "empty").mkdir()
    cases.append(
        ["--dataset", "folder", "--data-dir", str(tmp_path / "empty"), "--steps", "1", "--out", str(tmp_path / "o")]
    )
    for args in cases:
        proc = run_train(*args, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        assert "Traceback" not in proc.stderr and len(lines) == 1 and "error" in lines[0], (args, proc.stderr)


def test_divergence_guard_restores_then_gives_up(tmp_path):
    """An absurd threshold makes every step 'diverge': the guard restores, halves the lr, then stops clearly."""
    folder = make_folder(tmp_path / "photos")
    out = tmp_path / "div"
    proc = run_train(
        "--dataset",
        "folder",
        "--data-dir",
        str(folder),
        "--arch",
        "mlp",
        "--image-size",
        "28",
        "--channels",
        "1",
        "--steps",
        "5",
        "--out",
        str(out),
        "--config",
        str(_config(tmp_path)),
        *TINY,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("diverged (") == 2 and "learning rates x0.25" in proc.stderr
    assert "diverged 3 times" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()  # it gave up before a checkpoint past step 0: nothing worth resuming is left
    header = (out / "metrics.csv").read_text().splitlines()[0] if (out / "metrics.csv").exists() else ""
    assert "recovery" not in header  # recoveries go to stderr and TensorBoard; the CSV keeps the full columns


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "guard.json"
    path.write_text(json.dumps({"max_critic_value": 1e-9, "max_recoveries": 2}))
    return path


def test_torchrun_two_cpu_processes(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun is installed with torch"
    out = tmp_path / "ddp"
    folder = make_folder(tmp_path / "photos", n=16)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "bavae.train",
            "--device",
            "cpu",
            "--dataset",
            "folder",
            "--data-dir",
            str(folder),
            "--arch",
            "mlp",
            "--image-size",
            "28",
            "--channels",
            "1",
            "--steps",
            "3",
            "--out",
            str(out),
            *TINY,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert bavae.load(str(out)).sample(1).shape == (1, 1, 28, 28)
    assert len(list(out.glob("model.safetensors"))) == 1


def test_two_nodes_through_the_c10d_rendezvous(tmp_path):
    """Multi-node training as docs/training.md shows it: two torchrun agents (two "nodes", one process each) meet
    through torchrun's c10d rendezvous on 127.0.0.1 and train one model with gloo."""
    import socket

    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    with socket.socket() as s:  # a free port for the rendezvous store
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "multinode"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    cmd = [
        torchrun,
        "--nnodes",
        "2",
        "--nproc-per-node",
        "1",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        f"127.0.0.1:{port}",
        "--rdzv-id",
        "bavae-test",
        "--max-restarts",
        "0",
        "-m",
        "bavae.train",
        "--device",
        "cpu",
        "--dataset",
        "fashion-mnist",
        "--limit",
        "256",
        "--arch",
        "mlp",
        "--steps",
        "4",
        "--sample-every",
        "0",
        "--sampler-components",
        "1",
        "--out",
        str(out),
        *TINY,
    ]
    nodes = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)
    ]
    results = [node.communicate(timeout=240) for node in nodes]
    for node, (_, err) in zip(nodes, results):
        assert node.returncode == 0, err[-3000:]
    rows = (out / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]  # one run of 4 steps, logged once (rank 0)
    assert json.loads((out / "train_config.json").read_text())["steps"] == 4
    assert torch.isfinite(bavae.load(str(out)).sample(2)).all()
