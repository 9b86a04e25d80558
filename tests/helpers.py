"""Shared test helpers (plain functions; the fixtures that use them are in conftest.py).

Import them as ``from helpers import ...``: setup.cfg puts tests/ on the path (``pythonpath = tests``).
The tests use bavae's public API, the CLI in subprocesses and files on disk; a helper that had to reach a private
function would live here only, so that a rename there is a one-line fix here.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FIX = "apt-get install -y dataset-fashion-mnist"

# The one tiny model: a few thousand parameters, fast to build and run on a busy CPU.
TINY = dict(arch="dcgan", image_size=32, channels=1, latent_dim=4, posterior_noise_dim=4, width=4)


# ------------------------------------------------------------------------------------------------ models
def tiny_config(**overrides: Any):
    """A tiny BAVAEConfig (``TINY`` with ``overrides``)."""
    from bavae import BAVAEConfig

    return BAVAEConfig(**{**TINY, **overrides})


def tiny_model(seed: int = 0, **overrides: Any):
    """A tiny BAVAE in eval mode, its weights drawn with ``torch.manual_seed(seed)``."""
    from bavae import BAVAE

    torch.manual_seed(seed)
    return BAVAE(tiny_config(**overrides)).eval()


def save_tiny(folder: str | os.PathLike, seed: int = 0, **overrides: Any):
    """A tiny model saved to ``folder`` (config.json + model.safetensors); returns the model."""
    model = tiny_model(seed, **overrides)
    model.save_pretrained(folder)
    return model


def same_weights(a: Any, b: Any) -> bool:
    """Two models, or two state dicts, hold the same tensors under the same names."""
    sa = a.state_dict() if hasattr(a, "state_dict") else a
    sb = b.state_dict() if hasattr(b, "state_dict") else b
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)


def weight_distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], prefixes: tuple[str, ...] = ("",)) -> float:
    """L2 distance between two state dicts over the floating-point tensors whose names start with ``prefixes``."""
    keys = [k for k in a if k.startswith(prefixes) and a[k].is_floating_point()]
    assert keys and set(keys) <= set(b), "the state dicts do not match"
    return float(sum((a[k].double() - b[k].double()).pow(2).sum() for k in keys).sqrt())


# ------------------------------------------------------------------------------------------------ data
def images(n: int, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    """Random float images in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, size, size, generator=g)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def require_fashion_mnist() -> Path:
    """The installed Fashion-MNIST folder; a missing one fails the test with the command that installs it."""
    files = [
        FASHION_MNIST_DIR / f"{p}-{k}-idx{d}-ubyte.gz"
        for p in ("train", "t10k")
        for k, d in (("images", 3), ("labels", 1))
    ]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        import pytest

        pytest.fail(
            f"Fashion-MNIST is not installed ({', '.join(missing)} missing): {FASHION_MNIST_FIX}", pytrace=False
        )
    return FASHION_MNIST_DIR


def require_bundled_default() -> str:
    """The default model's name, after checking its files are bundled; fails the test naming the fix if not."""
    from bavae import zoo

    folder = zoo.bundled_root() / zoo.DEFAULT_MODEL
    missing = [f for f in ("config.json", "model.safetensors", "README.md") if not (folder / f).is_file()]
    if missing:
        import pytest

        pytest.fail(
            f"the bundled default model is incomplete: {', '.join(missing)} missing from {folder}; restore "
            "weights/ (git checkout -- weights) and reinstall (make install)",
            pytrace=False,
        )
    return zoo.DEFAULT_MODEL


def fashion_mnist(n: int, split: str = "train", image_size: int = 28, offset: int = 0) -> torch.Tensor:
    """``n`` Fashion-MNIST images from ``offset`` on, float (n, 1, image_size, image_size) in [0, 1]."""
    from bavae.data import build_dataset

    require_fashion_mnist()
    ds = build_dataset("fashion-mnist", image_size=image_size, channels=1, split=split, limit=offset + n)
    return torch.stack([ds[i] for i in range(offset, offset + n)])


def read_idx_images(path: Path, n: int) -> torch.Tensor:
    """The first ``n`` images of an IDX file, read with gzip and numpy only (not through bavae.data): uint8
    (n, 28, 28)."""
    import gzip

    import numpy as np

    with gzip.open(path, "rb") as f:
        header = f.read(16)
        assert int.from_bytes(header[:4], "big") == 2051, path
        rows, cols = int.from_bytes(header[8:12], "big"), int.from_bytes(header[12:16], "big")
        data = np.frombuffer(f.read(n * rows * cols), dtype=np.uint8)
    return torch.from_numpy(data.copy()).view(n, rows, cols)


