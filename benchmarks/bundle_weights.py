"""Copy a finished `bavae train` run into ``weights/<name>/`` in the Hub layout, ready to ship.

    python benchmarks/bundle_weights.py runs/fashionmnist32 bavae-fashionmnist32 [--components 50]
    python benchmarks/bundle_weights.py runs/zoo/bavae-emoji64-v6 bavae-emoji64 --sampler neighbours

Writes ``config.json``, ``model.safetensors`` (the EMA model; network weights stored in float16 to keep the wheel
small, the latent sampler in float32; they load into a float32 model), ``samples.png`` (64 samples of the default
sampler, seed 0), ``samples_prior.png`` (the same from the prior), the dataset's own pictures (dSprites: latent
traversals; image folders: reconstructions of held-out pictures and interpolations) and the model card
``README.md``. The latent sampler is fitted here on the training set when ``--sampler`` or ``--components`` asks
for one the run does not have. Prints the metrics and the sha256 to paste into the record in ``bavae/zoo.json`` (the record, not the
file, is the source of truth: the tests compare the two).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from bavae import zoo
from bavae.data import build_dataset
from bavae.eval import EvalSettings, _test_images, evaluate, latent_traversal
from bavae.files import atomic_write, sha256_file
from bavae.images import save_grid
from bavae.model import BAVAE
from bavae.samplers import fit_latent_sampler
from bavae.train_cli import train_command_line

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"


def save_half(model: BAVAE, folder: Path) -> None:
    """model.safetensors with the networks in float16 (half the bytes; samples do not change visibly) and the
    latent sampler's buffers in float32 (its Cholesky factors need the precision)."""
    state = {
        k: (v.half() if v.is_floating_point() and not k.startswith("latent_sampler.") else v)
        .detach()
        .cpu()
        .contiguous()
        for k, v in model.state_dict().items()
    }
    atomic_write(folder / "model.safetensors", lambda p: save_file(state, p, metadata={"format": "pt"}))
    text = json.dumps(model.config.to_dict(), indent=2, sort_keys=True) + "\n"
    atomic_write(folder / "config.json", lambda p: Path(p).write_text(text))


@torch.no_grad()
def measure(model: BAVAE, dataset: str, data_dir: str | None) -> dict[str, float]:
    """`bavae eval`'s metrics on the test split (10,000 images and samples), plus how far the codes spread
    (1 would match the prior's standard deviation)."""
    report = evaluate(model, dataset, data_dir=data_dir, settings=EvalSettings(), progress=True)
    x = _test_images(dataset, model.config.image_size, model.config.channels, 2000, data_dir)[0]
    codes = torch.cat([model.encode(b, generator=torch.Generator().manual_seed(0)) for b in x.split(500)])
    report["code_std"] = codes.std(0).mean().item()
    return {k: v for k, v in report.items() if isinstance(v, (int, float))}


@torch.no_grad()
def pictures(model: BAVAE, dataset: str, data_dir: str | None, out: Path) -> list[str]:
    """The card's pictures beyond the sample grids; returns their Markdown sections."""
    g = torch.Generator().manual_seed(0)
    sections = []
    if dataset == "dsprites":
        x = _test_images(dataset, model.config.image_size, model.config.channels, 16)[0]
        images, _ = latent_traversal(model, x[3:4], generator=g)
        save_grid(images.flatten(0, 1), out / "traversal.png", images.shape[1])
        sections.append(
            "## Latent traversals\n\nEach row sweeps one code dimension from -2.5 to 2.5 around the code of one test "
            "image (rows sorted by how much they change the image).\n\n![traversal](traversal.png)\n"
        )
    if dataset in ("folder", "celeba", "emoji"):
        x = _test_images(dataset, model.config.image_size, model.config.channels, 32, data_dir)[0]
        recon = model.reconstruct(x, generator=g)
        save_grid(torch.stack([x, recon], 1).flatten(0, 1), out / "reconstructions.png", 16)
        frames = model.interpolate(x[0:8:2], x[1:8:2], steps=8, generator=g)
        save_grid(frames.flatten(0, 1), out / "interpolations.png", 8)
        sections.append(
            "## Held-out pictures\n\nReconstructions of test pictures the model never trained on (each original "
            "beside its reconstruction):\n\n![reconstructions](reconstructions.png)\n\nInterpolations between the codes "
            "of two test pictures (one pair per row):\n\n![interpolations](interpolations.png)\n"
        )
    return sections


