"""Datasets: every image collection bavae trains on (a user's own picture files go through :mod:`bavae.images`,
which this module uses for decoding too, so a folder trains exactly as `bavae reconstruct` prepares it).

Every dataset built by :func:`build_dataset` returns, for ``ds[i]``, ONE float32 tensor of shape
``(channels, image_size, image_size)`` with values in [0, 1] (no label).

* ``fashion-mnist``: the gzipped idx files (Debian's ``dataset-fashion-mnist`` installs them in
  ``/usr/share/datasets/fashion-mnist/``); held in memory as uint8; 28 px, or 32 px zero-padded.
* ``dsprites``: procedurally rendered dSprites (Matthey et al. 2017), 737,280 64x64 binary images in
  the original's index order, cached once as a bit-packed ``.npz``.
* ``celeba``: ``img_align_celeba/*.jpg``, centre-cropped to 140x140 and resized to 64 or 128.
* ``folder``: any directory tree of images, short side resized then centre-cropped.
"""

from __future__ import annotations

import gzip
import logging
import math
import os
import struct
import tempfile
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from .images import IMAGE_SUFFIXES, decode_image, resize_center_crop

__all__ = [
    "DATASETS",
    "DataError",
    "build_dataset",
    "make_loader",
    "FashionMNIST",
    "DSprites",
    "CelebA",
    "ImageFolder",
    "DSPRITES_FACTOR_NAMES",
    "DSPRITES_FACTOR_SIZES",
    "dsprites_factor_values",
    "dsprites_factors",
    "dsprites_index",
    "render_dsprites",
    "generate_dsprites",
    "dsprites_cache_path",
    "default_cache_dir",
]

log = logging.getLogger(__name__)

DATASETS = ("fashion-mnist", "dsprites", "celeba", "folder")


class DataError(ValueError):
    """A dataset cannot be built; the message is one line meant for the user."""


def _check_channels(name: str, channels: int) -> None:
    if channels not in (1, 3):
        raise DataError(f"{name}: channels must be 1 or 3, got {channels!r}")


def _check_split(name: str, split: str, allowed: Sequence[str]) -> None:
    if split not in allowed:
        raise DataError(f"{name}: split must be one of {', '.join(map(repr, allowed))}, got {split!r}")


def _apply_limit(n: int, limit: int | None) -> int:
    if limit is None:
        return n
    if limit < 0:
        raise DataError(f"limit must be >= 0 or None, got {limit}")
    return min(n, limit)


# --------------------------------------------------------------------------------------------------
# Fashion-MNIST
# --------------------------------------------------------------------------------------------------

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

    def __init__(self, data_dir: str | os.PathLike | None = None, *, image_size: int = 28,
                 channels: int = 1, split: str = "train", limit: int | None = None) -> None:
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
            hint = ("install the Debian package dataset-fashion-mnist or pass data_dir"
                    if data_dir is None else "download the idx files (.gz or not) into it")
            raise DataError(f"fashion-mnist: {missing}[.gz] not found in {root}; {hint}")
        images = _read_idx(img_path, _IDX_IMAGES_MAGIC)
        labels = _read_idx(lbl_path, _IDX_LABELS_MAGIC)
        if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
            raise DataError(f"fashion-mnist: {img_path} has shape {images.shape} but {lbl_path} has "
                            f"{labels.shape[0]} labels; expected (N, 28, 28) and N labels")
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


# --------------------------------------------------------------------------------------------------
# dSprites, rendered procedurally
# --------------------------------------------------------------------------------------------------
#
# Geometry (pixel k covers [k, k+1)): a position index i in 0..31 puts the sprite centre at
# 12.625 + 1.25*i px on both axes, so centres span 12.625..51.375 (symmetric about 32) and the
# largest sprite (radius < 12 px) never touches the border. Each pixel is supersampled 4x4 and is 1
# when at least 8 of its 16 samples are inside the shape. Because 1.25 px = 5 samples, every sample
# lies on one lattice of spacing 0.25 px centred on the sprite centre: each of the 720
# shape/scale/orientation sprites is evaluated once on that lattice, then box-summed with the 4
# possible alignments and pasted at integer offsets. This makes rendering exact and cheap.

