"""Any directory tree of images: short side resized, then centre-cropped, decoded by :mod:`bavae.images` exactly as
`bavae reconstruct` prepares a user's pictures."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..images import IMAGE_SUFFIXES, decode_image, resize_center_crop
from ._common import DataError, _apply_limit, _check_channels


def _check_image(path: Path) -> bool:
    """Cheap readability check: header + PIL's verify (full CRC walk for PNG)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.verify()
        return True
    except Exception:  # PIL raises many types (UnidentifiedImageError, SyntaxError, struct.error...)
        return False


class ImageFolder(Dataset):
    """Every readable image under a folder (recursive, sorted). Short side -> image_size, centre crop.

    If ``root/<split>`` is a folder it is used; otherwise split 'train' takes the whole tree.
    Unreadable files are skipped at construction with one warning; non-image extensions are ignored.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike | None,
        *,
        image_size: int,
        channels: int = 3,
        split: str = "train",
        limit: int | None = None,
    ) -> None:
        _check_channels("folder", channels)
        if not isinstance(image_size, int) or image_size < 1:
            raise DataError(f"folder: image_size must be a positive integer, got {image_size!r}")
        if data_dir is None:
            raise DataError("folder: pass data_dir, a folder of images (searched recursively)")
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            what = "is not a folder" if root.exists() else "does not exist"
            raise DataError(f"folder: {root} {what}; expected a folder of images")
        if (root / split).is_dir():
            root = root / split
        elif split != "train":
            raise DataError(
                f"folder: split {split!r} needs a subfolder {root / split}; "
                f"without one only 'train' (the whole tree) is available"
            )
        candidates = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            candidates += [
                Path(dirpath) / f
                for f in sorted(filenames)
                if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES
            ]
        n_keep = _apply_limit(len(candidates), limit)
        files, bad = [], []
        for p in candidates:
            if len(files) >= n_keep:
                break  # with a limit, don't verify files that will not be used
            (files if _check_image(p) else bad).append(p)
        if bad:
            msg = (
                f"skipped {len(bad)} unreadable file{'s' if len(bad) != 1 else ''} in {root} "
                f"(e.g. {bad[0].relative_to(root)})"
            )
            warnings.warn(msg, stacklevel=3)
        if not files and (limit is None or limit > 0):
            found = f"{len(bad)} unreadable" if bad else "no"
            raise DataError(
                f"folder: {found} image files in {root} (searched recursively for {', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        self.root = root
        self.files = files
        self.skipped = bad
        self.image_size = image_size
        self.channels = channels
        self.split = split

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, i: int) -> torch.Tensor:
        # the same preparation as `bavae reconstruct` / `encode` give the user's pictures
        return resize_center_crop(decode_image(self.files[i], self.channels, self.image_size), self.image_size)

    def __getitem__(self, i: int) -> torch.Tensor:
        # verify() misses some damage (e.g. a truncated JPEG body): rather than kill a long run,
        # warn and serve the next image.
        for k in range(len(self.files)):
            j = (i + k) % len(self.files)
            try:
                return self._load(j)
            except Exception as e:
                warnings.warn(f"folder: cannot decode {self.files[j]} ({e}); using the next image", stacklevel=2)
        raise DataError(f"folder: no image in {self.root} could be decoded")
