"""The training entrypoint, run for real in subprocesses: datasets, resume after kill -9, fine-tuning, torchrun."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import (
    as_a_foreground_job,
    assert_one_line_error,
    clean_env,
    ok,
    run,
    save_tiny,
    signal_when,
    tiny_model,
    weight_distance,
)
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import bavae
from bavae import train_cli
from bavae.data import build_dataset
from bavae.serialization import read_training_state

TINY_ARGS = ["--width", "8", "--latent-dim", "4", "--posterior-noise-dim", "4", "--batch-size", "8", "--log-every", "1"]
TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent))


def run_train(*args: str, check: bool = True, timeout: float = 240) -> subprocess.CompletedProcess:
    proc = run(sys.executable, "-m", "bavae.train", *args, timeout=timeout)
    return ok(proc) if check else proc


def torchrun(*args: str, nproc: int = 2, timeout: float = 240) -> subprocess.CompletedProcess:
    assert TORCHRUN, "torchrun is installed with torch"
    return ok(
        run(
            TORCHRUN,
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "bavae.train",
            "--device",
            "cpu",
            *args,
            timeout=timeout,
        )
    )


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


def saved_step(out: Path) -> int:
    """The step of the run's checkpoint (training_state.safetensors)."""
    return read_training_state(out / "training_state.safetensors", tensors=False)[1]["step"]


def csv_lines(out: Path) -> list[str]:
    return (out / "metrics.csv").read_text().splitlines()


def logged_steps(out: Path) -> list[int]:
    return [int(r.split(",")[0]) for r in csv_lines(out)[1:]]


def make_folder(root: Path, n: int = 12) -> Path:
    """A folder of photos of assorted sizes and modes, plus a corrupt image and a non-image file."""
    rng = np.random.default_rng(0)
    (root / "nested").mkdir(parents=True)
    for i in range(n):
        size = (40 + 7 * i, 30 + 5 * i)
        arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        img = Image.fromarray(arr).convert(["RGB", "L", "RGBA", "P"][i % 4])
        suffix = "png" if img.mode in ("RGBA", "P") else "jpg"
        img.save(root / ("nested" if i % 5 == 0 else ".") / f"img{i}.{suffix}")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """12 readable photos (and two files that are not): shared, don't modify."""
    return make_folder(tmp_path_factory.mktemp("data") / "photos")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ------------------------------------------------------------------------------------------------ datasets
def test_fashion_mnist_run_writes_a_loadable_model(tmp_path, fashion_mnist_dir):
    out = tmp_path / "fm"
    run_train(
        "--dataset",
        "fashion-mnist",
        "--arch",
        "dcgan",
        "--steps",
        "6",
        "--limit",
        "64",
        "--sample-every",
        "3",
        "--checkpoint-every",
        "3",
        "--sampler-components",
        "2",
        "--out",
        str(out),
        *TINY_ARGS,
    )
    for name in ("config.json", "model.safetensors", "training_state.safetensors", "metrics.csv"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "samples").glob("*.png")) == ["step_0000003.png", "step_0000006.png"]
    assert any(out.glob("events.out.tfevents.*"))
    assert csv_lines(out)[0].startswith("step,") and logged_steps(out) == [1, 2, 3, 4, 5, 6]
    model = bavae.load(str(out))
    assert model.config.image_size == 32 and model.sample(2).shape == (2, 1, 32, 32)
    assert model.default_sampler == "gmm"  # fitted on the training codes at the end, saved with the weights
    mode = (out / "model.safetensors").stat().st_mode & 0o777
    assert mode == 0o666 & ~_umask(), oct(mode)  # as open() would make it, not mkstemp's 0600

    # the same --out again without --resume: refused in one line, the run left as it was
    before = weights(out)
    proc = run_train(
        "--dataset", "fashion-mnist", "--steps", "2", "--limit", "64", "--out", str(out), *TINY_ARGS, check=False
    )
    assert_one_line_error(proc, "already holds a training run", f"--resume {out}", code=2)
    after = weights(out)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_dsprites_subset(tmp_path):
    out = tmp_path / "ds"
    run_train(
        "--dataset",
        "dsprites",
        "--data-dir",
        str(tmp_path / "cache"),
        "--arch",
        "dcgan",
        "--steps",
        "2",
        "--limit",
        "32",
        "--sampler-components",
        "1",
        "--out",
        str(out),
        *TINY_ARGS,
    )
    assert bavae.load(str(out)).config.image_size == 64


