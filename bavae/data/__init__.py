"""Datasets: every image collection bavae trains on (a user's own picture files go through :mod:`bavae.images`,
which this module uses for decoding too, so a folder trains exactly as `bavae reconstruct` prepares it).

Every dataset built by :func:`build_dataset` returns, for ``ds[i]``, ONE float32 tensor of shape
``(channels, image_size, image_size)`` with values in [0, 1] (no label).

One file per dataset (as torchvision's): ``fashion_mnist.py``, ``dsprites.py`` (its renderer in ``dsprites_render.py``),
``celeba.py``, ``folder.py``, ``emoji.py``; every public name is importable from ``bavae.data``.

* ``fashion-mnist``: the gzipped idx files (Debian's ``dataset-fashion-mnist`` installs them in
  ``/usr/share/datasets/fashion-mnist/``); held in memory as uint8; 28 px, or 32 px zero-padded.
* ``dsprites``: procedurally rendered dSprites (Matthey et al. 2017), 737,280 64x64 binary images in
  the original's index order, cached once as a bit-packed ``.npz``.
* ``celeba``: ``img_align_celeba/*.jpg``, centre-cropped to 140x140 and resized to 64 or 128.
* ``folder``: any directory tree of images, short side resized then centre-cropped.
* ``emoji``: the colour emoji set of ``benchmarks/make_emoji_folder.py`` (a folder, with its categories as labels);
  its held-out test pictures ship with bavae.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ._common import DataError, default_cache_dir
from .celeba import CelebA
from .dsprites import DSprites, dsprites_cache_path, dsprites_split_indices, generate_dsprites
from .dsprites_render import (
    DSPRITES_FACTOR_NAMES,
    DSPRITES_FACTOR_SIZES,
    DSPRITES_N,
    DSPRITES_SHAPES,
    dsprites_factor_values,
    dsprites_factors,
    dsprites_index,
    render_dsprites,
)
from .emoji import CATEGORIES as EMOJI_CATEGORIES
from .emoji import Emoji
from .fashion_mnist import FASHION_MNIST_DEBIAN_DIR, FashionMNIST
from .folder import ImageFolder

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "register_dataset",
    "list_datasets",
    "get_dataset",
    "check_dataset_fits",
    "check_data_dir",
    "DataError",
    "build_dataset",
    "make_loader",
    "FashionMNIST",
    "DSprites",
    "CelebA",
    "ImageFolder",
    "Emoji",
    "EMOJI_CATEGORIES",
    "DSPRITES_FACTOR_NAMES",
    "DSPRITES_FACTOR_SIZES",
    "dsprites_factor_values",
    "dsprites_factors",
    "dsprites_index",
    "render_dsprites",
    "generate_dsprites",
    "dsprites_cache_path",
    "default_cache_dir",
    "dsprites_split_indices",
    "DSPRITES_N",
    "DSPRITES_SHAPES",
    "FASHION_MNIST_DEBIAN_DIR",
]


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset bavae can train on: how to build it, the image sizes it comes in (None: any, resized and
    cropped), the channels a model made for it takes, and whether it must be given a folder."""

    name: str
    build: Callable[..., Dataset]
    image_sizes: tuple[int, ...] | None
    channels: int
    needs_data_dir: bool = False

    def natural_image_size(self, sizes: Sequence[int]) -> int:
        """The first of this dataset's sizes that an architecture taking ``sizes`` takes (64 for any-size data)."""
        return next((s for s in self.image_sizes or (64,) if s in sizes), (self.image_sizes or (64,))[0])


_DATASETS: dict[str, DatasetInfo] = {}


def register_dataset(
    name: str,
    build: Callable[..., Dataset],
    *,
    image_sizes: tuple[int, ...] | None,
    channels: int,
    needs_data_dir: bool = False,
) -> DatasetInfo:
    """Add a dataset to the table `bavae train --dataset` chooses from (``build(data_dir, image_size=, channels=,
    split=, limit=)`` makes it)."""
    if name in _DATASETS:
        raise DataError(f"dataset {name!r} is already registered")
    _DATASETS[name] = DatasetInfo(name, build, image_sizes, channels, needs_data_dir)
    return _DATASETS[name]