# ------------------------------------------------------------------------------------------------ processes
def clean_env(hf_home: str | os.PathLike | None = None, **extra: Any) -> dict[str, str]:
    """The environment for a subprocess: os.environ without HF_*, HUGGINGFACE_* and BAVAE_* (the shell's
    settings must not leak into a test), one thread per process, no telemetry, the test session's dataset cache;
    ``hf_home`` gives the subprocess its own Hugging Face home; ``extra`` is set on top (None removes a key)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "BAVAE_"))}
    env.update(
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HOME=str(hf_home) if hf_home is not None else os.environ["HF_HOME"],
    )
    if os.environ.get("BAVAE_CACHE"):  # the session's dSprites cache (conftest): each process need not render it
        env["BAVAE_CACHE"] = os.environ["BAVAE_CACHE"]
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def run(
    *cmd: Any, env: dict[str, str] | None = None, cwd: Any = None, timeout: float = 300, warm: bool = True
) -> subprocess.CompletedProcess:
    """Run a command (``cmd[0]`` may be ``sys.executable`` or a script) and capture its text output.

    ``python -m bavae...`` and ``python script.py`` are forked from a warm interpreter (tests/warm_python.py:
    torch already imported), a real process all the same; ``warm=False`` (a test that times a cold start) or ``TESTS_COLD_PYTHON=1`` in the shell
    starts a fresh interpreter instead."""
    argv = [str(c) for c in cmd]
    env = env if env is not None else clean_env()
    if argv[0] == sys.executable and len(argv) > 2 and warm and not COLD:
        folder = os.fspath(cwd) if cwd is not None else os.getcwd()
        if argv[1] == "-m" and argv[2].split(".")[0] == "bavae":
            return _warm.run(argv, dict(module=argv[2], args=argv[3:]), env, folder, timeout)
        if argv[1].endswith(".py") and Path(folder, argv[1]).is_file():  # an example or benchmark script
            return _warm.run(argv, dict(script=argv[1], args=argv[2:]), env, folder, timeout)
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


COLD = bool(os.environ.get("TESTS_COLD_PYTHON"))  # a fresh interpreter for every child, as before


class WarmPython:
    """One tests/warm_python.py server per test process, started on first use, one request at a time."""

    def __init__(self) -> None:
        self.server: subprocess.Popen | None = None
        self.folder = Path(tempfile.mkdtemp(prefix="bavae-tests-warm-"))
        self.calls = 0
        atexit.register(self.stop)

    def start(self) -> subprocess.Popen:
        if self.server is None or self.server.poll() is not None:
            self.server = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("warm_python.py"))],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=clean_env(),
                text=True,
            )
            assert json.loads(self.server.stdout.readline()) == {"ready": True}, "tests/warm_python.py did not start"
        return self.server

    def stop(self) -> None:
        """Close the server's stdin: it kills a child still running and ends (also after an interrupted call, so
        that the next call starts a new server instead of reading this call's answer)."""
        if self.server is not None:
            with contextlib.suppress(OSError):
                self.server.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.server.wait(timeout=10)
            if self.server.poll() is None:
                self.server.kill()
            self.server = None

    def run(
        self, argv: list[str], what: dict, env: dict[str, str], cwd: str, timeout: float
    ) -> subprocess.CompletedProcess:
        self.calls += 1
        out, err = self.folder / f"{self.calls}.stdout", self.folder / f"{self.calls}.stderr"
        request = dict(**what, env=env, cwd=cwd, stdout=str(out), stderr=str(err), timeout=timeout)
        try:
            server = self.start()
            server.stdin.write(json.dumps(request) + "\n")
            server.stdin.flush()
            answer = server.stdout.readline()
        except BaseException:
            self.stop()
            raise
        if not answer:
            self.stop()
            raise RuntimeError("tests/warm_python.py stopped")
        reply = json.loads(answer)
        stdout, stderr = (f.read_text(errors="replace") if f.exists() else "" for f in (out, err))
        out.unlink(missing_ok=True)
        err.unlink(missing_ok=True)
        if reply["timed_out"]:
            raise subprocess.TimeoutExpired(argv, timeout, stdout, stderr)
        return subprocess.CompletedProcess(argv, reply["returncode"], stdout, stderr)


_warm = WarmPython()


def bavae_cli(*args: Any, **kw: Any) -> subprocess.CompletedProcess:
    """``python -m bavae ARGS`` (the real entry point, in a subprocess)."""
    return run(sys.executable, "-m", "bavae", *args, **kw)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc


def assert_one_line_error(proc: subprocess.CompletedProcess, *expected: str, code: int | None = None) -> str:
    """The command failed (with ``code`` if given) and said why in exactly one line on stderr, with no traceback,
    the line holding ``error`` and every ``expected`` string. Returns that line."""
    if code is None:
        assert proc.returncode != 0, f"expected a failure, got exit 0:\n{proc.stdout[-2000:]}"
    else:
        assert proc.returncode == code, f"expected exit {code}, got {proc.returncode}:\n{proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{proc.stderr[-3000:]}"
    assert "error" in lines[0], lines[0]
    for e in expected:
        assert e in lines[0], f"{e!r} is not in {lines[0]!r}"
    return lines[0]


# ------------------------------------------------------------------------------------------------ commands
def model_config_of_command(command: str):
    """The BAVAEConfig a fresh `bavae train ...` command line builds (parsed by the command itself, nothing run)."""
    import shlex

    from bavae import train_cli

    argv = shlex.split(command)
    assert argv[:2] == ["bavae", "train"], command
    params = train_cli.train_command.make_context("bavae train", argv[2:]).params  # parsed, not validated: no data
    return train_cli.options_config(params).model_config()


def as_a_foreground_job() -> None:
    """``preexec_fn`` for a child that a test will Ctrl-C: its SIGINT back at the default, as a terminal's shell
    leaves it for the command it runs. A test runner started in the background by a non-interactive shell (CI,
    `make test &`) ignores SIGINT, every process it starts inherits that, and bavae, rightly, keeps ignoring it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def signal_when(proc: subprocess.Popen, ready: Callable[[], bool], signum: int, what: str, wait: float = 120):
    """Send ``signum`` to a running ``proc`` once ``ready()`` (within ``wait`` seconds, the process still running);
    returns its (stdout, stderr) once it ended. The process is killed if the test fails before that."""
    deadline = time.monotonic() + wait
    try:
        while not ready():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, f"{what} in {wait:g} s"
            time.sleep(0.02)
        proc.send_signal(signum)
        return proc.communicate(timeout=wait)
    finally:
        if proc.poll() is None:
            proc.kill()
