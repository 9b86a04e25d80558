"""Latent samplers side by side on one trained model: the prior, the Gaussian mixture, the nearest-neighbour sampler
(each fitted on the same training codes), and, as the copying extreme, the training codes themselves decoded.

    OMP_NUM_THREADS=1 python benchmarks/sampler_ab.py bavae-emoji64 --dataset emoji --data-dir data/emoji \
        --out benchmarks/results/sampler_ab_emoji64.json
    OMP_NUM_THREADS=1 python benchmarks/sampler_ab.py bavae-fashionmnist32 --dataset fashion-mnist \
        --out benchmarks/results/sampler_ab_fashionmnist32.json

For each path: FID on the dataset's evaluator features (bavae.eval, the same test images as `bavae eval`), and how
near its pictures are to the training set: the median distance, in the evaluator's feature space, from each
picture to its nearest training picture, divided by the same median for the held-out test pictures. A ratio near 1
is as far from the training set as new real pictures are; a sampler that copied its training pictures would go
towards the reconstructions' own ratio ("training codes" below). Writes a JSON file and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import bavae
from bavae.data import build_dataset
from bavae.eval import _features, _test_images, evaluator_for, fid_from_features, load_classifier
from bavae.samplers import (
    GaussianMixtureSampler,
    NeighbourSampler,
    spread_indices,
    supported_components,
    training_codes,
)


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a zoo name or model folder")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--n", type=int, default=10000, help="samples per path (and test pictures, at most)")
    p.add_argument("--components", default="50", help="mixture sizes to try (each capped by the codes' count)")
    p.add_argument("--neighbours", default="1,3,10", help="neighbour counts to try ('' for none)")
    p.add_argument("--out", default=None, help="a JSON file for the results")
    args = p.parse_args()
    torch.manual_seed(0)
    model = bavae.load(args.model, device="cpu").eval()
    c = model.config
    train = build_dataset(args.dataset, data_dir=args.data_dir, image_size=c.image_size, channels=c.channels)
    test_x = _test_images(args.dataset, c.image_size, c.channels, args.n, args.data_dir)[0]
    clf = load_classifier("cpu", name=evaluator_for(args.dataset, c.channels, c.image_size).name)

    def features(images: torch.Tensor) -> torch.Tensor:
        return _features(clf.features, images.split(500), "cpu")

    def decode(codes: torch.Tensor) -> torch.Tensor:
        g = torch.Generator().manual_seed(0)
        return torch.cat([model.decode(z, generator=g).float() for z in codes.split(500)])

    t0 = time.perf_counter()
    codes = training_codes(model, train, max_codes=60_000)
    train_x = torch.stack([train[i] for i in spread_indices(len(train), len(codes))])  # the encoded images
    train_f, test_f = features(train_x), features(test_x)

    def nearest_train(f: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.cdist(b, train_f).min(1).values for b in f.split(1000)])

    test_nearest = nearest_train(test_f).median().item()
    n, draw = args.n, torch.Generator().manual_seed(1)
    paths = {"prior": lambda: model.prior_sample(n, generator=draw)}
    most = supported_components(*codes.shape)
    for k in sorted({min(int(v), most) for v in args.components.split(",")}):
        paths[f"gmm, {k} components"] = lambda k=k: (
            GaussianMixtureSampler.fit(codes, k, seed=0).sample(n, generator=draw).float()
        )
    for k in (int(v) for v in args.neighbours.split(",") if v):
        paths[f"neighbours, k = {k}"] = lambda k=k: NeighbourSampler.fit(codes, k).sample(n, generator=draw)
    paths["training codes (copies)"] = lambda: codes[torch.randint(len(codes), (n,), generator=draw)]
    results = {"model": args.model, "dataset": args.dataset, "n_samples": n, "n_codes": len(codes), "paths": {}}
    for name, sample in paths.items():
        f = features(decode(sample()))
        results["paths"][name] = {
            "fid": fid_from_features(f, test_f),
            "nearest_train_ratio": nearest_train(f).median().item() / test_nearest,
        }
        print(name, results["paths"][name], flush=True)
    results["cpu_seconds"] = time.process_time()
    results["wall_seconds"] = time.perf_counter() - t0
    print("\n| path | FID ↓ | nearest training picture, against held-out pictures |\n|---|---|---|")
    for name, r in results["paths"].items():
        print(f"| {name} | {r['fid']:.1f} | {r['nearest_train_ratio']:.2f} |")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
