"""The CUDA path: mixed precision, torch.compile and DDP with NCCL, trained for real on a GPU.

These need a GPU: elsewhere they skip with a reason and are counted as skipped. benchmarks/device_check.py runs
them (`pytest -m cuda`) on a lent GPU machine and records the result in docs/benchmarks.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import bavae

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch sees none)"),
]

TINY = (
    "--dataset fashion-mnist --limit 512 --width 8 --latent-dim 4 --posterior-noise-dim 4 --batch-size 32 "
    "--log-every 1 --sample-every 0 --sampler-components 2 --device cuda"
).split()


def train(*args: str, launcher: list[str] | None = None, timeout: float = 400) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = (launcher or [sys.executable]) + ["-m", "bavae.train", *TINY, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc


def loss_columns(out: Path) -> dict[str, list[float]]:
    import csv

    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows] for k in ("recon_mse", "encoder", "decoder", "kl_estimate")}


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_mixed_precision_trains_and_learns(tmp_path, precision):
    out = tmp_path / precision
    train("--steps", "60", "--lr", "1e-3", "--precision", precision, "--out", str(out))
    cols = loss_columns(out)
    for name, values in cols.items():
        assert all(torch.isfinite(torch.tensor(values))), f"{precision}: {name} is not finite"
    # learning, not just running: reconstructions improve over the run
    assert sum(cols["recon_mse"][-10:]) < sum(cols["recon_mse"][:10]), cols["recon_mse"]
    model = bavae.load(str(out), device="cuda")
    assert model.device.type == "cuda"
    images = model.sample(16, generator=torch.Generator("cuda").manual_seed(0))
    again = model.sample(16, generator=torch.Generator("cuda").manual_seed(0))
    # same seed, same images: to float precision, since cuDNN may pick another algorithm on the second call
    assert images.device.type == "cuda" and torch.allclose(images, again, atol=1e-4)
    assert images.min() >= 0 and images.max() <= 1


def test_compile_matches_eager_weights_layout(tmp_path):
    eager, compiled = tmp_path / "eager", tmp_path / "compiled"
    train("--steps", "8", "--out", str(eager))
    train("--steps", "8", "--compile", "--out", str(compiled))
    a, b = load_file(str(eager / "model.safetensors")), load_file(str(compiled / "model.safetensors"))
    assert a.keys() == b.keys()  # compiling in place keeps the state-dict keys, so a compiled run loads anywhere
    model = bavae.load(str(compiled), device="cpu")
    assert torch.isfinite(model.sample(4)).all()


def test_ddp_with_nccl_in_one_process(tmp_path):
    out = tmp_path / "ddp"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1"]
    proc = train("--steps", "10", "--out", str(out), launcher=launcher)
    assert (out / "model.safetensors").is_file(), proc.stderr[-2000:]
    assert len(loss_columns(out)["recon_mse"]) == 10
    assert torch.isfinite(bavae.load(str(out), device="cuda").sample(4)).all()


def test_inputs_on_another_device_are_moved_or_named():
    """Issue 22: images and codes on the CPU reach a CUDA model (moved); a CPU generator for a CUDA model, and
    (on a machine with two GPUs) a generator of cuda:1 for a model on cuda:0, are refused naming both devices,
    not with torch's error from inside a kernel."""
    from helpers import tiny_model

    model = tiny_model(0).to("cuda")
    x = torch.rand(2, 1, 32, 32)
    assert (
        model.encode(x).device.type == "cuda"
        and model.decode(torch.zeros(2, model.config.latent_dim)).device.type == "cuda"
    )
    with pytest.raises(ValueError, match=r"generator is on cpu but the model is on cuda:0"):
        model.sample(2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"x.*meta"):
        model.encode(x.to("meta"))
    if torch.cuda.device_count() > 1:
        with pytest.raises(ValueError, match=r"generator is on cuda:1 but the model is on cuda:0"):
            model.sample(2, generator=torch.Generator("cuda:1").manual_seed(0))
