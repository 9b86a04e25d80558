"""The wheel, as a user gets it: built from the sources, installed into a fresh venv, used from another folder.

The fresh venv gets bavae only from the wheel. Its dependencies (torch & co., hundreds of MB) are borrowed from
the test venv through a plain path entry in a .pth file: a path entry does not run that venv's own .pth files,
so the editable install of the checkout stays invisible and `import bavae` can only find the wheel's copy.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["bavae", "weights", "setup.cfg", "pyproject.toml", "README.md", "LICENSE"]
MAX_WHEEL_MB = 50


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


def test_fresh_venv_samples_offline_from_another_folder(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "BAVAE_", "PYTHON"))}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    where = subprocess.run(
        [python, "-c", "import bavae; print(bavae.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(venv), f"bavae came from {where.stdout} instead of the wheel"

    listed = subprocess.run(
        [venv / "bin" / "bavae", "list"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0, listed.stderr
    assert "bavae-fashionmnist32" in listed.stdout and "bavae-celeba64" in listed.stdout

    if not (ROOT / "weights" / "bavae-fashionmnist32" / "model.safetensors").is_file():
        pytest.skip("the default model's weights are not bundled in this checkout")
    proc = subprocess.run(
        [venv / "bin" / "bavae", "sample", "-n", "16", "-o", "grid.png", "--seed", "0"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert Image.open(elsewhere / "grid.png").size == (4 * 34 + 2, 4 * 34 + 2)
