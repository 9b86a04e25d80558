"""The user's own picture files in; image grids and arrays out (PIL + numpy; for the CLI and notebooks).

Datasets live in :mod:`bavae.data`; this module only turns a handful of files into a batch the model takes,
and a batch back into a PNG grid or an npz. torchvision is not used: importing it costs more than the rest of a
cold ``bavae sample``.
"""

from __future__ import annotations

import math
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.nn import functional as F

from .errors import InvalidValue, one_line
from .files import STDIO, atomic_write, check_free_space, file_problem

MAX_CODE = 1e3  # |z| past this is not a code of the prior N(0, I) or U(-1, 1): decoding it is a mistake

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


class ImageError(InvalidValue):
    """A file that is missing or not a readable image."""


def expand_image_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given; folders replaced by the image files directly inside them, sorted."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir() and os.fspath(p) != STDIO:
            found = sorted(
                f
                for f in p.iterdir()
                if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file() and not f.name.startswith(".")
            )
            if not found:
                raise ImageError(f"{p} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
            out += found
        else:
            problem = file_problem(p)  # missing, unreadable, a device or a pipe: said as it is
            if problem:
                raise ImageError(f"{p} {problem}")
            out.append(p)
    if not out:
        raise ImageError("no image files given")
    return out


def _too_large(path: str | os.PathLike) -> str:
    """Why PIL refused a picture as a decompression bomb, with its size (read from the header alone)."""

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

    return torch.stack([load_image(p, image_size, channels) for p in paths])


def make_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2, pad_value: float = 0.0) -> torch.Tensor:
    """(N, C, H, W) -> (C, rows*(H+p)+p, nrow*(W+p)+p), the layout of torchvision.utils.make_grid."""

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

    x = images.detach().float().cpu().mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)
    return x.movedim(-3, -1).numpy()


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None) -> tuple[int, int]:
    """Write a PNG grid of (N, C, H, W) images in [0, 1] atomically; return (rows, columns)."""

    n = images.shape[0]
    ncol = nrow or math.ceil(math.sqrt(n))
    a = to_uint8(make_grid(images, ncol))
    im = Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a, "L" if a.shape[-1] == 1 else "RGB")
    atomic_write(path, lambda p: im.save(p, format="PNG"))
    return math.ceil(n / min(ncol, n)), min(ncol, n)


def write_npz_stream(path: str | os.PathLike, arrays: dict[str, Any], chunks: dict[str, Any] | None = None) -> None:
    """Write an ``.npz`` (what ``np.load`` reads) atomically, streaming the big arrays: ``arrays`` maps names to
    arrays written whole; ``chunks`` maps a name to ``(shape, dtype, iterable of arrays)`` whose pieces, stacked on
    the first axis, fill ``shape``; each piece is written as it comes, so memory holds one piece at a time."""

    nbytes = sum(np.asanyarray(a).nbytes for a in arrays.values())
    nbytes += sum(math.prod(shape) * np.dtype(dtype).itemsize for shape, dtype, _ in (chunks or {}).values())
    check_free_space(path, nbytes, f"{', '.join([*arrays, *(chunks or {})])} ({nbytes:,} bytes uncompressed)")

    def write(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, array in arrays.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)
            for name, (shape, dtype, pieces) in (chunks or {}).items():
                dtype = np.dtype(dtype)
                header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
                rows = 0
                with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array_header_2_0(f, header)
                    for piece in pieces:
                        piece = np.ascontiguousarray(piece, dtype=dtype)
                        if piece.shape[1:] != tuple(shape[1:]):
                            raise InvalidValue(f"{name}: a piece of shape {piece.shape} does not fit {tuple(shape)}")
                        f.write(memoryview(piece).cast("B"))
                        rows += len(piece)
                if rows != shape[0]:
                    raise InvalidValue(f"{name}: the pieces held {rows} rows, not {shape[0]}")

    atomic_write(path, write)


def save_npz(path: str | os.PathLike, **arrays: Any) -> None:
    """Write arrays to an ``.npz`` atomically (no pickles: strings and numbers only)."""
    write_npz_stream(path, arrays)


def save_images(
    path: Path, fmt: str, images: torch.Tensor | Sequence[torch.Tensor], nrow: int | None, **extra: Any
) -> str:
    """Write images (N, C, H, W) in [0, 1], or batches of them one after another, as a PNG grid or an npz (key
    ``images``, beside ``extra``); say what was written."""
    images = images if isinstance(images, torch.Tensor) else torch.cat([b.cpu() for b in images])
    images = images.detach().float().clamp(0, 1).cpu()
    if fmt == "npz":
        save_npz(path, images=images.numpy(), **extra)
        return f"{path} (images {tuple(images.shape)} float32 in [0, 1])"
    rows, cols = save_grid(images, path, nrow)
    return f"{path} ({rows}x{cols} grid of {images.shape[-1]}px images)"


def stream_images_npz(path: Path, shape: tuple[int, ...], draw: Callable[[int], torch.Tensor], batch: int) -> str:
    """``shape[0]`` images to an npz, ``draw(k)`` making ``batch`` of them at a time: memory holds one batch."""

    def batches() -> Iterable[np.ndarray]:
        for i in range(0, shape[0], batch):
            yield draw(min(batch, shape[0] - i)).detach().float().clamp(0, 1).cpu().numpy()

    write_npz_stream(path, {}, {"images": (shape, "float32", batches())})
    return f"{path} (images {shape} float32 in [0, 1])"


