"""Copy a finished `bavae train` run into ``weights/<name>/`` in the Hub layout, ready to ship.

    python benchmarks/bundle_weights.py /work/runs/fm32-informative bavae-fashionmnist32

Writes ``config.json``, ``model.safetensors`` (the EMA model), ``samples.png`` (64 samples, seed 0) and the model
card ``README.md`` (metrics, training command, sample grid), then prints the sha256 to paste into the record in
``bavae/zoo.py`` (the record, not the file, is the source of truth: the tests compare the two).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch

from bavae import zoo
from bavae.images import save_grid
from bavae.model import BAVAE, sha256_file


@torch.no_grad()
def measure(model: BAVAE, dataset: str) -> dict[str, float]:
    """Test-split numbers for the card until `bavae eval` exists: reconstruction MSE, the critic's KL estimate,
    and how far the codes spread (1 would match the prior)."""
    from bavae.data import build_dataset

    ds = build_dataset(dataset, image_size=model.config.image_size, channels=model.config.channels, split="test")
    x = torch.stack([ds[i] for i in range(len(ds))])
    g = torch.Generator().manual_seed(0)
    mse, codes, kl = [], [], []
    for batch in x.split(500):
        z = model.encode(batch, generator=g)
        mse.append((model.decode(z, generator=g) - batch).pow(2).flatten(1).mean(1))
        codes.append(z)
        kl.append(model.kl_estimate(batch[:100], generator=g))
    codes = torch.cat(codes)
    return {"test_recon_mse": torch.cat(mse).mean().item(), "kl_estimate_nats": torch.cat(kl).mean().item(),
            "code_std": codes.std(0).mean().item(), "test_images": len(x)}


def main(run: str, name: str, metrics_json: str | None = None) -> None:
    run_dir, out = Path(run), Path(__file__).resolve().parents[1] / "weights" / name
    out.mkdir(parents=True, exist_ok=True)
    model = BAVAE.from_pretrained(str(run_dir))
    shutil.copyfile(run_dir / "config.json", out / "config.json")
    shutil.copyfile(run_dir / "model.safetensors", out / "model.safetensors")
    save_grid(model.sample(64, generator=torch.Generator().manual_seed(0)), out / "samples.png", 8)
    record = zoo.model_info(name) if name in zoo.list_models() else None
    state = json.loads((run_dir / "train_config.json").read_text()) if (run_dir / "train_config.json").is_file() else {}
    metrics = json.loads(Path(metrics_json).read_text()) if metrics_json else {}
    metrics = {**measure(model, state.get("dataset", "fashion-mnist")), **metrics}
    print(json.dumps(metrics, indent=2))
    if record is not None:
        card = zoo.model_card(record, metrics, "samples.png")
    else:
        card = zoo.model_card(model, metrics, "samples.png", name=name, dataset=state.get("dataset"),
                              train_command=zoo._train_command_from(state))
    card.save(out / "README.md")
    print(f"{out}: sha256 {sha256_file(out / 'model.safetensors')}, "
          f"{(out / 'model.safetensors').stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main(*sys.argv[1:])
