"""Shared helpers for the core tests (no fixtures: plain functions)."""

from __future__ import annotations

import torch


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


def fashion_mnist(n: int, split: str = "train", image_size: int = 28, offset: int = 0) -> torch.Tensor:
    """``n`` Fashion-MNIST images from ``offset`` on, float (n, 1, image_size, image_size) in [0, 1]."""
    from bavae.data import build_dataset

    ds = build_dataset("fashion-mnist", image_size=image_size, channels=1, split=split, limit=offset + n)
    return torch.stack([ds[i] for i in range(offset, offset + n)])
