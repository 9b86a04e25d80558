"""The `bavae` command, run as users run it: the real entry point in a subprocess (`python -m bavae`, and the
installed `bavae` script for the cold-start timing). No network: HF_HUB_OFFLINE=1 and an empty bundled folder,
models are tiny folders made here (the default model's real weights are used when they are bundled)."""

import importlib.util
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_one_line_error, bavae_cli, clean_env, ok, run, save_tiny
from PIL import Image

from bavae import zoo
from bavae.images import make_grid, to_uint8

BAVAE_SCRIPT = Path(sys.executable).parent / "bavae"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Offline, with an empty bundled-weights folder: only the models made here exist."""
    base = tmp_path_factory.mktemp("env")
    (base / "no-bundled").mkdir()
    return clean_env(base / "hf", HF_HUB_OFFLINE="1", BAVAE_WEIGHTS_DIR=base / "no-bundled")


@pytest.fixture(scope="module")
def gray(tmp_path_factory) -> Path:
    """A tiny 32px grayscale model folder."""
    folder = tmp_path_factory.mktemp("models") / "gray"
    save_tiny(folder, seed=0)
    return folder


@pytest.fixture(scope="module")
def rgb(tmp_path_factory) -> Path:
    """A tiny 64px RGB model folder."""
    folder = tmp_path_factory.mktemp("models") / "rgb"
    save_tiny(folder, seed=1, image_size=64, channels=3)
    return folder


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> dict[str, Path]:
    """User pictures of odd sizes and modes, PNG and JPEG."""
    d = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(0)
    u8 = lambda *shape: rng.integers(0, 256, shape, dtype=np.uint8)  # noqa: E731
    transparent = np.zeros((40, 30, 4), np.uint8)
    files = {
        "rgba": (Image.fromarray(u8(37, 53, 4), "RGBA"), "rgba.png"),
        "clear": (Image.fromarray(transparent, "RGBA"), "clear.png"),  # fully transparent: white after compositing
        "palette": (Image.fromarray(u8(40, 29, 3)).convert("P"), "palette.png"),
        "gray": (Image.fromarray(u8(81, 64), "L"), "gray.jpg"),
        "wide": (Image.fromarray(u8(20, 100, 3)), "wide.jpeg"),
        "deep": (Image.fromarray(rng.integers(0, 65536, (33, 33), dtype=np.uint16)), "deep16.png"),
        "cmyk": (Image.fromarray(u8(50, 50, 4), "CMYK"), "cmyk.jpg"),
        "speck": (Image.fromarray(u8(5, 7, 3)), "speck.png"),  # smaller than the model: upscaled
    }
    out = {}
    for key, (im, name) in files.items():
        im.save(d / name)
        out[key] = d / name
    (d / "folder").mkdir()
    shutil.copy(out["gray"], d / "folder" / "a.jpg")
    shutil.copy(out["rgba"], d / "folder" / "b.png")
    (d / "folder" / "notes.md").write_text("not a picture, ignored in folders")
    out["folder"] = d / "folder"
    (d / "notes.txt").write_text("not a picture")
    out["text"] = d / "notes.txt"
    good = (d / "speck.png").read_bytes()
    (d / "broken.png").write_bytes(good[:40] + b"\0" * (len(good) - 40))  # valid header, garbage body
    out["broken"] = d / "broken.png"
    return out


def bavae(*args, env, cwd=None, script=False, warm=True) -> subprocess.CompletedProcess:
    """The command in a subprocess: ``python -m bavae``, or the installed ``bavae`` script (always a fresh
    interpreter; ``warm=False`` makes ``python -m bavae`` one too)."""
    if script:
        return run(BAVAE_SCRIPT, *args, env=env, cwd=cwd, timeout=120)
    return bavae_cli(*args, env=env, cwd=cwd, timeout=120, warm=warm)


# ------------------------------------------------------------------------------------------------ cheap commands
def test_help_version_list_info_need_no_torch(env):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bavae", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "train" in proc.stdout and "sample" in proc.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert not {"torch", "bavae.train", "bavae.eval", "torchvision", "huggingface_hub"} & imported
    # the light tier (the CLI, the configs, the zoo's records, the leaves): none of the heavy modules or libraries
    assert not {"bavae.train_cli", "bavae.model", "bavae.hub", "bavae.data", "numpy", "safetensors"} & imported
    assert ok(bavae("--version", env=env)).stdout.strip() == "bavae 0.1.0"
    listed = ok(bavae("list", env=env)).stdout
    assert "bavae-fashionmnist32" in listed and "bavae-celeba64" in listed
    assert ok(bavae("list", "*celeba*", env=env)).stdout.splitlines()[0].startswith("bavae-celeba64")
    info = ok(bavae("info", "bavae-celeba64", env=env)).stdout
    assert zoo.model_info("bavae-celeba64").train_command in info and "bavae push runs/celeba64" in info
    assert json.loads(ok(bavae("info", "bavae-celeba64", "--json", env=env)).stdout)["config"]["image_size"] == 64


# ------------------------------------------------------------------------------------------------ sample
def test_sample_png_grid_and_npz(env, gray, tmp_path):
    ok(bavae("sample", "-m", gray, "-n", 64, "-o", tmp_path / "grid.png", "--seed", 0, env=env))
    grid = Image.open(tmp_path / "grid.png")
    assert grid.size == (8 * 34 + 2, 8 * 34 + 2) and grid.mode == "L"  # 8x8 tiles of 32px, 2px padding
    ok(bavae("sample", "-m", gray, "-n", 64, "-o", tmp_path / "grid.data", "--format", "npz", "--seed", 0, env=env))
    with np.load(tmp_path / "grid.data") as data:
        images = data["images"]
    assert images.shape == (64, 1, 32, 32) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 1
    # same seed, same images: the PNG is the npz's grid
    expected = to_uint8(make_grid(torch.from_numpy(images), 8))[..., 0]
    assert np.array_equal(np.asarray(grid), expected)


def test_sample_seed_is_a_torch_generator_seed(env, gray, tmp_path):
    def sample(*seed):
        out = tmp_path / f"s{len(list(tmp_path.iterdir()))}.npz"
        ok(bavae("sample", "-m", gray, "-n", 6, "-o", out, *seed, env=env))
        with np.load(out) as data:
            return torch.from_numpy(data["images"])

    model = zoo.load(gray, device="cpu")
    s0, s1 = sample("--seed", 0), sample("--seed", 1)
    # the same draws; the last bit may differ, since this process and the CLI's may run convolutions on different
    # thread counts (the CLI's children run on one)
    torch.testing.assert_close(s0, model.sample(6, generator=torch.Generator().manual_seed(0)), rtol=0, atol=1e-6)
    torch.testing.assert_close(s1, model.sample(6, generator=torch.Generator().manual_seed(1)), rtol=0, atol=1e-6)
    assert not torch.equal(s0, s1)
    unseeded = sample()  # no --seed: fresh noise, not a fixed seed's
    assert not torch.equal(unseeded, s0) and not torch.equal(unseeded, s1)


# ------------------------------------------------------------------------------------------------ user pictures
def test_reconstruct_pictures_of_any_size_and_mode(env, rgb, pictures, tmp_path):
    names = ["rgba", "clear", "palette", "gray", "wide", "deep", "cmyk", "speck"]
    inputs = [pictures[k] for k in names] + [pictures["folder"]]  # the folder adds a.jpg and b.png
    ok(bavae("reconstruct", *inputs, "-m", rgb, "-o", tmp_path / "r.png", "--seed", 0, env=env))
    n = len(names) + 2
    grid = Image.open(tmp_path / "r.png")  # originals beside reconstructions: 4 pairs per row
    assert grid.mode == "RGB" and grid.size == (8 * 66 + 2, -(-2 * n // 8) * 66 + 2)
    ok(bavae("reconstruct", *inputs, "-m", rgb, "-o", tmp_path / "r.npz", env=env))
    with np.load(tmp_path / "r.npz") as data:
        x, recon, files = data["inputs"], data["images"], list(data["files"])
    assert x.shape == recon.shape == (n, 3, 64, 64) and x.dtype == recon.dtype == np.float32
    assert 0 <= x.min() and x.max() <= 1 and 0 <= recon.min() and recon.max() <= 1
    assert files[-2:] == [str(pictures["folder"] / "a.jpg"), str(pictures["folder"] / "b.png")]
    assert np.all(x[names.index("clear")] == 1.0)  # transparency composited on white
    g = x[names.index("gray")]
    assert np.array_equal(g[0], g[1]) and np.array_equal(g[1], g[2])  # grayscale -> 3 equal channels


def test_interpolate(env, gray, pictures, tmp_path):
    ok(
        bavae(
            "interpolate",
            pictures["wide"],
            pictures["rgba"],
            "--steps",
            5,
            "-m",
            gray,
            "-o",
            tmp_path / "i.png",
            env=env,
        )
    )
    assert Image.open(tmp_path / "i.png").size == (7 * 34 + 2, 34 + 2)  # A, 5 decodings, B


def test_encode_decode_round_trip(env, gray, pictures, tmp_path):
    files = [pictures["gray"], pictures["palette"], pictures["speck"]]
    ok(bavae("encode", *files, "-m", gray, "-o", tmp_path / "codes.npz", "--seed", 0, env=env))
    with np.load(tmp_path / "codes.npz") as data:
        codes, names = data["codes"], list(data["files"])
    assert codes.shape == (3, 4) and codes.dtype == np.float32 and names == [str(f) for f in files]
    ok(bavae("decode", tmp_path / "codes.npz", "-o", tmp_path / "decoded.npz", env=env))  # model from the npz
    with np.load(tmp_path / "decoded.npz") as data:
        images = data["images"]
    model = zoo.load(gray, device="cpu")
    assert np.allclose(images, model.decode(torch.from_numpy(codes)).numpy(), atol=1e-6)
    ok(bavae("decode", tmp_path / "codes.npz", "-o", tmp_path / "decoded.png", env=env))
    assert Image.open(tmp_path / "decoded.png").size == (2 * 34 + 2, 2 * 34 + 2)


# ------------------------------------------------------------------------------------------------ errors
ERRORS = {
    "unknown model": (
        ["sample", "-m", "bavae-fashionmnst32", "-o", "{out}/x.png"],
        "did you mean 'bavae-fashionmnist32'",
    ),
    "missing folder": (["sample", "-m", "./no/such/model", "-o", "{out}/x.png"], "no model folder"),
    "output folder missing": (["sample", "-m", "{gray}", "-o", "{out}/missing/x.png"], "does not exist"),
    "output under a file": (["sample", "-m", "{gray}", "-o", "{text}/x.png"], "is not a folder"),
    "n zero": (["sample", "-m", "{gray}", "-n", "0", "-o", "{out}/x.png"], "'-n'"),
    "n negative": (["sample", "-m", "{gray}", "-n", "-5", "-o", "{out}/x.png"], "'-n'"),
    "n huge": (["sample", "-m", "{gray}", "-n", "100000", "-o", "{out}/x.png"], "'-n'"),
    "n not a number": (["sample", "-m", "{gray}", "-n", "many", "-o", "{out}/x.png"], "'-n'"),
    "output format": (["sample", "-m", "{gray}", "-o", "{out}/x.jpg"], "unsupported output format '.jpg'"),
    "format option": (["sample", "-m", "{gray}", "-o", "{out}/x.png", "--format", "gif"], "'gif'"),
    "codes must be npz": (["encode", "{rgba}", "-m", "{gray}", "-o", "{out}/x.png"], "use .npz"),
    "input not an image": (["reconstruct", "{text}", "-m", "{gray}", "-o", "{out}/x.png"], "not an image"),
    "input missing": (["reconstruct", "{out}/nope.png", "-m", "{gray}", "-o", "{out}/x.png"], "does not exist"),
    "input broken": (["reconstruct", "{broken}", "-m", "{gray}", "-o", "{out}/x.png"], "cannot read"),
    "codes not npz": (["decode", "{rgba}", "-m", "{gray}", "-o", "{out}/x.png"], "not an npz"),
    "offline weights": (["sample", "-m", "bavae-celeba64", "-o", "{out}/x.png"], "bavae train --dataset celeba"),
    "bad device": (["sample", "-m", "{gray}", "-o", "{out}/x.png", "--device", "tpu9"], "tpu9"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_errors_are_one_line_and_leave_no_output(case, env, gray, pictures, tmp_path):
    args, expected = ERRORS[case]
    paths = {"out": tmp_path, "gray": gray, **{k: v for k, v in pictures.items()}}
    proc = bavae(*[a.format(**paths) for a in args], env=env)
    line = assert_one_line_error(proc, "error:", expected)
    assert proc.stdout == "" and line.startswith("bavae")
    assert not [p for p in tmp_path.iterdir()]  # no output file, no temporary file left behind


def test_error_in_the_middle_of_writing_leaves_no_file(env, gray, tmp_path):
    # decodable codes of the wrong size: fails after the model loaded, right before writing
    np.savez(tmp_path / "codes.npz", codes=np.zeros((2, 7), np.float32))
    proc = bavae("decode", tmp_path / "codes.npz", "-m", gray, "-o", tmp_path / "x.png", env=env)
    assert_one_line_error(proc, "shape (N, 4)")
    assert [p.name for p in tmp_path.iterdir()] == ["codes.npz"]


def test_debug_shows_the_traceback(env, tmp_path):
    proc = bavae("sample", "-m", "bavae-fashionmnst32", "-o", tmp_path / "x.png", env={**env, "BAVAE_DEBUG": "1"})
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "UnknownModelError" in proc.stderr


def test_lazy_commands_fail_in_one_line_when_missing(env):
    for name in ("train",):
        if importlib.util.find_spec(f"bavae.{name}") is None:
            assert_one_line_error(bavae(name, "--help", env=env), f"`bavae {name}` is not available")
        else:
            assert ok(bavae(name, "--help", env=env)).stdout.startswith("Usage: bavae " + name)


# ------------------------------------------------------------------------------------------------ speed
@pytest.mark.timing  # run alone by `make test`: it compares wall times
@pytest.mark.slow  # 12-25 s on 2 busy cores: 6 cold processes
def test_cold_start_sample_64_is_fast(env, tmp_path, bundled_default):
    """A new process, imports included, sampling from the bundled default model.

    The issue's budget is 3 s on the CPU. `import torch` alone takes 1-3.5 s depending on the machine, so the
    test measures that baseline in the same run and bounds what bavae adds on top of it (model, sampling, PNG):
    under 1.5 s. On a machine where torch imports in 1 s that is the 3 s budget with room to spare.
    """
    env = {k: v for k, v in env.items() if k != zoo.WEIGHTS_DIR_ENV}  # the installed package's bundled weights

    def best_of_3(command) -> float:  # a shared 2-core machine: the best of 3 measures the code, not the neighbours
        times = []
        for _ in range(3):
            start = time.perf_counter()
            command()
            times.append(time.perf_counter() - start)
        return min(times)

    torch_import = best_of_3(lambda: ok(run(sys.executable, "-c", "import torch", env=env)))
    sample = best_of_3(
        lambda: ok(
            bavae("sample", "-n", 64, "-o", tmp_path / "grid.png", env=env, script=BAVAE_SCRIPT.exists(), warm=False)
        )
    )
    assert Image.open(tmp_path / "grid.png").size == (274, 274)
    print(f"\ncold `bavae sample -n 64`: {sample:.2f} s; `python -c 'import torch'`: {torch_import:.2f} s")
    assert sample - torch_import < 1.5, f"cold sample {sample:.2f} s vs import torch {torch_import:.2f} s"