def rewrite_card(name: str) -> None:
    """The card again from the zoo record (its description, command and metrics, once updated from the first card)
    and the shipped config.json, keeping the picture sections the first card had."""
    folder = WEIGHTS / name
    record = zoo.model_info(name)
    config = json.loads((folder / "config.json").read_text())
    old = (folder / "README.md").read_text()
    card = zoo.model_card(dataclasses.replace(record, config=config), record.metrics, "samples.png")
    card.text += old[old.index("\n## Samples from the prior") :]
    card.save(folder / "README.md")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a `bavae train` output folder")
    p.add_argument("name", help="the zoo name (weights/<name>/)")
    p.add_argument("--sampler", choices=("gmm", "neighbours"), default=None, help="fit a latent sampler of this kind")
    p.add_argument("--components", type=int, default=None, help="fit a Gaussian mixture of this many components")
    p.add_argument("--dataset", default=None, help="the dataset, if not the run's own (a model folder has none)")
    p.add_argument("--data-dir", default=None, help="the dataset folder, if not the run's own")
    p.add_argument("--metrics", default=None, help="a JSON file of extra metrics for the card")
    p.add_argument(
        "--card-only", action="store_true", help="rewrite weights/NAME/README.md from the (updated) zoo record only"
    )
    args = p.parse_args()
    if args.card_only:
        rewrite_card(args.name)
        return
    run_dir, out = Path(args.run), WEIGHTS / args.name
    out.mkdir(parents=True, exist_ok=True)
    model = BAVAE.from_pretrained(str(run_dir))
    state = json.loads((run_dir / "train_config.json").read_text()) if (run_dir / "train_config.json").is_file() else {}
    dataset = args.dataset or state.get("dataset", "fashion-mnist")
    data_dir = args.data_dir or state.get("data_dir")
    kind = args.sampler or ("gmm" if args.components else None)
    wanted = kind and {"kind": kind, **({"components": args.components} if kind == "gmm" else {})}
    if wanted and not wanted.items() <= (model.config.sampler or {}).items():
        data = build_dataset(
            dataset,
            data_dir=data_dir,
            image_size=model.config.image_size,
            channels=model.config.channels,
            split="train",
        )
        fit_latent_sampler(model, data, args.components or 50, seed=0, kind=kind)
    save_half(model, out)
    model = zoo.load(str(out), device="cpu")  # what ships is what gets measured
    g = torch.Generator().manual_seed(0)
    save_grid(model.sample(64, generator=g), out / "samples.png", 8)
    save_grid(
        model.sample(64, generator=torch.Generator().manual_seed(0), sampler="prior"), out / "samples_prior.png", 8
    )
    sections = pictures(model, dataset, data_dir, out)
    metrics = {
        **measure(model, dataset, data_dir),
        **(json.loads(Path(args.metrics).read_text()) if args.metrics else {}),
    }
    fitted = f"fid_{model.config.sampler['kind']}" if model.config.sampler else None
    if metrics.get("fid_prior", float("inf")) < metrics.get(fitted, float("inf")):
        # the card's numbers decide the default path: here the prior draws better samples than the fitted sampler
        model.config = dataclasses.replace(model.config, default_sampler="prior")
        text = json.dumps(model.config.to_dict(), indent=2, sort_keys=True) + "\n"
        atomic_write(out / "config.json", lambda p: Path(p).write_text(text))
        save_grid(model.sample(64, generator=torch.Generator().manual_seed(0)), out / "samples.png", 8)
        metrics["fid"] = metrics["fid_prior"]
    print(json.dumps(metrics, indent=2))
    record = zoo.model_info(args.name) if args.name in zoo.list_models() else None
    if record is not None:  # the record's words, the shipped config (the record is updated from this card after)
        card = zoo.model_card(dataclasses.replace(record, config=model.config.to_dict()), metrics, "samples.png")
    else:
        card = zoo.model_card(
            model, metrics, "samples.png", name=args.name, dataset=dataset, train_command=train_command_line(state)
        )
    card.text += "\n## Samples from the prior N(0, I)\n\n![prior samples](samples_prior.png)\n"
    card.text += "".join("\n" + s for s in sections)
    card.save(out / "README.md")
    print(
        f"{out}: sha256 {sha256_file(out / 'model.safetensors')}, {(out / 'model.safetensors').stat().st_size / 1e6:.2f} MB"
    )


if __name__ == "__main__":
    main()
