"""Fine-tune a pretrained model on your own folder of pictures, then sample from the result.

    python examples/finetune_on_folder.py PHOTOS_DIR [--init bavae-emoji64] [--steps 500] [--out runs/mine]

The same as `bavae train --dataset folder --data-dir PHOTOS_DIR --init bavae-emoji64 ...`: pictures of any
size and mode are converted to the model's channels and size; unreadable files are skipped and counted.
"""

import argparse
import subprocess
import sys

import bavae

parser = argparse.ArgumentParser()
parser.add_argument("data_dir")
parser.add_argument("--init", default="bavae-emoji64")
parser.add_argument("--steps", type=int, default=500)
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--out", default="runs/finetuned")
args = parser.parse_args()

# The training entry point is a command (it may run under torchrun); run it as users do.
subprocess.run(
    [
        sys.executable,
        "-m",
        "bavae.train",
        "--dataset",
        "folder",
        "--data-dir",
        args.data_dir,
        "--init",
        args.init,
        "--steps",
        str(args.steps),
        "--batch-size",
        str(args.batch_size),
        "--sample-every",
        str(args.steps),
        "--checkpoint-every",
        str(args.steps),
        "--out",
        args.out,
    ],
    check=True,
)
model = bavae.load(args.out)
print(
    f"fine-tuned {args.init} -> {args.out}: {model.config.arch}, {model.config.image_size}px; "
    f"samples {tuple(model.sample(4).shape)}"
)
