"""The matrix of bad inputs (issue 14): every one must be refused in one clear line naming the real cause, with
nothing trained or written, and (where the input can be checked without them) before any heavy work.

    python tests/bad_inputs.py              # the whole matrix: a table, then the counts (exit 1 if any is bad)
    python tests/bad_inputs.py --fresh      # each CLI case in its own `python` process (slower; the default forks
                                            # each case from one process that has imported bavae and torch)
    python tests/bad_inputs.py -k decode    # only the cases whose id contains "decode"
    PYTHONPATH=/path/to/other/checkout python tests/bad_inputs.py   # the same matrix against another bavae

It imports only bavae's public API (``BAVAE``, ``BAVAEConfig``, ``save_pretrained``, ``bavae.cli.main``), so it runs
against older checkouts too: that is how the before/after counts in issue 14's closing note were made.
tests/test_bad_inputs.py runs the same table under pytest.

A CLI case is ``bavae ARGV`` run in a child process in a sandbox folder (offline: ``HF_HUB_OFFLINE=1``; bundled weights
from the checkout's ``weights/``). What counts against it:
  * traceback      -- "Traceback" in its output;
  * wrong success  -- exit status 0 (or it ran past its time limit, or was killed by a signal);
  * files left     -- any file or folder created or changed in the sandbox;
  * wrong cause    -- the message does not match what the case expects (the value and the real cause);
  * not one line   -- stderr is not exactly one non-blank line (a progress bar or a warning counts), or stdout
                      is not empty;
  * checked late   -- it built a model, scanned a dataset, started training or called the Hub before refusing an
                      input that can be checked without doing so.
An API case is a Python statement run in this process, against a tiny model ``m``; it must raise a ValueError or
TypeError whose one-line message matches (anything else is a wrong cause; no exception is a wrong success).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import select
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warm_python import exit_status, serve_requests

CAPS = "dac_override,dac_read_search,fowner"  # what lets root read, write and chmod any file (dropped for `perm`)
HEAVY = ("model", "data", "train", "hub")  # what a case may have done before refusing (see `late`)
TRAIN_RUN = "--limit 64 --batch-size 16 --steps 2 --sample-every 0 --sampler-components 0 --log-every 1"
TRAIN_MODEL = "--width 4 --latent-dim 4 --posterior-noise-dim 4"  # not with --init or --resume, which refuse them


def all_of(*parts: str) -> str:
    """A regex that matches when every part does, in any order."""
    return "".join(f"(?=.*{p})" for p in parts)


@dataclass
class Case:
    id: str
    what: str  # the CLI argv (shlex) or, for an API case, a Python statement
    expect: str  # a regex (case-insensitive) the one-line message must match
    kind: str = "cli"
    may: tuple[str, ...] = ()  # heavy work this case may do before refusing (it cannot be checked without it)
    timeout: float = 60.0
    env: dict[str, str] = field(default_factory=dict)  # extra environment: the case runs in its own process
    drop_caps: bool = False  # run without the capabilities that let root ignore file modes (see `perm`)


def cli(id: str, argv: str, expect: str, **kw: Any) -> Case:
    return Case(id, argv, expect, "cli", **kw)


def api(id: str, code: str, expect: str) -> Case:
    return Case(id, code, expect, "api")


def perm(id: str, argv: str, expect: str, **kw: Any) -> Case:
    """A CLI case about file modes: run by a second fork server started under ``setpriv`` without the capabilities
    that let root read and write any file (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER), so that a mode-000
    file is as unreadable to root as to anyone."""
    return Case(id, argv, expect, "cli", drop_caps=True, **kw)


def resume(id: str, extra: str, expect: str, **kw: Any) -> Case:
    """`bavae train --resume` of a copy of a real 2-step run (see make_sandbox), with nothing else on the line but
    ``extra``: a wrong success trains two steps of a tiny model."""
    return Case(f"resume: {id}", f"train {extra}", expect, "cli", **kw)


def train(id: str, extra: str, expect: str, fast: bool = True, **kw: Any) -> Case:
    """`bavae train` on a few Fashion-MNIST images with a tiny model, so a wrong success finishes in seconds."""
    model = "" if "--init" in extra or "--resume" in extra else TRAIN_MODEL
    argv = f"train --dataset fashion-mnist --out runs/t {TRAIN_RUN + ' ' + model if fast else ''} {extra}"
    return Case(f"train {id}", argv, expect, "cli", **kw)


M = "-m tiny"
CASES: list[Case] = [
    # ---- model references: folders, zoo names, Hub repo ids
    cli(
        "model: mistyped run folder",
        "sample -m runs/mnie -n 4 -o x.png",
        r"runs/mnie.*(no such|does not exist|not exist)",
    ),
    cli(
        "model: ./missing",
        "sample -m ./missing -o x.png",
        r"\./missing.*(no such|does not exist)|no (model )?folder \./missing",
    ),
    cli(
        "model: ~/missing",
        "sample -m ~/bavae-no-such-folder -o x.png",
        r"bavae-no-such-folder.*(no such|does not exist)|no (model )?folder",
    ),
    cli(
        "model: /abs/missing",
        "sample -m /nonexistent/model -o x.png",
        r"/nonexistent/model.*(no such|does not exist)|no (model )?folder /nonexistent",
    ),
    cli("model: a file", "sample -m notes.txt -o x.png", r"notes\.txt.*(is a file|not a (model )?folder)"),
    cli("model: empty folder", "sample -m empty -o x.png", r"empty.*config\.json.*missing|not a saved BAVAE"),
    cli("model: empty name", "sample -m '' -o x.png", r"(model|-m).*empty|empty.*(model|name)"),
    cli(
        "model: zoo typo",
        "sample -m bavae-fashionmnist33 -o x.png",
        r"unknown model 'bavae-fashionmnist33'.*did you mean",
    ),
    cli(
        "model: repo id offline",
        "sample -m someuser/somerepo -o x.png",
        r"someuser/somerepo.*(offline|not in the hugging face cache)",
        may=("hub",),
    ),
    cli("model: config not JSON", "sample -m badjson -o x.png", r"config\.json.*not valid json"),
    cli(
        "model: config width 256, weights width 4",
        "sample -m badcfg -o x.png",
        r"model\.safetensors.*(does not match|differ).*(encoder|decoder|critic)\.[\w.]+",
    ),
    cli(
        "model: config width 10**9",
        "sample -m hugecfg -o x.png",
        r"width.*(at most|<=|must be).*1000000000|1000000000.*width",
    ),
    cli("model: config arch unknown", "sample -m archcfg -o x.png", r"architecture 'vit'"),
    cli(
        "model: truncated weights",
        "sample -m truncated -o x.png",
        r"model\.safetensors.*(not a readable|truncated|corrupt|incomplete)",
    ),
    cli("model: hf:// not a repo id", "sample -m hf://nope -o x.png", r"hf://nope.*not a Hub repo id"),
    cli("info: unknown", "info bavae-nosuch", r"unknown model 'bavae-nosuch'"),
    cli("list: no match", "list '*nomatch*'", r"no pretrained model matches '\*nomatch\*'"),
    # ---- devices
    cli("device: cpu:1", f"sample {M} --device cpu:1 -o x.png", r"^(?!.*safetensors).*device.*cpu:1"),
    cli("device: gpu", f"sample {M} --device gpu -o x.png", r"(device|--device).*'gpu'.*(cpu|cuda|expected|one of)"),
    cli("device: cuda without one", f"sample {M} --device cuda -o x.png", r"cuda.*no CUDA|CUDA.*not available"),
    cli("device: cuda:x", f"sample {M} --device cuda:x -o x.png", r"'cuda:x'"),
    # ---- output paths
    cli("out: /proc", f"sample {M} -o /proc/out.png", r"cannot write /proc/out\.png(?!.*\.tmp)"),
    cli("out: missing folder", f"sample {M} -o nodir/x.png", r"cannot write nodir/x\.png.*nodir does not exist"),
    cli("out: jpg", f"sample {M} -o x.jpg", r"unsupported output format '\.jpg'"),
    cli("out: a folder", f"sample {M} -o pics", r"cannot write pics.*folder"),
    cli(
        "out: empty",
        f"sample {M} -o ''",
        r"(-o|--out|output).*(empty|no file name)|cannot write ''|unsupported output format",
    ),
    cli("encode: png out", f"encode pics/a.png {M} -o codes.png", r"unsupported output format '\.png'.*npz"),
    cli("encode: /proc out", f"encode pics/a.png {M} -o /proc/codes.npz", r"cannot write /proc/codes\.npz(?!.*\.tmp)"),
    cli("out: --format gif", f"sample {M} -o x.png --format gif", r"--format.*'gif'"),
    # ---- sample
    cli("sample: -n 0", f"sample {M} -n 0 -o x.png", r"-n.*0.*(range|>=|at least)"),
    cli("sample: -n -3", f"sample {M} -n -3 -o x.png", r"-n.*-3"),
    cli("sample: -n 5000 png", f"sample {M} -n 5000 -o x.png", r"5000.*(png|grid).*(npz|at most 4096)|4096.*npz"),
    cli(
        "sample: seed 10**23",
        f"sample {M} --seed 99999999999999999999999 -o x.png",
        r"--seed.*99999999999999999999999.*(range|<=|at most)",
    ),
    cli("sample: gmm without one", f"sample {M} --sampler gmm -o x.png", r"no fitted 'gmm' sampler", may=("model",)),
    cli("sample: nrow 0", f"sample {M} --nrow 0 -o x.png", r"--nrow.*0"),
    # ---- pictures
    cli(
        "image: 15000x15000 png",
        f"reconstruct big.png {M} -o r.png",
        r"big\.png.*(15000x15000|225,?000,?000).*(limit|too large|pixels)",
    ),
    cli("image: missing", f"reconstruct missing.png {M} -o r.png", r"missing\.png does not exist"),
    cli("image: text file", f"reconstruct notes.txt {M} -o r.png", r"notes\.txt.*not an image"),
    cli(
        "image: broken png",
        f"reconstruct broken.png {M} -o r.png",
        r"broken\.png.*(not an image|cannot be read|PIL can read)",
    ),
    cli("image: empty folder", f"reconstruct empty {M} -o r.png", r"empty holds no image files"),
    cli(
        "image: truncated png", f"reconstruct truncated.png {M} -o r.png", r"truncated\.png.*truncated", may=("model",)
    ),
    cli(
        "interpolate: a folder",
        f"interpolate pics/a.png pics {M} -o i.png",
        r"two picture files|pics.*(is a folder|not a file)",
    ),
    cli("interpolate: steps 1", f"interpolate pics/a.png pics/b.png {M} --steps 1 -o i.png", r"--steps.*1"),
    cli("encode: text file", f"encode notes.txt {M} -o c.npz", r"notes\.txt.*not an image"),
    # ---- codes
    cli("decode: missing file", f"decode missing.npz {M} -o d.png", r"missing\.npz.*(does not exist|no such file)"),
    cli("decode: not an npz", f"decode notes.npz {M} -o d.png", r"notes\.npz.*not an npz"),
    cli("decode: no codes", f"decode nocodes.npz {M} -o d.png", r"nocodes\.npz.*(no|without|lacks) `?codes"),
    cli(
        "decode: empty codes",
        f"decode empty_codes.npz {M} -o d.png",
        r"empty_codes\.npz.*(no codes|empty|0 codes|shape \(0, 4\))",
    ),
    cli("decode: NaN codes", f"decode nan_codes.npz {M} -o d.png", r"nan_codes\.npz.*(nan|not finite)"),
    cli(
        "decode: 1e30 codes", f"decode huge_codes.npz {M} -o d.png", r"huge_codes\.npz.*(1e\+30|far|too large|at most)"
    ),
    cli("decode: int codes", f"decode int_codes.npz {M} -o d.png", r"int_codes\.npz.*(int64|integer|float)"),
    cli(
        "decode: wrong width",
        f"decode wide_codes.npz {M} -o d.png",
        r"wide_codes\.npz.*\(3, 7\).*\(N, 4\)",
        may=("model",),
    ),
    cli("decode: rank 3", f"decode rank3_codes.npz {M} -o d.png", r"rank3_codes\.npz.*\(2, 2, 4\)"),
    # ---- training options
    train("--epochs 0", "--epochs 0", all_of("--epochs", r"\b0(\.0)?\b", "(> 0|positive)")),
    train("--epochs -1", "--epochs -1", r"--epochs.*-1"),
    train("--epochs nan", "--epochs nan", r"--epochs.*nan"),
    train("--ema-decay 2", "--ema-decay 2", r"--ema-decay.*2"),
    train("--ema-decay -0.5", "--ema-decay -0.5", r"--ema-decay.*-0\.5"),
    train("--out ''", "--out ''", r"--out.*(empty|'')"),
    train("--out a file", "--out notes.txt", r"--out notes\.txt.*(is a file|not a folder)"),
    train("--out /proc", "--out /proc/run", r"(--out )?/proc/run.*(cannot write|permission|read-only|cannot create)"),
    train("--out under a file", "--out notes.txt/run", r"notes\.txt.*(is a file|not a folder|not a directory)"),
    train("--init with --arch", "--init bavae-fashionmnist32 --arch mlp", r"--arch.*--init|--init.*--arch"),
    train("--init with --width", "--init tiny --width 8", r"--width.*--init|--init.*--width"),
    train("--resume with --width", "--resume fakerun --width 8", r"--width.*--resume|--resume.*--width"),
    train("--precision fp16 on cpu", "--precision fp16 --device cpu", r"fp16.*CUDA"),
    train("--num-workers -1", "--num-workers -1", r"--num-workers.*-1"),
    train("--steps 0", "--steps 0", r"--steps.*0"),
    train("--batch-size 1", "--batch-size 1", all_of("--batch-size", r"\b1\b", r"(\b2\b|two)")),
    train(
        "--batch-size 100 > data",
        "--batch-size 100",
        all_of(r"\b64\b", "batch of 100", "--batch-size 64"),
        may=("data",),
    ),
    train("--lr -1", "--lr -1", r"--lr.*-1"),
    train("--lr nan", "--lr nan", r"--lr.*nan"),
    train("--critic-lr inf", "--critic-lr inf", r"--critic-lr.*inf"),
    train("--lr-decay linear", "--lr-decay linear", all_of("--lr-decay", "linear", "cosine")),
    train("--limit -5", "--limit -5", r"--limit.*-5"),
    train("--limit 0", "--limit 0", r"--limit.*0"),
    train("--width 0", "--width 0", r"width.*0"),
    train("--width 100000", "--width 100000", all_of("width", "100000", "(at most|<=)")),
    train("--latent-dim 0", "--latent-dim 0", r"latent.dim.*0"),
    train("--posterior-noise-dim 0", "--posterior-noise-dim 0", r"posterior.noise.dim.*0"),
    train("--decoder-noise-dim -1", "--decoder-noise-dim -1", r"decoder.noise.dim.*-1"),
    train("--image-size 33", "--image-size 33", r"image.size.*33"),
    train("--channels 2", "--channels 2", r"channels.*2"),
    train("--arch vit", "--arch vit", r"architecture 'vit'"),
    train("--dataset imagenet", "--dataset imagenet", all_of("--dataset", "imagenet", "fashion-mnist")),
    train("--arch dcgan at 28 px", "--arch dcgan --image-size 28", all_of("dcgan", r"\b28\b", r"\b32\b")),
    train(
        "--critic-every with --critic-steps",
        "--critic-every 2 --critic-steps 2",
        all_of("--critic-every", "critic.steps"),
    ),
    train(
        "--data-dir an empty folder",
        "--dataset folder --data-dir empty",
        all_of("no image files", "empty"),
        may=("data",),
    ),
    train("--objective nope", "--objective nope", r"objective 'nope'"),
    train("--objective-weight pixel", "--objective-weight pixel", r"--objective-weight.*'pixel'"),
    train("--objective-weight nosuch=1", "--objective-weight nosuch=1", r"nosuch"),
    train("--seed 10**23", "--seed 99999999999999999999999", r"--seed.*99999999999999999999999"),
    train("--seed 2**40", "--seed 1099511627776 --sampler-components 2", r"--seed.*1099511627776"),
    train("--max-minutes 0", "--max-minutes 0", r"--max-minutes.*0"),
    train("--sample-every -1", "--sample-every -1", r"--sample-every.*-1"),
    train("--checkpoint-every 0", "--checkpoint-every 0", r"--checkpoint-every.*0"),
    train("--sampler-components -1", "--sampler-components -1", r"--sampler-components.*-1"),
    train("--critic-steps 0", "--critic-steps 0", r"--critic-steps.*0"),
    train("--device cuda", "--device cuda", r"cuda.*no CUDA|CUDA.*not available"),
    train("folder without --data-dir", "--dataset folder", r"--dataset folder needs --data-dir"),
    train("--data-dir missing", "--dataset folder --data-dir nodir", r"--data-dir nodir.*(does not exist|no such)"),
    train("--data-dir a file", "--dataset folder --data-dir notes.txt", r"notes\.txt.*(is a file|not a folder)"),
    train(
        "--data-dir none decodable",
        "--dataset folder --data-dir undecodable --batch-size 4 --limit 8",
        all_of("undecodable", "could be decoded"),
        may=("data",),
    ),
    train(
        "--dataset dsprites --image-size 32", "--dataset dsprites --image-size 32", all_of("dsprites", "64x64", "32x32")
    ),
    train(
        "--dataset fashion-mnist --image-size 64", "--image-size 64", all_of("fashion-mnist", "28x28 or 32x32", "64x64")
    ),
    train("--init a dsprites model on fashion-mnist", "--init bavae-dsprites64", all_of("fashion-mnist", "64x64")),
    train("--objective-weight pixel=nan", "--objective-weight pixel=nan", all_of("objective.weight", "nan")),
    train("--config bad YAML", "--config bad.yaml", all_of("bad\\.yaml", "YAML")),
    train(
        "--data-dir all bad",
        "--dataset folder --data-dir allbad",
        r"allbad.*(no (readable )?image|unreadable).*(broken\.png|notes\.txt|1 not an image)",
        may=("data",),
    ),
    train("--config missing", "--config nosuch.json", r"nosuch\.json.*(does not exist|no such)"),
    train("--config not JSON", "--config bad.json", r"bad\.json.*(not valid json|json)"),
    train("--config a list", "--config list.json", r"list\.json.*mapping"),
    train("--config typo", "--config typo.json", r"typo\.json.*stepz"),
    train("--config ema text", "--config textema.json", all_of("ema.decay", "'high'")),
    train("--resume missing", "--resume nosuchrun", r"--resume nosuchrun.*(does not exist|no such|no training_state)"),
    train("--resume not a run", "--resume pics", r"--resume pics.*no training_state"),
    train("--init mistyped folder", "--init runs/mnie", r"runs/mnie.*(no such|does not exist)"),
    train("--init unknown", "--init bavae-nosuch", r"unknown model 'bavae-nosuch'"),
    train("--out holds a run", "--out fakerun", r"fakerun already holds a training run.*--resume fakerun"),
    train(
        "README fine-tune, 5 pictures",
        "--dataset folder --data-dir fewpics --init tiny --out runs/finetuned",
        r"5 (images|pictures).*batch of 64.*--batch-size",
        fast=False,
        may=("data", "model"),
    ),
    # ---- eval, fit-sampler
    cli(
        "eval: dsprites on a 32px model",
        "eval tiny --dataset dsprites --n-test 100 --n-samples 100",
        r"dsprites.*64.*32|32.*dsprites.*64",
        may=("model",),
    ),
    cli("eval: celeba without --data-dir", "eval tiny --dataset celeba", r"--dataset celeba needs --data-dir"),
    cli("eval: --n-test 5", "eval tiny --n-test 5", r"--n-test.*5"),
    cli("eval: --data-dir missing", "eval tiny --dataset folder --data-dir nodir", r"--data-dir nodir does not exist"),
    cli(
        "eval: --inception offline",
        "eval tiny --inception --json --n-test 100 --n-samples 100",
        r"inception.*(weights|cache)",
        may=("model",),
        timeout=120,
    ),
    cli("fit-sampler: zoo name without --out", "fit-sampler bavae-fashionmnist32", r"not a model folder.*--out"),
    cli("fit-sampler: --components 0", "fit-sampler tiny --components 0", r"--components.*0"),
    cli("fit-sampler: --out a file", "fit-sampler tiny --out notes.txt", r"--out notes\.txt.*(is a file|not a folder)"),
    cli("fit-sampler: --seed -1", "fit-sampler tiny --seed -1", r"--seed.*-1"),
    # ---- push
    cli("push: missing folder", "push nodir --repo-id someuser/x", r"nodir.*(does not exist|not a folder)"),
    cli("push: not a model", "push pics --repo-id someuser/x", r"pics.*(not a saved BAVAE|config\.json)"),
    cli(
        "push: bad repo id",
        "push tiny --repo-id 'bad id!'",
        r"'bad id!'.*(repo id|repo_id)|(repo id|repo-id).*bad id!",
        may=("hub",),
    ),
    cli(
        "push: unreachable endpoint",
        "push tiny --repo-id someuser/x --token hf_fake",
        r"(127\.0\.0\.1:9|the Hub).*(could not be reached|cannot reach|connection refused)",
        env={"HF_HUB_OFFLINE": "", "HF_ENDPOINT": "http://127.0.0.1:9"},
        may=("hub",),
    ),
    # ---- the Python API
    api("load(None)", "bavae.load(None)", r"(name|model).*None"),
    api("load(123)", "bavae.load(123)", r"(name|model).*(123|int)"),
    api("load('')", "bavae.load('')", r"empty"),
    api("load(mistyped folder)", "bavae.load('runs/mnie')", r"runs/mnie.*(no such|does not exist)"),
    api("load(device='gpu')", "bavae.load('tiny', device='gpu')", r"device.*'gpu'"),
    api("load(device='cpu:1')", "bavae.load('tiny', device='cpu:1')", r"^(?!.*safetensors).*device.*cpu:1"),
    api("load(device=3.5)", "bavae.load('tiny', device=3.5)", r"device.*3\.5"),
    api("load(device='cuda') without one", "bavae.load('tiny', device='cuda')", r"cuda.*no CUDA"),
    api("list_models(123)", "bavae.list_models(123)", r"pattern.*(123|int)"),
    api("model_info(None)", "bavae.model_info(None)", r"(name|model).*\bNone\b"),
    api("encode(empty batch)", "m.encode(torch.zeros(0, 1, 32, 32))", r"empty|0 images|no images"),
    api("encode(uint8)", "m.encode(torch.zeros(2, 1, 32, 32, dtype=torch.uint8))", r"uint8.*/ 255"),
    api("encode(wrong size)", "m.encode(torch.zeros(2, 1, 28, 28))", r"\(N, 1, 32, 32\).*\(2, 1, 28, 28\)"),
    api("encode(NaN)", "m.encode(torch.full((2, 1, 32, 32), float('nan')))", r"nan|finite"),
    api("encode(numpy)", "m.encode(np.zeros((2, 1, 32, 32), np.float32))", r"ndarray"),
    api("encode(n_samples=0)", "m.encode(x, n_samples=0)", r"n_samples.*0"),
    api("encode(n_samples=2.5)", "m.encode(x, n_samples=2.5)", r"n_samples.*2\.5"),
    api("decode(int z)", "m.decode(torch.zeros(2, 4, dtype=torch.long))", r"int64|integer"),
    api("decode(NaN z)", "m.decode(torch.full((2, 4), float('nan')))", r"nan|finite"),
    api("decode(1e30 z)", "m.decode(torch.full((2, 4), 1e30))", r"1e\+30|too large|far"),
    api("decode(wrong width)", "m.decode(torch.zeros(2, 7))", r"\(N, 4\).*\(2, 7\)"),
    api("decode(empty)", "m.decode(torch.zeros(0, 4))", r"empty|0 codes|no codes"),
    api("sample(0)", "m.sample(0)", r"n.*0"),
    api("sample(2.5)", "m.sample(2.5)", r"n.*2\.5"),
    api("sample(10**12)", "m.sample(10**12)", r"1000000000000.*(memory|GB|TB|batches)"),
    api("sample(generator=123)", "m.sample(4, generator=123)", r"generator.*(int|123)"),
    api("sample(sampler='nope')", "m.sample(4, sampler='nope')", r"sampler.*'nope'"),
    api("sample(sampler='gmm') without one", "m.sample(4, sampler='gmm')", r"no fitted 'gmm' sampler"),
    api("interpolate(steps=2.5)", "m.interpolate(x[:1], x[1:2], steps=2.5)", r"steps.*2\.5"),
    api("interpolate(steps=1)", "m.interpolate(x[:1], x[1:2], steps=1)", r"steps.*1"),
    api("interpolate(2 vs 1 images)", "m.interpolate(x[:2], x[:1])", r"x1 and x2"),
    api("reconstruct(empty)", "m.reconstruct(torch.zeros(0, 1, 32, 32))", r"empty|0 images|no images"),
    api("kl_estimate(n_samples=0)", "m.kl_estimate(x, n_samples=0)", r"n_samples.*0"),
    api("BAVAEConfig(width=0)", "bavae.BAVAEConfig(width=0)", r"width.*0"),
    api("BAVAEConfig(width=10**6)", "bavae.BAVAEConfig(width=10**6)", r"width.*(at most|<=).*|1000000"),
    api("BAVAEConfig(latent_dim=10**7)", "bavae.BAVAEConfig(latent_dim=10**7)", r"latent_dim.*(at most|<=)"),
    api("BAVAEConfig(arch='vit')", "bavae.BAVAEConfig(arch='vit')", r"architecture 'vit'"),
    api("BAVAEConfig(image_size=33)", "bavae.BAVAEConfig(image_size=33)", r"image.size.*33"),
    api("BAVAEConfig(prior='cauchy')", "bavae.BAVAEConfig(prior='cauchy')", r"prior.*'cauchy'"),
    api("BAVAEConfig.from_dict(unknown)", "bavae.BAVAEConfig.from_dict({'nope': 1})", r"unknown config field.*nope"),
    api(
        "from_files(config mismatch)",
        "bavae.BAVAE.from_files(bavae.BAVAEConfig(width=64), 'tiny/model.safetensors')",
        r"does not match.*(encoder|decoder|critic)\.[\w.]+",
    ),
    api(
        "evaluate(dsprites, 32px model)",
        "__import__('bavae.eval').eval.evaluate(m, 'dsprites', settings=__import__('bavae.eval').eval.EvalSettings(n_samples=100, n_test=100))",
        r"dsprites.*64.*32|32.*dsprites.*64",
    ),
    # ================================================================================================ issue 22
    # ---- values: a model's tensors are finite; a mixture's weights positive, summing to 1; its Cholesky factors
    # with a positive diagonal (each refusal names the file and the tensor, before a model is built)
    cli(
        "values: all-NaN weights",
        "sample -m nanweights -o x.png",
        r"nanweights/model\.safetensors.*(encoder|decoder|critic)\.[\w.]+.*(NaN|not finite)",
    ),
    cli(
        "values: all-inf weights",
        "sample -m infweights -o x.png",
        r"infweights/model\.safetensors.*(encoder|decoder|critic)\.[\w.]+.*(inf|not finite)",
    ),
    cli(
        "values: one NaN in the decoder",
        "sample -m onenan -o x.png",
        r"onenan/model\.safetensors.*decoder\.[\w.]+.*(1 NaN|NaN)",
    ),
    cli(
        "values: -inf in a critic",
        "sample -m critinf -o x.png",
        r"critinf/model\.safetensors.*generative_critic\.[\w.]+.*(inf|not finite)",
    ),
    cli(
        "values: NaN weights, --sampler prior",
        "sample -m nanweights --sampler prior -o x.png",
        r"nanweights/model\.safetensors.*(NaN|not finite)",
    ),
    cli(
        "values: NaN weights, decode",
        "decode good_codes.npz -m nanweights -o d.png",
        r"nanweights/model\.safetensors.*(NaN|not finite)",
    ),
    cli(
        "values: NaN weights, eval",
        "eval nanweights --n-test 100 --n-samples 100",
        r"nanweights/model\.safetensors.*(NaN|not finite)",
    ),
    cli(
        "values: NaN weights, fit-sampler",
        "fit-sampler nanweights --out refit",
        r"nanweights/model\.safetensors.*(NaN|not finite)",
    ),
    cli(
        "values: gmm zero diagonal",
        "sample -m gmm_zerodiag -o x.png",
        r"gmm_zerodiag/model\.safetensors.*latent_sampler\.scale_tril.*(diagonal|positive)",
    ),
    cli(
        "values: gmm negative diagonal",
        "sample -m gmm_negdiag -o x.png",
        r"gmm_negdiag/model\.safetensors.*latent_sampler\.scale_tril.*(diagonal|positive)",
    ),
    cli(
        "values: gmm upper triangle",
        "sample -m gmm_upper -o x.png",
        r"gmm_upper/model\.safetensors.*latent_sampler\.scale_tril.*(lower.triangular|above the diagonal)",
    ),
    cli(
        "values: gmm inf scale_tril",
        "sample -m gmm_infscale -o x.png",
        r"gmm_infscale/model\.safetensors.*latent_sampler\.scale_tril.*(inf|not finite)",
    ),
    cli(
        "values: gmm NaN means",
        "sample -m gmm_nanmean -o x.png",
        r"gmm_nanmean/model\.safetensors.*latent_sampler\.means.*(NaN|not finite)",
    ),
    cli(
        "values: gmm negative weight",
        "sample -m gmm_negweight -o x.png",
        r"gmm_negweight/model\.safetensors.*latent_sampler\.weights.*(positive|> 0)",
    ),
    cli(
        "values: gmm zero weight",
        "sample -m gmm_zeroweight -o x.png",
        r"gmm_zeroweight/model\.safetensors.*latent_sampler\.weights.*(positive|> 0)",
    ),
    cli(
        "values: gmm weights sum 0.5",
        "sample -m gmm_halfsum -o x.png",
        r"gmm_halfsum/model\.safetensors.*latent_sampler\.weights.*sum.*0\.5",
    ),
    cli(
        "values: gmm weights sum 2",
        "sample -m gmm_twosum -o x.png",
        r"gmm_twosum/model\.safetensors.*latent_sampler\.weights.*sum.*\b2\b",
    ),
    # the neighbour sampler's table indexes its codes: an index out of range or a code its own neighbour is refused
    cli(
        "values: neighbours index past the codes",
        "sample -m nbr_past -o x.png",
        r"nbr_past/model\.safetensors.*latent_sampler\.neighbours.*index its 6 codes.*\b9\b",
    ),
    cli(
        "values: neighbours negative index",
        "sample -m nbr_negative -o x.png",
        r"nbr_negative/model\.safetensors.*latent_sampler\.neighbours.*-1",
    ),
    cli(
        "values: neighbours own code",
        "sample -m nbr_self -o x.png",
        r"nbr_self/model\.safetensors.*latent_sampler\.neighbours.*own neighbour.*row 2",
    ),
    cli(
        "values: neighbours NaN code",
        "sample -m nbr_nancode -o x.png",
        r"nbr_nancode/model\.safetensors.*latent_sampler\.codes.*(NaN|not finite)",
    ),
    cli(
        "values: gmm negative weight, npz",
        "sample -m gmm_negweight -n 8 -o s.npz",
        r"gmm_negweight/model\.safetensors.*latent_sampler\.weights",
    ),
    api("values: load(NaN weights)", "bavae.load('nanweights')", r"nanweights/model\.safetensors.*(NaN|not finite)"),
    api(
        "values: load(gmm negative weight)",
        "bavae.load('gmm_negweight')",
        r"gmm_negweight/model\.safetensors.*latent_sampler\.weights",
    ),
    api(
        "values: from_files(inf weights)",
        "bavae.BAVAE.from_files(bavae.BAVAEConfig(width=4, latent_dim=4, posterior_noise_dim=4), "
        "'infweights/model.safetensors')",
        r"infweights/model\.safetensors.*(inf|not finite)",
    ),
    # ---- --resume: the folder's model files agree with its training state; the options agree with the run's
    resume(
        "model files of another model",
        "--resume swapped",
        all_of("swapped", r"config\.json", "width", r"\b8\b", r"\b4\b", "training.state"),
    ),
    resume(
        "weights of another model",
        "--resume wrongweights",
        all_of("wrongweights", r"model\.safetensors", r"(encoder|decoder|critic)\.[\w.]+", "training.state"),
    ),
    resume("edited config.json", "--resume editedcfg", all_of("editedcfg", "objective", "paper", "informative")),
    resume("config.json not JSON", "--resume badjsonrun", all_of("badjsonrun", r"config\.json", "JSON")),
    resume("other model, more --steps", "--resume swapped2 --steps 6", all_of("swapped2", r"config\.json", "width")),
    resume("a finished run", "--resume done", all_of("--resume done", "finished", r"step 2", "--steps")),
    resume("a finished run, --steps 2", "--resume done --steps 2", all_of("done", "finished", r"step 2")),
    resume(
        "folder run, --dataset fashion-mnist",
        "--resume folderrun --dataset fashion-mnist",
        all_of("--dataset fashion-mnist", r"\bfolder\b", "folderrun"),
    ),
    resume(
        "--dataset folder",
        "--resume p_dataset --dataset folder --data-dir fewpics",
        all_of(r"--dataset folder", "fashion-mnist"),
    ),
    resume(
        "--dataset in --config",
        "--resume p_config --config dsprites.json",
        all_of("dsprites", "fashion-mnist"),
    ),
    resume("--arch mlp", "--resume p_arch --arch mlp", all_of("--arch mlp", "dcgan")),
    resume("--image-size 64", "--resume p_size --image-size 64", all_of("--image-size 64", r"\b32\b")),
    resume("--channels 3", "--resume p_channels --channels 3", all_of("--channels 3", r"\b1\b")),
    resume("--init tiny", "--resume p_init --init tiny", all_of("--init", "--resume")),
    resume("--out elsewhere", "--resume p_out --out runs/other", all_of("--out runs/other", "p_out")),
    resume("a damaged state", "--resume fakerun", all_of("fakerun", "training.state")),
    # ---- bounds: npz -n has a ceiling (and a free-disk check, tests/test_bad_inputs.py); the API's counts share
    # the command line's
    cli(
        "bounds: sample -n 10**9 npz",
        f"sample {M} -n 1000000000 -o s.npz",
        all_of("-n", "1000000000", r"(at most|ceiling)"),
        timeout=15,
    ),
    cli(
        "bounds: sample -n 3*10**8 npz",
        f"sample {M} -n 300000000 -o s.npz",
        all_of("-n", "300000000", r"(at most|ceiling)"),
        timeout=15,
    ),
    cli(
        "bounds: sample -n ceiling+1 --format npz",
        f"sample {M} -n 1000001 --format npz -o s.bin",
        all_of("-n", "1000001", r"(at most|ceiling)"),
        timeout=15,
    ),
    api("bounds: interpolate(steps=10**9)", "m.interpolate(x[:1], x[1:2], steps=10**9)", all_of("steps", "256")),
    api("bounds: interpolate(steps=257)", "m.interpolate(x[:1], x[1:2], steps=257)", all_of("steps", "257", "256")),
    api("bounds: encode(n_samples=10**9)", "m.encode(x, n_samples=10**9)", all_of("n_samples", "1000000000")),
    api("bounds: kl_estimate(n_samples=10**9)", "m.kl_estimate(x, n_samples=10**9)", all_of("n_samples", "1000000000")),
    api("bounds: encode(n_samples=True)", "m.encode(x, n_samples=True)", all_of("n_samples", "True")),
    api("bounds: sample_codes(10**12)", "m.sample_codes(10**12)", r"1000000000000.*(memory|GiB|TiB)"),
    # ---- files that exist but cannot be read as asked: permission denied, not a regular file, a folder; `-`
    perm("files: config.json mode 000", "sample -m unreadcfg -o x.png", r"unreadcfg/config\.json.*permission denied"),
    perm(
        "files: model.safetensors mode 000",
        "sample -m unreadweights -o x.png",
        r"unreadweights/model\.safetensors.*permission denied",
    ),
    perm("files: model folder mode 000", "sample -m lockedmodel -o x.png", r"lockedmodel.*permission denied"),
    perm("files: decode npz mode 000", f"decode unread.npz {M} -o d.png", r"unread\.npz.*permission denied"),
    perm("files: image mode 000", f"reconstruct unread.png {M} -o r.png", r"unread\.png.*permission denied"),
    perm("files: --config mode 000", "train --config unread.json --out runs/t", r"unread\.json.*permission denied"),
    perm(
        "files: --data-dir mode 000",
        "train --dataset folder --data-dir lockeddir --out runs/t",
        r"lockeddir.*permission denied",
    ),
    perm("files: -o in a read-only folder", f"sample {M} -o lockedout/x.png", r"lockedout/x\.png.*permission denied"),
    perm("files: -o a read-only file", f"sample {M} -o readonly.png", r"readonly\.png.*permission denied"),
    cli(
        "files: model.safetensors -> /dev/zero",
        "sample -m devweights -o x.png",
        r"devweights/model\.safetensors.*not a regular file",
    ),
    cli("files: config.json -> /dev/null", "sample -m devcfg -o x.png", r"devcfg/config\.json.*not a regular file"),
    cli("files: config.json a folder", "sample -m dircfg -o x.png", r"dircfg/config\.json.*(is a folder|directory)"),
    cli(
        "files: model.safetensors a folder",
        "sample -m dirweights -o x.png",
        r"dirweights/model\.safetensors.*(is a folder|directory)",
    ),
    cli(
        "files: model.safetensors a fifo",
        "sample -m fifoweights -o x.png",
        r"fifoweights/model\.safetensors.*not a regular file",
        timeout=15,
    ),
    cli("files: decode npz -> /dev/zero", f"decode dev.npz {M} -o d.png", r"dev\.npz.*not a regular file"),
    cli("files: decode a fifo", f"decode fifo.npz {M} -o d.png", r"fifo\.npz.*not a regular file", timeout=15),
    cli("files: decode a folder .npz", f"decode adir.npz {M} -o d.png", r"adir\.npz.*(is a folder|directory)"),
    cli("files: image -> /dev/zero", f"reconstruct dev.png {M} -o r.png", r"dev\.png.*not a regular file"),
    cli("files: image a fifo", f"reconstruct fifo.png {M} -o r.png", r"fifo\.png.*not a regular file", timeout=15),
    cli(
        "files: --config -> /dev/null",
        "train --config devnull.json --out runs/t",
        r"devnull\.json.*not a regular file",
    ),
    cli("files: sample -o -", f"sample {M} -o -", r"'-'.*(stdout|standard output)"),
    cli("files: encode -o -", f"encode pics/a.png {M} -o -", r"'-'.*(stdout|standard output)"),
    cli("files: decode -", f"decode - {M} -o d.png", r"(stdin|standard input)"),
    cli("files: reconstruct -", f"reconstruct - {M} -o r.png", r"(stdin|standard input)"),
    # ---- the API's tensor checks: meta tensors, complex and boolean dtypes (and codes from a file)
    api("tensors: encode(meta x)", "m.encode(x.to('meta'))", r"\bx\b.*meta"),
    api("tensors: reconstruct(meta x)", "m.reconstruct(x.to('meta'))", r"\bx\b.*meta"),
    api("tensors: kl_estimate(meta x)", "m.kl_estimate(x.to('meta'))", r"\bx\b.*meta"),
    api("tensors: interpolate(meta x2)", "m.interpolate(x[:1], x[1:2].to('meta'))", r"x2.*meta"),
    api("tensors: decode(meta z)", "m.decode(torch.zeros(2, 4, device='meta'))", r"\bz\b.*meta"),
    api("tensors: decode(bool z)", "m.decode(torch.zeros(2, 4, dtype=torch.bool))", r"^(?!.*integer).*bool"),
    api("tensors: decode(complex z)", "m.decode(torch.zeros(2, 4, dtype=torch.complex64))", r"^(?!.*integer).*complex"),
    api("tensors: encode(bool x)", "m.encode(torch.zeros(2, 1, 32, 32, dtype=torch.bool))", r"^(?!.*uint8).*bool"),
    api(
        "tensors: encode(complex x)",
        "m.encode(torch.zeros(2, 1, 32, 32, dtype=torch.complex64))",
        r"^(?!.*uint8).*complex",
    ),
    cli("tensors: decode bool codes", f"decode bool_codes.npz {M} -o d.png", r"^(?!.*integer).*bool_codes\.npz.*bool"),
    cli(
        "tensors: decode complex codes",
        f"decode complex_codes.npz {M} -o d.png",
        r"^(?!.*integer).*complex_codes\.npz.*complex",
    ),
]


# ------------------------------------------------------------------------------------------------ the sandbox
def _png_gray(path: Path, width: int, height: int) -> None:
    """A valid all-black grayscale PNG of any size, written row by row (a 15000x15000 one without 225 MB in memory)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp, row, parts = zlib.compressobj(9), b"\0" * (width + 1), []
    for _ in range(height):
        parts.append(comp.compress(row))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")
    )


