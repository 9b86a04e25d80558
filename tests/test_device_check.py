"""benchmarks/device_check.py, the one script run on a lent GPU, exercised end to end on the CPU (--dry-run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import bavae

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # 35-110 s on 2 busy cores: every phase of the GPU script, on the CPU
def test_device_check_dry_run_covers_every_phase(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 4)):  # a small colour folder in the emoji layout
        folder = tmp_path / "emoji" / split / "noto" / "smileys-emotion"  # <split>/<style>/<category>
        folder.mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (70, 66, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "check"
    proc = subprocess.run(
        [
            sys.executable,
            "benchmarks/device_check.py",
            "--dry-run",
            "--out",
            str(out),
            "--emoji-dir",
            str(tmp_path / "emoji"),
            "--recipes",  # one run per kind of data; the other recipes differ only by options
            "fashionmnist32,dsprites64,emoji64",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    phases = results["phases"]
    speed = phases["speed"]["8"]
    shipped = "bavae shipped (shared trunk, half-width critics every 2nd step, bf16)"
    assert {"gaussian vae fp32", shipped, "bavae shipped + critic_every=1"} <= set(speed), speed
    assert all(r["images_per_s"] > 0 and r["over_vae_fp32"] > 0 for r in speed.values())
    assert phases["tests"]["rc"] in (0, 5), phases["tests"]  # on the CPU every cuda test skips (5: none selected)
    for packed in results["packed"]:  # runs travel as tar.gz files inside a few tar files
        with tarfile.open(out / packed["file"]) as tar:
            tar.extractall(tmp_path / "packed", filter="data")
    names = ["fashionmnist32", "dsprites64", "emoji64"]
    assert sorted(n for p in results["packed"] for n in p["runs"]) == sorted(names)
    for name in names:
        assert phases[name]["rc"] == 0 and phases[name]["steps"] == 3, (name, phases[name])
        with tarfile.open(tmp_path / "packed" / f"{name}.tar.gz") as tar:
            tar.extractall(tmp_path / "unpacked", filter="data")
        model = bavae.load(str(tmp_path / "unpacked" / name))  # float16 weights load into a float32 model
        assert model.latent_sampler is not None and model.default_sampler == "gmm"
        assert next(model.parameters()).dtype.is_floating_point
    assert 0 <= phases["eval_fashionmnist32"]["fid_gmm"] and "fid_prior" in phases["eval_fashionmnist32"]
    assert 0 <= phases["dsprites_mig"]["bavae"]["mig"] <= 1 and 0 <= phases["dsprites_mig"]["pythae_vae"]["mig"] <= 1
    assert "| emoji64 | 0 | 3 |" in (out / "results.md").read_text()
