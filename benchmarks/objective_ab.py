"""Objective and recipe variants trained one after another on the same data, seed and step budget, then scored.

    OMP_NUM_THREADS=1 python benchmarks/objective_ab.py --steps 3000 --out runs/ab

Each variant is a `bavae train` run (resumable: a finished variant is skipped, a cut one resumed) in OUT/<name>;
its single-thread CPU time is that child process's. Every model is scored with `bavae eval` on the shipped
classifier's features: FID with the prior and with Gaussian mixtures of several sizes fitted on the training codes,
reconstruction MSE and class agreement. Results: OUT/results.json and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
from pathlib import Path

VARIANTS = {
    # the first release's recipe: eq. 14's fakes only, two critic trunks, fp32
    "posterior-fakes": ["--objective-weight", "prior_fakes=0", "--separate-critic-trunks", "--precision", "fp32"],
    # half of the generative critic's fakes decoded from prior codes
    "prior-fakes": ["--objective-weight", "prior_fakes=0.5", "--separate-critic-trunks", "--precision", "fp32"],
    "prior-fakes-shared": ["--objective-weight", "prior_fakes=0.5", "--shared-critic-trunk", "--precision", "fp32"],
    "prior-fakes-shared-bf16": [
        "--objective-weight",
        "prior_fakes=0.5",
        "--shared-critic-trunk",
        "--precision",
        "bf16",
    ],
    "posterior-fakes-shared-bf16": [
        "--objective-weight",
        "prior_fakes=0",
        "--shared-critic-trunk",
        "--precision",
        "bf16",
    ],
    # the image-only head on the decoded prior codes (VAE-GAN's sample discriminator, an f-GAN KL)
    "prior-fakes-sample-shared-bf16": [
        "--objective-weight",
        "prior_fakes=0.5",
        "--objective-weight",
        "sample=1",
        "--shared-critic-trunk",
        "--precision",
        "bf16",
    ],
    # seed noise
    "posterior-fakes-shared-bf16-seed1": [
        "--objective-weight",
        "prior_fakes=0",
        "--shared-critic-trunk",
        "--precision",
        "bf16",
        "--seed",
        "1",
    ],
    "prior-fakes-shared-bf16-seed1": [
        "--objective-weight",
        "prior_fakes=0.5",
        "--shared-critic-trunk",
        "--precision",
        "bf16",
        "--seed",
        "1",
    ],
}


def cpu_seconds_of_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def train(name: str, args: list[str], steps: int, out: Path, bavae: str) -> float | None:
    """Train (or resume) one variant; returns the CPU seconds this call spent, None if it was already done."""
    run = out / name
    done = run / "done.json"
    if done.exists():
        return None
    if (run / "training_state.safetensors").exists():
        cmd = [bavae, "train", "--resume", str(run)]
    else:
        cmd = [
            bavae,
            "train",
            "--dataset",
            "fashion-mnist",
            "--arch",
            "dcgan",
            "--steps",
            str(steps),
            "--seed",
            "0",
            "--checkpoint-every",
            "500",
            "--sample-every",
            "1000",
            "--out",
            str(run),
            *args,
        ]
    print("$", shlex.join(cmd), flush=True)
    before = cpu_seconds_of_children()
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    spent = cpu_seconds_of_children() - before
    previous = json.loads((run / "cpu.json").read_text())["cpu_s"] if (run / "cpu.json").exists() else 0.0
    (run / "cpu.json").write_text(json.dumps({"cpu_s": previous + spent}))
    done.write_text(json.dumps({"steps": steps, "command": cmd}))
    return spent


def score(run: Path, components: list[int], n: int) -> dict:
    import torch

    import bavae
    from bavae.data import build_dataset
    from bavae.eval import EvalSettings, evaluate
    from bavae.samplers import fit_latent_sampler

    torch.set_num_threads(1)
    model = bavae.load(str(run), device="cpu")
    data = build_dataset("fashion-mnist", image_size=model.config.image_size, channels=1, split="train")
    result = {"cpu_min": json.loads((run / "cpu.json").read_text())["cpu_s"] / 60}
    settings = EvalSettings(n_samples=n, n_test=n)
    for k in components:
        fit_latent_sampler(model, data, k, progress=False)
        report = evaluate(model, "fashion-mnist", settings=settings)
        result.update(
            {
                f"fid_gmm{k}": report["fid_gmm"],
                "fid_prior": report["fid_prior"],
                "recon_mse": report["recon_mse"],
                "class_agreement": report["class_agreement"],
                "infonce_nats": report["infonce_nats"],
                "kl_nats": report["kl_nats"],
            }
        )
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--out", default="runs/ab")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names of VARIANTS")
    p.add_argument("--components", default="10,50", help="Gaussian-mixture sizes to score")
    p.add_argument("--n-eval", type=int, default=10000)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bavae = str(Path(sys.executable).with_name("bavae"))
    names = args.variants.split(",")
    for name in names:
        train(name, VARIANTS[name], args.steps, out, bavae)
    results_file = out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    components = [int(k) for k in args.components.split(",")]
    for name in names:
        if name not in results:
            results[name] = score(out / name, components, args.n_eval)
            results_file.write_text(json.dumps(results, indent=2))
    keys = [
        "cpu_min",
        "fid_prior",
        *(f"fid_gmm{k}" for k in components),
        "recon_mse",
        "class_agreement",
        "infonce_nats",
    ]
    print("| variant | " + " | ".join(keys) + " |\n|" + "---|" * (len(keys) + 1))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{results[name].get(k, float('nan')):.4g}" for k in keys) + " |")


if __name__ == "__main__":
    main()