def test_celeba_layout(tmp_path):
    celeba = tmp_path / "celeba" / "img_align_celeba"
    celeba.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(16):
        Image.fromarray(rng.integers(0, 255, (218, 178, 3), dtype=np.uint8)).save(celeba / f"{i:06d}.jpg")
    out = tmp_path / "cb"
    run_train(
        "--dataset",
        "celeba",
        "--data-dir",
        str(tmp_path / "celeba"),
        "--arch",
        "dcgan",
        "--steps",
        "2",
        "--sampler-components",
        "1",
        "--out",
        str(out),
        *TINY_ARGS,
    )
    cfg = bavae.load(str(out)).config
    assert (cfg.image_size, cfg.channels) == (64, 3)


def test_folder_with_bad_files(tmp_path, photos):
    out = tmp_path / "run"
    proc = run_train(
        "--dataset",
        "folder",
        "--data-dir",
        str(photos),
        "--arch",
        "mlp",
        "--image-size",
        "32",
        "--channels",
        "3",
        "--steps",
        "2",
        "--sampler-components",
        "1",
        "--out",
        str(out),
        *TINY_ARGS,
    )
    assert "skipped 2 of 14 files: 1 unreadable (broken.png), 1 not an image (notes.txt)" in proc.stderr  # one line
    assert proc.stderr.count("skipped") == 1
    cfg = bavae.load(str(out)).config
    assert (cfg.arch, cfg.image_size, cfg.channels) == ("mlp", 32, 3)


# ------------------------------------------------------------------------------------------------ fine-tuning
@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    """A tiny model drawn with seed 123: not what a run seeded 0 would draw for itself."""
    folder = tmp_path_factory.mktemp("init") / "pretrained"
    save_tiny(folder, seed=123)
    return folder


def test_finetuning_zero_steps_gives_back_the_init_weights(tmp_path, photos, pretrained):
    """`--init` with no step taken: the saved model is the pretrained one, tensor for tensor (steps=0 is not a
    command-line value, so the run is started through bavae.train's own entry point)."""
    out = tmp_path / "zero"
    code = (
        "from bavae.train import TrainConfig, train\n"
        f"train(TrainConfig(dataset='folder', data_dir={str(photos)!r}, init={str(pretrained)!r}, steps=0, "
        f"batch_size=4, sampler_components=0, sample_every=0, device='cpu', out={str(out)!r}))"
    )
    ok(run(sys.executable, "-c", code))
    init, saved = weights(pretrained), weights(out)
    assert init.keys() == saved.keys()
    assert all(torch.equal(init[k], saved[k]) for k in init), [k for k in init if not torch.equal(init[k], saved[k])]


def test_finetuning_starts_from_the_init_weights(tmp_path, photos, pretrained):
    tuned = tmp_path / "tuned"
    run_train(
        "--dataset",
        "folder",
        "--data-dir",
        str(photos),
        "--init",
        str(pretrained),
        "--steps",
        "3",
        "--out",
        str(tuned),
        "--batch-size",
        "4",  # (a --width here is refused: the model's config wins, see tests/bad_inputs.py)
        "--sampler-components",
        "0",
        "--sample-every",
        "0",
    )
    assert json.loads((tuned / "config.json").read_text()) == json.loads((pretrained / "config.json").read_text())
    init, after = weights(pretrained), weights(tuned)
    assert init.keys() == after.keys()
    assert any(not torch.equal(init[k], after[k]) for k in init if k.startswith("decoder."))  # it trained
    # 3 small steps from the pretrained weights stay near them; a run that re-initialised would be as far from them
    # as any fresh model is (seed 0 is the run's own seed)
    fresh = tiny_model(seed=0).state_dict()
    nets = ("encoder.", "decoder.", "inference_critic.", "generative_critic.")
    assert weight_distance(after, init, nets) < 0.2 * weight_distance(after, fresh, nets), (
        weight_distance(after, init, nets),
        weight_distance(after, fresh, nets),
    )


