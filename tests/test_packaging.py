"""The wheel, as a user gets it: built from the sources, installed into a fresh venv, used from another folder.

The fresh venv holds the wheel and exactly its ``install_requires`` (with their own requirements), nothing else:
no test or train extras (pyyaml, tensorboard, scikit-learn), no docs tools. Installing them from an index is not
possible here (no network), so they are taken from the test venv: each required distribution's files (from its
RECORD) are linked into one folder that the fresh venv reads through a .pth path entry. A missing
``install_requires`` entry, or a core module importing an extra, fails here as it would for a user.
"""

import json
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

import pytest
from helpers import clean_env, ok, run
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["bavae", "weights", "setup.cfg", "pyproject.toml", "README.md", "LICENSE"]
MAX_WHEEL_MB = 50
# Extras' modules, which must not be importable there (pyyaml is not one: huggingface-hub requires it).
EXTRAS_ONLY = ("tensorboard", "sklearn", "mkdocs", "pythae", "pytest")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:  # a copy: building in place would leave build/ and *.egg-info in the checkout
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(path, src / name)
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(out),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (whl,) = out.glob("bavae-*.whl")
    return whl


def install_requires(whl: Path) -> list[Requirement]:
    """The wheel's own Requires-Dist entries that apply without extras."""
    with zipfile.ZipFile(whl) as z:
        meta = Parser().parsestr(z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode())
    reqs = [Requirement(r) for r in meta.get_all("Requires-Dist") or []]
    return [r for r in reqs if r.marker is None or r.marker.evaluate({"extra": ""})]


def closure(reqs: list[Requirement]) -> list[metadata.Distribution]:
    """The installed distributions that ``reqs`` need, with what they need in turn (no extras)."""
    seen: dict[str, metadata.Distribution] = {}
    todo = list(reqs)
    while todo:
        req = todo.pop()
        key = canonicalize_name(req.name)
        if key in seen:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            pytest.fail(f"{req} is required but not installed in the test venv (make install)")
        seen[key] = dist
        todo += [
            r for r in map(Requirement, dist.requires or []) if r.marker is None or r.marker.evaluate({"extra": ""})
        ]
    return list(seen.values())


def link_tree(src: Path, dst: Path) -> None:
    """Symlink ``src`` at ``dst``; where two distributions share a folder (a namespace), merge their entries."""
    if not dst.exists() and not dst.is_symlink():
        dst.symlink_to(src)
        return
    if not (src.is_dir() and dst.is_dir()):
        return  # the same file from two distributions: the first one stays
    if dst.is_symlink():  # turn the linked folder into a real one holding links to its entries
        first = dst.resolve()
        dst.unlink()
        dst.mkdir()
        for child in first.iterdir():
            (dst / child.name).symlink_to(child)
    for child in src.iterdir():
        link_tree(child, dst / child.name)


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding the wheel and its install_requires closure only."""
    base = tmp_path_factory.mktemp("fresh")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(ok(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")).stdout.strip())
    deps = base / "deps"
    deps.mkdir()
    for dist in closure(install_requires(wheel)):
        assert dist.files, f"{dist.metadata['Name']} has no RECORD: cannot tell its files"
        tops = {f.parts[0] for f in dist.files if f.parts[0] not in ("..", "__pycache__") and f.suffix != ".pth"}
        for top in sorted(tops):
            link_tree(Path(dist.locate_file(top)), deps / top)
    (site / "install_requires.pth").write_text(f"{deps}\n")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    return venv


def test_wheel_holds_the_package_and_the_bundled_weights(wheel):
    size_mb = wheel.stat().st_size / 1e6
    print(f"\n{wheel.name}: {size_mb:.2f} MB")
    assert size_mb < MAX_WHEEL_MB
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"bavae/__init__.py", "bavae/cli.py", "bavae/nets/dcgan.py", "bavae/weights/__init__.py"} <= names
    for folder in sorted(p for p in (ROOT / "weights").iterdir() if (p / "model.safetensors").is_file()):
        for f in ("config.json", "model.safetensors", "README.md"):
            assert f"bavae/weights/{folder.name}/{f}" in names, f"{folder.name}/{f} is not in the wheel"
    assert not any(n.startswith(("tests/", "benchmarks/")) or n.endswith(".pyc") for n in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "bavae = bavae.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


@pytest.mark.slow  # 10-13 s on 2 busy cores, plus 5 s building the venv
def test_install_requires_alone_sample_eval_and_train(venv, tmp_path, bundled_default, fashion_mnist_dir):
    """From another folder, offline, with only what `pip install bavae` brings: the bundled model samples, is
    evaluated, and a 2-step run trains and loads."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = clean_env(tmp_path / "hf", HF_HUB_OFFLINE="1", PYTHONPATH=None, PYTHONHOME=None)
    python, bavae = venv / "bin" / "python", venv / "bin" / "bavae"

    probe = (
        "import importlib.util, json, bavae; print(json.dumps({'bavae': bavae.__file__, 'extras': "
        f"[m for m in {EXTRAS_ONLY!r} if importlib.util.find_spec(m)]}}))"
    )
    found = json.loads(ok(run(python, "-c", probe, env=env, cwd=elsewhere)).stdout)
    assert Path(found["bavae"]).is_relative_to(venv), f"bavae came from {found['bavae']} instead of the wheel"
    assert found["extras"] == [], f"the fresh venv should not have {found['extras']}"

    listed = ok(run(bavae, "list", env=env, cwd=elsewhere)).stdout
    assert bundled_default in listed and "bavae-celeba64" in listed

    ok(run(bavae, "sample", "-n", "16", "-o", "grid.png", "--seed", "0", env=env, cwd=elsewhere))
    assert Image.open(elsewhere / "grid.png").size == (4 * 34 + 2, 4 * 34 + 2)

    report = json.loads(
        ok(
            run(
                bavae,
                "eval",
                bundled_default,
                "--json",
                "--n-samples",
                "100",
                "--n-test",
                "100",
                "--device",
                "cpu",
                env=env,
                cwd=elsewhere,
            )
        ).stdout
    )
    assert report["model"] == bundled_default and 0 < report["recon_mse"] < 1 and report["fid"] > 0

    proc = ok(
        run(
            bavae,
            "train",
            "--dataset",
            "fashion-mnist",
            "--limit",
            "64",
            "--steps",
            "2",
            "--batch-size",
            "8",
            "--width",
            "8",
            "--latent-dim",
            "4",
            "--posterior-noise-dim",
            "4",
            "--sample-every",
            "0",
            "--device",
            "cpu",
            "--out",
            "run",
            env=env,
            cwd=elsewhere,
        )
    )
    # no tensorboard: said once, at the start, and the run goes on without it; the latent sampler needs no extra
    assert proc.stderr.count("tensorboard is not installed") == 1, proc.stderr
    assert "scikit-learn" not in proc.stderr, proc.stderr
    loaded = ok(
        run(
            python,
            "-c",
            "import bavae; m = bavae.load('run'); print(tuple(m.sample(2).shape), m.default_sampler)",
            env=env,
            cwd=elsewhere,
        )
    ).stdout.strip()
    assert loaded == "(2, 1, 32, 32) gmm"  # its default path is the mixture fitted at the end
