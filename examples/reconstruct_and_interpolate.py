"""Encode test images, reconstruct them, and walk between two of them in latent space.

python examples/reconstruct_and_interpolate.py [--model bavae-fashionmnist32] [--out-dir .]
"""

import argparse
from pathlib import Path

import torch
from torchvision.utils import save_image

import bavae
from bavae.data import build_dataset

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="bavae-fashionmnist32")
parser.add_argument("--out-dir", default=".")
args = parser.parse_args()
out = Path(args.out_dir)

model = bavae.load(args.model)
c = model.config
test = build_dataset("fashion-mnist", image_size=c.image_size, channels=c.channels, split="test", limit=16)
x = torch.stack([test[i] for i in range(16)]).to(model.device)
g = torch.Generator(model.device).manual_seed(0)

codes = model.encode(x, n_samples=4, generator=g)  # (16, 4, latent): the posterior is a distribution
print(f"posterior spread per image {codes.std(1).mean():.3f}, across images {codes[:, 0].std(0).mean():.3f}")
x_hat = model.reconstruct(x, generator=g)
save_image(torch.stack([x, x_hat], 1).flatten(0, 1), out / "reconstructions.png", nrow=8)  # input, output pairs
print(
    f"reconstruction MSE {(x_hat - x).pow(2).mean():.4f}, KL estimate {model.kl_estimate(x, generator=g).mean():.2f} nats"
)

path = model.interpolate(x[:4], x[4:8], steps=10, generator=g)  # (4, 10, C, H, W)
save_image(path.flatten(0, 1), out / "interpolations.png", nrow=10)
print(f"wrote {out / 'reconstructions.png'} and {out / 'interpolations.png'}")