def interleave(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Two batches as a0, b0, a1, b1, ... (originals beside their results)."""
    return torch.stack([a, b], dim=1).flatten(0, 1)


def batched(fn: Callable, x: Any, device: torch.device, generator: torch.Generator | None, batch: int = 256):
    """``fn(x[i:i+batch], generator=generator)`` over a batch of pictures or codes (a tensor or an array), on
    ``device`` a piece at a time: a folder of photos never becomes one giant batch. The results come back on the CPU."""
    x = torch.from_numpy(x) if isinstance(x, np.ndarray) else x
    return torch.cat([fn(x[i : i + batch].to(device), generator=generator).cpu() for i in range(0, len(x), batch)])


def not_real_numbers(x: Any, what: str) -> str | None:
    """Why a tensor or array cannot hold ``what`` ("images", "codes") whatever its shape, as the end of a sentence
    "expected ..., got ...": on the meta device (it has a shape but no values), of a boolean or complex dtype, or of
    another non-float one (the hint then says how to convert); None for real floating-point numbers with values."""
    dtype = x.dtype
    if isinstance(x, torch.Tensor):
        if x.is_meta:
            return f"a tensor on the meta device, which holds no values (put the {what} on cpu or cuda)"
        kind = "b" if dtype == torch.bool else "c" if x.is_complex() else "f" if x.is_floating_point() else "i"
    else:  # numpy's kinds: b(ool), c(omplex), f(loat), i(nt), u(nsigned); strings, objects and dates are none
        kind = dtype.kind if dtype.kind in "bcfi" else "i" if dtype.kind == "u" else "o"
    if kind == "f":
        return None
    if kind == "b":
        return f"dtype {dtype}: {what} are real numbers, not true/false values"
    if kind == "c":
        return f"dtype {dtype}: {what} are real numbers, not complex ones (take .real if that is what you mean)"
    if kind == "o":
        return f"dtype {dtype}: {what} are real numbers"
    if what == "images":
        return f"dtype {dtype} (convert uint8 images with x / 255)"
    return f"dtype {dtype} (convert integer codes with .float())"


def check_codes(z: Any, latent_dim: int | None = None, name: str = "z") -> Any:
    """The one check of latent codes, for the API (tensors) and ``bavae decode`` (numpy arrays, before any model
    loads): a float array (N, latent_dim) with N >= 1, finite, within +-MAX_CODE, not on the meta device. Returns
    ``z`` unchanged."""
    d = "latent_dim" if latent_dim is None else latent_dim
    expected = f"float codes of shape (N, {d})"
    if isinstance(z, torch.Tensor):
        shape = tuple(z.shape)
    elif isinstance(z, np.ndarray):
        shape = z.shape
    else:
        raise InvalidValue(f"{name}: expected {expected}, got {type(z).__name__}")
    problem = not_real_numbers(z, "codes")
    if problem:
        raise InvalidValue(f"{name}: expected {expected}, got {problem}")
    if len(shape) != 2 or (latent_dim is not None and shape[1] != latent_dim):
        raise InvalidValue(f"{name}: expected {expected}, got shape {shape}")
    if shape[0] == 0:
        raise InvalidValue(f"{name}: expected {expected}, got no codes (shape {shape})")
    a = torch.as_tensor(z) if isinstance(z, np.ndarray) else z.detach()
    if not torch.isfinite(a).all():
        raise InvalidValue(f"{name}: expected {expected} of finite values, got NaN or inf")
    biggest = a.abs().max().item()
    if biggest > MAX_CODE:
        raise InvalidValue(
            f"{name}: codes of the prior lie within a few units of 0; got |z| up to {biggest:.3g}, past the "
            f"{MAX_CODE:g} that bavae decodes (too far from any code the decoder saw)"
        )
    return z


def read_codes(path: str | os.PathLike) -> tuple[np.ndarray, str | None]:
    """``codes`` from an npz as ``bavae encode`` writes it (checked: :func:`check_codes`), and the model that wrote
    them when it says; one error line naming the file otherwise (nothing in it is unpickled)."""
    expected = "expected an npz with `codes` (N, latent_dim), as `bavae encode` writes"
    p = Path(path).expanduser()
    problem = file_problem(path)  # missing, unreadable, a folder, a device or a pipe: said as it is
    if problem:
        raise ImageError(f"{path} {problem} ({expected})")
    try:
        if not zipfile.is_zipfile(p):
            raise ValueError("not an npz file")
        with np.load(p, allow_pickle=False) as data:
            if "codes" not in data.files:
                raise ValueError(f"it has no `codes` (it holds {', '.join(data.files) or 'nothing'})")
            codes = data["codes"]
            written_by = str(data["model"]) if "model" in data.files else None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise ImageError(f"cannot read codes from {path}: {one_line(e)} ({expected})") from None
    return check_codes(codes, name=f"{path}: `codes`"), written_by


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
    "write_npz_stream",
    "save_npz",
    "save_images",
    "stream_images_npz",
    "interleave",
    "batched",
    "not_real_numbers",
    "check_codes",
    "read_codes",
]
