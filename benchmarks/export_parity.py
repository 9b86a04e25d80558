"""Parity of the exported files with the eager model, for every zoo model that has weights, in both formats.

    python benchmarks/export_parity.py --out benchmarks/results/export_parity.json

Each model is exported with ``model.export`` (ONNX and torch.export) and run, at batch sizes 1 and 64, on the same
inputs and noise as the eager float32 model: onnxruntime for the ONNX files, ``torch.export.load`` for the
programs. The report is the max abs difference per part, and the time each export took.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

import bavae


def feeds(config, n: int, seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return {
        "decoder": {"codes": torch.randn(n, config.latent_dim, generator=g)},
        "encoder": {
            "images": torch.rand(n, config.channels, config.image_size, config.image_size, generator=g),
            "noise": torch.randn(n, config.posterior_noise_dim, generator=g),
        },
        "sampler": {"u": torch.rand(n, generator=g), "eps": torch.randn(n, config.latent_dim, generator=g)},
    }


@torch.no_grad()
def eager(model, part: str, feed: dict[str, torch.Tensor]) -> np.ndarray:
    if part == "decoder":
        return model.decoder(feed["codes"]).numpy()
    if part == "encoder":
        return model.encoder(feed["images"], noise=feed["noise"]).numpy()
    s = model.latent_sampler
    k = torch.searchsorted(s.weights.double().cumsum(0), feed["u"].double(), right=True).clamp(max=len(s.weights) - 1)
    return torch.stack([s.means[i] + s.scale_tril[i] @ e for i, e in zip(k.tolist(), feed["eps"])]).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=None, help="zoo names (default: every model with weights)")
    parser.add_argument("--out", default=None, help="write the report as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in args.models or bavae.list_models(pretrained=True):
        model = bavae.load(name, device="cpu").float()
        c = model.config
        for fmt in ("onnx", "torch-export"):
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                out = model.export(Path(tmp) / "x", fmt, source=name)
                seconds = time.perf_counter() - start
                manifest = json.loads((out / "export.json").read_text())
                diffs: dict[str, float] = {}
                for n in (1, 64):
                    for part, feed in feeds(c, n).items():
                        if part not in manifest["files"]:
                            continue
                        if fmt == "onnx":
                            session = ort.InferenceSession(
                                str(out / f"{part}.onnx"), providers=["CPUExecutionProvider"]
                            )
                            got = session.run(None, {k: v.numpy() for k, v in feed.items()})[0]
                        else:
                            got = torch.export.load(str(out / f"{part}.pt2")).module()(*feed.values()).detach().numpy()
                        diffs[part] = max(diffs.get(part, 0.0), float(np.abs(got - eager(model, part, feed)).max()))
            row = dict(
                model=name,
                arch=c.arch,
                image=f"{c.channels}x{c.image_size}x{c.image_size}",
                format=fmt,
                max_abs_diff=diffs,
                export_seconds=round(seconds, 1),
                opset=manifest.get("opset"),
            )
            rows.append(row)
            print(
                f"{name:<28} {row['image']:<8} {c.arch:<6} {fmt:<12} "
                + "  ".join(f"{p} {d:.1e}" for p, d in diffs.items())
                + f"  ({seconds:.1f} s)",
                flush=True,
            )
    report = dict(
        versions=dict(
            torch=torch.__version__,
            onnxruntime=ort.__version__,
            bavae=bavae.__version__,
            python=platform.python_version(),
        ),
        batches=[1, 64],
        rows=rows,
    )
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
