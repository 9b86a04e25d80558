"""The user's own picture files in, image grids out (PIL + numpy; for the CLI and notebooks).

Datasets live in :mod:`bavae.data`; this module only turns a handful of files into a batch the model takes,
and a batch back into a PNG. torchvision is deliberately not used: importing it costs about a second, more
than the rest of a cold ``bavae sample``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

if TYPE_CHECKING:
    import torch

IMAGE_SUFFIXES = frozenset(
    {
        ".png",
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".bmp",
        ".gif",
        ".webp",
        ".tif",
        ".tiff",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
        ".tga",
    }
)


class ImageError(ValueError):
    """A file that is missing or not a readable image."""


def expand_image_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given; folders replaced by the image files directly inside them, sorted."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(
                f
                for f in p.iterdir()
                if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file() and not f.name.startswith(".")
            )
            if not found:
                raise ImageError(f"{p} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise ImageError(f"{p} does not exist")
    if not out:
        raise ImageError("no image files given")
    return out


def _too_large(path: str | os.PathLike) -> str:
    """Why PIL refused a picture as a decompression bomb, with its size (read from the header alone)."""
    import warnings

    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Image.MAX_IMAGE_PIXELS = None
            with Image.open(path) as im:
                w, h = im.size
        size = f"{w}x{h} = {w * h:,} pixels"
    except Exception:
        size = "its size"
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    return (
        f"{size} is over PIL's limit for one picture ({2 * limit:,} pixels, a guard against decompression bombs); "
        "shrink it, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file"
    )


def open_image(path: str | os.PathLike):
    """``PIL.Image.open`` with bavae's errors: one ImageError naming the file and the real cause. Pictures between
    PIL's limit and twice it open without PIL's DecompressionBombWarning (they are decoded once, on purpose)."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except Image.DecompressionBombError:
        raise ImageError(f"cannot read {path}: {_too_large(path)}") from None
    except FileNotFoundError:
        raise ImageError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise ImageError(f"cannot read {path}: it is a folder") from None
    except PermissionError:
        raise ImageError(f"cannot read {path}: permission denied") from None
    except Exception:  # PIL raises many types (UnidentifiedImageError, SyntaxError, struct.error...)
        raise ImageError(f"cannot read {path}: not an image format PIL can read (use PNG or JPEG)") from None


def check_image_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """:func:`expand_image_paths`, then open each file's header: a non-image fails here, before any model loads."""
    files = expand_image_paths(paths)
    for f in files:
        open_image(f).close()
    return files


def looks_colour(paths: Sequence[str | os.PathLike], n: int = 16) -> bool:
    """Whether any of the first ``n`` readable pictures has colour (channels that differ), from small thumbnails."""
    import numpy as np

    for path in list(paths)[:n]:
        try:
            with open_image(path) as im:
                if im.mode in ("1", "L", "LA", "I", "I;16", "F"):
                    continue
                im.draft("RGB", (64, 64))
                a = np.asarray(im.convert("RGB").resize((32, 32)), dtype=np.int16)
        except Exception:  # unreadable files are the dataset's to report
            continue
        if np.abs(a - a.mean(axis=2, keepdims=True)).max() > 8:
            return True
    return False


def decode_image(path: str | os.PathLike, channels: int, draft: int | None = None) -> torch.Tensor:
    """Decode a picture to float (channels, H, W) in [0, 1]: EXIF orientation applied, RGB or gray as asked,
    transparency composited on white, 16-bit and float images scaled exactly (``convert("L")`` would clip them).
    ``draft``: let a JPEG decode at a reduced size that stays >= draft (fast, done in the DCT domain)."""
    import warnings

    import numpy as np
    import torch
    from PIL import Image, ImageOps

    with open_image(path) as im, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        if draft is not None and im.format == "JPEG":
            im.draft("RGB" if channels == 3 else "L", (draft, draft))
        im = ImageOps.exif_transpose(im)
        if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
            a = np.asarray(im, dtype=np.float32)
            x = torch.from_numpy(np.clip(a if im.mode == "F" else a / 65535.0, 0.0, 1.0)).unsqueeze(0)
            return x.repeat(3, 1, 1) if channels == 3 else x
        if im.mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        elif im.mode in ("LA", "La", "PA", "RGBa"):
            im = im.convert("RGBA")
        if im.mode == "RGBA":
            im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im)
        a = np.asarray(im.convert("RGB" if channels == 3 else "L"), dtype=np.uint8)
    x = torch.from_numpy(a.copy())
    x = x.permute(2, 0, 1) if x.ndim == 3 else x.unsqueeze(0)
    return x.to(torch.float32).div_(255.0)


