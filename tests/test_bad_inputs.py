"""Issue 14: every bad input is refused in one clear line, with nothing trained or written, before heavy work.

The table is tests/bad_inputs.py (also a script: `python tests/bad_inputs.py` prints it with the counts). Here it runs
once per session: each CLI case in its own process (forked from one that has imported bavae and torch, so the table
takes seconds, not minutes), each API case in this process; then one test per row says what went wrong with it.
The rest: the real `python -m bavae` entry point on a few rows, what a failed `bavae train` leaves behind, the
streamed `bavae sample --format npz`, and (issue 22) a real signal to a real `bavae sample`, and a disk too small.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bad_inputs import CASES, make_sandbox, run_matrix, sandbox_env  # tests/ is on sys.path, as for helpers
from helpers import as_a_foreground_job, signal_when


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-inputs")
    return {r.case.id: r for r in run_matrix(root, CASES)}


@pytest.mark.slow  # the table runs once for all its rows: 25-45 s on 2 busy cores (each row then takes no time)
@pytest.mark.parametrize("case", [c.id for c in CASES])
def test_bad_input_is_refused_in_one_line(matrix, case):
    r = matrix[case]
    what = f"{r.case.kind} `{r.case.what}` -> rc {r.rc} ({r.status}): {r.message!r}; wrote {r.written}; did {r.heavy}"
    assert not r.traceback, what
    assert not r.wrong_success, what  # exit status 1 or 2, in time
    assert not r.files_left, what  # nothing created or changed in the sandbox
    assert not r.not_one_line, what  # exactly one line on stderr, nothing on stdout
    assert not r.raw_error, f"{r.error_type}, not a ValueError or TypeError: " + what
    assert not r.wrong_cause, f"expected /{r.case.expect}/: " + what
    assert not r.late, f"refused after heavy work it did not need ({r.case.may} allowed): " + what


def test_the_table_covers_every_input_kind():
    ids = " ".join(c.id for c in CASES)
    for kind in ("model:", "device:", "out:", "image:", "decode:", "train ", "eval:", "push:", "sample:"):
        assert kind in ids, kind
    assert sum(c.kind == "api" for c in CASES) >= 40 and sum(c.kind == "cli" for c in CASES) >= 100


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    root = tmp_path_factory.mktemp("sandbox")
    make_sandbox(root)
    return root


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["sample", "-m", "runs/mnie", "-n", "4", "-o", "x.png"], r"no model folder runs/mnie: it does not exist"),
        (["decode", "nan_codes.npz", "-m", "tiny", "-o", "d.png"], r"nan_codes\.npz.*NaN"),
        (["train", "--epochs", "0", "--out", "runs/e0"], r"--epochs must be a finite number > 0, got 0\.0"),
    ],
)
def test_the_real_entry_point_says_the_same(sandbox, argv, expected):
    """`python -m bavae`, not the table's child process: the same single line, and nothing written."""
    before = sorted(p.relative_to(sandbox) for p in sandbox.rglob("*") if "hf" not in p.parts)
    proc = subprocess.run(
        [sys.executable, "-m", "bavae", *argv], cwd=sandbox, env=sandbox_env(sandbox), capture_output=True, text=True
    )
    assert proc.returncode in (1, 2) and proc.stdout == "", proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(expected, lines[0]) and lines[0].startswith("bavae"), proc.stderr
    assert sorted(p.relative_to(sandbox) for p in sandbox.rglob("*") if "hf" not in p.parts) == before


# ------------------------------------------------------------------------------------------------ failed runs
def _fake_state(out: Path, step: int) -> None:
    from safetensors.numpy import save_file

    out.mkdir(parents=True, exist_ok=True)
    meta = {"bavae_training_state": json.dumps({"step": step})}
    save_file({"x": np.zeros(1, np.float32)}, str(out / "training_state.safetensors"), metadata=meta)
    (out / "config.json").write_text("{}")


def test_a_failed_run_leaves_no_folder_unless_it_can_be_resumed(tmp_path, monkeypatch):
    from bavae import train_cli as train_module

    def fails_at(step: int):
        def train(cfg):
            _fake_state(Path(cfg.out), step)
            (Path(cfg.out) / "samples").mkdir()
            raise train_module.TrainingError("the data went away")

        return train

    # before a checkpoint past step 0: the folder goes, and the error is the failure alone
    out = tmp_path / "early"
    monkeypatch.setattr(train_module, "train", fails_at(0))
    with pytest.raises(train_module.TrainingError, match=r"^the data went away$"):
        train_module._run(train_module.TrainConfig(out=str(out)))
    assert not out.exists()

    # a checkpoint at step 40 is worth resuming: kept, and the error says how
    out = tmp_path / "late"
    monkeypatch.setattr(train_module, "train", fails_at(40))
    with pytest.raises(train_module.TrainingError, match=rf"saved at step 40: .*bavae train --resume {out}`"):
        train_module._run(train_module.TrainConfig(out=str(out)))
    assert (out / "training_state.safetensors").is_file()

    # a folder that was there before keeps what it held; only what the failed run added goes
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    monkeypatch.setattr(train_module, "train", fails_at(0))
    with pytest.raises(train_module.TrainingError):
        train_module._run(train_module.TrainConfig(out=str(out)))
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_a_failed_resume_keeps_the_run(tmp_path, monkeypatch):
    from bavae import train_cli as train_module

    out = tmp_path / "run"
    _fake_state(out, 100)

    def train(cfg):
        raise OSError("disk full")

    monkeypatch.setattr(train_module, "train", train)
    with pytest.raises(train_module.TrainingError, match=rf"disk full; the run is still saved at step 100: .*{out}"):
        train_module._run(train_module.TrainConfig(out=str(out)))
    assert (out / "training_state.safetensors").is_file() and (out / "config.json").is_file()