# ------------------------------------------------------------------------------------------------ resume
@pytest.mark.slow  # 26-28 s on 2 busy cores
def test_flip_augmentation_mirrors_about_half_and_replays_from_any_step():
    """--augment flip: each picture is itself or its mirror image, about half mirrored, and the batches from step k
    on are the same whether the run started there (a resume) or went through."""
    from bavae.configs import TrainConfig
    from bavae.train import batches

    data = torch.utils.data.TensorDataset(torch.rand(256, 1, 8, 8))
    dataset = [t[0] for t in data]
    plain_cfg, flip_cfg = TrainConfig(batch_size=32), TrainConfig(batch_size=32, augment="flip")
    cpu = torch.device("cpu")
    plain, flipped = batches(dataset, plain_cfg, 0, 0, 1, cpu), batches(dataset, flip_cfg, 0, 0, 1, cpu)
    mirrored = []
    for _ in range(16):  # two epochs
        a, b = next(plain), next(flipped)
        same, mirror = (a == b).flatten(1).all(1), (a.flip(-1) == b).flatten(1).all(1)
        assert (same | mirror).all()
        mirrored.append(mirror.float().mean().item())
    assert 0.4 < sum(mirrored) / len(mirrored) < 0.6
    later = batches(dataset, flip_cfg, 5, 0, 1, cpu)
    again = batches(dataset, flip_cfg, 0, 0, 1, cpu)
    for _ in range(5):
        next(again)
    for _ in range(6):
        assert torch.equal(next(later), next(again))


def test_flip_shift_augmentation_moves_each_picture_within_a_sixteenth_and_replays():
    """--augment flip+shift: each picture is itself or its mirror moved by at most side/16 pixels (edges repeated);
    the moves differ between pictures and the same generator seed gives the same batch (what a resume replays)."""
    import itertools

    from bavae.train import augment

    x = torch.rand(12, 3, 32, 32)
    y = augment(x, "flip+shift", torch.Generator().manual_seed(7))
    assert torch.equal(y, augment(x, "flip+shift", torch.Generator().manual_seed(7)))
    moves = set()
    for i in range(len(x)):
        found = [
            (flip, dy, dx)
            for flip in (False, True)
            for dy, dx in itertools.product(range(5), range(5))  # side 32: up to 2 px each way
            if torch.equal(
                torch.nn.functional.pad((x[i].flip(-1) if flip else x[i])[None], (2, 2, 2, 2), mode="replicate")[
                    0, :, dy : dy + 32, dx : dx + 32
                ],
                y[i],
            )
        ]
        assert found, f"picture {i} is no flip and shift of its input"
        moves.add(found[0])
    assert len(moves) > 3  # not one move for the whole batch
    assert not torch.equal(augment(x, "flip+shift", torch.Generator().manual_seed(8)), y)


