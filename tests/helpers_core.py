"""Shared helpers for the core tests (no fixtures: plain functions)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


def small_config(**overrides):
    """A tiny BAVAEConfig: fast to build and run on a busy CPU."""
    from bavae import BAVAEConfig

    kw = dict(arch="dcgan", image_size=32, channels=1, latent_dim=8, posterior_noise_dim=4, width=8)
    kw.update(overrides)
    return BAVAEConfig(**kw)


def small_model(seed: int = 0, **overrides):
    from bavae import BAVAE

    torch.manual_seed(seed)
    return BAVAE(small_config(**overrides)).eval()


def images(n: int, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    """Random float images in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, size, size, generator=g)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _read_idx_images(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    n, rows, cols = (int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(3))
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows, cols)


def fashion_mnist(n: int, split: str = "train", image_size: int = 28, offset: int = 0) -> torch.Tensor:
    """``n`` Fashion-MNIST images from ``offset`` on, float (n, 1, image_size, image_size) in [0, 1].

    Goes through bavae.data when it is importable, else reads the idx file directly.
    """
    try:
        from bavae.data import build_dataset
    except ImportError:
        build_dataset = None
    if build_dataset is not None:
        ds = build_dataset("fashion-mnist", image_size=image_size, channels=1, split=split, limit=offset + n)
        return torch.stack([ds[i] for i in range(offset, offset + n)])
    prefix = "train" if split == "train" else "t10k"
    raw = _read_idx_images(FASHION_MNIST_DIR / f"{prefix}-images-idx3-ubyte.gz")[offset: offset + n]
    x = torch.from_numpy(raw.copy()).float().div(255).unsqueeze(1)
    if image_size == 32:
        x = torch.nn.functional.pad(x, (2, 2, 2, 2))
    return x
