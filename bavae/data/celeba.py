"""CelebA aligned faces: ``img_align_celeba/*.jpg``, centre-cropped to 140x140 and resized to 64 or 128."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..images import decode_image
from ._common import DataError, _apply_limit, _check_channels, _check_split

_CELEBA_SPLITS = {"train": 0, "valid": 1, "test": 2}


def _read_celeba_partition(root: Path) -> dict[str, int] | None:
    txt, csv = root / "list_eval_partition.txt", root / "list_eval_partition.csv"
    if txt.is_file():
        path, sep = txt, None
    elif csv.is_file():
        path, sep = csv, ","
    else:
        return None
    part: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            fields = line.strip().split(sep)
            if len(fields) != 2 or fields[1] == "partition":  # blank line or csv header
                continue
            try:
                part[fields[0].strip()] = int(fields[1])
            except ValueError:
                raise DataError(
                    f"celeba: {path} line {line_no}: expected '<file> <0|1|2>', got {line.strip()!r}"
                ) from None
    return part


class CelebA(Dataset):
    """CelebA aligned faces: centre crop 140x140, resize to 64 or 128 (torchvision transforms)."""

    def __init__(
        self,
        data_dir: str | os.PathLike | None,
        *,
        image_size: int = 64,
        channels: int = 3,
        split: str = "train",
        limit: int | None = None,
    ) -> None:
        _check_split("celeba", split, tuple(_CELEBA_SPLITS))
        _check_channels("celeba", channels)
        if image_size not in (64, 128):
            raise DataError(f"celeba: image_size must be 64 or 128, got {image_size}")
        if data_dir is None:
            raise DataError(
                "celeba: pass data_dir, the folder holding img_align_celeba/ (and optionally list_eval_partition.txt)"
            )
        root = Path(data_dir).expanduser()
        img_dir = root / "img_align_celeba"
        if not img_dir.is_dir():
            if root.is_dir() and root.name == "img_align_celeba":
                img_dir, root = root, root.parent
            elif root.is_dir() and any(p.suffix.lower() == ".jpg" for p in _scandir_names(root, 50)):
                img_dir, root = root, root  # the images directly, without the usual folder name
            else:
                raise DataError(
                    f"celeba: no img_align_celeba/ folder in {root}; download CelebA "
                    f"(Align&Cropped JPEGs) and unpack it there"
                )
        names = sorted(n for n in os.listdir(img_dir) if n.lower().endswith((".jpg", ".jpeg", ".png")))
        part = _read_celeba_partition(root)
        if part is not None:
            want = _CELEBA_SPLITS[split]
            present = set(names)
            names = sorted(n for n, p in part.items() if p == want and n in present)
        elif split != "train":
            raise DataError(
                f"celeba: split {split!r} needs list_eval_partition.txt in {root}; "
                f"without it only 'train' (all images) is available"
            )
        if not names:
            raise DataError(f"celeba: no images for split {split!r} in {img_dir}")
        self.files = [img_dir / n for n in names[: _apply_limit(len(names), limit)]]
        self.image_size = image_size
        self.channels = channels
        self.split = split

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as TF  # a second to import: only CelebA needs it

        # Decoded with Pillow: torchvision 0.29 deprecates torchvision.io decoding (warns every call).
        img = decode_image(self.files[i], self.channels)
        img = TF.center_crop(img, [140, 140])
        img = TF.resize(img, [self.image_size, self.image_size], antialias=True)
        return img.clamp_(0.0, 1.0)


def _scandir_names(d: Path, n: int) -> list[Path]:
    out = []
    with os.scandir(d) as it:
        for e in it:
            out.append(Path(e.name))
            if len(out) >= n:
                break
    return out
