"""The house rules, checked with the tests: the layers of the package (import-linter) and ruff's lint and format.

The layers, top to bottom, are declared in pyproject.toml ([tool.importlinter]); a module imports only from the
layers below its own, at the top of a file or inside a function alike, so no import circle can hide in a function.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(*cmd: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_import_contracts_are_kept():
    p = run(str(BIN / "lint-imports"))
    assert p.returncode == 0, p.stdout + p.stderr


def test_an_upward_import_breaks_the_layers(tmp_path):
    """The contract bites: the model importing the zoo (the circle this layout removed) fails lint-imports."""
    shutil.copytree(ROOT / "bavae", tmp_path / "bavae", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with open(tmp_path / "bavae" / "model.py", "a", encoding="utf-8") as f:
        f.write("\nfrom . import zoo  # noqa: E402,F401\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}  # this copy, ahead of the editable install
    p = run(str(BIN / "lint-imports"), cwd=tmp_path, env=env)
    assert p.returncode != 0 and "bavae.model is not allowed to import bavae.zoo" in p.stdout, p.stdout + p.stderr


def test_ruff_lint():
    p = run(str(BIN / "ruff"), "check", "--no-cache", ".")
    assert p.returncode == 0, p.stdout + p.stderr


def test_ruff_format():
    p = run(str(BIN / "ruff"), "format", "--check", "--no-cache", ".")
    assert p.returncode == 0, "run `ruff format .`:\n" + p.stdout + p.stderr
