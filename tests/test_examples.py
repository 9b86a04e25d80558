"""Every script in examples/ runs, at small sizes, so that none of them can rot."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import clean_env, ok, run
from PIL import Image

import bavae

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def model_dir(bundled_default) -> str:
    """The examples' default model: the bundled one."""
    return bundled_default


def example(script: str, *args: str, cwd: Path) -> str:
    proc = ok(run(sys.executable, EXAMPLES / script, *args, cwd=cwd, env=clean_env(HF_HUB_OFFLINE="1")))
    return proc.stdout


def test_every_example_is_tested():
    assert {p.name for p in EXAMPLES.glob("*.py")} == {
        "load_and_sample.py",
        "reconstruct_and_interpolate.py",
        "finetune_on_folder.py",
        "evaluate.py",
    }


def test_load_and_sample(model_dir, tmp_path):
    from torchvision.utils import make_grid

    out = example("load_and_sample.py", "--model", model_dir, "--n", "16", "--out", "s.png", cwd=tmp_path)
    assert out.strip().splitlines()[-1] == f"wrote s.png: (16, 1, 32, 32) from {model_dir}"
    # the picture is the model's 16 samples for seed 0, 8 to a row
    images = bavae.load(model_dir, device="cpu").sample(16, generator=torch.Generator().manual_seed(0))
    grid = make_grid(images, nrow=8, padding=2).mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
    picture = np.asarray(Image.open(tmp_path / "s.png").convert("RGB"))
    assert picture.shape == (2 * 34 + 2, 8 * 34 + 2, 3) and np.array_equal(picture, grid.numpy())


def test_reconstruct_and_interpolate(model_dir, tmp_path):
    out = example("reconstruct_and_interpolate.py", "--model", model_dir, "--out-dir", str(tmp_path), cwd=tmp_path)
    assert "reconstruction MSE" in out
    assert Image.open(tmp_path / "reconstructions.png").size == (8 * 34 + 2, 4 * 34 + 2)  # 16 pairs, 8 per row
    assert Image.open(tmp_path / "interpolations.png").size == (10 * 34 + 2, 4 * 34 + 2)


def test_finetune_on_folder(model_dir, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(photos / f"{i}.jpg")
    out = example(
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
    out = example("evaluate.py", "--model", model_dir, "--other", model_dir, "--n", "100", cwd=tmp_path)
    table = out.strip().splitlines()[-2:]  # the same model twice, same seed: the same numbers
    assert table[0].split()[1:] == table[1].split()[1:]
    assert "class_agreement" in out and "infonce_nats" in out
