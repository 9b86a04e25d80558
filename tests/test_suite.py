"""The suite's own promises: the shell's settings cannot change what a test sees, and missing data fails (naming
the fix) instead of skipping."""

import sys
from pathlib import Path

import helpers
import pytest
from helpers import clean_env, run

ROOT = Path(__file__).resolve().parents[1]


def test_the_shells_hub_and_bavae_settings_do_not_reach_the_tests(tmp_path):
    """HF_HUB_OFFLINE, HF_ENDPOINT and BAVAE_* set in the shell: a Hub test and a bundled-weights test still run
    and pass (conftest.py clears them before huggingface_hub is imported, and again for every test)."""
    env = clean_env(
        HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9", BAVAE_WEIGHTS_DIR=tmp_path / "nothing", BAVAE_DEBUG="1"
    )
    proc = run(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-rs",
        "tests/test_hub_server.py::test_download_matches_stored_bytes",
        "tests/test_zoo.py::test_default_model_is_bundled_and_matches_its_record",
        "tests/test_zoo.py::test_bundled_root_is_overridable",
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "3 passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-3000:]


def test_missing_fashion_mnist_fails_naming_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(helpers, "FASHION_MNIST_DIR", tmp_path / "fashion-mnist")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y dataset-fashion-mnist"):
        helpers.require_fashion_mnist()


def test_missing_bundled_weights_fail_naming_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("BAVAE_WEIGHTS_DIR", str(tmp_path))  # an install without its weights/
    with pytest.raises(pytest.fail.Exception, match=r"model\.safetensors.*git checkout -- weights"):
        helpers.require_bundled_default()
