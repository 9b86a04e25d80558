"""Load a pretrained model and draw samples.

python examples/load_and_sample.py [--model bavae-fashionmnist32] [--n 64] [--out samples.png]
"""

import argparse

import torch
from torchvision.utils import save_image

import bavae

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="bavae-fashionmnist32", help="zoo name, model folder or Hub repo id")
parser.add_argument("--n", type=int, default=64)
parser.add_argument("--out", default="samples.png")
args = parser.parse_args()

print(bavae.list_models())
model = bavae.load(args.model)  # eval mode; cuda when there is one
images = model.sample(args.n, generator=torch.Generator(model.device).manual_seed(0))  # (n, C, H, W) in [0, 1]
save_image(images, args.out, nrow=8, padding=2)
print(f"wrote {args.out}: {tuple(images.shape)} from {args.model}")
