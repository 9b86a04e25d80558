"""Train the classifiers that `bavae eval` uses for FID features and class agreement.

    OMP_NUM_THREADS=1 python benchmarks/train_classifier.py [--epochs 4]                   # fashionmnist-classifier
    OMP_NUM_THREADS=1 python benchmarks/train_classifier.py --data emoji --epochs 12 \
        --data-dir data/emoji,data/emoji-flat                                             # emoji-classifier

Writes config.json (with the test accuracy), model.safetensors and a card README.md into --out (default:
weights/<name>), each atomically, and prints the sha256 to paste into bavae.eval (CLASSIFIER_SHA256,
EMOJI_CLASSIFIER_SHA256). Plain Adam with a one-cycle schedule, random shifts and flips.

The colour one learns the nine emoji categories from every style in the folders (make_emoji_folder.py's layout);
its accuracy is measured on the held-out emoji, and its card gives the FIDs that real pictures have against each
other on its features: two artists' versions of the same emoji, and the training pictures against the test ones.
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
from bavae.eval import (
    CLASSIFIER_NAME,
    EMOJI_CATEGORIES,
    EMOJI_CLASSIFIER_NAME,
    FASHION_MNIST_CLASSES,
    ImageClassifier,
    fid_from_features,
)
from bavae.files import atomic_write, sha256_file

ROOT = Path(__file__).resolve().parents[1]


def tensors(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    ds = FashionMNIST(split=split, image_size=32)
    return F.pad(ds.data.float().div(255).unsqueeze(1), (2, 2, 2, 2)), ds.labels


def augment(x: torch.Tensor, g: torch.Generator, shift: int = 2, fill: float = 0.0) -> torch.Tensor:
    flip = torch.rand(x.shape[0], generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    dx, dy = (int(v) for v in torch.randint(-shift, shift + 1, (2,), generator=g))
    if fill == 0.0:
        return torch.roll(x, (dy, dx), dims=(-2, -1))  # the 2-px zero border makes the roll a shift
    size = x.shape[-1]
    padded = F.pad(x, (shift,) * 4, value=fill)  # a white picture shifted on white
    return padded[..., shift + dy : shift + dy + size, shift + dx : shift + dx + size]


@torch.no_grad()
def accuracy(model: ImageClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return torch.cat([model(b).argmax(1) for b in x.split(500)]).eq(y).float().mean().item()


@torch.no_grad()
def features(model: ImageClassifier, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([model.features(b) for b in x.split(500)])


def emoji_floors(model: ImageClassifier, train, test) -> dict:
    """FIDs between real pictures on the classifier's features: what a perfect model would still score."""
    out = {}
    f_test = features(model, test.floats())
    g = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(train.images), generator=g)[: len(test.images)]
    out["train_vs_test"] = fid_from_features(features(model, train.floats(pick)), f_test)
    both = torch.cat([train.images, test.images])
    styles = train.styles + test.styles
    emoji = train.emoji + test.emoji
    by_style = {}
    for style in dict.fromkeys(styles):
        by_style[style] = {e: i for i, (s, e) in enumerate(zip(styles, emoji)) if s == style}
    names = list(by_style)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            common = sorted(set(by_style[a]) & set(by_style[b]))  # the same emoji, drawn by two artists
            fa = features(model, both[[by_style[a][e] for e in common]].float().div(255))
            fb = features(model, both[[by_style[b][e] for e in common]].float().div(255))
            out[f"{a}_vs_{b}"] = fid_from_features(fa, fb)
    return {k: round(v, 2) for k, v in out.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=("fashion-mnist", "emoji"), default="fashion-mnist")
    p.add_argument("--data-dir", default="data/emoji,data/emoji-flat", help="emoji: comma-separated folders")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--out", default=None, help="default: weights/<the classifier's name>")
    args = p.parse_args()
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    emoji = args.data == "emoji"
    if emoji:
        import sys

        sys.path.insert(0, str(ROOT))
        from benchmarks import emoji_set

        train_set, test_set = emoji_set.load(args.data_dir, "train"), emoji_set.load(args.data_dir, "test")
        (x, y), (xt, yt) = (train_set.floats(), train_set.labels), (test_set.floats(), test_set.labels)
        model = ImageClassifier(num_classes=len(EMOJI_CATEGORIES), channels=3, image_size=64)
        shift, fill, classes, name = 4, 1.0, EMOJI_CATEGORIES, EMOJI_CLASSIFIER_NAME
    else:
        (x, y), (xt, yt) = tensors("train"), tensors("test")
        model = ImageClassifier()
        shift, fill, classes, name = 2, 0.0, FASHION_MNIST_CLASSES, CLASSIFIER_NAME
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
            loss = F.cross_entropy(model(augment(x[idx], g, shift, fill)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.write(f"test accuracy {accuracy(model, xt, yt):.4f}")
    bar.close()
    minutes, acc = (time.perf_counter() - t0) / 60, accuracy(model, xt, yt)
    out = Path(args.out or ROOT / "weights" / name)
    out.mkdir(parents=True, exist_ok=True)
    floors = emoji_floors(model, train_set, test_set) if emoji else None
    size = "64" if emoji else "32"
    config = {
        **model.config,
        "test_accuracy": round(acc, 4),
        "classes": list(classes),
        "input": "(N, 3, 64, 64) in [0, 1]" if emoji else "(N, 1, 32, 32) in [0, 1]; 28x28 is zero-padded",
        "epochs": args.epochs,
        **({"fid_floors": floors} if floors else {}),
    }
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    atomic_write(out / "model.safetensors", lambda t: save_file(state, t))
    atomic_write(out / "config.json", lambda t: Path(t).write_text(json.dumps(config, indent=2) + "\n"))
    n_params = sum(p.numel() for p in model.parameters())
    stages = "/".join(str(model.config["width"] * 2**i) for i in range(int(size).bit_length() - 3))
    if emoji:
        counts = {s: train_set.styles.count(s) for s in dict.fromkeys(train_set.styles)}
        data = (
            f"the emoji set's train split ({len(x):,} pictures: "
            + ", ".join(f"{s} {n:,}" for s, n in counts.items())
            + f"; the nine categories of emoji.json as classes), {args.epochs} epochs of batch {args.batch_size}"
        )
        test_line = (
            f"**Held-out accuracy: {acc:.4f}** on the {len(xt):,} pictures of the {len(set(test_set.emoji))} "
            "held-out emoji (every style of them: an emoji never seen in any artist's version)"
        )
        floor_lines = "\n".join(
            f"  - {k.replace('_vs_', ' against ').replace('_', ' ')}: {v}" for k, v in floors.items()
        )
        extra = f"""
FID floors on its features (what real pictures score against each other):
{floor_lines}

Command: `OMP_NUM_THREADS=1 python benchmarks/train_classifier.py --data emoji --data-dir {args.data_dir} --epochs {args.epochs}`
(the folders are written by `benchmarks/make_emoji_folder.py`). Images: Noto (Apache-2.0), Twemoji (CC-BY 4.0, by
Twitter, Inc and other contributors), Fluent (MIT, Microsoft); these weights Apache-2.0.
"""
        augmentation = "random horizontal flips and 4-pixel shifts on white"
    else:
        data = f"Fashion-MNIST train split (60,000), {args.epochs} epochs of batch {args.batch_size}"
        test_line = f"**Test accuracy: {acc:.4f}** on the 10,000 test images."
        extra = f"- Command: `OMP_NUM_THREADS=1 python benchmarks/train_classifier.py --epochs {args.epochs}`\n"
        augmentation = "random horizontal flips and 2-pixel shifts"
    card = f"""# {name}

A feature network of `bavae eval`: FID is the Frechet distance between Gaussians fitted to its 128-d hidden
features (`ImageClassifier.features`), and class agreement compares its predictions on an image and on its
reconstruction. It ships with the package so that both run offline on a CPU.

- Architecture: `bavae.eval.ImageClassifier` ({stages} channels of conv/BN/ReLU/max-pool stages on
  {config["channels"]}x{size}x{size} inputs, a 128-wide hidden layer, dropout 0.3, {len(classes)} classes); {n_params:,} parameters.
- Training: {data}, Adam with a one-cycle schedule to 2e-3, {augmentation}; {minutes:.1f} minutes on one CPU core.
- {test_line}
{extra}
FIDs measured with it are comparable between models scored by `bavae eval`, not with Inception FIDs in papers.
"""
    atomic_write(out / "README.md", lambda t: Path(t).write_text(card))
    print(
        f"test accuracy {acc:.4f}; {minutes:.1f} min; floors {floors}; {out}/model.safetensors sha256 "
        f"{sha256_file(out / 'model.safetensors')}"
    )


if __name__ == "__main__":
    main()
