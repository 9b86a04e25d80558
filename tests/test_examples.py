"""Every script in examples/ runs, at small sizes, so that none of them can rot."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bavae import zoo
from bavae.model import BAVAE, BAVAEConfig

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    """The bundled default model when this checkout has it, else a tiny model of the same shape."""
    if (zoo.bundled_root() / zoo.DEFAULT_MODEL / "model.safetensors").is_file():
        return zoo.DEFAULT_MODEL
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model") / "tiny"
    BAVAE(BAVAEConfig(width=4, latent_dim=4, posterior_noise_dim=4)).save_pretrained(folder)
    return str(folder)


def run(script: str, *args: str, cwd: Path) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_every_example_is_tested():
    assert {p.name for p in EXAMPLES.glob("*.py")} == {
        "load_and_sample.py",
        "reconstruct_and_interpolate.py",
        "finetune_on_folder.py",
        "evaluate.py",
    }


def test_load_and_sample(model_dir, tmp_path):
    out = run("load_and_sample.py", "--model", model_dir, "--n", "16", "--out", "s.png", cwd=tmp_path)
    assert "bavae-fashionmnist32" in out and Image.open(tmp_path / "s.png").size == (8 * 34 + 2, 2 * 34 + 2)


def test_reconstruct_and_interpolate(model_dir, tmp_path):
    out = run("reconstruct_and_interpolate.py", "--model", model_dir, "--out-dir", str(tmp_path), cwd=tmp_path)
    assert "reconstruction MSE" in out
    assert Image.open(tmp_path / "reconstructions.png").size == (8 * 34 + 2, 4 * 34 + 2)  # 16 pairs, 8 per row
    assert Image.open(tmp_path / "interpolations.png").size == (10 * 34 + 2, 4 * 34 + 2)


def test_finetune_on_folder(model_dir, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(photos / f"{i}.jpg")
    out = run(
        "finetune_on_folder.py",
        str(photos),
        "--init",
        model_dir,
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--out",
        str(tmp_path / "run"),
        cwd=tmp_path,
    )
    assert "samples (4, 1, 32, 32)" in out and (tmp_path / "run" / "model.safetensors").is_file()


def test_evaluate(model_dir, tmp_path):
    out = run("evaluate.py", "--model", model_dir, "--other", model_dir, "--n", "100", cwd=tmp_path)
    table = out.strip().splitlines()[-2:]  # the same model twice, same seed: the same numbers
    assert table[0].split()[1:] == table[1].split()[1:]
    assert "class_agreement" in out and "infonce_nats" in out
