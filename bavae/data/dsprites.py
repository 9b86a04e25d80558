"""dSprites as a dataset: the renderer's images cached once as a bit-packed ``.npz`` (``$BAVAE_CACHE``), split into
train (everything) and a fixed 10% test subset."""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from ._common import DataError, _apply_limit, _check_channels, _check_split, default_cache_dir
from .dsprites_render import (
    _DS_SIZE,
    _DS_VERSION,
    DSPRITES_FACTOR_NAMES,
    DSPRITES_FACTOR_SIZES,
    DSPRITES_N,
    _render_packed_sprites,
    dsprites_factors,
    render_dsprites,
)

log = logging.getLogger(__name__)

_DS_TEST_FRACTION = 0.1


def dsprites_cache_path(cache_dir: str | os.PathLike | None = None) -> Path:
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / f"dsprites_v{_DS_VERSION}.npz"


def generate_dsprites(
    cache_dir: str | os.PathLike | None = None, *, limit: int | None = None, progress: bool = False
) -> Path:
    """Render dSprites and write the bit-packed cache atomically; returns its path.

    ``limit`` renders only the first ``limit`` images (rounded up to whole sprites, 1024 images
    each); a later request for more regenerates the full set.
    """
    path = dsprites_cache_path(cache_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"dsprites: cannot create cache directory {path.parent}: {e.strerror}") from None
    n = DSPRITES_N if limit is None else min(DSPRITES_N, max(0, limit))
    n_sprites = -(-n // 1024)
    starts = range(0, n_sprites, 40)  # 40 sprites per chunk bounds the temporaries (~100 MB)
    if progress:
        starts = tqdm(starts, desc="rendering dSprites", unit="chunk")
    packed = np.empty((n_sprites * 1024, _DS_SIZE * _DS_SIZE // 8), dtype=np.uint8)
    for s in starts:
        ids = np.arange(s, min(s + 40, n_sprites))
        packed[s * 1024 : (ids[-1] + 1) * 1024] = _render_packed_sprites(ids)
    packed = packed[:n]
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(
                f,
                imgs_packed=packed,
                version=np.int64(_DS_VERSION),
                factor_sizes=np.asarray(DSPRITES_FACTOR_SIZES, np.int64),
            )
        os.replace(tmp, path)  # atomic: concurrent readers never see a partial file
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def _load_dsprites_cache(path: Path, needed: int) -> np.ndarray | None:
    """The packed images if ``path`` is a valid cache holding at least ``needed`` images, else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["version"]) != _DS_VERSION or tuple(z["factor_sizes"]) != DSPRITES_FACTOR_SIZES:
                return None
            packed = z["imgs_packed"]
    except Exception as e:  # unreadable/old cache: regenerate rather than fail
        warnings.warn(f"dsprites: ignoring unreadable cache {path} ({e}); regenerating", stacklevel=3)
        return None
    if packed.ndim != 2 or packed.shape[1] != _DS_SIZE * _DS_SIZE // 8 or packed.shape[0] < needed:
        return None
    return packed


def dsprites_split_indices(split: str) -> np.ndarray:
    """Indices (into the 737,280 images, sorted) of a split: all of them for 'train', a fixed 10% for 'test'."""
    _check_split("dsprites", split, ("train", "test"))
    if split == "train":
        return np.arange(DSPRITES_N, dtype=np.int64)
    perm = np.random.default_rng(0).permutation(DSPRITES_N)
    return np.sort(perm[: int(DSPRITES_N * _DS_TEST_FRACTION)])


class DSprites(Dataset):
    """dSprites, 64x64 binary images; ``.factors`` (N, 5) int64 factor indices of the kept items.

    Splits: ``train`` is all 737,280 images (dSprites has no test split, and disentanglement work
    trains on everything); ``test`` is a fixed 10% subset, also part of ``train``: 73,728 images,
    the first 10% of ``numpy.random.default_rng(0).permutation(737280)``, sorted.

    Images come from the cache (``dsprites_v1.npz`` in ``cache_dir``), generated on first use. A
    request for at most ``render_limit`` images with no cache renders them directly, writing nothing.
    """

    factor_names = DSPRITES_FACTOR_NAMES
    factor_sizes = DSPRITES_FACTOR_SIZES

    def __init__(
        self,
        cache_dir: str | os.PathLike | None = None,
        *,
        image_size: int = 64,
        channels: int = 1,
        split: str = "train",
        limit: int | None = None,
        render_limit: int = 16384,
    ) -> None:
        _check_split("dsprites", split, ("train", "test"))
        _check_channels("dsprites", channels)
        if image_size != _DS_SIZE:
            raise DataError(f"dsprites: image_size must be 64, got {image_size}")
        indices = dsprites_split_indices(split)
        indices = indices[: _apply_limit(len(indices), limit)]
        self.indices = indices
        self.channels = channels
        self.split = split
        self.cache_path = dsprites_cache_path(cache_dir)
        needed = int(indices[-1]) + 1 if len(indices) else 0
        packed = _load_dsprites_cache(self.cache_path, needed)
        if packed is None and len(indices) <= render_limit:
            self.packed = np.packbits(render_dsprites(indices).reshape(len(indices), -1).astype(bool), axis=1)
        else:
            if packed is None:
                log.info("dsprites: rendering 737,280 images into %s (once)", self.cache_path)
                generate_dsprites(cache_dir, progress=False)
                packed = _load_dsprites_cache(self.cache_path, needed)
                if packed is None:
                    raise DataError(f"dsprites: cache {self.cache_path} unreadable right after writing it")
            # Keep only what is used (contiguous for train, a copy of 10% for test).
            self.packed = packed[:needed] if split == "train" else packed[indices]
        self.factors = dsprites_factors(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> torch.Tensor:
        bits = np.unpackbits(self.packed[i])  # 512 bytes -> 4096 {0,1}
        x = torch.from_numpy(bits.astype(np.float32)).view(1, _DS_SIZE, _DS_SIZE)
        return x.expand(3, -1, -1).contiguous() if self.channels == 3 else x
