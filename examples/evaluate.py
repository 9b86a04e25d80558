"""Score a model the way the zoo table does, and compare two models on the same test images.

    python examples/evaluate.py [--model bavae-fashionmnist32] [--other bavae-fashionmnist32-paper] [--n 2000]

The metrics (see bavae.eval): FID on the features of the Fashion-MNIST classifier that ships with bavae,
reconstruction MSE and SSIM, class agreement between an image and its reconstruction, the inference critic's
KL estimate, an InfoNCE lower bound on the information in the codes, and samples/s.
"""

import argparse
import json

import bavae
from bavae.eval import EvalSettings, evaluate

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="bavae-fashionmnist32", help="zoo name, model folder or Hub repo id")
parser.add_argument("--other", default=None, help="a second model to score beside the first")
parser.add_argument("--n", type=int, default=2000, help="test images and samples (10000 for the zoo's numbers)")
args = parser.parse_args()

settings = EvalSettings(n_samples=args.n, n_test=args.n, seed=0)  # same seed: same test images, same noise
names = [args.model] + ([args.other] if args.other else [])
reports = [(name, evaluate(bavae.load(name), "fashion-mnist", settings=settings)) for name in names]
print(json.dumps(dict(reports), indent=2))
keys = ("fid", "recon_mse", "recon_ssim", "class_agreement", "infonce_nats")
print("model".ljust(32) + "".join(k.rjust(17) for k in keys))
for name, r in reports:
    print(name[-31:].ljust(32) + "".join(f"{r[k]:17.4f}" for k in keys))
