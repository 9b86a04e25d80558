"""Everything that needs a GPU, in one prepared run: CUDA tests, training speed, and time-boxed training runs.

    python benchmarks/device_check.py --out $OUT                      # on a CUDA machine (about 8 minutes)
    python benchmarks/device_check.py --dry-run --out /tmp/check      # the same code path on the CPU, tiny

bavae must be installed (`pip install -e .`: the classifier of `bavae eval` ships in the package).

Phases, each in its own process (a failure is recorded and the next phase still runs):
 1. environment: torch, CUDA, the GPU;
 2. speed: `benchmarks/train_speed.py` at batch 64 and 256 (fp32 and bf16, BAVAE against the Gaussian VAE, and
    the step costs: the shipped half-width critics every 2nd step against each saving undone, torch.compile, and
    torch.compile's reduce-overhead mode, CUDA graphs of the compiled networks), while the GPU is otherwise idle;
 3. the `cuda`-marked tests (`pytest -m cuda`: AMP bf16/fp16, --compile, DDP with NCCL), beside
 4. the training runs of RECIPES, all at once on the one GPU, each stopped by `bavae train --max-minutes`;
    with pythae's Gaussian VAE for dSprites (`benchmarks/dsprites_mig.py`) training beside them for as long;
 5. scoring: `bavae eval` of the default recipe, and MIG of the two dSprites models;
 6. OUT/results.json, OUT/results.md, and OUT/<run>.tar.gz per run (config.json, model.safetensors in float16
    with the sampler in float32, train_config.json, metrics.csv, the last sample grid).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name -> `bavae train` options (the dataset's data dir is added by main). Every run gets --max-minutes.
RECIPES = {
    "fashionmnist32": "--dataset fashion-mnist --arch dcgan".split(),
    # the default recipe with decoded prior codes among the generative critic's fakes, and with the image-only head
    "fashionmnist32-prior-fakes": "--dataset fashion-mnist --arch dcgan --objective-weight prior_fakes=0.5".split(),
    "fashionmnist32-sample": (
        "--dataset fashion-mnist --arch dcgan --objective-weight prior_fakes=0.5 --objective-weight sample=1"
    ).split(),
    "fashionmnist32-resnet": "--dataset fashion-mnist --arch resnet --width 32".split(),
    "fashionmnist28-mlp": "--dataset fashion-mnist --arch mlp".split(),
    "dsprites64": "--dataset dsprites --arch dcgan --width 16 --latent-dim 10 --posterior-noise-dim 10".split(),
    # issue 21's prior path: the code critic C(z) beside the MMD (docs/method.md, section 6)
    "fashionmnist32-code": "--dataset fashion-mnist --arch dcgan --objective-weight code=1".split(),
    # bavae-emoji64's recipe as the 64 px A/B left it (docs/method.md, section 10)
    "emoji64": (
        "--dataset emoji --arch dcgan --image-size 64 --channels 3 --width 32 --latent-dim 64 "
        "--posterior-noise-dim 64 --lr 5e-4 --critic-lr 5e-4 --augment flip --num-workers 4"
    ).split(),
}
COMMON = "--shared-critic-trunk --precision bf16 --checkpoint-every 2000 --sample-every 2000 --log-every 50".split()


def run(cmd: list[str], log: Path, timeout: float, env: dict | None = None) -> dict:
    """Run a command to completion, its output in ``log``; returns rc and seconds (never raises)."""
    t0 = time.perf_counter()
    with open(log, "w") as f:
        try:
            rc = subprocess.run(
                cmd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})}
            ).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    return {"cmd": " ".join(cmd), "rc": rc, "seconds": round(time.perf_counter() - t0, 1)}


def tail(path: Path, n: int = 1500) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-n:].replace("\r", "\n")


def pack(run_dir: Path, dest: Path) -> None:
    """The run's model in float16 (its latent sampler kept in float32) and its records, as one tar.gz."""
    from safetensors.torch import load_file, save_file

    state = load_file(str(run_dir / "model.safetensors"))
    half = {
        k: (v.half() if v.is_floating_point() and not k.startswith("latent_sampler.") else v).contiguous()
        for k, v in state.items()
    }
    save_file(half, str(run_dir / "model.fp16.safetensors"), metadata={"format": "pt"})
    samples = sorted((run_dir / "samples").glob("step_*.png"))
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(run_dir / "model.fp16.safetensors", arcname=f"{run_dir.name}/model.safetensors")
        for name in ("config.json", "train_config.json", "metrics.csv"):
            if (run_dir / name).is_file():
                tar.add(run_dir / name, arcname=f"{run_dir.name}/{name}")
        if samples:
            tar.add(samples[-1], arcname=f"{run_dir.name}/samples/{samples[-1].name}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny: check the code path, measure nothing")
    p.add_argument("--minutes", type=float, default=5.0, help="training time of each run")
    p.add_argument("--recipes", default=",".join(RECIPES))
    p.add_argument("--emoji-dir", default="data/emoji", help="the image folder of the emoji64 run")
    p.add_argument("--skip", default="", help="comma-separated phases to skip: speed,tests,train,score")
    p.add_argument("--work", default=None, help="run folders and logs (default OUT/work)")
    args = p.parse_args()
    out = Path(args.out).resolve()
    work = Path(args.work).resolve() if args.work else out / "work"  # run folders and logs
    work.mkdir(parents=True, exist_ok=True)
    skip = set(filter(None, args.skip.split(",")))
    py, dry = sys.executable, args.dry_run
    device = "cpu" if dry else "cuda"
    env = {
        "BAVAE_WEIGHTS_DIR": str(ROOT / "weights"),
        "PYTHONUNBUFFERED": "1",
        "BAVAE_CACHE": str(work / "cache"),
    }
    results: dict = {"dry_run": dry, "phases": {}}

    def save() -> None:
        (out / "results.json").write_text(json.dumps(results, indent=2))

    # 1. environment
    import torch

    from bavae.train import cpu_has_fast_bf16

    results["environment"] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": sys.version.split()[0],
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "gpu_memory_gb": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
        if torch.cuda.is_available()
        else None,
        "cpus": os.cpu_count(),
    }
    if not dry and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --dry-run on the CPU")
    save()

    # 2. speed, on an idle GPU
    if "speed" not in skip:
        speed = {}
        for batch in (64, 256) if not dry else (8,):
            log = work / f"speed-{batch}.log"
            rounds = ["--rounds", "3", "--steps", "30"] if not dry else ["--rounds", "1", "--steps", "1"]
            # issue 21's step costs: the shipped half-width critics every 2nd step, each saving undone (critics every
            # step; full-width critics every step), torch.compile, CUDA graphs through its reduce-overhead mode;
            # compiling takes minutes on a CPU, so the dry run proves the others
            extras = "critic_every=1,critic_width=32+critic_every=1"
            extras += "" if dry else ",compile,compile=reduce-overhead"
            info = run(
                [py, "benchmarks/train_speed.py", "--device", device, "--batch-size", str(batch), "--json", *rounds]
                + ["--extras", extras],
                log,
                300,
                env,
            )
            try:
                text = log.read_text()
                speed[str(batch)] = json.loads(text[text.index("{") :])["results"]
            except (ValueError, KeyError):
                speed[str(batch)] = {"error": tail(log), **info}
        results["phases"]["speed"] = speed
        save()

    # 3 + 4. tests beside the training runs
    procs = {}
    if "tests" not in skip:
        test_log = work / "tests.log"
        procs["tests"] = (
            subprocess.Popen(
                [py, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "tests/test_cuda.py", "-rs"],
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=open(test_log, "w"),
                stderr=subprocess.STDOUT,
            ),
            test_log,
        )
    runs = [r for r in args.recipes.split(",") if r] if "train" not in skip else []
    # A CPU without native bf16 emulates it, 10-20x slower than fp32: the dry run's steps check the code path, so they
    # run in fp32 there (the speed phase above still takes a bf16 step of each recipe that has one).
    dry_precision = ["--precision", "fp32"] if dry and not cpu_has_fast_bf16() else []
    for name in runs:
        recipe = list(RECIPES[name])
        if name == "emoji64":
            recipe += ["--data-dir", str(Path(args.emoji_dir).resolve())]
        budget = (
            ["--steps", "3", "--limit", "128", "--batch-size", "16"]
            if dry
            else ["--steps", "1000000", "--max-minutes", str(args.minutes)]
        )
        log = work / f"train-{name}.log"
        cmd = [py, "-m", "bavae.train", *recipe, *COMMON, *dry_precision, "--device", device, *budget]
        cmd += ["--out", str(work / name)]
        procs[name] = (
            subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=open(log, "w"), stderr=subprocess.STDOUT),
            log,
        )
    if "dsprites64" in runs and "score" not in skip:  # its Gaussian-VAE peer trains beside it, for as long
        log = work / "train-dsprites-vae.log"
        budget = ["--steps", "3"] if dry else ["--minutes", str(args.minutes)]
        cmd = [py, "benchmarks/dsprites_mig.py", "--width", "16", "--latent-dim", "10", "--device", device]
        cmd += ["--out", str(work / "dsprites-vae"), *budget]
        procs["dsprites-vae"] = (
            subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=open(log, "w"), stderr=subprocess.STDOUT),
            log,
        )
    t0 = time.perf_counter()
    for name, (proc, log) in procs.items():
        rc = proc.wait()
        entry = {"rc": rc, "seconds_since_start": round(time.perf_counter() - t0, 1)}
        if name == "dsprites-vae":
            if rc != 0:
                entry["log_tail"] = tail(log)
        elif name == "tests":
            entry["summary"] = [
                ln
                for ln in tail(log, 4000).splitlines()
                if "passed" in ln
                or "failed" in ln
                or "skipped" in ln
                or "SKIPPED" in ln
                or "FAILED" in ln
                or "Error" in ln
            ][-12:]
        else:
            metrics = work / name / "metrics.csv"
            if metrics.is_file():
                import csv

                rows = list(csv.DictReader(open(metrics)))
                if rows:
                    entry.update(
                        steps=int(rows[-1]["step"]),
                        images_per_s=float(rows[-1]["images_per_s"]),
                        recon_mse=float(rows[-1]["recon_mse"]),
                        kl_estimate=float(rows[-1]["kl_estimate"]),
                    )
            if rc != 0:
                entry["log_tail"] = tail(log)
        results["phases"][name] = entry
        save()

    # 5. scoring
    if "score" not in skip and "fashionmnist32" in runs and (work / "fashionmnist32" / "model.safetensors").is_file():
        log = work / "eval.log"
        n = ["--n-samples", "200", "--n-test", "200"] if dry else []
        info = run(
            [py, "-m", "bavae", "eval", str(work / "fashionmnist32"), "--json", "--device", device, *n], log, 300, env
        )
        try:
            text = log.read_text()
            results["phases"]["eval_fashionmnist32"] = json.loads(text[text.index("{") : text.rindex("}") + 1])
        except ValueError:
            results["phases"]["eval_fashionmnist32"] = {"error": tail(log), **info}
        save()
    if "score" not in skip and "dsprites64" in runs and (work / "dsprites64" / "model.safetensors").is_file():
        log = work / "dsprites_mig.log"
        cmd = [py, "benchmarks/dsprites_mig.py", "--ours", str(work / "dsprites64"), "--device", device]
        cmd += ["--vae-weights", str(work / "dsprites-vae" / "vae.safetensors"), "--out", str(work / "dsprites-vae")]
        info = run(cmd + (["--n-test", "300"] if dry else []), log, 300, env)
        mig = work / "dsprites-vae" / "results.json"
        results["phases"]["dsprites_mig"] = (
            json.loads(mig.read_text()) if mig.is_file() else {"error": tail(log), **info}
        )
        save()

    # 6. what comes back: the runs packed into as few tar.gz files as fit 15 MB each (the device tool returns 8 files)
    packed, sizes = [], {}
    for name in runs:
        if (work / name / "model.safetensors").is_file():
            pack(work / name, work / f"{name}.tar.gz")
            sizes[name] = (work / f"{name}.tar.gz").stat().st_size
    bins: list[list[str]] = []
    for name in sorted(sizes, key=sizes.get, reverse=True):
        fit = next((b for b in bins if sum(sizes[n] for n in b) + sizes[name] <= 15e6), None)
        (fit.append(name) if fit is not None else bins.append([name]))
    for k, names in enumerate(bins):
        with tarfile.open(out / f"runs-{k}.tar", "w") as tar:
            for name in names:
                tar.add(work / f"{name}.tar.gz", arcname=f"{name}.tar.gz")
        packed.append({"file": f"runs-{k}.tar", "runs": names})
    results["packed"] = packed
    lines = [f"# device check ({results['environment']['gpu'] or 'CPU dry run'}, torch {torch.__version__})", ""]
    for batch, rows in results.get("phases", {}).get("speed", {}).items():
        if "error" in rows:
            continue
        lines += [f"## speed, batch {batch}", "", "| setup | images/s | / VAE fp32 | / VAE bf16 |", "|---|---|---|---|"]
        lines += [
            f"| {k} | {r['images_per_s']:.0f} | {r['over_vae_fp32']:.2f}x | {r['over_vae_bf16']:.2f}x |"
            for k, r in rows.items()
        ]
        lines.append("")
    lines += ["## runs", "", "| run | rc | steps | images/s | recon MSE |", "|---|---|---|---|---|"]
    for name in runs:
        r = results["phases"].get(name, {})
        lines.append(
            f"| {name} | {r.get('rc')} | {r.get('steps', '–')} | {r.get('images_per_s', 0):.0f} | "
            f"{r.get('recon_mse', float('nan')):.4f} |"
        )
    (out / "results.md").write_text("\n".join(lines) + "\n")
    save()
    print((out / "results.md").read_text())
    print(json.dumps({k: v for k, v in results["phases"].items() if k not in ("speed",)}, indent=1)[:6000])


if __name__ == "__main__":
    main()
