"""The training-curve plot in docs/benchmarks.md, from the runs' metrics.csv files (peers.py draws its own).

    pip install matplotlib
    python benchmarks/plots.py --informative RUN_A --paper RUN_B --out docs/img

Writes training_curves.png (reconstruction MSE and the critic's KL estimate over the steps, informative against
paper, same networks and budget).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_csv(run: Path) -> dict[str, list[float]]:
    columns: dict[str, list[float]] = {}
    with open(run / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            for k, v in row.items():
                if v not in ("", None):
                    columns.setdefault(k, []).append(float(v))
    return columns


def smooth(values: list[float], k: int = 8) -> list[float]:
    return [sum(values[max(0, i - k + 1) : i + 1]) / len(values[max(0, i - k + 1) : i + 1]) for i in range(len(values))]


def training_curves(runs: dict[str, Path], out: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, run in runs.items():
        m = read_csv(run)
        axes[0].plot(m["step"], smooth(m["recon_mse"]), label=label)
        axes[1].plot(m["step"], smooth(m["kl_estimate"]), label=label)
    axes[0].set(xlabel="step (batch 64)", ylabel="reconstruction MSE (training batch)", yscale="log")
    axes[1].set(xlabel="step (batch 64)", ylabel="inference critic's KL estimate (nats)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "training_curves.png", dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--informative", type=Path, required=True)
    p.add_argument("--paper", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("docs/img"))
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    training_curves({"informative (default)": args.informative, "paper (eq. 19)": args.paper}, args.out)


if __name__ == "__main__":
    main()
