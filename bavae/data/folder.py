"""Any directory tree of images: short side resized, then centre-cropped, decoded by :mod:`bavae.images` exactly as
`bavae reconstruct` prepares a user's pictures."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..errors import one_line
from ..images import IMAGE_SUFFIXES, ImageError, decode_image, open_image, resize_center_crop
from ._common import DataError, _apply_limit, _check_channels


def _check_image(path: Path) -> str | None:
    """Cheap readability check: header + PIL's verify (full CRC walk for PNG). None if fine, else why not."""
    try:
        with open_image(path) as im:
            im.verify()
        return None
    except ImageError as e:
        return "too large" if "decompression bombs" in str(e) else "unreadable"
    except Exception:  # PIL raises many types (UnidentifiedImageError, SyntaxError, struct.error...)
        return "unreadable"


def _scan_summary(root: Path, n_files: int, skipped: dict[str, list[Path]]) -> str | None:
    """One line: "skipped 2 of 18 files: 1 unreadable (broken.jpg), 1 not an image (notes.txt)"."""
    n_skipped = sum(len(v) for v in skipped.values())
    if not n_skipped:
        return None

    def names(paths: list[Path]) -> str:
        shown = ", ".join(str(p.relative_to(root)) for p in paths[:3])
        return shown + (f", ... {len(paths) - 3} more" if len(paths) > 3 else "")

    parts = [f"{len(v)} {why} ({names(v)})" for why, v in skipped.items() if v]
    return f"skipped {n_skipped} of {n_files} files: {', '.join(parts)}"


class ImageFolder(Dataset):
    """Every readable image under a folder (recursive, sorted). Short side -> image_size, centre crop.

    If ``root/<split>`` is a folder it is used; otherwise split 'train' takes the whole tree.
    Unreadable files and files that are not pictures are skipped at construction, with one warning that counts
    them (``summary``, one line; None when nothing was skipped).
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
        candidates, others = [], []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for f in sorted(filenames):
                if not f.startswith("."):
                    is_image = os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES
                    (candidates if is_image else others).append(Path(dirpath) / f)
        n_keep = _apply_limit(len(candidates), limit)
        files: list[Path] = []
        skipped: dict[str, list[Path]] = {"unreadable": [], "too large": [], "not an image": others}
        checked = 0
        for p in candidates:
            if len(files) >= n_keep:
                break  # with a limit, don't verify files that will not be used
            checked += 1
            why = _check_image(p)
            if why is None:
                files.append(p)
            else:
                skipped[why].append(p)
        # One line for the whole scan (the files checked and the non-image files found); bavae train prints it.
        self.summary = _scan_summary(root, checked + len(others), skipped)
        if not files and (limit is None or limit > 0):
            found = self.summary or f"searched recursively for {', '.join(sorted(IMAGE_SUFFIXES))}"
            raise DataError(f"folder: no image files to train on in {root} ({found})")
        if self.summary:
            warnings.warn(f"folder {root}: {self.summary}", stacklevel=3)
        bad = skipped["unreadable"] + skipped["too large"]
        self.root = root
        self.files = files
        self.skipped = bad
        self._reported: set[Path] = set()
        self.image_size = image_size
        self.channels = channels
        self.split = split

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, i: int) -> torch.Tensor:
        # the same preparation as `bavae reconstruct` / `encode` give the user's pictures
        return resize_center_crop(decode_image(self.files[i], self.channels, self.image_size), self.image_size)

    def __getitem__(self, i: int) -> torch.Tensor:
        # verify() misses some damage (e.g. a truncated JPEG body): rather than kill a long run, warn (once per
        # file) and serve the next image; if none decodes, one error says so.
        failed: list[tuple[Path, Exception]] = []
        for k in range(len(self.files)):
            j = (i + k) % len(self.files)
            try:
                x = self._load(j)
            except Exception as e:
                failed.append((self.files[j], e))
                continue
            for path, e in failed:
                if path not in self._reported:
                    self._reported.add(path)
                    warnings.warn(f"folder: cannot decode {path} ({e}); using the next image", stacklevel=2)
            return x
        path, e = failed[0]
        raise DataError(
            f"folder: none of the {len(self.files)} pictures in {self.root} could be decoded "
            f"(e.g. {path.relative_to(self.root)}: {one_line(e)})"
        )
