"""The dSprites renderer (Matthey et al. 2017): any of the 737,280 64x64 binary images, in the original's index
order, from its five factors; exact and cheap (see the geometry below). :mod:`bavae.data.dsprites` caches them."""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

from ._common import DataError

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
        rows = lat[:, y0 : y0 + side].reshape(n, _DS_P, _DS_SS, -1).sum(2, dtype=np.uint8)
        for rx in range(_DS_SS):
            x0 = _DS_N - _DS_SS * _DS_H - rx
            cnt = rows[:, :, x0 : x0 + side].reshape(n, _DS_P, _DS_P, _DS_SS).sum(3, dtype=np.uint8)
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
        out[k, ty[k] : ty[k] + _DS_P, tx[k] : tx[k] + _DS_P] = patches[inv[k], ry[k], rx[k]]
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
                canvas[_DS_SIZE : _DS_SIZE + _DS_P, _DS_SIZE : _DS_SIZE + _DS_P] = patch[ry, rx]
                win = np.lib.stride_tricks.sliding_window_view(canvas, (_DS_SIZE, _DS_SIZE))
                img[np.ix_(sx, sy)] = win[(_DS_SIZE - t[sy])[None, :], (_DS_SIZE - t[sx])[:, None]]
        out[j] = np.packbits(img.reshape(32, 32, -1), axis=-1)
    return out.reshape(-1, out.shape[-1])
