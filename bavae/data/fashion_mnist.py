"""Fashion-MNIST from the idx files (Debian's ``dataset-fashion-mnist`` installs them gzipped in
``/usr/share/datasets/fashion-mnist/``), held in memory as uint8; 28 px, or 32 px zero-padded."""

from __future__ import annotations

import gzip
import math
import os
import struct
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ._common import DataError, _apply_limit, _check_channels, _check_split

FASHION_MNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
_IDX_IMAGES_MAGIC = 2051  # 0x00000803: uint8, 3 dims
_IDX_LABELS_MAGIC = 2049  # 0x00000801: uint8, 1 dim
_FMNIST_PREFIX = {"train": "train", "test": "t10k"}


def _find_idx_file(dirs: Sequence[Path], stem: str) -> Path | None:
    for d in dirs:
        for name in (stem + ".gz", stem):
            p = d / name
            if p.is_file():
                return p
    return None


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Read an idx file (optionally gzipped); validate the magic number and the size."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # bad gzip stream, truncated file
        raise DataError(f"cannot read {path}: {e}") from None
    ndim = magic & 0xFF
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise DataError(f"{path} is not an idx file: only {len(raw)} bytes")
    (found,) = struct.unpack(">i", raw[:4])
    if found != magic:
        raise DataError(f"{path} is not an idx file: magic number {found}, expected {magic}")
    shape = struct.unpack(f">{ndim}i", raw[4:head])
    expected = head + math.prod(shape)
    if len(raw) != expected:
        raise DataError(f"{path} is corrupt: {len(raw)} bytes, expected {expected} for shape {shape}")
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(shape)


class FashionMNIST(Dataset):
    """Fashion-MNIST from the idx files, kept whole in memory as uint8 (``.data``, ``.labels``)."""

    def __init__(
        self,
        data_dir: str | os.PathLike | None = None,
        *,
        image_size: int = 28,
        channels: int = 1,
        split: str = "train",
        limit: int | None = None,
    ) -> None:
        _check_split("fashion-mnist", split, ("train", "test"))
        _check_channels("fashion-mnist", channels)
        if image_size not in (28, 32):
            raise DataError(f"fashion-mnist: image_size must be 28 or 32 (zero-padded), got {image_size}")
        root = Path(data_dir).expanduser() if data_dir is not None else FASHION_MNIST_DEBIAN_DIR
        # Also accept torchvision's layout and a parent folder.
        dirs = [root, root / "fashion-mnist", root / "FashionMNIST" / "raw"]
        prefix = _FMNIST_PREFIX[split]
        img_path = _find_idx_file(dirs, f"{prefix}-images-idx3-ubyte")
        lbl_path = _find_idx_file(dirs, f"{prefix}-labels-idx1-ubyte")
        if img_path is None or lbl_path is None:
            missing = f"{prefix}-images-idx3-ubyte" if img_path is None else f"{prefix}-labels-idx1-ubyte"
            hint = (
                "install the Debian package dataset-fashion-mnist or pass data_dir"
                if data_dir is None
                else "download the idx files (.gz or not) into it"
            )
            raise DataError(f"fashion-mnist: {missing}[.gz] not found in {root}; {hint}")
        images = _read_idx(img_path, _IDX_IMAGES_MAGIC)
        labels = _read_idx(lbl_path, _IDX_LABELS_MAGIC)
        if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
            raise DataError(
                f"fashion-mnist: {img_path} has shape {images.shape} but {lbl_path} has "
                f"{labels.shape[0]} labels; expected (N, 28, 28) and N labels"
            )
        n = _apply_limit(images.shape[0], limit)
        self.data = torch.from_numpy(images[:n].copy())  # (N, 28, 28) uint8
        self.labels = torch.from_numpy(labels[:n].astype(np.int64))
        self.image_size = image_size
        self.channels = channels
        self.split = split
        self.files = (img_path, lbl_path)

    def __len__(self) -> int:
        return self.data.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        x = self.data[i].to(torch.float32).div_(255.0).unsqueeze(0)
        if self.image_size == 32:
            x = torch.nn.functional.pad(x, (2, 2, 2, 2))
        return x.expand(self.channels, -1, -1).contiguous() if self.channels == 3 else x