DSPRITES_FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")
DSPRITES_FACTOR_SIZES = (3, 6, 40, 32, 32)
DSPRITES_SHAPES = ("square", "ellipse", "heart")
DSPRITES_N = math.prod(DSPRITES_FACTOR_SIZES)  # 737,280
_DS_VERSION = 1  # bump when the rendering changes: old caches are then regenerated
_DS_SS = 4  # supersampling per axis
_DS_SIZE = 64
_DS_BASE = 16.0  # px: side of the square at scale 1 (a quarter of the canvas, as in the original)
_DS_H = 12  # patch pixels before the centre pixel
_DS_P = 25  # patch side in pixels
_DS_N = 51  # fine-lattice half size: samples n*0.25 px, n in [-51, 51]
_DS_TEST_FRACTION = 0.1


def dsprites_factor_values() -> dict[str, np.ndarray]:
    """The latent values of the original dSprites, by factor name (orientation includes 2*pi, as there)."""
    return {
        "shape": np.arange(1, 4, dtype=np.float64),
        "scale": np.linspace(0.5, 1.0, 6),
        "orientation": np.linspace(0.0, 2 * np.pi, 40),
        "posX": np.linspace(0.0, 1.0, 32),
        "posY": np.linspace(0.0, 1.0, 32),
    }


def dsprites_factors(indices: Iterable[int] | np.ndarray) -> np.ndarray:
    """Factor indices (n, 5) of dataset indices, original order: shape slowest, posY fastest."""
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= DSPRITES_N):
        raise DataError(f"dsprites: indices must be in [0, {DSPRITES_N}), got {idx.min()}..{idx.max()}")
    return np.stack(np.unravel_index(idx, DSPRITES_FACTOR_SIZES), axis=1).astype(np.int64)


