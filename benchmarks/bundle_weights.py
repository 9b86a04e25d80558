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
from bavae.files import sha256_file
from bavae.images import save_grid
from bavae.model import BAVAE
from bavae.train import train_command_line


@torch.no_grad()
def measure(model: BAVAE, dataset: str) -> dict[str, float]:
    """`bavae eval`'s metrics on the test split (10,000 images and samples), plus how far the codes spread
    (1 would match the prior's standard deviation)."""
    from bavae.eval import EvalSettings, _test_images, evaluate

    report = evaluate(model, dataset, settings=EvalSettings(), progress=True)
    x = _test_images(dataset, model.config.image_size, model.config.channels, 2000)[0]
    codes = torch.cat([model.encode(b, generator=torch.Generator().manual_seed(0)) for b in x.split(500)])
    report["code_std"] = codes.std(0).mean().item()
    return {k: v for k, v in report.items() if isinstance(v, (int, float))}


def traversal(model: BAVAE, dataset: str, path: Path) -> None:
    """The latent-traversal picture of a dSprites card: one row per code dimension, most active first."""
    from bavae.eval import _test_images, latent_traversal

    x = _test_images(dataset, model.config.image_size, model.config.channels, 16)[0]
    images, _ = latent_traversal(model, x[3:4], generator=torch.Generator().manual_seed(0))
    save_grid(images.flatten(0, 1), path, images.shape[1])


def main(run: str, name: str, metrics_json: str | None = None) -> None:
    run_dir, out = Path(run), Path(__file__).resolve().parents[1] / "weights" / name
    out.mkdir(parents=True, exist_ok=True)
    model = BAVAE.from_pretrained(str(run_dir))
    shutil.copyfile(run_dir / "config.json", out / "config.json")
    shutil.copyfile(run_dir / "model.safetensors", out / "model.safetensors")
    save_grid(model.sample(64, generator=torch.Generator().manual_seed(0)), out / "samples.png", 8)
    state = json.loads((run_dir / "train_config.json").read_text()) if (run_dir / "train_config.json").is_file() else {}
    dataset = state.get("dataset", "fashion-mnist")
    if dataset == "dsprites":
        traversal(model, dataset, out / "traversal.png")
    record = zoo.model_info(name) if name in zoo.list_models() else None
    metrics = json.loads(Path(metrics_json).read_text()) if metrics_json else {}
    metrics = {**measure(model, dataset), **metrics}
    print(json.dumps(metrics, indent=2))
    if record is not None:
        card = zoo.model_card(record, metrics, "samples.png")
    else:
        card = zoo.model_card(
            model, metrics, "samples.png", name=name, dataset=dataset, train_command=train_command_line(state)
        )
    if dataset == "dsprites":
        card.text += (
            "\n## Latent traversals\n\nEach row sweeps one code dimension from -2.5 to 2.5 around the code of "
            "one test image (rows sorted by how much they change the image).\n\n![traversal](traversal.png)\n"
        )
    card.save(out / "README.md")
    print(
        f"{out}: sha256 {sha256_file(out / 'model.safetensors')}, "
        f"{(out / 'model.safetensors').stat().st_size / 1e6:.2f} MB"
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