def test_kill_9_then_resume_continues_and_is_bit_identical(tmp_path):
    """kill -9 mid-run, then --resume: bit-identical to an uninterrupted run, with --lr-decay cosine on, whose
    learning rate is a function of the step (from --lr at step 1 down to a tenth at the last, along a half cosine)."""
    args = [
        "--dataset",
        "folder",
        "--data-dir",
        str(make_folder(tmp_path / "photos", n=24)),
        "--arch",
        "mlp",
        "--image-size",
        "28",
        "--channels",
        "1",
        "--steps",
        "80",
        "--checkpoint-every",
        "5",
        "--sample-every",
        "0",
        "--sampler-components",
        "1",
        "--lr-decay",
        "cosine",
        *TINY_ARGS,
    ]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run_train(*args, "--out", str(straight))
    with open(straight / "metrics.csv", newline="") as f:
        lrs = [float(row["lr"]) for row in csv.DictReader(f)]
    half_cosine = [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / 79)) for s in range(80)]  # of step s+1's update
    assert lrs == pytest.approx([2e-4 * f for f in half_cosine], rel=1e-5), lrs

    proc = subprocess.Popen(
        [sys.executable, "-m", "bavae.train", *args, "--out", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=clean_env(),
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:  # kill it mid-run, after a checkpoint past step 0
        if (killed / "metrics.csv").exists() and len(csv_lines(killed)) > 20:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n = saved_step(killed)
    assert 0 < n < 80, n
    before = csv_lines(killed)[: n + 1]  # the header and the rows of steps 1..n, as the killed run wrote them

    run_train("--resume", str(killed))
    assert not list(killed.glob(".*.tmp")), "a finished run leaves no temporary files"
    # it went on from step n: the rows of steps 1..n are the killed run's, byte for byte (their images_per_s is
    # a timing, so a run that trained those steps again would have written other rows), and no step is missing
    # or logged twice
    assert csv_lines(killed)[: n + 1] == before
    assert logged_steps(killed) == list(range(1, 81)) and saved_step(killed) == 80
    a, b = weights(straight), weights(killed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from an uninterrupted run"
    state_a, state_b = (load_file(str(p / "training_state.safetensors")) for p in (straight, killed))
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a if k.startswith(("model.", "opt_")))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_saves_the_step_it_stops_at_and_the_run_resumes(tmp_path, signum):
    """Ctrl-C (or SIGTERM) mid-run, with no checkpoint due for 1,000 steps: the run saves the step it stopped at
    (a checkpoint, the model), says where and how to go on, exits 130, and --resume trains on to the end."""
    out = tmp_path / "run"
    args = ["--dataset", "folder", "--data-dir", str(make_folder(tmp_path / "photos", n=24)), "--arch", "mlp"]
    args += ["--image-size", "28", "--channels", "1", "--steps", "2000", "--checkpoint-every", "1000"]
    args += ["--sample-every", "0", "--sampler-components", "1", *TINY_ARGS, "--out", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bavae.train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
        preexec_fn=as_a_foreground_job,
    )
    logged = lambda: (out / "metrics.csv").exists() and len(csv_lines(out)) > 20  # noqa: E731
    _, err = signal_when(proc, logged, signum, "20 steps not logged")
    err = err.decode()
    n = saved_step(out)
    assert proc.returncode == 130, (proc.returncode, err)
    assert 20 <= n < 1000, n  # the signal's step, not a scheduled checkpoint
    assert f"{signal.Signals(signum).name}: saving step {n}" in err
    assert f"saved at step {n}: continue it with `bavae train --resume {out}`" in err
    assert "Traceback" not in err and not list(out.glob(".*.tmp"))
    assert logged_steps(out) == list(range(1, n + 1))
    assert bavae.load(str(out)).config.arch == "mlp"  # the model was saved too, as at the end

    run_train("--resume", str(out), "--steps", str(n + 10))
    assert saved_step(out) == n + 10 and logged_steps(out) == list(range(1, n + 11))


def test_a_run_started_ignoring_ctrl_c_keeps_ignoring_it(tmp_path):
    """A run a script put in the background (SIGINT ignored from the start, as a non-interactive shell does) goes on
    through a Ctrl-C meant for the terminal's foreground job; SIGTERM still saves it and stops it."""
    out = tmp_path / "run"
    args = ["--dataset", "folder", "--data-dir", str(make_folder(tmp_path / "photos", n=24)), "--arch", "mlp"]
    args += ["--image-size", "28", "--channels", "1", "--steps", "2000", "--checkpoint-every", "1000"]
    args += ["--sample-every", "0", "--sampler-components", "1", *TINY_ARGS, "--out", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bavae.train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        deadline = time.monotonic() + 120
        while not ((out / "metrics.csv").exists() and len(csv_lines(out)) > 20):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        at_sigint = len(csv_lines(out))
        while len(csv_lines(out)) < at_sigint + 20:  # it trains on
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "SIGTERM: saving step" in err.decode(), (proc.returncode, err.decode())
    assert "SIGINT" not in err.decode() and saved_step(out) >= at_sigint + 19  # lines: a header, then a step each


def tiny_folder_args(photos: Path) -> list[str]:
    """`bavae train` options for a tiny MLP run on the photos folder, with no samples or sampler to write."""
    args = ["--dataset", "folder", "--data-dir", str(photos), "--arch", "mlp", "--image-size", "28"]
    return [*args, "--channels", "1", "--sample-every", "0", "--sampler-components", "0", *TINY_ARGS]


def training_meta_and_adam_steps(out: Path) -> tuple[dict, dict[str, set[float]]]:
    """A run's training-state JSON, and the step counts each optimiser's Adam holds (one set per optimiser)."""
    meta = read_training_state(out / "training_state.safetensors", tensors=False)[1]
    adam_steps = {
        name: {v for k, v in meta[name]["scalars"].items() if k.endswith(".step")}
        for name in ("opt_critic", "opt_autoencoder")
    }
    return meta, adam_steps


def test_critic_every_steps_the_critics_one_step_in_k_and_resumes_from_a_skipped_step(tmp_path, photos):
    """bavae train's default since issue 21, --critic-every 2: the critics' Adam steps 3 times in 6 steps while the
    encoder/decoder's steps 6 times, and the critics are half as wide; a run stopped at step 3 (whose next step skips
    the critics, so the resumed run has no critic logs yet) resumes to the weights of an uninterrupted run, and its
    CSV gets the critics' columns once they step. --critic-steps above 1 alone turns the default back to 1."""
    args = tiny_folder_args(photos)
    straight, cut = tmp_path / "straight", tmp_path / "cut"
    run_train(*args, "--steps", "6", "--out", str(straight))
    run_train(*args, "--steps", "3", "--out", str(cut))
    run_train("--resume", str(cut), "--steps", "6")
    meta, adam_steps = training_meta_and_adam_steps(straight)
    assert adam_steps == {"opt_critic": {3.0}, "opt_autoencoder": {6.0}}, adam_steps
    assert meta["train_config"]["critic_every"] == 2
    config = bavae.load(str(straight)).config
    assert config.critic_width == config.width // 2
    assert train_cli.options_config({"critic_steps": 2}).critic_every == 1
    a, b = weights(straight), weights(cut)
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from an uninterrupted run"
    header, *rows = csv_lines(cut)
    assert {"kl_estimate", "d_real", "encoder"} <= set(header.split(",")) and logged_steps(cut) == list(range(1, 7))


def test_critic_start_trains_an_autoencoder_first_and_resumes_across_the_start(tmp_path, photos):
    """--critic-start 3: the first 3 steps are the encoder/decoder's alone, so the critics' Adam steps 3 times in 6
    and a 3-step run's critics are still a 2-step run's (both the initial ones) while its encoder has moved on; a
    run cut inside the warm-up resumes to the weights of an uninterrupted one. A run saved before the option existed
    has no critic_start in its train_config.json and resumes with 0 (the dataclass default: the game from step 0)."""
    args = tiny_folder_args(photos)
    args += ["--critic-every", "1", "--critic-start", "3"]
    straight, cut, three = (tmp_path / name for name in ("straight", "cut", "three"))
    run_train(*args, "--steps", "6", "--out", str(straight))
    run_train(*args, "--steps", "2", "--out", str(cut))
    two = weights(cut)  # inside the warm-up: the initial critics
    run_train("--resume", str(cut), "--steps", "6")
    run_train(*args, "--steps", "3", "--out", str(three))
    meta, adam_steps = training_meta_and_adam_steps(straight)
    assert adam_steps == {"opt_critic": {3.0}, "opt_autoencoder": {6.0}}, adam_steps
    assert meta["train_config"]["critic_start"] == 3
    a, b = weights(three), two
    critic_keys = [k for k in a if "critic" in k]
    assert critic_keys and all(torch.equal(a[k], b[k]) for k in critic_keys), "the critics moved in the warm-up"
    encoder_key = next(k for k in a if k.startswith("encoder."))
    assert not torch.equal(a[encoder_key], b[encoder_key]), "the encoder did not train in the warm-up"
    a, b = weights(straight), weights(cut)
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from an uninterrupted run"
    assert train_cli.options_config({}).critic_start == 0


def test_sampler_neighbours_fits_the_neighbour_sampler_at_the_end_and_old_runs_keep_the_mixture(tmp_path, photos):
    """`--sampler neighbours`: the saved model keeps its training codes and draws between neighbours by default; a
    fine-tune from it fits the same kind unless told; a run saved before the option existed (no sampler_kind in its
    train_config.json) resumes with the mixture."""
    args = ["--dataset", "folder", "--data-dir", str(photos), "--arch", "mlp", "--image-size", "28"]
    args += ["--channels", "1", "--sample-every", "0", *TINY_ARGS]
    proc = run_train(*args, "--steps", "2", "--sampler", "neighbours", "--out", str(tmp_path / "nb"))
    model = bavae.load(str(tmp_path / "nb"))
    n_photos = len(build_dataset("folder", data_dir=photos, image_size=28, channels=1))
    # it says, once, that the weights now hold the training pictures' codes, and how to share without them
    note = [line for line in proc.stderr.splitlines() if "training pictures" in line]
    assert len(note) == 1 and f"{n_photos:,} training pictures" in note[0], proc.stderr
    assert f"bavae fit-sampler {tmp_path / 'nb'} --kind gmm" in note[0], note
    assert model.config.sampler == {"kind": "neighbours", "codes": n_photos, "k": 3}
    assert model.default_sampler == "neighbours" and model.sample(3).shape == (3, 1, 28, 28)
    tuned = [
        "--dataset",
        "folder",
        "--data-dir",
        str(photos),
        "--sample-every",
        "0",
        "--steps",
        "1",
        "--batch-size",
        "8",
    ]
    run_train(*tuned, "--init", str(tmp_path / "nb"), "--out", str(tmp_path / "tuned"))  # no --sampler: the init's
    assert bavae.load(str(tmp_path / "tuned")).config.sampler["kind"] == "neighbours"
    state = tmp_path / "old" / "training_state.safetensors"
    proc = run_train(*args, "--steps", "1", "--sampler-components", "2", "--out", str(tmp_path / "old"))
    assert "training pictures" not in proc.stderr  # a mixture keeps a summary of the codes, not the codes
    with safe_open(str(state), framework="pt") as f:
        metadata = f.metadata()
    meta = json.loads(metadata["bavae_training_state"])
    meta["train_config"].pop("sampler_kind")  # as written before the option existed
    save_file(load_file(str(state)), str(state), metadata={**metadata, "bavae_training_state": json.dumps(meta)})
    run_train("--resume", str(tmp_path / "old"), "--steps", "2")
    assert bavae.load(str(tmp_path / "old")).config.sampler["kind"] == "gmm"


def biases_before_a_channel_norm(model: torch.nn.Module) -> set[str]:
    """State-dict names of the biases of layers directly followed, in some Sequential, by a norm that subtracts each
    channel's mean (BatchNorm, InstanceNorm, GroupNorm with one channel per group): gradient-free parameters."""

    def per_channel(norm):
        if isinstance(norm, torch.nn.GroupNorm):
            return norm.num_groups == norm.num_channels
        return isinstance(norm, (torch.nn.modules.batchnorm._BatchNorm, torch.nn.modules.instancenorm._InstanceNorm))

    names = set()
    for prefix, module in model.named_modules():
        if isinstance(module, torch.nn.Sequential):
            children = list(module.named_children())
            for (name, layer), (_, after) in zip(children, children[1:]):
                if per_channel(after) and getattr(layer, "bias", None) is not None:
                    names.add(f"{prefix}.{name}.bias" if prefix else f"{name}.bias")
    return names


def test_a_run_saved_by_the_code_before_the_renovation_resumes(tmp_path, fashion_mnist_dir):
    """tests/fixtures/run_before_renovation: 3 steps of a 6-step recipe, written by the pre-issue-19 code (HOW.txt).
    Resumed to step 6 by this code, it goes on from step 3 and ends where that code's own uninterrupted 6-step run
    ended (its weights are committed beside it)."""
    fixtures = Path(__file__).parent / "fixtures"
    run_dir = tmp_path / "old"
    shutil.copytree(fixtures / "run_before_renovation", run_dir)
    before = csv_lines(run_dir)
    assert saved_step(run_dir) == 3 and logged_steps(run_dir) == [1, 2, 3]

    run_train("--resume", str(run_dir), "--steps", "6")
    assert saved_step(run_dir) == 6 and logged_steps(run_dir) == [1, 2, 3, 4, 5, 6]
    assert csv_lines(run_dir)[:4] == before  # steps 1-3 as the old code wrote them: not trained again
    resumed = weights(run_dir)
    straight = load_file(str(fixtures / "run_before_renovation_straight6.safetensors"))
    assert resumed.keys() == straight.keys()
    # Bit-identical on the machine that made them (an AVX-512 CPU). On another CPU, steps 4-6 round differently: the
    # weights agree to ~1e-8, except the biases of layers that feed a per-channel norm. Their true gradient is zero
    # (the norm subtracts them again), so Adam's steps on them are rounding noise scaled to the learning rate, and those
    # differ between CPUs by as much as the biases move; they do nothing to the outputs, so they are left out here.
    dead = biases_before_a_channel_norm(bavae.load(str(run_dir)))
    differ = [
        k for k in straight if k not in dead and not torch.allclose(resumed[k], straight[k], rtol=1e-5, atol=1e-7)
    ]
    assert not differ, differ
    assert bavae.load(str(run_dir)).sample(2).shape == (2, 1, 32, 32)


# ------------------------------------------------------------------------------------------------ errors, guard
def test_divergence_guard_restores_then_gives_up(tmp_path, photos):
    """An absurd threshold makes every step 'diverge': the guard restores, halves the lr, then stops clearly."""
    out = tmp_path / "div"
    config = tmp_path / "guard.json"
    config.write_text(json.dumps({"max_critic_value": 1e-9, "max_recoveries": 2}))
    proc = run_train(
        "--dataset",
        "folder",
        "--data-dir",
        str(photos),
        "--arch",
        "mlp",
        "--image-size",
        "28",
        "--channels",
        "1",
        "--steps",
        "5",
        "--out",
        str(out),
        "--config",
        str(config),
        *TINY_ARGS,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("diverged (") == 2 and "learning rates x0.25" in proc.stderr
    assert "diverged 3 times" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()  # it gave up before a checkpoint past step 0: nothing worth resuming is left
    header = csv_lines(out)[0] if (out / "metrics.csv").exists() else ""
    assert "recovery" not in header  # recoveries go to stderr and TensorBoard; the CSV keeps the full columns


# ------------------------------------------------------------------------------------------------ torchrun
@pytest.mark.slow  # 25 s on 2 busy cores
def test_torchrun_batch_size_is_per_process_and_resume_goes_on(tmp_path):
    """docs/training.md: --batch-size is per process, so 2 processes at --batch-size 4 take 8 images a step and an
    epoch of 32 images is 4 steps (it would be 8 if the 4 were shared out). Then --resume under torchrun goes on
    from step 4, keeping the rows written before."""
    out = tmp_path / "ddp"
    folder = make_folder(tmp_path / "photos", n=32)
    common = ["--sample-every", "0", "--sampler-components", "1", "--log-every", "1"]
    torchrun(
        "--dataset",
        "folder",
        "--data-dir",
        str(folder),
        "--arch",
        "mlp",
        "--image-size",
        "28",
        "--channels",
        "1",
        "--width",
        "8",
        "--latent-dim",
        "4",
        "--posterior-noise-dim",
        "4",
        "--batch-size",
        "4",
        "--epochs",
        "1",
        "--out",
        str(out),
        *common,
    )
    assert logged_steps(out) == [1, 2, 3, 4] and saved_step(out) == 4  # logged once (rank 0), 32 // (2 x 4) steps
    assert json.loads((out / "train_config.json").read_text())["batch_size"] == 4
    before = csv_lines(out)
    assert torch.isfinite(bavae.load(str(out)).sample(2)).all()

    torchrun("--resume", str(out), "--epochs", "2", *common)
    assert logged_steps(out) == list(range(1, 9)) and saved_step(out) == 8
    assert csv_lines(out)[:5] == before  # steps 1-4 as the first launch wrote them: not trained again
    assert bavae.load(str(out)).sample(1).shape == (1, 1, 28, 28)


@pytest.mark.slow  # 18 s on 2 busy cores
def test_two_nodes_through_the_c10d_rendezvous(tmp_path, fashion_mnist_dir):
    """Multi-node training as docs/training.md shows it: two torchrun agents (two "nodes", one process each) meet
    through torchrun's c10d rendezvous on 127.0.0.1 and train one model with gloo."""
    with socket.socket() as s:  # a free port for the rendezvous store
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "multinode"
    cmd = [
        TORCHRUN,
        "--nnodes",
        "2",
        "--nproc-per-node",
        "1",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        f"127.0.0.1:{port}",
        "--rdzv-id",
        "bavae-test",
        "--max-restarts",
        "0",
        "-m",
        "bavae.train",
        "--device",
        "cpu",
        "--dataset",
        "fashion-mnist",
        "--limit",
        "256",
        "--arch",
        "mlp",
        "--steps",
        "4",
        "--sample-every",
        "0",
        "--sampler-components",
        "1",
        "--out",
        str(out),
        *TINY_ARGS,
    ]
    env = clean_env(MASTER_ADDR="127.0.0.1")
    nodes = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)
    ]
    results = [node.communicate(timeout=240) for node in nodes]
    for node, (_, err) in zip(nodes, results):
        assert node.returncode == 0, err[-3000:]
    assert logged_steps(out) == [1, 2, 3, 4]  # one run of 4 steps, logged once (rank 0)
    assert json.loads((out / "train_config.json").read_text())["steps"] == 4
    assert torch.isfinite(bavae.load(str(out)).sample(2)).all()


@pytest.mark.slow  # about 15 s: two steps of the 64x64 colour model
def test_colour_finetune_from_the_emoji_model_keeps_colour(photos, tmp_path):
    """The README's main fine-tune: a folder of colour photos (sizes and modes mixed, broken files among them)
    fine-tunes bavae-emoji64, stays in colour, and the result loads and samples like a zoo model."""
    out = tmp_path / "mine"
    proc = run_train(
        "--dataset", "folder", "--data-dir", str(photos), "--init", "bavae-emoji64", "--steps", "2",
        "--batch-size", "4", "--sample-every", "0", "--sampler-components", "1", "--out", str(out),
    )  # fmt: skip
    assert "grayscale" not in proc.stderr and "skipped 2 of 14 files" in proc.stderr, proc.stderr[-2000:]
    model = bavae.load(str(out))
    assert (model.config.channels, model.config.image_size) == (3, 64)
    # refitted on the 12 photos, of the init model's kind (bavae-emoji64 ships the nearest-neighbour sampler)
    assert model.config.sampler == {"kind": "neighbours", "codes": 12, "k": 3} and model.default_sampler == "neighbours"
    images = model.sample(8, generator=torch.Generator().manual_seed(0))
    assert images.shape == (8, 3, 64, 64)
    spread = (images - images.mean(1, keepdim=True)).abs().amax()  # colour: the channels differ
    assert spread > 0.05, spread
    emoji = bavae.load("bavae-emoji64")
    moved = weight_distance(emoji.state_dict(), model.state_dict(), ("encoder.", "decoder."))
    fresh = bavae.BAVAE(emoji.config).state_dict()
    assert 0 < moved < weight_distance(emoji.state_dict(), fresh, ("encoder.", "decoder.")) / 10  # it started there