# ------------------------------------------------------------------------------------------------ npz streaming
_PEAK = """
import resource, sys
from bavae.cli import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def test_sample_npz_streams_any_n_in_bounded_memory(sandbox, tmp_path):
    """20,000 samples (80 MB of float32) cost about what 1,000 do: the npz is written a batch at a time."""
    env = sandbox_env(sandbox)

    def peak_kib(n: int, out: Path) -> int:
        argv = ["sample", "-m", "tiny", "-n", str(n), "-o", str(out), "--seed", "0"]
        proc = subprocess.run(
            [sys.executable, "-c", _PEAK, *argv], cwd=sandbox, env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"wrote {out} (images ({n}, 1, 32, 32) float32")
        return int(proc.stderr.strip().splitlines()[-1])

    small, big = peak_kib(1000, tmp_path / "small.npz"), peak_kib(20_000, tmp_path / "big.npz")
    with np.load(tmp_path / "big.npz") as data:
        images = data["images"]
        assert images.shape == (20_000, 1, 32, 32) and images.dtype == np.float32
        assert 0 <= images.min() and images.max() <= 1 and images[-1].std() > 0  # the last batch is samples too
    growth_mib = (big - small) / 1024
    assert growth_mib < 40, f"peak RSS grew {growth_mib:.0f} MiB from 1,000 to 20,000 samples (80 MB of images)"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_png_grids_stop_at_4096_and_say_so(sandbox):
    proc = subprocess.run(
        [sys.executable, "-m", "bavae", "sample", "-m", "tiny", "-n", "5000", "-o", "x.png"],
        cwd=sandbox,
        env=sandbox_env(sandbox),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "--format npz" in proc.stderr and "at most 4096" in proc.stderr
    assert not (sandbox / "x.png").exists() and os.listdir(sandbox)


# ------------------------------------------------------------------------------------------------ issue 22
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_write_leaves_no_temporary_file(sandbox, tmp_path, signum):
    """A real `bavae sample -o s.npz`, stopped by a real signal while its temporary file grows: the file goes, and
    the process ends as that signal ends it (SIGTERM: killed by it; SIGINT: `bavae: aborted`, exit 130)."""
    out = tmp_path / "s.npz"
    argv = ["sample", "-m", "tiny", "-n", "500000", "-o", str(out), "--seed", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bavae", *argv],
        cwd=sandbox,
        env=sandbox_env(sandbox),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_a_foreground_job,
    )

    def growing() -> bool:
        for p in tmp_path.glob(".s.npz.*.tmp"):
            with contextlib.suppress(OSError):
                if p.stat().st_size > 1 << 20:
                    return True
        return False

    _, err = signal_when(proc, growing, signum, "no temporary file grew past 1 MiB")
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "the temporary file (or a half npz) was left"
    if signum == signal.SIGTERM:
        assert proc.returncode == -signal.SIGTERM, (proc.returncode, err)
    else:
        assert proc.returncode == 130 and err.strip().splitlines() == ["bavae: aborted"], (proc.returncode, err)


_SMALL_DISK = """
mount -t tmpfs -o size=2m bavae-small-disk "$0" || exit 99
"$@" -n 2000 -o "$0/big.npz"; echo "rc $?" >> "$0.log"
ls -A "$0" >> "$0.log"
"$@" -n 100 -o "$0/small.npz"; echo "rc $?" >> "$0.log"
ls -A "$0" >> "$0.log"
"""


def _mount_namespace() -> list[str]:
    """How to run a command in a mount namespace of its own (root's, else a user namespace's), or [] if neither."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    for prefix in ([unshare, "--mount"], [unshare, "--user", "--map-root-user", "--mount"]):
        probe = subprocess.run([*prefix, "true"], capture_output=True)
        if probe.returncode == 0:
            return prefix
    return []


def test_sample_npz_checks_free_disk_before_it_starts(sandbox, tmp_path):
    """On a 2 MB file system (a tmpfs in a mount namespace of its own), 2,000 images (8 MB) are refused in one line
    that names the sizes, before a byte is written; 100 images (410 KB) are written."""
    prefix = _mount_namespace()
    if not prefix:
        pytest.skip("needs unshare (util-linux) and mount namespaces, for a small file system to fill")
    disk = tmp_path / "disk"
    disk.mkdir()
    cmd = [sys.executable, "-m", "bavae", "sample", "-m", "tiny", "--seed", "0"]
    proc = subprocess.run(
        [*prefix, "sh", "-c", _SMALL_DISK, str(disk), *cmd],
        cwd=sandbox,
        env=sandbox_env(sandbox),
        capture_output=True,
        text=True,
        timeout=240,
    )
    if proc.returncode == 99:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    log = (tmp_path / "disk.log").read_text().split()
    assert log == ["rc", "1", "rc", "0", "small.npz"], (log, proc.stderr)
    refusal = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(refusal) == 1, proc.stderr
    assert re.search(r"cannot write .*big\.npz: images .*8\.\d MB, more than the [\d.]+ MB free", refusal[0]), refusal
    assert proc.stdout.startswith("wrote ") and "small.npz" in proc.stdout and "big.npz" not in proc.stdout