def make_sandbox(root: Path) -> None:
    """The fixtures every case names by a relative path; the cases run with this folder as their working folder."""
    import numpy as np
    import torch
    from PIL import Image

    from bavae import BAVAE, BAVAEConfig

    tiny = dict(width=4, latent_dim=4, posterior_noise_dim=4)
    torch.manual_seed(0)
    BAVAE(BAVAEConfig(**tiny)).save_pretrained(root / "tiny")
    for name, change in {"badcfg": {"width": 256}, "hugecfg": {"width": 10**9}, "archcfg": {"arch": "vit"}}.items():
        shutil.copytree(root / "tiny", root / name)
        cfg = json.loads((root / name / "config.json").read_text())
        (root / name / "config.json").write_text(json.dumps({**cfg, **change}))
    shutil.copytree(root / "tiny", root / "badjson")
    (root / "badjson" / "config.json").write_text("{not json")
    shutil.copytree(root / "tiny", root / "truncated")
    data = (root / "tiny" / "model.safetensors").read_bytes()
    (root / "truncated" / "model.safetensors").write_bytes(data[: len(data) // 2])

    for d in ("runs", "empty", "pics", "fewpics", "allbad", "fakerun"):
        (root / d).mkdir()
    (root / "fakerun" / "training_state.safetensors").write_bytes(b"")
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (40, 30), dtype=np.uint8)).save(root / "pics" / name)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (36, 48, 3), dtype=np.uint8)).save(root / "fewpics" / f"{i}.jpg")
    (root / "notes.txt").write_text("not a picture\n")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (root / "allbad" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (root / "allbad" / "notes.txt").write_text("not a picture\n")
    _png_gray(root / "big.png", 15000, 15000)

    np.savez(root / "nocodes.npz", other=np.zeros((2, 4), np.float32))
    (root / "notes.npz").write_text("not an npz\n")
    codes = {
        "empty_codes": np.zeros((0, 4), np.float32),
        "nan_codes": np.full((3, 4), np.nan, np.float32),
        "huge_codes": np.full((3, 4), 1e30, np.float32),
        "int_codes": np.zeros((3, 4), np.int64),
        "wide_codes": np.zeros((3, 7), np.float32),
        "rank3_codes": np.zeros((2, 2, 4), np.float32),
    }
    for name, array in codes.items():
        np.savez(root / f"{name}.npz", codes=array, model=np.array("tiny"))

    (root / "bad.json").write_text("{steps: 3")
    (root / "bad.yaml").write_text("steps: [3\n")
    good = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good, "JPEG")
    (root / "undecodable").mkdir()
    for i in range(8):  # headers intact, bodies cut: only decoding finds out
        (root / "undecodable" / f"{i}.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    png = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(png, "PNG")
    (root / "truncated.png").write_bytes(png.getvalue()[: len(png.getvalue()) // 2])
    (root / "list.json").write_text("[1, 2]")
    (root / "typo.json").write_text('{"stepz": 3}')
    (root / "textema.json").write_text('{"ema_decay": "high"}')
    _issue22_sandbox(root)


def _edit_tensors(folder: Path, edit: Any, name: str = "model.safetensors") -> None:
    """Rewrite a safetensors file of ``folder`` with ``edit(tensors)`` applied (its metadata kept)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = folder / name
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path), metadata=metadata)


def _edit_run(folder: Path, **train_config: Any) -> None:
    """Change a run's recorded options, in its training state's metadata and in train_config.json alike."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = folder / "training_state.safetensors"
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    meta = json.loads(metadata["bavae_training_state"])
    meta["train_config"].update(train_config)
    save_file(load_file(str(path)), str(path), metadata={**metadata, "bavae_training_state": json.dumps(meta)})
    config = json.loads((folder / "train_config.json").read_text())
    (folder / "train_config.json").write_text(json.dumps({**config, **train_config}, indent=2))


def _issue22_sandbox(root: Path) -> None:
    """Issue 22's fixtures: corrupt values, run folders to resume, files that exist but cannot be read as asked."""
    import numpy as np
    import torch

    from bavae import BAVAE, BAVAEConfig
    from bavae.samplers import GaussianMixtureSampler, NeighbourSampler

    tiny = root / "tiny"
    # -- values
    for name, edit in {
        "nanweights": lambda t: [v.fill_(float("nan")) for v in t.values() if v.is_floating_point()],
        "infweights": lambda t: [v.fill_(float("inf")) for v in t.values() if v.is_floating_point()],
        "onenan": lambda t: t[sorted(k for k in t if k.startswith("decoder."))[0]].view(-1)[0].fill_(float("nan")),
        "critinf": lambda t: (
            t[sorted(k for k in t if k.startswith("generative_critic."))[0]].view(-1)[0].fill_(float("-inf"))
        ),
    }.items():
        shutil.copytree(tiny, root / name)
        _edit_tensors(root / name, edit)
    torch.manual_seed(0)
    model = BAVAE(BAVAEConfig(width=4, latent_dim=4, posterior_noise_dim=4))
    mixture = GaussianMixtureSampler(2, 4)
    mixture.weights.copy_(torch.tensor([0.25, 0.75]))
    mixture.means.copy_(torch.randn(2, 4))
    model.set_latent_sampler(mixture)
    model.save_pretrained(root / "gmm")

    def set_(key: str, index: Any, value: float):
        return lambda t: t[key].__setitem__(index, value)

    for name, edit in {
        "gmm_zerodiag": set_("latent_sampler.scale_tril", (1, 2, 2), 0.0),
        "gmm_negdiag": set_("latent_sampler.scale_tril", (0, 0, 0), -1.0),
        "gmm_upper": set_("latent_sampler.scale_tril", (0, 0, 3), 0.5),
        "gmm_infscale": set_("latent_sampler.scale_tril", (0, 1, 0), float("inf")),
        "gmm_nanmean": set_("latent_sampler.means", (1, 0), float("nan")),
        "gmm_negweight": lambda t: t["latent_sampler.weights"].copy_(torch.tensor([-0.5, 1.5])),
        "gmm_zeroweight": lambda t: t["latent_sampler.weights"].copy_(torch.tensor([0.0, 1.0])),
        "gmm_halfsum": lambda t: t["latent_sampler.weights"].copy_(torch.tensor([0.25, 0.25])),
        "gmm_twosum": lambda t: t["latent_sampler.weights"].copy_(torch.tensor([1.0, 1.0])),
    }.items():
        shutil.copytree(root / "gmm", root / name)
        _edit_tensors(root / name, edit)
    model.set_latent_sampler(NeighbourSampler.fit(torch.randn(6, 4), k=2))
    model.save_pretrained(root / "neighbours")
    for name, edit in {
        "nbr_past": set_("latent_sampler.neighbours", (3, 1), 9),
        "nbr_negative": set_("latent_sampler.neighbours", (0, 0), -1),
        "nbr_self": set_("latent_sampler.neighbours", (2, 0), 2),
        "nbr_nancode": set_("latent_sampler.codes", (4, 3), float("nan")),
    }.items():
        shutil.copytree(root / "neighbours", root / name)
        _edit_tensors(root / name, edit)
    np.savez(root / "good_codes.npz", codes=np.zeros((3, 4), np.float32), model=np.array("tiny"))
    np.savez(root / "bool_codes.npz", codes=np.zeros((3, 4), bool), model=np.array("tiny"))
    np.savez(root / "complex_codes.npz", codes=np.zeros((3, 4), np.complex64), model=np.array("tiny"))

    # -- runs to resume: a real 2-step run ("done", finished), and copies recorded as 2 steps of 4 ("partial")
    from bavae.train import TrainConfig, train

    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        train(
            TrainConfig(
                dataset="fashion-mnist",
                limit=64,
                batch_size=16,
                steps=2,
                sample_every=0,
                sampler_components=0,
                log_every=1,
                device="cpu",
                out=str(root / "done"),
                model=dict(width=4, latent_dim=4, posterior_noise_dim=4),
            )
        )
    for p in (root / "done").glob("events.*"):  # TensorBoard's (it names them after the host and time)
        p.unlink()
    partial = root / "partial"
    shutil.copytree(root / "done", partial)
    _edit_run(partial, steps=4)
    names = ["swapped", "swapped2", "wrongweights", "editedcfg", "badjsonrun", "folderrun"]
    for name in names + ["p_dataset", "p_config", "p_arch", "p_size", "p_channels", "p_init", "p_out"]:
        shutil.copytree(partial, root / name)
    other = root / "other_model"
    BAVAE(BAVAEConfig(width=8, latent_dim=4, posterior_noise_dim=4)).save_pretrained(other)
    for name in ("swapped", "swapped2"):
        for f in ("config.json", "model.safetensors"):
            shutil.copy(other / f, root / name / f)
    shutil.copy(other / "model.safetensors", root / "wrongweights" / "model.safetensors")
    config = json.loads((root / "editedcfg" / "config.json").read_text())
    (root / "editedcfg" / "config.json").write_text(json.dumps({**config, "objective": "paper"}, indent=2))
    (root / "badjsonrun" / "config.json").write_text("{not json")
    _edit_run(root / "folderrun", dataset="folder", data_dir="fewpics")
    (root / "dsprites.json").write_text('{"dataset": "dsprites"}')

    # -- files that exist but cannot be read as asked
    for name in ("unreadcfg", "unreadweights", "lockedmodel", "devweights", "devcfg", "dircfg", "dirweights"):
        shutil.copytree(tiny, root / name)
    for name, f in (("devweights", "model.safetensors"), ("devcfg", "config.json")):
        (root / name / f).unlink()
    (root / "devweights" / "model.safetensors").symlink_to("/dev/zero")
    (root / "devcfg" / "config.json").symlink_to("/dev/null")
    for name, f in (("dircfg", "config.json"), ("dirweights", "model.safetensors")):
        (root / name / f).unlink()
        (root / name / f).mkdir()
    shutil.copytree(tiny, root / "fifoweights")
    (root / "fifoweights" / "model.safetensors").unlink()
    os.mkfifo(root / "fifoweights" / "model.safetensors")
    os.mkfifo(root / "fifo.npz")
    os.mkfifo(root / "fifo.png")
    (root / "dev.npz").symlink_to("/dev/zero")
    (root / "dev.png").symlink_to("/dev/zero")
    (root / "devnull.json").symlink_to("/dev/null")
    (root / "adir.npz").mkdir()
    shutil.copy(root / "good_codes.npz", root / "unread.npz")
    shutil.copy(root / "pics" / "a.png", root / "unread.png")
    (root / "unread.json").write_text('{"steps": 3}')
    shutil.copytree(root / "fewpics", root / "lockeddir")
    (root / "lockedout").mkdir()
    shutil.copy(root / "pics" / "a.png", root / "readonly.png")
    for path, mode in LOCKED.items():
        os.chmod(root / path, mode)


# the fixtures the `perm` cases read, and their modes (unlock() gives them back theirs, so the sandbox can go)
LOCKED = {
    "unreadcfg/config.json": 0,
    "unreadweights/model.safetensors": 0,
    "lockedmodel": 0,
    "unread.npz": 0,
    "unread.png": 0,
    "unread.json": 0,
    "lockeddir": 0,
    "lockedout": 0o555,
    "readonly.png": 0o444,
}


def unlock(root: Path) -> None:
    for path in LOCKED:
        with contextlib.suppress(OSError):
            os.chmod(root / path, 0o755 if (root / path).is_dir() else 0o644)


def snapshot(root: Path, skip: tuple[str, ...] = ("hf", "torch", ".matrix")) -> dict[str, tuple]:
    """Every file and folder under root (but the caches), with its size and mtime: a case must change none."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        if rel == Path("."):
            dirnames[:] = [d for d in dirnames if d not in skip]
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            try:
                st = p.lstat()
            except OSError:
                continue
            out[str(rel / name)] = (p.is_dir(), 0 if p.is_dir() else st.st_size, 0 if p.is_dir() else st.st_mtime_ns)
    return out


def changes(before: dict, after: dict) -> list[str]:
    return sorted([p for p in after if p not in before] + [p for p in before if p in after and before[p] != after[p]])


def undo(root: Path, before: dict, after: dict) -> None:
    """Remove what a case created (so the next case sees the same sandbox)."""
    for p in sorted((p for p in after if p not in before), key=len, reverse=True):
        path = root / p
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def sandbox_env(root: Path) -> dict[str, str]:
    import bavae

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "BAVAE_"))}
    env.update(
        HF_HOME=str(root / "hf"),
        HF_HUB_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_ENDPOINT="http://127.0.0.1:9",  # nothing listens there: a case that calls the Hub fails at once
        TORCH_HOME=str(root / "torch"),
        BAVAE_CACHE=str(root / "hf" / "bavae-cache"),
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        COLUMNS="100",
    )
    weights = Path(bavae.__file__).resolve().parents[1] / "weights"
    if (weights / "bavae-fashionmnist32").is_dir():  # a source checkout (else the installed package's bundle)
        env["BAVAE_WEIGHTS_DIR"] = str(weights)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(bavae.__file__).resolve().parents[1])] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    return env


# ------------------------------------------------------------------------------------------------ the child
def _install_hooks(heavy: list[str]) -> None:
    """Record the heavy work a case does: a model built on a real device, a dataset built, training, a Hub call."""
    import bavae.data
    import bavae.model
    import bavae.train

    init = bavae.model.BAVAE.__init__

    def model_init(self, *a, **kw):
        init(self, *a, **kw)
        if any(p.device.type != "meta" for p in self.parameters()):
            heavy.append("model")

    bavae.model.BAVAE.__init__ = model_init

    def wrap(module, name, tag):
        fn = getattr(module, name)

        def wrapper(*a, **kw):
            heavy.append(tag)
            return fn(*a, **kw)

        setattr(module, name, wrapper)

    wrap(bavae.data, "build_dataset", "data")
    wrap(bavae.train, "game_step", "train")  # a training step taken
    try:
        import huggingface_hub

        wrap(huggingface_hub, "hf_hub_download", "hub")
        wrap(huggingface_hub.HfApi, "create_repo", "hub")
    except ImportError:
        pass


def run_child(argv: list[str], result_file: str) -> None:
    """Run `bavae ARGV` in this process as the `bavae` script would, record the exit status and the heavy work."""
    import resource

    limit = 8 << 30  # an allocation of tens of GB fails here instead of taking the machine down
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    heavy: list[str] = []
    code: int = 0
    try:
        _install_hooks(heavy)
        from bavae.cli import main

        main(argv)
    except SystemExit as e:
        code = exit_status(e)
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    Path(result_file).write_text(json.dumps({"rc": code, "heavy": sorted(set(heavy))}))
    os._exit(code)


def serve() -> None:
    """The fork server: import everything once, then fork one child per request (a JSON line on stdin)."""
    import bavae.cli  # noqa: F401
    import bavae.data  # noqa: F401
    import bavae.eval  # noqa: F401
    import bavae.model  # noqa: F401
    import bavae.train  # noqa: F401
    import bavae.zoo  # noqa: F401

    with contextlib.suppress(ImportError):
        import sklearn.mixture  # noqa: F401
    with contextlib.suppress(ImportError):
        import torch.utils.tensorboard  # noqa: F401
    serve_requests(_case_child, lambda code, timed_out: {"status": _status(code, timed_out)})


def _case_child(req: dict) -> None:
    os.setsid()
    os.chdir(req["cwd"])
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(os.open(req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 1)
    os.dup2(os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
    run_child(req["argv"], req["result"])


def _status(code: int, timed_out: bool) -> str:
    # (warm_python.wait also ends the server, killing the case, if the test process went away)
    return "timeout" if timed_out else "ok" if code >= 0 else f"signal {-code}"


# ------------------------------------------------------------------------------------------------ the runner
@dataclass
class Result:
    case: Case
    rc: int | None
    stdout: str
    stderr: str
    written: list[str]
    heavy: list[str]
    seconds: float
    status: str = "ok"
    error_type: str = ""
    user_error: bool = False  # an API case raised a ValueError or TypeError (not an error from deep inside torch)

    @property
    def message(self) -> str:
        lines = self.lines
        return lines[0] if len(lines) == 1 else " | ".join(lines)[-400:]

    @property
    def lines(self) -> list[str]:
        return [s.strip() for s in re.split(r"[\r\n]+", self.stderr) if s.strip()]

    # what counts against the case
    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.stderr + self.stdout

    @property
    def wrong_success(self) -> bool:
        return self.status != "ok" or self.rc == 0 or (self.rc is not None and self.rc not in (1, 2))

    @property
    def files_left(self) -> bool:
        return bool(self.written)

    @property
    def raw_error(self) -> bool:
        """An API case that raised something other than a ValueError or TypeError: torch's own, most often."""
        return self.case.kind == "api" and not self.wrong_success and not self.user_error

    @property
    def wrong_cause(self) -> bool:
        if self.wrong_success or self.traceback or self.raw_error:
            return False  # counted there
        return not re.search(self.case.expect, self.message, re.IGNORECASE | re.DOTALL)

    @property
    def not_one_line(self) -> bool:
        if self.wrong_success or self.traceback:
            return False
        return len(self.lines) != 1 or bool(self.stdout.strip())

    @property
    def late(self) -> bool:
        return bool(set(self.heavy) - set(self.case.may))

    @property
    def problems(self) -> list[str]:
        return [n for n in COUNTS if getattr(self, n)]


@contextlib.contextmanager
def memory_limit(extra: int):
    """At most ``extra`` more bytes of address space while an API case runs in this process: an allocation of tens
    of GB (an unbounded count) fails in the allocator, as in a CLI case's child, instead of waking the OOM killer."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        size = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = size + extra if hard == resource.RLIM_INFINITY else min(size + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


class Runner:
    def __init__(self, root: Path, fresh: bool = False):
        self.root, self.fresh = root, fresh
        self.env = sandbox_env(root)
        self.tmp = root / ".matrix"
        self.tmp.mkdir(exist_ok=True)
        self.servers: dict[bool, subprocess.Popen] = {}

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc) -> None:
        for server in self.servers.values():
            server.stdin.close()
            server.wait(timeout=30)

    def _server(self, drop_caps: bool = False) -> subprocess.Popen:
        if drop_caps not in self.servers:
            self.servers[drop_caps] = subprocess.Popen(
                [*self.prefix(drop_caps), sys.executable, __file__, "--serve"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=self.env,
                text=True,
                cwd=self.root,
            )
        return self.servers[drop_caps]

    @staticmethod
    def prefix(drop_caps: bool) -> list[str]:
        """What runs a `perm` case without the capabilities that let root ignore file modes (nothing for others)."""
        if not drop_caps or os.geteuid() != 0:
            return []
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise RuntimeError("the file-mode cases need setpriv (util-linux) when run as root: root ignores modes")
        drop = ",".join(f"-{cap}" for cap in CAPS.split(","))
        return [setpriv, f"--bounding-set={drop}", f"--inh-caps={drop}", "--"]

    def run(self, case: Case) -> Result:
        return self.run_api(case) if case.kind == "api" else self.run_cli(case)

    def run_cli(self, case: Case) -> Result:
        argv = shlex.split(case.what)
        files = {k: str(self.tmp / k) for k in ("stdout", "stderr", "result")}
        for f in files.values():
            Path(f).unlink(missing_ok=True)
        before = snapshot(self.root)
        t0 = time.perf_counter()
        if self.fresh or case.env:
            env = {**self.env, **case.env}
            env = {k: v for k, v in env.items() if v != ""}
            cmd = [*self.prefix(case.drop_caps), sys.executable, __file__, "--one", files["result"], "--", *argv]
            with open(files["stdout"], "w") as out, open(files["stderr"], "w") as err:
                proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=out, stderr=err, start_new_session=True)
                try:
                    proc.wait(timeout=case.timeout)
                    status = "ok" if proc.returncode >= 0 else f"signal {-proc.returncode}"
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    status = "timeout"
        else:
            server = self._server(case.drop_caps)
            server.stdin.write(
                json.dumps({"argv": argv, "cwd": str(self.root), "timeout": case.timeout, **files}) + "\n"
            )
            server.stdin.flush()
            ready, _, _ = select.select([server.stdout], [], [], case.timeout + 60)
            if not ready:
                raise RuntimeError("the fork server stopped answering")
            answer = server.stdout.readline()
            if not answer:
                raise RuntimeError(f"the fork server{' (under setpriv)' if case.drop_caps else ''} stopped")
            status = json.loads(answer)["status"]
        seconds = time.perf_counter() - t0
        after = snapshot(self.root)
        written = changes(before, after)
        undo(self.root, before, after)
        result = json.loads(Path(files["result"]).read_text()) if Path(files["result"]).exists() else {}
        read = lambda k: Path(files[k]).read_text(errors="replace") if Path(files[k]).exists() else ""  # noqa: E731
        return Result(
            case, result.get("rc"), read("stdout"), read("stderr"), written, result.get("heavy", []), seconds, status
        )

    def run_api(self, case: Case) -> Result:
        import numpy as np
        import torch

        import bavae

        if not hasattr(self, "model"):
            self.model = bavae.load(str(self.root / "tiny"), device="cpu")
        ns = {"bavae": bavae, "torch": torch, "np": np, "m": self.model, "x": torch.rand(4, 1, 32, 32)}
        before = snapshot(self.root)
        cwd = os.getcwd()
        t0 = time.perf_counter()
        err, error_type, rc, user_error = io.StringIO(), "", 0, False
        import huggingface_hub.constants as hub_constants

        offline = hub_constants.HF_HUB_OFFLINE
        try:
            hub_constants.HF_HUB_OFFLINE = True  # as the CLI cases: no case may wait on the network
            os.chdir(self.root)
            with memory_limit(8 << 30), contextlib.redirect_stderr(io.StringIO()):
                with contextlib.redirect_stdout(io.StringIO()) as out:
                    exec(case.what, ns)
        except Exception as e:  # noqa: BLE001 - what a user would see
            error_type, rc, user_error = type(e).__name__, 1, isinstance(e, (ValueError, TypeError))
            err.write(str(e) or type(e).__name__)
        finally:
            os.chdir(cwd)
            hub_constants.HF_HUB_OFFLINE = offline
        seconds = time.perf_counter() - t0
        after = snapshot(self.root)
        written = changes(before, after)
        undo(self.root, before, after)
        return Result(case, rc, out.getvalue(), err.getvalue(), written, [], seconds, "ok", error_type, user_error)


def select_cases(pattern: str | None) -> list[Case]:
    return [c for c in CASES if not pattern or pattern.lower() in c.id.lower()]


def run_matrix(root: Path, cases: list[Case], fresh: bool = False, progress: bool = False) -> list[Result]:
    make_sandbox(root)
    results = []
    try:
        with Runner(root, fresh) as runner:
            for case in cases:
                r = runner.run(case)
                results.append(r)
                if progress:
                    mark = "ok " if not r.problems else "BAD"
                    print(
                        f"{mark} {r.seconds:5.1f}s {case.kind} {case.id:<38} {','.join(r.problems):<24} "
                        f"{r.message[:150]}",
                        flush=True,
                    )
    finally:
        unlock(root)
    return results


COUNTS = ("traceback", "wrong_success", "files_left", "wrong_cause", "raw_error", "not_one_line", "late")
ISSUE22 = ("values", "resume", "bounds", "files", "tensors")  # the id prefixes of issue 22's rows (its classes)


def row_class(case: Case) -> str:
    prefix = case.id.split(":")[0]
    return f"22 {prefix}" if prefix in ISSUE22 else "14 (earlier rows)"


def class_table(results: list[Result]) -> str:
    """The counts by class of row: issue 22's five classes, and the earlier rows together."""
    classes = sorted({row_class(r.case) for r in results})
    head = f"{'class':<20}{'rows':>5}" + "".join(f"{n.replace('_', ' '):>15}" for n in COUNTS)
    lines = [head]
    for c in [*classes, "all"]:
        rs = [r for r in results if c == "all" or row_class(r.case) == c]
        lines.append(f"{c:<20}{len(rs):>5}" + "".join(f"{sum(getattr(r, n) for r in rs):>15}" for n in COUNTS))
    return "\n".join(lines)


def summarize(results: list[Result]) -> dict[str, Any]:
    summary: dict[str, Any] = {"cases": {"cli": 0, "api": 0}}
    for r in results:
        summary["cases"][r.case.kind] += 1
    for name in COUNTS:
        summary[name] = sum(getattr(r, name) for r in results)
    summary["clean"] = sum(not r.problems for r in results)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", dest="pattern", default=None, help="only the cases whose id contains this")
    parser.add_argument("--fresh", action="store_true", help="each CLI case in a fresh python process")
    parser.add_argument("--json", default=None, help="write every result to this file")
    parser.add_argument("--keep", action="store_true", help="keep the sandbox folder")
    args = parser.parse_args()
    import bavae

    root = Path(tempfile.mkdtemp(prefix="bavae-bad-inputs-"))
    t0 = time.perf_counter()
    try:
        print(f"bavae {bavae.__version__} from {Path(bavae.__file__).parent}; sandbox {root}", flush=True)
        results = run_matrix(root, select_cases(args.pattern), fresh=args.fresh, progress=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    summary = summarize(results)
    print(
        f"\n{summary['cases']['cli']} CLI and {summary['cases']['api']} API cases in {time.perf_counter() - t0:.0f} s: "
        + ", ".join(f"{summary[n]} {n.replace('_', ' ')}" for n in COUNTS)
        + f"; {summary['clean']} clean"
    )
    print("\n" + class_table(results))
    if args.json:
        rows = [
            {
                "id": r.case.id,
                "kind": r.case.kind,
                "rc": r.rc,
                "status": r.status,
                "problems": r.problems,
                "message": r.message,
                "written": r.written,
                "heavy": r.heavy,
                "seconds": round(r.seconds, 2),
            }
            for r in results
        ]
        Path(args.json).write_text(json.dumps({"summary": summary, "results": rows}, indent=1))
    sys.exit(0 if summary["clean"] == len(results) else 1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve()
    elif len(sys.argv) > 2 and sys.argv[1] == "--one":
        run_child(sys.argv[4:] if sys.argv[3] == "--" else sys.argv[3:], sys.argv[2])
    else:
        main()
