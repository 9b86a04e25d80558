"""Where prior draws land among a model's codes: why the N(0, I) path can be weak when the codes' moments match.

    OMP_NUM_THREADS=1 python benchmarks/code_geometry.py bavae-fashionmnist32
    OMP_NUM_THREADS=1 python benchmarks/code_geometry.py bavae-emoji64 --dataset emoji --data-dir data/emoji

Encodes N training pictures (one posterior draw each) and prints, beside the same numbers for as many N(0, I) draws
(the control: codes that *are* the prior):
- the codes' moments: the largest |mean|, the range of per-coordinate spreads, the covariance's eigenvalues and the
  per-coordinate kurtosis (3 for a Gaussian): what an MMD or a sliced-Wasserstein marginal on a batch can see;
- the median distance from a prior draw to its nearest code, against a code's to its nearest other code: equal when
  the codes fill the prior, larger when prior draws fall between them;
- the TwoNN intrinsic dimension (Facco et al. 2017) of the codes: how many of the latent's dimensions they fill.
"""

from __future__ import annotations

import argparse
import json

import torch

import bavae
from bavae.data import build_dataset
from bavae.samplers import training_codes


def geometry(codes: torch.Tensor, n_queries: int = 2000, seed: int = 0) -> dict[str, float]:
    """The statistics of the module docstring for codes (N, d), N > n_queries."""
    g = torch.Generator().manual_seed(seed)
    z, queries = codes[n_queries:], codes[:n_queries]
    prior = torch.randn(n_queries, codes.shape[1], generator=g)
    mean, std = codes.mean(0), codes.std(0)
    kurtosis = (((codes - mean) / std) ** 4).mean(0)
    eig = torch.linalg.eigvalsh(torch.cov(codes.T))
    return {
        "max_abs_mean": mean.abs().max().item(),
        "std_min": std.min().item(),
        "std_max": std.max().item(),
        "cov_eig_min": eig.min().item(),
        "cov_eig_max": eig.max().item(),
        "kurtosis_min": kurtosis.min().item(),
        "kurtosis_max": kurtosis.max().item(),
        "prior_to_nearest_code": torch.cdist(prior, z).min(1).values.median().item(),
        "code_to_nearest_code": torch.cdist(queries, z).min(1).values.median().item(),
        "intrinsic_dim": two_nn(codes[: 2 * n_queries], n_queries),
    }


def two_nn(x: torch.Tensor, n_queries: int) -> float:
    """TwoNN: the maximum-likelihood dimension from the ratio of each point's second to first neighbour distance."""
    d = torch.cdist(x[:n_queries], x)
    d[torch.arange(n_queries), torch.arange(n_queries)] = float("inf")
    r = d.topk(2, largest=False).values
    return n_queries / torch.log(r[:, 1] / r[:, 0]).sum().item()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", help="a zoo name or a saved model folder")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("-n", type=int, default=10000, help="training pictures to encode (spread over the set)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    model = bavae.load(args.model).eval()
    c = model.config
    data = build_dataset(args.dataset, data_dir=args.data_dir, image_size=c.image_size, channels=c.channels)
    codes = training_codes(model, data, max_codes=args.n)
    n_queries = min(2000, len(codes) // 2)
    result = {
        "model": args.model,
        "latent_dim": codes.shape[1],
        "n_codes": len(codes),
        "codes": geometry(codes, n_queries),
        "prior_control": geometry(
            torch.randn(len(codes), codes.shape[1], generator=torch.Generator().manual_seed(1)), n_queries
        ),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.model}: {len(codes)} codes of dimension {codes.shape[1]}")
    print(f"{'':28s}{'codes':>10s}{'N(0, I)':>10s}")
    for key in result["codes"]:
        print(f"{key:28s}{result['codes'][key]:10.3f}{result['prior_control'][key]:10.3f}")


if __name__ == "__main__":
    main()