def resize_center_crop(x: torch.Tensor, image_size: int) -> torch.Tensor:
    """Short side to ``image_size`` (bilinear, antialiased: torchvision's ``resize`` rule), then the centre square."""
    from torch.nn import functional as F

    h, w = x.shape[-2:]
    if (h, w) != (image_size, image_size):
        short, long = min(h, w), max(h, w)
        size = (image_size, int(image_size * long / short)) if h <= w else (int(image_size * long / short), image_size)
        x = F.interpolate(x[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
        top, left = (size[0] - image_size) // 2, (size[1] - image_size) // 2
        x = x[..., top : top + image_size, left : left + image_size]
    return x.clamp(0.0, 1.0).contiguous()


def load_image(path: str | os.PathLike, image_size: int, channels: int) -> torch.Tensor:
    """One picture as a float tensor (channels, image_size, image_size) in [0, 1], prepared exactly as
    ``bavae train --dataset folder`` prepares its images: decoded (:func:`decode_image`), short side resized,
    centre-cropped."""
    try:
        x = decode_image(path, channels, draft=image_size)
    except ImageError:
        raise
    except Exception as e:  # PIL raises many types (UnidentifiedImageError, OSError, SyntaxError...)
        why = "not an image format PIL can read (use PNG or JPEG)" if "identify" in str(e) else str(e)
        raise ImageError(f"cannot read {path}: {why}") from None
    return resize_center_crop(x, image_size)


def load_image_files(paths: Sequence[str | os.PathLike], image_size: int, channels: int) -> torch.Tensor:
    """A batch (N, channels, image_size, image_size) in [0, 1] from picture files of any size and mode."""
    import torch

    return torch.stack([load_image(p, image_size, channels) for p in paths])


def make_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2, pad_value: float = 0.0) -> torch.Tensor:
    """(N, C, H, W) -> (C, rows*(H+p)+p, nrow*(W+p)+p), the layout of torchvision.utils.make_grid."""
    import torch

    n, c, h, w = images.shape
    ncol = max(1, min(nrow, n))
    nrows = math.ceil(n / ncol)
    grid = torch.full(
        (c, nrows * (h + padding) + padding, ncol * (w + padding) + padding),
        pad_value,
        dtype=images.dtype,
        device=images.device,
    )
    for i in range(n):
        y, x = padding + (i // ncol) * (h + padding), padding + (i % ncol) * (w + padding)
        grid[:, y : y + h, x : x + w] = images[i]
    return grid


def to_uint8(images: torch.Tensor):
    """[0, 1] floats -> uint8 numpy, channels last (rounding as torchvision's save_image does)."""
    import torch

    x = images.detach().float().cpu().mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)
    return x.movedim(-3, -1).numpy()


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None) -> tuple[int, int]:
    """Write a PNG grid of (N, C, H, W) images in [0, 1] atomically; return (rows, columns)."""
    from PIL import Image

    from .files import atomic_write

    n = images.shape[0]
    ncol = nrow or math.ceil(math.sqrt(n))
    a = to_uint8(make_grid(images, ncol))
    im = Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a, "L" if a.shape[-1] == 1 else "RGB")
    atomic_write(path, lambda p: im.save(p, format="PNG"))
    return math.ceil(n / min(ncol, n)), min(ncol, n)


__all__ = [
    "IMAGE_SUFFIXES",
    "ImageError",
    "expand_image_paths",
    "open_image",
    "looks_colour",
    "check_image_files",
    "decode_image",
    "resize_center_crop",
    "load_image",
    "load_image_files",
    "make_grid",
    "to_uint8",
    "save_grid",
]
