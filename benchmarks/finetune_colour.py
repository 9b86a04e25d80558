"""Does fine-tuning pay? A style the pretrained model never saw, as a user's folder: fine-tuned from the model
against trained from scratch, at equal steps, through `bavae train --dataset folder [--init ...]`.

    python benchmarks/make_emoji_folder.py --packs PACKS --out data/emoji-flat --styles fluent-flat
    OMP_NUM_THREADS=1 python benchmarks/finetune_colour.py --init runs/zoo/bavae-emoji64 --data-dir data/emoji-flat \\
        --steps 500,2000 --out runs/finetune-flat

bavae-emoji64 is trained on three styles (Noto, Twemoji, Fluent modern); Fluent's flat style is held out whole.
Both runs use the pretrained model's networks (its config.json) and `bavae train`'s defaults otherwise; the
scratch run gets the same --arch/--width/--latent-dim/... as the model. Each run trains to the first step count,
is scored, then resumes (bit-exact) to the next. Scores are `bavae eval` on the folder's test split (its held-out
emoji): reconstruction MSE, SSIM and FID, and sample FID with each sampler (the mixture is fitted on the run's
training codes at each step count). Results: OUT/results.json, OUT/<run>-<steps>/ (a copy of each scored model),
OUT/finetune.png (held-out reconstructions and samples of both runs at each step count).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch

import bavae
from bavae.data import ImageFolder
from bavae.eval import EvalSettings, evaluate
from bavae.files import atomic_write
from bavae.images import save_grid

ARCH_OPTIONS = ("arch", "image_size", "channels", "width", "latent_dim", "posterior_noise_dim", "critic_width")


def train(out: Path, data_dir: str, steps: int, init: str | None, config: dict, extra: list[str]) -> None:
    cmd = [sys.executable, "-m", "bavae.train", "--dataset", "folder", "--data-dir", data_dir, "--steps", str(steps)]
    if (out / "training_state.safetensors").is_file():
        cmd += ["--resume", str(out)]  # the run's own options, to the next step count
    else:
        if init:
            cmd += ["--init", init]
        else:
            # the model's critic_width None means "as wide as --width"; bavae train's None means half of it
            config = {**config, "critic_width": config.get("critic_width") or config["width"]}
            for k in ARCH_OPTIONS:
                if config.get(k) is not None:
                    cmd += [f"--{k.replace('_', '-')}", str(config[k])]
            cmd += ["--shared-critic-trunk" if config["shared_critic_trunk"] else "--separate-critic-trunks"]
        cmd += [*extra, "--out", str(out)]
    subprocess.run(cmd, check=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--init", required=True, help="the pretrained model (trained without the folder's style)")
    p.add_argument("--data-dir", required=True, help="the user's folder (train/ and test/ inside)")
    p.add_argument("--steps", default="500,2000")
    p.add_argument("--n-eval", type=int, default=2000)
    p.add_argument("--out", default="runs/finetune-flat")
    p.add_argument("--extra", default="--precision bf16 --checkpoint-every 500 --sample-every 0 --log-every 50")
    args = p.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = bavae.load(args.init, device="cpu").config.to_dict()
    results_file = out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    test = ImageFolder(args.data_dir, image_size=config["image_size"], channels=config["channels"], split="test")
    x = torch.stack([test[i] for i in range(min(16, len(test)))])
    rows = []
    for steps in [int(s) for s in args.steps.split(",")]:
        for run, init in (("pretrained", args.init), ("scratch", None)):
            key = f"{run}-{steps}"
            if key not in results:
                train(out / run, args.data_dir, steps, init, config, args.extra.split())
                shutil.copytree(out / run, out / key, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.tfevents*"))
                model = bavae.load(str(out / key), device="cpu")
                report = evaluate(model, "folder", data_dir=args.data_dir, settings=EvalSettings(n_samples=args.n_eval))
                with open(out / run / "metrics.csv", newline="") as f:
                    cpu = float(list(csv.DictReader(f))[-1]["cpu_minutes"])
                results[key] = {**report, "steps": steps, "cpu_minutes": cpu}
                atomic_write(results_file, lambda t: Path(t).write_text(json.dumps(results, indent=2)))
            model = bavae.load(str(out / key), device="cpu")
            g = torch.Generator().manual_seed(0)
            with torch.no_grad():
                rows += [model.reconstruct(x, generator=g).clamp(0, 1), model.sample(len(x), generator=g).clamp(0, 1)]
    save_grid(torch.cat([x, *rows]), out / "finetune.png", len(x))
    keys = (
        "recon_mse",
        "recon_ssim",
        "recon_fid",
        "fid",
        "fid_prior",
        "fid_gmm",
        "fid_neighbours",
        "class_agreement",
        "cpu_minutes",
    )
    print("| run | steps | " + " | ".join(keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    for key, r in results.items():
        cells = [f"{r[k]:.4g}" if isinstance(r.get(k), float) else str(r.get(k, "–")) for k in keys]
        print(f"| {key.rsplit('-', 1)[0]} | {r['steps']:,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