def list_datasets() -> list[str]:
    """The names of the registered datasets, in the order they were registered."""
    return list(_DATASETS)


def get_dataset(name: str) -> DatasetInfo:
    if name not in _DATASETS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(_DATASETS)}")
    return _DATASETS[name]


register_dataset("fashion-mnist", FashionMNIST, image_sizes=(28, 32), channels=1)
register_dataset("dsprites", DSprites, image_sizes=(64,), channels=1)
register_dataset("celeba", CelebA, image_sizes=(64, 128), channels=3, needs_data_dir=True)
register_dataset("folder", ImageFolder, image_sizes=None, channels=3, needs_data_dir=True)
register_dataset("emoji", Emoji, image_sizes=(64,), channels=3)  # training needs a folder; the test split ships
DATASETS = tuple(_DATASETS)


def check_data_dir(name: str, data_dir: str | os.PathLike | None, flag: str = "--data-dir") -> None:
    """The data folder a dataset is asked to read, checked before it is scanned: celeba and folder need one; an
    existing path must be a folder; only dsprites (a cache folder, made when missing) may name one not there yet."""
    if data_dir is None or data_dir == "":
        if get_dataset(name).needs_data_dir:
            raise DataError(f"--dataset {name} needs {flag} (the folder of images)")
        return
    d = Path(data_dir).expanduser()
    if d.exists() and not d.is_dir():
        raise DataError(f"{flag} {data_dir} is a file, not a folder")
    if not d.exists() and name != "dsprites":
        raise DataError(f"{flag} {data_dir} does not exist")
    if d.is_dir():
        try:  # a folder that cannot be listed would read as one that holds no images
            with os.scandir(d) as entries:
                next(entries, None)
        except PermissionError:
            raise DataError(f"{flag} {data_dir} cannot be read: permission denied") from None


def check_dataset_fits(name: str, image_size: int, channels: int) -> None:
    """Whether a dataset can feed a model of ``image_size`` and ``channels``, decided from the names alone (before
    any model loads or file is scanned): one DataError naming both sizes otherwise."""
    sizes = get_dataset(name).image_sizes
    if sizes is not None and image_size not in sizes:
        have = " or ".join(f"{s}x{s}" for s in sizes)
        raise DataError(
            f"{name} images are {have}, but the model takes {image_size}x{image_size} images: "
            f"use a dataset of the model's size"
        )
    if channels not in (1, 3):
        raise DataError(f"{name}: channels must be 1 or 3, got {channels!r}")


def build_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    image_size: int,
    channels: int,
    split: str = "train",
    limit: int | None = None,
) -> Dataset:
    """Build a dataset by name; ``ds[i]`` is a float32 (channels, image_size, image_size) tensor in [0, 1].

    ``data_dir``: fashion-mnist: the idx files (default: Debian's /usr/share/datasets/fashion-mnist);
    dsprites: the cache folder (default ``$BAVAE_CACHE`` or ``~/.cache/bavae``); celeba: the folder
    holding ``img_align_celeba/``; folder: the image tree. ``limit`` keeps the first ``limit`` items.
    """
    return get_dataset(name).build(data_dir, image_size=image_size, channels=channels, split=split, limit=limit)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool = True,
    sampler: Sampler | None = None,
    pin_memory: bool | None = None,
) -> DataLoader:
    """A DataLoader with a seeded generator (same seed, same order); ``sampler`` (e.g. DDP's
    DistributedSampler, which shuffles itself) overrides ``shuffle``."""
    n = len(sampler) if sampler is not None else len(dataset)  # type: ignore[arg-type]
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}")
    if drop_last and n < batch_size:
        raise DataError(
            f"only {n} items for batch_size {batch_size} with drop_last: no batch at all; "
            f"lower batch_size or use more data"
        )
    g = torch.Generator()
    g.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        generator=g,
        num_workers=num_workers,
        drop_last=drop_last,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        persistent_workers=num_workers > 0,
    )