def dsprites_index(factors: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
    """Inverse of :func:`dsprites_factors`: (n, 5) factor indices -> (n,) dataset indices."""
    f = np.asarray(factors, dtype=np.int64).reshape(-1, 5)
    return np.ravel_multi_index(tuple(f.T), DSPRITES_FACTOR_SIZES).astype(np.int64)


def _sprite_lattice(sprite_ids: np.ndarray) -> np.ndarray:
    """Inside-masks (n, 2N+1, 2N+1) of sprites (shape*240 + scale*40 + orient) on the 0.25 px lattice."""
    values = dsprites_factor_values()
    # Trig on the whole 40-value table, then indexed: identical bits however many sprites are asked for.
    cos_t, sin_t = np.cos(values["orientation"]), np.sin(values["orientation"])
    shape, rest = np.divmod(sprite_ids, 240)
    scale_i, orient_i = np.divmod(rest, 40)
    s = (_DS_BASE * values["scale"][scale_i])[:, None, None]
    c, sn = cos_t[orient_i][:, None, None], sin_t[orient_i][:, None, None]
    n = np.arange(-_DS_N, _DS_N + 1, dtype=np.float64) * (1.0 / _DS_SS)
    x = n[None, None, :]  # right
    y = -n[None, :, None]  # up (rows go down)
    u = x * c + y * sn  # rotate the sample by -theta: the sprite turns counter-clockwise
    v = y * c - x * sn
    shape = shape[:, None, None]
    out = np.zeros((len(sprite_ids), n.size, n.size), dtype=bool)
    half = s / 2
    sq = (np.abs(u) <= half) & (np.abs(v) <= half)
    a, b = 0.6 * s, 0.32 * s
    el = (u / a) * (u / a) + (v / b) * (v / b) <= 1.0
    # Heart: (X^2 + Y^2 - 1)^3 <= X^2 Y^3, bounding box centred (y shifted by 0.118), 0.5*s per unit.
    hx = u / (0.5 * s)
    hy = v / (0.5 * s) + 0.118
    r = hx * hx + hy * hy - 1.0
    he = r * r * r <= hx * hx * hy * hy * hy
    out[:] = np.where(shape == 0, sq, np.where(shape == 1, el, he))
    return out


def _sprite_patches(sprite_ids: np.ndarray) -> np.ndarray:
    """Binary patches (n, 4, 4, P, P) per sprite and (y, x) lattice alignment rho."""
    lat = _sprite_lattice(sprite_ids).astype(np.uint8)
    n, side = len(sprite_ids), _DS_P * _DS_SS
    out = np.empty((n, _DS_SS, _DS_SS, _DS_P, _DS_P), dtype=bool)
    for ry in range(_DS_SS):
        # Patch pixel k' (k' = -H..P-H-1) covers lattice n = 4k' - rho .. 4k' - rho + 3.
        y0 = _DS_N - _DS_SS * _DS_H - ry
        rows = lat[:, y0:y0 + side].reshape(n, _DS_P, _DS_SS, -1).sum(2, dtype=np.uint8)
        for rx in range(_DS_SS):
            x0 = _DS_N - _DS_SS * _DS_H - rx
            cnt = rows[:, :, x0:x0 + side].reshape(n, _DS_P, _DS_P, _DS_SS).sum(3, dtype=np.uint8)
            out[:, ry, rx] = cnt >= (_DS_SS * _DS_SS) // 2
    return out


def _placement(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(top-left pixel of the patch, lattice alignment rho) for position indices 0..31."""
    t = 5 * np.asarray(pos, dtype=np.int64) + 50  # sprite centre in lattice units minus 0.125 px
    rho = t % _DS_SS
    return (t - rho) // _DS_SS - _DS_H, rho


def render_dsprites(indices: Iterable[int] | np.ndarray) -> np.ndarray:
    """Render dSprites images (n, 64, 64) uint8 in {0, 1}; bit-identical to the cached dataset."""
    f = dsprites_factors(indices)
    sprite = f[:, 0] * 240 + f[:, 1] * 40 + f[:, 2]
    uniq, inv = np.unique(sprite, return_inverse=True)
    out = np.zeros((len(f), _DS_SIZE, _DS_SIZE), dtype=np.uint8)
    if not len(f):
        return out
    patches = _sprite_patches(uniq)
    tx, rx = _placement(f[:, 3])
    ty, ry = _placement(f[:, 4])
    for k in range(len(f)):
        out[k, ty[k]:ty[k] + _DS_P, tx[k]:tx[k] + _DS_P] = patches[inv[k], ry[k], rx[k]]
    return out


def _render_packed_sprites(sprite_ids: np.ndarray) -> np.ndarray:
    """Bit-packed images (len(sprite_ids)*1024, 512) of whole sprites, all 32x32 positions, in order."""
    pos = np.arange(32)
    t, rho = _placement(pos)
    side = _DS_SIZE * 2 + _DS_P
    out = np.empty((len(sprite_ids), 32, 32, _DS_SIZE * _DS_SIZE // 8), dtype=np.uint8)
    img = np.empty((32, 32, _DS_SIZE, _DS_SIZE), dtype=bool)  # (posX, posY, row, col)
    for j, patch in enumerate(_sprite_patches(np.asarray(sprite_ids))):
        for ry in range(_DS_SS):
            sy = pos[rho == ry]
            for rx in range(_DS_SS):
                sx = pos[rho == rx]
                # Patch at (64, 64) in a zero canvas: the image with the patch at (ty, tx) is the
                # 64x64 window starting at (64 - ty, 64 - tx); gather all such windows at once.
                canvas = np.zeros((side, side), dtype=bool)
                canvas[_DS_SIZE:_DS_SIZE + _DS_P, _DS_SIZE:_DS_SIZE + _DS_P] = patch[ry, rx]
                win = np.lib.stride_tricks.sliding_window_view(canvas, (_DS_SIZE, _DS_SIZE))
                img[np.ix_(sx, sy)] = win[(_DS_SIZE - t[sy])[None, :], (_DS_SIZE - t[sx])[:, None]]
        out[j] = np.packbits(img.reshape(32, 32, -1), axis=-1)
    return out.reshape(-1, out.shape[-1])


def default_cache_dir() -> Path:
    """``$BAVAE_CACHE`` if set, else ``~/.cache/bavae``."""
    env = os.environ.get("BAVAE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "bavae"


def dsprites_cache_path(cache_dir: str | os.PathLike | None = None) -> Path:
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / f"dsprites_v{_DS_VERSION}.npz"


def generate_dsprites(cache_dir: str | os.PathLike | None = None, *, limit: int | None = None,
                      progress: bool = False) -> Path:
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
        from tqdm import tqdm
        starts = tqdm(starts, desc="rendering dSprites", unit="chunk")
    packed = np.empty((n_sprites * 1024, _DS_SIZE * _DS_SIZE // 8), dtype=np.uint8)
    for s in starts:
        ids = np.arange(s, min(s + 40, n_sprites))
        packed[s * 1024:(ids[-1] + 1) * 1024] = _render_packed_sprites(ids)
    packed = packed[:n]
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, imgs_packed=packed, version=np.int64(_DS_VERSION),
                                factor_sizes=np.asarray(DSPRITES_FACTOR_SIZES, np.int64))
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
    return np.sort(perm[:int(DSPRITES_N * _DS_TEST_FRACTION)])


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

    def __init__(self, cache_dir: str | os.PathLike | None = None, *, image_size: int = 64,
                 channels: int = 1, split: str = "train", limit: int | None = None,
                 render_limit: int = 16384) -> None:
        _check_split("dsprites", split, ("train", "test"))
        _check_channels("dsprites", channels)
        if image_size != _DS_SIZE:
            raise DataError(f"dsprites: image_size must be 64, got {image_size}")
        indices = dsprites_split_indices(split)
        indices = indices[:_apply_limit(len(indices), limit)]
        self.indices = indices
        self.channels = channels
        self.split = split
        self.cache_path = dsprites_cache_path(cache_dir)
        needed = int(indices[-1]) + 1 if len(indices) else 0
        packed = _load_dsprites_cache(self.cache_path, needed)
        if packed is None and len(indices) <= render_limit:
            self.packed = np.packbits(render_dsprites(indices).reshape(len(indices), -1).astype(bool),
                                      axis=1)
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


# --------------------------------------------------------------------------------------------------
# CelebA
# --------------------------------------------------------------------------------------------------

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
                raise DataError(f"celeba: {path} line {line_no}: expected '<file> <0|1|2>', "
                                f"got {line.strip()!r}") from None
    return part


class CelebA(Dataset):
    """CelebA aligned faces: centre crop 140x140, resize to 64 or 128 (torchvision transforms)."""

    def __init__(self, data_dir: str | os.PathLike | None, *, image_size: int = 64, channels: int = 3,
                 split: str = "train", limit: int | None = None) -> None:
        _check_split("celeba", split, tuple(_CELEBA_SPLITS))
        _check_channels("celeba", channels)
        if image_size not in (64, 128):
            raise DataError(f"celeba: image_size must be 64 or 128, got {image_size}")
        if data_dir is None:
            raise DataError("celeba: pass data_dir, the folder holding img_align_celeba/ "
                            "(and optionally list_eval_partition.txt)")
        root = Path(data_dir).expanduser()
        img_dir = root / "img_align_celeba"
        if not img_dir.is_dir():
            if root.is_dir() and root.name == "img_align_celeba":
                img_dir, root = root, root.parent
            elif root.is_dir() and any(p.suffix.lower() == ".jpg" for p in _scandir_names(root, 50)):
                img_dir, root = root, root  # the images directly, without the usual folder name
            else:
                raise DataError(f"celeba: no img_align_celeba/ folder in {root}; download CelebA "
                                f"(Align&Cropped JPEGs) and unpack it there")
        names = sorted(n for n in os.listdir(img_dir) if n.lower().endswith((".jpg", ".jpeg", ".png")))
        part = _read_celeba_partition(root)
        if part is not None:
            want = _CELEBA_SPLITS[split]
            present = set(names)
            names = sorted(n for n, p in part.items() if p == want and n in present)
        elif split != "train":
            raise DataError(f"celeba: split {split!r} needs list_eval_partition.txt in {root}; "
                            f"without it only 'train' (all images) is available")
        if not names:
            raise DataError(f"celeba: no images for split {split!r} in {img_dir}")
        self.files = [img_dir / n for n in names[:_apply_limit(len(names), limit)]]
        self.image_size = image_size
        self.channels = channels
        self.split = split

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as TF

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


# --------------------------------------------------------------------------------------------------
# Any folder of images
# --------------------------------------------------------------------------------------------------

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

    def __init__(self, data_dir: str | os.PathLike | None, *, image_size: int, channels: int = 3,
                 split: str = "train", limit: int | None = None) -> None:
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
            raise DataError(f"folder: split {split!r} needs a subfolder {root / split}; "
                            f"without one only 'train' (the whole tree) is available")
        candidates = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            candidates += [Path(dirpath) / f for f in sorted(filenames)
                           if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES]
        n_keep = _apply_limit(len(candidates), limit)
        files, bad = [], []
        for p in candidates:
            if len(files) >= n_keep:
                break  # with a limit, don't verify files that will not be used
            (files if _check_image(p) else bad).append(p)
        if bad:
            msg = (f"skipped {len(bad)} unreadable file{'s' if len(bad) != 1 else ''} in {root} "
                   f"(e.g. {bad[0].relative_to(root)})")
            warnings.warn(msg, stacklevel=3)
        if not files and (limit is None or limit > 0):
            found = f"{len(bad)} unreadable" if bad else "no"
            raise DataError(f"folder: {found} image files in {root} (searched recursively for "
                            f"{', '.join(sorted(IMAGE_SUFFIXES))})")
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
                warnings.warn(f"folder: cannot decode {self.files[j]} ({e}); using the next image")
        raise DataError(f"folder: no image in {self.root} could be decoded")


# --------------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------------


def build_dataset(name: str, *, data_dir: str | os.PathLike | None = None, image_size: int,
                  channels: int, split: str = "train", limit: int | None = None) -> Dataset:
    """Build a dataset by name; ``ds[i]`` is a float32 (channels, image_size, image_size) tensor in [0, 1].

    ``data_dir``: fashion-mnist: the idx files (default: Debian's /usr/share/datasets/fashion-mnist);
    dsprites: the cache folder (default ``$BAVAE_CACHE`` or ``~/.cache/bavae``); celeba: the folder
    holding ``img_align_celeba/``; folder: the image tree. ``limit`` keeps the first ``limit`` items.
    """
    kw = dict(image_size=image_size, channels=channels, split=split, limit=limit)
    if name == "fashion-mnist":
        return FashionMNIST(data_dir, **kw)
    if name == "dsprites":
        return DSprites(data_dir, **kw)
    if name == "celeba":
        return CelebA(data_dir, **kw)
    if name == "folder":
        return ImageFolder(data_dir, **kw)
    raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                num_workers: int = 0, drop_last: bool = True, sampler: Sampler | None = None,
                pin_memory: bool | None = None) -> DataLoader:
    """A DataLoader with a seeded generator (same seed, same order); ``sampler`` (e.g. DDP's
    DistributedSampler, which shuffles itself) overrides ``shuffle``."""
    n = len(sampler) if sampler is not None else len(dataset)  # type: ignore[arg-type]
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}")
    if drop_last and n < batch_size:
        raise DataError(f"only {n} items for batch_size {batch_size} with drop_last: no batch at all; "
                        f"lower batch_size or use more data")
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
