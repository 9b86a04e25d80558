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


CHILD = """
import os, sys, threading, time, atexit
what = sys.argv[1]
print("argv", sys.argv[1:], "cwd", os.path.basename(os.getcwd()), "env", os.environ.get("WARM_CHECK"), flush=True)
atexit.register(lambda: print("atexit ran"))
if what == "thread":  # a non-daemon thread: the interpreter waits for it before exiting
    threading.Thread(target=lambda: (time.sleep(0.2), print("thread done", flush=True))).start()
elif what == "code":
    sys.exit(3)
elif what == "text":
    sys.exit("a message")
elif what == "raise":
    raise ValueError("boom")
elif what == "interrupt":
    raise KeyboardInterrupt
"""


@pytest.mark.parametrize("what", ["ok", "thread", "code", "text", "raise", "interrupt"])
def test_a_warm_child_exits_as_a_fresh_interpreter_does(tmp_path, what):
    """helpers.run forks `python script.py` and `python -m bavae` children from tests/warm_python.py: the same
    stdout, stderr (up to the traceback's paths) and exit status as a fresh interpreter, in every way one ends."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = clean_env(WARM_CHECK="seen")
    warm = run(sys.executable, script.name, what, env=env, cwd=tmp_path, warm=True)
    cold = run(sys.executable, script.name, what, env=env, cwd=tmp_path, warm=False)
    assert (warm.returncode, warm.stdout) == (cold.returncode, cold.stdout), (warm, cold)
    assert warm.stderr.strip().splitlines()[-1:] == cold.stderr.strip().splitlines()[-1:], (warm.stderr, cold.stderr)
    assert f"'{what}'] cwd {tmp_path.name} env seen" in warm.stdout and "atexit ran" in warm.stdout
