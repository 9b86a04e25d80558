"""Train the Fashion-MNIST classifier that `bavae eval` uses for FID features and class agreement.

    OMP_NUM_THREADS=1 python benchmarks/train_classifier.py [--epochs 4] [--out weights/fashionmnist-classifier]

Writes config.json (with the test accuracy), model.safetensors and a card README.md into --out, each atomically,
and prints the sha256 to paste into bavae.eval.CLASSIFIER_SHA256. Plain Adam, random 2-px shifts and flips.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm.auto import tqdm

from bavae.data import FashionMNIST
from bavae.eval import FASHION_MNIST_CLASSES, FashionClassifier
from bavae.files import atomic_write, sha256_file


def tensors(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    ds = FashionMNIST(split=split, image_size=32)
    return F.pad(ds.data.float().div(255).unsqueeze(1), (2, 2, 2, 2)), ds.labels


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    flip = torch.rand(x.shape[0], generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=g))
    return torch.roll(x, (dy, dx), dims=(-2, -1))  # the 2-px zero border makes the roll a shift


@torch.no_grad()
def accuracy(model: FashionClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return torch.cat([model(b).argmax(1) for b in x.split(1000)]).eq(y).float().mean().item()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "weights" / "fashionmnist-classifier"))
    args = p.parse_args()
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    (x, y), (xt, yt) = tensors("train"), tensors("test")
    model = FashionClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    steps = args.epochs * (len(x) // args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    t0 = time.perf_counter()
    bar = tqdm(total=steps, desc="classifier")
    for _ in range(args.epochs):
        model.train()
        order = torch.randperm(len(x), generator=g)
        for i in range(len(x) // args.batch_size):
            idx = order[i * args.batch_size : (i + 1) * args.batch_size]
            loss = F.cross_entropy(model(augment(x[idx], g)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.write(f"test accuracy {accuracy(model, xt, yt):.4f}")
    bar.close()
    minutes, acc = (time.perf_counter() - t0) / 60, accuracy(model, xt, yt)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = {
        **model.config,
        "test_accuracy": round(acc, 4),
        "classes": list(FASHION_MNIST_CLASSES),
        "input": "(N, 1, 32, 32) in [0, 1]; 28x28 is zero-padded",
        "epochs": args.epochs,
    }
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    atomic_write(out / "model.safetensors", lambda t: save_file(state, t))
    atomic_write(out / "config.json", lambda t: Path(t).write_text(json.dumps(config, indent=2) + "\n"))
    card = f"""# fashionmnist-classifier

The feature network of `bavae eval`: FID is the Frechet distance between Gaussians fitted to its 128-d hidden
features (`FashionClassifier.features`), and class agreement compares its predictions on an image and on its
reconstruction. It ships with the package so that both run offline on a CPU.

- Architecture: `bavae.eval.FashionClassifier` (3 conv/BN/ReLU/max-pool stages of 32/64/128 channels, a 128-wide
  hidden layer, dropout 0.3, 10 classes); {sum(p.numel() for p in model.parameters()):,} parameters.
- Training: Fashion-MNIST train split (60,000), {args.epochs} epochs of batch {args.batch_size}, Adam with a one-cycle
  schedule to 2e-3, random horizontal flips and 2-pixel shifts; {minutes:.1f} minutes on one CPU core.
- **Test accuracy: {acc:.4f}** on the 10,000 test images.
- Command: `OMP_NUM_THREADS=1 python benchmarks/train_classifier.py --epochs {args.epochs}`

FIDs measured with it are comparable between models scored by `bavae eval`, not with Inception FIDs in papers.
"""
    atomic_write(out / "README.md", lambda t: Path(t).write_text(card))
    print(
        f"test accuracy {acc:.4f}; {minutes:.1f} min; {out}/model.safetensors sha256 "
        f"{sha256_file(out / 'model.safetensors')}"
    )


if __name__ == "__main__":
    main()
