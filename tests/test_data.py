"""bavae.data: every dataset yields float32 (C, S, S) tensors in [0, 1]; errors are DataError."""

from __future__ import annotations

import gzip
import io
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import bavae.data as data
import bavae.data.dsprites as dsprites_data
import bavae.data.dsprites_render as dsprites_render
from bavae.data import DataError, build_dataset, make_loader

DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")


def _check_item(x: torch.Tensor, channels: int, size: int) -> None:
    assert isinstance(x, torch.Tensor)
    assert x.dtype == torch.float32
    assert x.shape == (channels, size, size)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_unknown_name_lists_known() -> None:
    with pytest.raises(DataError, match="known: fashion-mnist, dsprites, celeba, folder"):
        build_dataset("mnist", image_size=28, channels=1)


# ------------------------------------------------------------------------------- fashion-mnist


def _write_idx(path: Path, magic: int, arr: np.ndarray, *, gz: bool = True) -> None:
    raw = struct.pack(f">i{arr.ndim}i", magic, *arr.shape) + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def _fake_fmnist(d: Path, n: int = 7, *, gz: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    imgs = rng.integers(1, 256, size=(n, 28, 28), dtype=np.uint8)  # no zeros: the padding is visible
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    sfx = ".gz" if gz else ""
    for prefix in ("train", "t10k"):
        _write_idx(d / f"{prefix}-images-idx3-ubyte{sfx}", 2051, imgs, gz=gz)
        _write_idx(d / f"{prefix}-labels-idx1-ubyte{sfx}", 2049, labels, gz=gz)
    return imgs, labels


@pytest.mark.parametrize("gz", [True, False])
def test_fmnist_synthetic_idx(tmp_path: Path, gz: bool) -> None:
    imgs, labels = _fake_fmnist(tmp_path, gz=gz)
    ds = build_dataset("fashion-mnist", data_dir=tmp_path, image_size=28, channels=1)
    assert len(ds) == 7
    _check_item(ds[3], 1, 28)
    assert torch.equal(ds[3][0], torch.from_numpy(imgs[3]).float() / 255)
    assert ds.labels.dtype == torch.int64 and ds.labels.tolist() == labels.tolist()

    ds32 = build_dataset("fashion-mnist", data_dir=tmp_path, image_size=32, channels=3, split="test", limit=4)
    assert len(ds32) == 4 and len(ds32.labels) == 4
    x = ds32[2]
    _check_item(x, 3, 32)
    assert torch.equal(x[0], x[2])
    assert torch.equal(x[1, 2:30, 2:30], torch.from_numpy(imgs[2]).float() / 255)
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert x[:, border].abs().sum() == 0


def test_fmnist_corrupt_and_bad_args(tmp_path: Path) -> None:
    _fake_fmnist(tmp_path)
    # Labels file written as if it were an image file: wrong magic.
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", 2051, np.zeros((7, 28, 28), np.uint8))
    with pytest.raises(DataError, match="magic number 2051, expected 2049"):
        build_dataset("fashion-mnist", data_dir=tmp_path, image_size=28, channels=1)
    # Truncated payload.
    raw = gzip.decompress((tmp_path / "t10k-images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[:-5]))
    with pytest.raises(DataError, match="corrupt"):
        build_dataset("fashion-mnist", data_dir=tmp_path, image_size=28, channels=1, split="test")
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot read"):
        build_dataset("fashion-mnist", data_dir=tmp_path, image_size=28, channels=1, split="test")
    with pytest.raises(DataError, match="28 or 32"):
        build_dataset("fashion-mnist", data_dir=tmp_path, image_size=64, channels=1)
    with pytest.raises(DataError, match=str(tmp_path / "nowhere")):
        build_dataset("fashion-mnist", data_dir=tmp_path / "nowhere", image_size=28, channels=1)


def test_fmnist_debian(fashion_mnist_dir: Path) -> None:
    assert fashion_mnist_dir == DEBIAN_FMNIST  # the default data dir is where the Debian package installs it
    train = build_dataset("fashion-mnist", image_size=28, channels=1)
    test = build_dataset("fashion-mnist", image_size=32, channels=1, split="test")
    assert len(train) == 60000 and len(test) == 10000
    assert train.labels.min() == 0 and train.labels.max() == 9
    assert torch.equal(train.labels.bincount(), torch.full((10,), 6000))
    x28 = train[123]
    _check_item(x28, 1, 28)
    assert x28.max() > 0.5  # a real garment, not a blank
    test28 = build_dataset("fashion-mnist", image_size=28, channels=1, split="test", limit=10)
    for i in (0, 9):
        x = test[i]
        _check_item(x, 1, 32)
        assert torch.equal(x[:, 2:30, 2:30], test28[i])
        border = torch.ones(32, 32, dtype=torch.bool)
        border[2:30, 2:30] = False
        assert x[:, border].sum() == 0


# ------------------------------------------------------------------------------------- dsprites


def test_dsprites_factor_order() -> None:
    idx = [0, 1, 32, 1024, 40960, 245760, data.DSPRITES_N - 1]
    f = data.dsprites_factors(idx)
    assert f.dtype == np.int64
    assert f.tolist() == [
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 1, 0],
        [0, 0, 1, 0, 0],
        [0, 1, 0, 0, 0],
        [1, 0, 0, 0, 0],
        [2, 5, 39, 31, 31],
    ]
    assert data.dsprites_index(f).tolist() == idx
    assert data.DSPRITES_N == 737280 == int(np.prod(data.DSPRITES_FACTOR_SIZES))
    v = data.dsprites_factor_values()
    assert [len(v[k]) for k in data.DSPRITES_FACTOR_NAMES] == list(data.DSPRITES_FACTOR_SIZES)
    with pytest.raises(DataError):
        data.dsprites_factors([data.DSPRITES_N])


def _centroid(img: np.ndarray) -> tuple[float, float]:
    r, c = np.nonzero(img)
    return float(r.mean()), float(c.mean())


def test_dsprites_render_properties() -> None:
    idx = data.dsprites_index([[s, sc, 3, 16, 16] for s in range(3) for sc in range(6)])
    imgs = data.render_dsprites(idx)
    assert imgs.shape == (18, 64, 64) and imgs.dtype == np.uint8
    assert set(np.unique(imgs).tolist()) == {0, 1}
    areas = imgs.reshape(3, 6, -1).sum(-1)
    assert (np.diff(areas, axis=1) > 0).all(), areas  # area grows with scale, for every shape
    assert (areas[:, -1] > 3.0 * areas[:, 0]).all()  # ~ (1 / 0.5)^2
    assert 150 < areas[0, -1] < 400  # square at scale 1 is about a quarter of the canvas wide
    assert len({im.tobytes() for im in imgs[[5, 11, 17]]}) == 3  # the three shapes differ

    # posX moves the centre of mass right, posY down; deterministic.
    f = [[2, 4, 7, x, y] for x, y in [(0, 10), (10, 10), (31, 10), (10, 0), (10, 31)]]
    a = data.render_dsprites(data.dsprites_index(f))
    b = data.render_dsprites(data.dsprites_index(f))
    assert np.array_equal(a, b)
    (r0, c0), (r1, c1), (r2, c2), (r3, c3), (r4, c4) = map(_centroid, a)
    # (Sub-pixel phases rasterise slightly differently, hence the 0.5 px tolerance.)
    assert c0 < c1 < c2 and abs(r0 - r1) < 0.5 and abs(r1 - r2) < 0.5
    assert r3 < r1 < r4 and abs(c3 - c1) < 0.5 and abs(c4 - c1) < 0.5
    assert 35 < c2 - c0 < 42  # the sprite travels most of the canvas
    # Orientation 0 and 2*pi coincide (as in the original); a quarter turn of a heart does not.
    o = data.render_dsprites(data.dsprites_index([[2, 5, 0, 5, 5], [2, 5, 39, 5, 5], [2, 5, 10, 5, 5]]))
    assert np.array_equal(o[0], o[1]) and not np.array_equal(o[0], o[2])


def test_dsprites_stays_inside_canvas() -> None:
    f = [[s, 5, o, x, y] for s in range(3) for o in range(0, 40, 3) for x in (0, 31) for y in (0, 31)]
    imgs = data.render_dsprites(data.dsprites_index(f))
    assert imgs[:, 0].sum() == 0 and imgs[:, -1].sum() == 0
    assert imgs[:, :, 0].sum() == 0 and imgs[:, :, -1].sum() == 0
    # ... while still reaching near the edges.
    assert imgs[:, :3].sum() > 0 and imgs[:, :, -3:].sum() > 0
    # Every sprite fits its 25 px patch: nothing inside beyond 11.75 px of the centre (n = 47 * 0.25).
    lat = dsprites_render._sprite_lattice(np.arange(720))
    assert lat[:, 4:-4, 4:-4].any(axis=(1, 2)).all()
    assert lat.sum() == lat[:, 4:-4, 4:-4].sum()


def test_dsprites_bulk_renderer_matches_render() -> None:
    packed = dsprites_render._render_packed_sprites(np.array([5, 250, 719]))  # sprites from all three shapes
    bulk = np.unpackbits(packed, axis=1).reshape(-1, 64, 64)
    sprite_starts = np.array([5, 250, 719]) * 1024
    pick = np.random.default_rng(0).choice(3 * 1024, 64, replace=False)
    ref = data.render_dsprites(sprite_starts[pick // 1024] + pick % 1024)
    assert np.array_equal(bulk[pick], ref)


def test_dsprites_dataset_without_cache(tmp_path: Path) -> None:
    ds = build_dataset("dsprites", data_dir=tmp_path, image_size=64, channels=1, limit=100)
    assert len(ds) == 100
    assert list(tmp_path.iterdir()) == []  # a small request renders directly, writes nothing
    assert ds.factor_sizes == (3, 6, 40, 32, 32)
    assert ds.factor_names == ("shape", "scale", "orientation", "posX", "posY")
    assert ds.factors.shape == (100, 5) and ds.factors.dtype == np.int64
    x = ds[37]
    _check_item(x, 1, 64)
    assert torch.equal(x[0], torch.from_numpy(data.render_dsprites([37])[0]).float())
    assert set(x.unique().tolist()) == {0.0, 1.0}
    _check_item(build_dataset("dsprites", data_dir=tmp_path, image_size=64, channels=3, limit=2)[1], 3, 64)

    test = build_dataset("dsprites", data_dir=tmp_path, image_size=64, channels=1, split="test", limit=20)
    assert len(test) == 20 and (np.diff(test.indices) > 0).all()
    assert np.array_equal(test.factors, data.dsprites_factors(test.indices))
    assert torch.equal(test[5][0], torch.from_numpy(data.render_dsprites([test.indices[5]])[0]).float())
    with pytest.raises(DataError, match="image_size must be 64"):
        build_dataset("dsprites", data_dir=tmp_path, image_size=32, channels=1, limit=1)


def test_dsprites_cache_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = data.generate_dsprites(tmp_path, limit=2048)
    assert path == tmp_path / path.name and path.suffix == ".npz"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind
    with np.load(path) as z:
        assert z["imgs_packed"].shape == (2048, 512) and z["imgs_packed"].dtype == np.uint8
    expected = data.render_dsprites(np.arange(0, 2048, 97))

    def no_render(*a, **k):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(dsprites_data, "render_dsprites", no_render)
    monkeypatch.setattr(dsprites_data, "generate_dsprites", no_render)
    ds = build_dataset("dsprites", data_dir=tmp_path, image_size=64, channels=1, limit=2048)
    assert len(ds) == 2048
    got = np.stack([ds[i][0].numpy() for i in range(0, 2048, 97)])
    assert np.array_equal(got, expected)


# --------------------------------------------------------------------------------------- celeba


def _celeba_jpeg(path: Path, seed: int) -> None:
    # 178x218 like CelebA; the 140x140 centre crop box (left 19, top 39) is red, the rest blue.
    a = np.zeros((218, 178, 3), np.uint8)
    a[..., 2] = 255
    a[39:179, 19:159] = (255, 0, 0)
    a[100:110, 80:90, 1] = seed * 40  # make files differ
    Image.fromarray(a).save(path, quality=95, subsampling=0)  # 4:4:4: no chroma bleed at the box


def test_celeba(tmp_path: Path) -> None:
    img_dir = tmp_path / "img_align_celeba"
    img_dir.mkdir()
    for i in range(5):
        _celeba_jpeg(img_dir / f"{i + 1:06d}.jpg", i)
    (img_dir / "notes.txt").write_text("ignored")
    for size in (64, 128):
        ds = build_dataset("celeba", data_dir=tmp_path, image_size=size, channels=3)
        assert len(ds) == 5
        x = ds[0]
        _check_item(x, 3, size)
        # Whole output red, including its border rows/cols: the crop was the centre box.
        for edge in (x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]):
            assert edge[0].mean() > 0.85 and edge[2].mean() < 0.15
    gray = build_dataset("celeba", data_dir=img_dir, image_size=64, channels=1, limit=2)  # the folder itself
    assert len(gray) == 2
    _check_item(gray[1], 1, 64)
    assert abs(float(gray[1].mean()) - 0.299) < 0.05  # luma of pure red

    (tmp_path / "list_eval_partition.txt").write_text(
        "000001.jpg 0\n000002.jpg 0\n000003.jpg 1\n000004.jpg 2\n000005.jpg 2\n000099.jpg 2\n"
    )
    sizes = {
        s: len(build_dataset("celeba", data_dir=tmp_path, image_size=64, channels=3, split=s))
        for s in ("train", "valid", "test")
    }
    assert sizes == {"train": 2, "valid": 1, "test": 2}


def test_celeba_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="img_align_celeba"):
        build_dataset("celeba", data_dir=tmp_path, image_size=64, channels=3)
    with pytest.raises(DataError, match="64 or 128"):
        build_dataset("celeba", data_dir=tmp_path, image_size=32, channels=3)
    (tmp_path / "img_align_celeba").mkdir()
    _celeba_jpeg(tmp_path / "img_align_celeba" / "000001.jpg", 0)
    with pytest.raises(DataError, match="list_eval_partition"):
        build_dataset("celeba", data_dir=tmp_path, image_size=64, channels=3, split="test")


# --------------------------------------------------------------------------------------- folder


def _image_tree(root: Path) -> None:
    root.mkdir()
    rgba = np.zeros((30, 40, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 255
    rgba[:, :10, 3] = 0  # left quarter transparent -> white
    Image.fromarray(rgba, "RGBA").save(root / "a_rgba.png")
    Image.fromarray(np.full((20, 20), 128, np.uint8), "L").save(root / "b_gray.JPG")
    (root / "sub" / "deeper").mkdir(parents=True)
    wide = np.zeros((20, 60, 3), np.uint8)  # thirds: red | green | blue
    wide[:, :20, 0] = wide[:, 20:40, 1] = wide[:, 40:, 2] = 255
    Image.fromarray(wide).save(root / "sub" / "deeper" / "c_wide.png")
    (root / "bad.png").write_bytes(b"this is not a png")
    good = (root / "a_rgba.png").read_bytes()
    (root / "sub" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "readme.txt").write_text("not an image")


def test_folder(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    _image_tree(root)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        ds = build_dataset("folder", data_dir=root, image_size=16, channels=3)
        items = [ds[i] for i in range(len(ds))]
    assert len(ds) == 3
    msgs = [str(x.message) for x in w]
    assert len(msgs) == 1 and str(root) in msgs[0], msgs
    assert "skipped 3 of 6 files: 2 unreadable (bad.png, sub/truncated.png), 1 not an image (readme.txt)" in msgs[0]
    for x in items:
        _check_item(x, 3, 16)
    rgba, gray, wide = items  # sorted walk: a_rgba.png, b_gray.JPG, sub/deeper/c_wide.png
    assert torch.allclose(rgba[:, :, 0], torch.ones(3, 16))  # transparent -> white
    assert torch.allclose(rgba[:, :, -1], torch.tensor([1.0, 0.0, 0.0]).view(3, 1))
    assert abs(float(gray.mean()) - 128 / 255) < 0.02 and torch.allclose(gray[0], gray[2])
    # Short side (20) -> 16, then centre crop: only the green third survives.
    assert torch.allclose(wide[:, :, 3:13].mean((1, 2)), torch.tensor([0.0, 1.0, 0.0]), atol=0.02)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds1 = build_dataset("folder", data_dir=root, image_size=8, channels=1)
    _check_item(ds1[1], 1, 8)
    assert abs(float(ds1[1].mean()) - 128 / 255) < 0.02


def test_folder_modes(tmp_path: Path) -> None:
    # 4x4 images at image_size 4: no resampling, so exact values can be checked.
    a16 = np.full((4, 4), 65535, np.uint16)
    a16[:, :2] = 32768
    Image.fromarray(a16).save(tmp_path / "g16.png")  # 16-bit: scaled, not clipped at 255
    la = np.stack([np.zeros((4, 4), np.uint8), np.full((4, 4), 255, np.uint8)], -1)
    la[0, 0, 1] = 0  # one transparent pixel
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    pal = Image.fromarray(np.tile(np.array([[0, 1, 1, 1]], np.uint8), (4, 1)), "P")
    pal.putpalette([0, 255, 0] + [0, 0, 255] + [0] * 762)  # index 0 green but transparent, 1 blue
    pal.save(tmp_path / "pal.png", transparency=0)
    ds = build_dataset("folder", data_dir=tmp_path, image_size=4, channels=3)
    g16, la_x, pal_x = (ds[i] for i in range(3))  # sorted: g16.png, la.png, pal.png
    assert torch.allclose(g16[:, :, :2], torch.full((3, 4, 2), 32768 / 65535), atol=1e-4)
    assert torch.allclose(g16[:, :, 2:], torch.ones(3, 4, 2))
    assert torch.equal(la_x[:, 0, 0], torch.ones(3)) and float(la_x[:, 1:].max()) == 0.0
    assert torch.equal(pal_x[:, :, 0], torch.ones(3, 4))  # transparent -> white, not green
    assert torch.equal(pal_x[:, :, 1:], torch.tensor([0.0, 0.0, 1.0]).view(3, 1, 1).expand(3, 4, 3))
    gray = build_dataset("folder", data_dir=tmp_path, image_size=4, channels=1)[0]
    assert gray.shape == (1, 4, 4)
    assert torch.allclose(gray[0, :, :2], torch.full((4, 2), 32768 / 65535), atol=1e-4)


def test_folder_undetected_damage_falls_back(tmp_path: Path) -> None:
    # verify() does not decode JPEG bodies: a truncated one is only found in __getitem__, which
    # must then warn and serve the next image instead of failing.
    buf = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buf, "JPEG")
    (tmp_path / "a.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])  # headers intact
    Image.fromarray(np.full((32, 32, 3), 255, np.uint8)).save(tmp_path / "b.png")
    ds = build_dataset("folder", data_dir=tmp_path, image_size=8, channels=3)
    with pytest.warns(UserWarning, match="cannot decode .*a.jpg"):
        x = ds[0]
    assert torch.equal(x, torch.ones(3, 8, 8))  # b.png


def test_folder_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="empty"):
        build_dataset("folder", data_dir=empty, image_size=16, channels=3)
    txt = tmp_path / "txt"
    txt.mkdir()
    (txt / "a.txt").write_text("x")
    with pytest.raises(DataError, match="no image files"):
        build_dataset("folder", data_dir=txt, image_size=16, channels=3)
    with pytest.raises(DataError, match="does not exist"):
        build_dataset("folder", data_dir=tmp_path / "missing", image_size=16, channels=3)
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "x.png").write_bytes(b"nope")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an all-bad folder is one error, with no warning before it
        with pytest.raises(DataError, match=r"no image files to train on .*1 unreadable \(x.png\)"):
            build_dataset("folder", data_dir=only_bad, image_size=16, channels=3)


# ---------------------------------------------------------------------------------- make_loader


class _Indices(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 50

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor(i)


def _order(loader) -> list[int]:
    return torch.cat(list(loader)).tolist()


def test_make_loader() -> None:
    ds = _Indices()
    a = _order(make_loader(ds, 8, seed=3))
    assert a == _order(make_loader(ds, 8, seed=3))
    assert len(a) == 48 and len(set(a)) == 48  # drop_last
    assert a != sorted(a) and a != _order(make_loader(ds, 8, seed=4))
    assert _order(make_loader(ds, 8, shuffle=False, drop_last=False)) == list(range(50))
    sampler = torch.utils.data.SequentialSampler(range(10))
    assert _order(make_loader(ds, 5, sampler=sampler)) == list(range(10))  # sampler overrides shuffle
    with pytest.raises(DataError, match="batch_size 64"):
        make_loader(ds, 64)
