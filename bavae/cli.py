"""The ``bavae`` command: thin click commands over :mod:`bavae.zoo`, :mod:`bavae.images` and the model.

    bavae list                          bavae sample -n 64 -o grid.png --seed 0
    bavae info bavae-fashionmnist32     bavae reconstruct photo.jpg shirts/ -o recon.png
    bavae encode *.png -o codes.npz     bavae decode codes.npz -o decoded.png
    bavae train ...                     bavae push runs/celeba64 --repo-id USER/bavae-celeba64
    bavae eval bavae-fashionmnist32 --json

Startup time is part of the interface: this module imports no torch (``bavae --help``, ``list`` and ``info`` need
none); each command checks its arguments first, then loads what it needs in one import, and ``train`` is imported
only when run. Errors bavae raises on purpose are one line on stderr and a non-zero exit code (``BAVAE_DEBUG=1``
shows the traceback; anything else is a bug and shows it anyway); every output file is written to a temporary file
beside it and renamed, so a failed command leaves no output behind.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import click

from . import __version__, zoo
from .configs import COUNT_BOUNDS, SEED_MAX, stored_codes_note
from .errors import BAVAEError, one_line
from .files import CONFIG_NAME, OutputError, check_output_file, check_output_folder, model_files
from .options import RegistryChoice, device_option

MAX_IMAGES = COUNT_BOUNDS["grid_images"][1]  # the most images one PNG grid holds
MAX_NPZ_IMAGES = COUNT_BOUNDS["npz_images"][1]  # the most one npz of `bavae sample` holds (streamed, disk-checked)
NPZ_BATCH = 1024  # `bavae sample --format npz` decodes and writes this many images at a time
FORMATS = ("png", "npz")
MODEL_HELP = (
    "Zoo name (see `bavae list`), model folder, or Hub repo id. A name that starts with ., / or ~, or whose "
    "parent folder exists (runs/mine once runs/ does), is a local folder, never a repo id; hf://USER/NAME is "
    "always the Hub."
)
SEED = click.IntRange(0, SEED_MAX)


def _datasets():
    from . import data  # the dataset registry (torch): read when a command with --dataset runs

    return data


class LazyGroup(click.Group):
    """A group whose heavy commands (train) are imported only when run, listed in --help without importing."""

    lazy = {
        "train": ("bavae.train_cli", "train_command", "Train, resume or fine-tune a Biadversarial VAE."),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.lazy:
            return super().get_command(ctx, name)
        module, attr, _ = self.lazy[name]
        try:
            command = getattr(importlib.import_module(module), attr, None)
        except ModuleNotFoundError as e:
            if os.environ.get("BAVAE_DEBUG"):
                raise
            why = (
                f"this installation of bavae has no {module} module"
                if e.name == module
                else f"it needs the package {e.name!r}, which is not installed"
            )
            return _unavailable(name, f"`bavae {name}` is not available: {why}")
        except Exception as e:  # a broken module must not turn `bavae <cmd>` into a traceback
            if os.environ.get("BAVAE_DEBUG"):
                raise
            return _unavailable(
                name, f"`bavae {name}` is not available: importing {module} failed ({type(e).__name__}: {one_line(e)})"
            )
        if not isinstance(command, click.Command):
            return _unavailable(name, f"`bavae {name}` is not available: {module} defines no {attr}")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [
            (name, self.lazy[name][2] if name in self.lazy else self.commands[name].get_short_help_str(60))
            for name in self.list_commands(ctx)
            if name in self.lazy or not self.commands[name].hidden
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _unavailable(name: str, message: str) -> click.Command:
    def fail(**_: Any) -> None:
        raise click.ClickException(message)

    return click.Command(
        name,
        callback=fail,
        help=message,
        add_help_option=False,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


# ------------------------------------------------------------------------------------------------ helpers
def _usage(message: str) -> click.UsageError:
    return click.UsageError(message, ctx=click.get_current_context(silent=True))


def _output(out: str, fmt: str | None, allowed: tuple[str, ...] = FORMATS) -> tuple[Path, str]:
    """Check the output path and format before any work (and before torch loads): fail fast, write nothing."""
    if out == "":
        raise _usage("-o/--out is empty: give the output file, e.g. -o grid.png")
    path = Path(out).expanduser()
    if path.is_dir():
        raise _usage(f"cannot write {out}: it is a folder (give a file name in it, e.g. {Path(out) / 'out.png'})")
    try:
        check_output_file(out)  # its folder, its permissions; `-` (stdout) is refused there
    except OutputError as e:
        raise _usage(str(e)) from None
    if fmt is None:
        fmt = path.suffix.lower().lstrip(".")
        if fmt not in allowed:
            raise _usage(
                f"unsupported output format {path.suffix or '(no suffix)'!r} for {out}: "
                f"use {' or '.join('.' + f for f in allowed)}, or --format"
            )
    elif fmt not in allowed:
        raise _usage(f"unsupported output format {fmt!r}: use {' or '.join(allowed)}")
    return path, fmt


def _check_data_dir(data: Any, dataset: str, data_dir: str | None) -> None:
    """``--data-dir`` for ``--dataset``, checked by :mod:`bavae.data` (the module the command loaded): a usage
    error, as the other options' are."""
    try:
        data.check_data_dir(dataset, data_dir)
    except data.DataError as e:
        raise _usage(str(e)) from None


def _model_dataset(model: str, known: list[str]) -> str:
    """The dataset a model was trained on: its zoo record's, its run's train_config.json's, else fashion-mnist."""
    if model in zoo.list_models():  # a record's dataset that is no built-in one (noto-color-emoji) was an image folder
        dataset = zoo.model_info(model).dataset
        return dataset if dataset in known else "folder"
    train_config = Path(model).expanduser() / "train_config.json"
    if train_config.is_file():
        try:
            return json.loads(train_config.read_text()).get("dataset") or "fashion-mnist"
        except (OSError, ValueError):
            pass
    return "fashion-mnist"


def _options(*names: str):
    """The options most commands share."""
    opts = {
        "model": click.option("-m", "--model", default=zoo.DEFAULT_MODEL, show_default=True, help=MODEL_HELP),
        "out": click.option("-o", "--out", required=True, help="Output file (.png grid or .npz arrays)."),
        "seed": click.option("--seed", type=SEED, default=None, help="Seed for reproducible noise."),
        "device": device_option,
        "nrow": click.option(
            "--nrow", type=click.IntRange(*COUNT_BOUNDS["grid_images"]), default=None, help="Images per grid row."
        ),
        "format": click.option(
            "--format",
            "fmt",
            type=click.Choice(FORMATS),
            default=None,
            help="Output format; default: from the suffix of --out.",
        ),
        "dataset": click.option(
            "--dataset",
            type=RegistryChoice(lambda: _datasets().list_datasets(), lambda name: _datasets().get_dataset(name)),
            default=None,
            help="The data. Default: the model's own (zoo record or train_config.json), else fashion-mnist.",
        ),
        "data_dir": click.option("--data-dir", default=None, help="Dataset folder (as for `bavae train`)."),
    }

    def decorate(f):
        for name in reversed(names):
            f = opts[name](f)
        return f

    return decorate


# ------------------------------------------------------------------------------------------------ commands
@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="bavae", message="%(prog)s %(version)s")
def cli() -> None:
    """Biadversarial VAEs (arXiv 1902.03517): pretrained models, sampling, reconstruction, training."""


@cli.command("list")
@click.argument("pattern", default="*")
@click.option("--pretrained", is_flag=True, help="Only the models that have weights.")
def list_command(pattern: str, pretrained: bool) -> None:
    """List the zoo's models; those without weights yet are marked so.

    PATTERN is an fnmatch pattern, for example '*mnist*'.
    """
    names = zoo.list_models(pattern, pretrained=pretrained)
    if not names:
        raise click.ClickException(f"no pretrained model matches {pattern!r}; `bavae list` shows them all")
    width = max(len(n) for n in names)
    for name in names:
        r = zoo.model_info(name)
        c = r.config
        where = "bundled" if r.bundled and (zoo.bundled_root() / name).is_dir() else f"hub:{r.hf_hub_id}"
        if not r.has_weights:
            where = f"no weights yet (`bavae info {name}`)"
        shape = f"{c.get('channels')}x{c.get('image_size')}x{c.get('image_size')}"
        click.echo(f"{name:<{width}}  {r.dataset:<14} {shape:<9} {c.get('arch'):<7} {where}")


@cli.command("info")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the whole record as JSON.")
def info_command(name: str, as_json: bool) -> None:
    """Show a pretrained model's record.

    Config, dataset, metrics, license, sha256, and the command that trained it.
    """
    r = zoo.model_info(name)
    if as_json:
        click.echo(json.dumps(r.to_dict(), indent=2))
        return
    bundled = r.bundled and (zoo.bundled_root() / name).is_dir()
    lines = [
        f"{r.name}: {r.description}",
        f"  hub:       {r.hf_hub_id} @ {r.revision}" + ("" if r.sha256 else " (not published yet)"),
        f"  weights:   {'bundled with bavae' if bundled else 'downloaded on first use'}; sha256 {r.sha256}",
        f"  dataset:   {r.dataset}",
        f"  license:   {r.license}",
        f"  config:    {json.dumps(r.config, sort_keys=True)}",
        f"  metrics:   {json.dumps(r.metrics) if r.metrics else '(none yet)'}",
        f"  trained:   {r.train_command}",
    ]
    if not r.sha256:
        lines.append(f"  publish:   {zoo.publish_command(r)}")
    lines.append(f"  load:      bavae.load({r.name!r})")
    click.echo("\n".join(lines))


@cli.command("sample")
@_options("model")
@click.option(
    "-n",
    "n",
    type=click.IntRange(1),
    default=64,
    show_default=True,
    help=f"Number of images: at most {MAX_IMAGES:,} in a PNG grid, {MAX_NPZ_IMAGES:,} in an npz (written in batches, "
    "after checking the disk has room for it).",
)
@click.option(
    "--sampler",
    type=click.Choice(["auto", "prior", "gmm", "neighbours"]),
    default="auto",
    show_default=True,
    help="Where codes come from: the model's fitted sampler (gmm: a Gaussian mixture; neighbours: between "
    "neighbouring training codes), the prior N(0, I), or auto (the model's default: its config's default_sampler, "
    "which is the fitted sampler unless the model's measured numbers chose the prior; the prior when it has none).",
)
@_options("out", "seed", "device", "nrow", "format")
def sample_command(
    model: str, n: int, sampler: str, out: str, seed: int | None, device: str, nrow: int | None, fmt: str | None
) -> None:
    """Draw new images.

    Codes come from the model's default sampler: its fitted latent sampler when it has one (see `bavae
    fit-sampler`) unless its config names the prior, else the prior. Writes a PNG grid, or an npz with `images`
    (N, C, H, W) float32 in [0, 1]; an npz is decoded and written in batches, so any -n fits in a bounded amount of memory (the FID's 10,000 or 50,000 samples).
    """
    path, fmt = _output(out, fmt)
    if fmt == "png" and n > MAX_IMAGES:
        raise click.BadParameter(
            f"{n} images do not fit one PNG grid (at most {MAX_IMAGES}); write an npz instead "
            f"(-o {path.with_suffix('.npz').name} or --format npz), which takes up to {MAX_NPZ_IMAGES:,}",
            param_hint="'-n'",
        )
    if fmt == "npz" and n > MAX_NPZ_IMAGES:
        raise click.BadParameter(
            f"{n} images are more than one npz takes (at most {MAX_NPZ_IMAGES:,}); write several files, each with "
            "its own --seed",
            param_hint="'-n'",
        )
    from . import devices, images  # torch, PIL and numpy: once the arguments are checked

    m = zoo.load(model, device=device)
    g = devices.seeded_generator(seed, m.device)
    if fmt == "npz":
        m.sample_codes(1, sampler)  # a missing sampler fails here, before the file is started
        shape = (n, m.config.channels, m.config.image_size, m.config.image_size)
        draw = lambda k: m.sample(k, generator=g, sampler=sampler)  # noqa: E731
        click.echo(f"wrote {images.stream_images_npz(path, shape, draw, NPZ_BATCH)}")
        return
    samples = m.sample(n, generator=g, sampler=sampler)
    click.echo(f"wrote {images.save_images(path, fmt, samples, nrow or math.ceil(math.sqrt(n)))}")


@cli.command("reconstruct")
@click.argument("pictures", metavar="IMAGES", nargs=-1, required=True)
@_options("model", "out", "seed", "device", "nrow", "format")
def reconstruct_command(
    pictures: tuple[str, ...], model: str, out: str, seed: int | None, device: str, nrow: int | None, fmt: str | None
) -> None:
    """Reconstruct your own pictures.

    IMAGES are files or folders of PNG/JPEG pictures of any size or mode; they are converted to the model's
    channels, resized and centre-cropped. The PNG grid shows each original beside its reconstruction; the npz
    holds `images` (the reconstructions), `inputs` and `files`.
    """
    path, fmt = _output(out, fmt)
    from . import devices, images  # torch, PIL and numpy: once the arguments are checked

    files = images.check_image_files(pictures)
    m = zoo.load(model, device=device)
    x = images.load_image_files(files, m.config.image_size, m.config.channels)
    recon = images.batched(m.reconstruct, x, m.device, devices.seeded_generator(seed, m.device))
    if fmt == "npz":
        msg = images.save_images(path, fmt, recon, None, inputs=x.numpy(), files=[str(f) for f in files])
    else:
        msg = images.save_images(path, fmt, images.interleave(x, recon), 2 * (nrow or min(len(files), 4)))
    click.echo(f"wrote {msg}")


@cli.command("interpolate")
@click.argument("image_a")
@click.argument("image_b")
@click.option(
    "--steps",
    type=click.IntRange(*COUNT_BOUNDS["steps"]),
    default=8,
    show_default=True,
    help="Decoded points from A to B.",
)
@_options("model", "out", "seed", "device", "format")
def interpolate_command(
    image_a: str, image_b: str, steps: int, model: str, out: str, seed: int | None, device: str, fmt: str | None
) -> None:
    """Interpolate between two pictures.

    Decodes STEPS points on the straight line between the codes of IMAGE_A and IMAGE_B; the PNG grid shows
    A, the decodings, then B in one row.
    """
    path, fmt = _output(out, fmt)
    from . import devices, images  # torch, PIL and numpy: once the arguments are checked

    files = images.check_image_files((image_a, image_b))
    if len(files) != 2:
        raise _usage("interpolate takes two picture files, IMAGE_A and IMAGE_B (not folders)")
    m = zoo.load(model, device=device)
    x = images.load_image_files(files, m.config.image_size, m.config.channels)
    frames = m.interpolate(x[:1], x[1:], steps=steps, generator=devices.seeded_generator(seed, m.device))[0].cpu()
    if fmt == "npz":
        msg = images.save_images(path, fmt, frames, None, inputs=x.numpy())
    else:
        msg = images.save_images(path, fmt, (x[:1], frames, x[1:]), steps + 2)
    click.echo(f"wrote {msg}")


@cli.command("encode")
@click.argument("pictures", metavar="IMAGES", nargs=-1, required=True)
@_options("model", "out", "seed", "device")
def encode_command(pictures: tuple[str, ...], model: str, out: str, seed: int | None, device: str) -> None:
    """Encode pictures to latent codes.

    One posterior sample per picture, written to an npz with `codes` (N, latent_dim) float32, `files` and
    `model`.
    """
    path, _ = _output(out, None, ("npz",))
    from . import devices, images  # torch, PIL and numpy: once the arguments are checked

    files = images.check_image_files(pictures)
    m = zoo.load(model, device=device)
    x = images.load_image_files(files, m.config.image_size, m.config.channels)
    codes = images.batched(m.encode, x, m.device, devices.seeded_generator(seed, m.device)).float()
    images.save_npz(path, codes=codes.numpy(), files=[str(f) for f in files], model=model)
    click.echo(f"wrote {path} (codes {tuple(codes.shape)} of {model})")


@cli.command("decode")
@click.argument("codes_file", metavar="CODES.npz")
@click.option("-m", "--model", default=None, help=MODEL_HELP + " Default: the model that wrote the codes.")
@_options("out", "seed", "device", "nrow", "format")
def decode_command(
    codes_file: str, model: str | None, out: str, seed: int | None, device: str, nrow: int | None, fmt: str | None
) -> None:
    """Decode latent codes to images.

    CODES.npz holds `codes` (N, latent_dim), as `bavae encode` writes.
    """
    path, fmt = _output(out, fmt)
    from . import devices, images  # torch, PIL and numpy: once the arguments are checked

    codes, written_by = images.read_codes(codes_file)  # NaN, inf, empty, integer: refused before the model loads
    model = model or written_by or zoo.DEFAULT_MODEL
    m = zoo.load(model, device=device)
    if codes.shape[1] != m.config.latent_dim:
        raise click.ClickException(
            f"{codes_file}: `codes` has shape {codes.shape} ({codes.dtype}); {model} decodes "
            f"float codes of shape (N, {m.config.latent_dim})"
        )
    decoded = images.batched(m.decode, codes.astype("float32"), m.device, devices.seeded_generator(seed, m.device))
    click.echo(f"wrote {images.save_images(path, fmt, decoded, nrow or math.ceil(math.sqrt(len(codes))))}")


@cli.command("eval")
@click.argument("model", default=zoo.DEFAULT_MODEL, metavar="NAME_OR_DIR")
@_options("dataset", "data_dir")
@click.option(
    "--n-samples", type=click.IntRange(100, 200000), default=10000, show_default=True, help="Generated images for FID."
)
@click.option(
    "--n-test",
    type=click.IntRange(100, 200000),
    default=10000,
    show_default=True,
    help="Test images for reconstruction, agreement and FID's reference.",
)
@click.option("--inception", is_flag=True, help="Also an Inception-v3 FID (needs torchvision's ImageNet weights).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@_options("device")
def eval_command(
    model: str,
    dataset: str | None,
    data_dir: str | None,
    n_samples: int,
    n_test: int,
    inception: bool,
    as_json: bool,
    seed: int,
    device: str,
) -> None:
    """Score a model: FID, reconstruction MSE/SSIM, class agreement, KL, InfoNCE, samples/s.

    FID and class agreement use a classifier that ships with bavae: the Fashion-MNIST one for 1x32x32 models, the
    colour emoji one for 3x64x64 models (emoji, CelebA or a folder); MIG is added on dsprites. See bavae.eval for
    what each number means.
    """
    zoo.model_source(model)
    from . import data, eval  # torch and the datasets: once the arguments are checked

    dataset = dataset or _model_dataset(model, data.list_datasets())
    _check_data_dir(data, dataset, data_dir)
    m = zoo.load(model, device=device)
    settings = eval.EvalSettings(n_samples=n_samples, n_test=n_test, seed=seed, inception=inception)
    report = eval.evaluate(m, dataset, data_dir=data_dir, settings=settings, progress=not as_json)
    report = {"model": model, **report}
    click.echo(json.dumps(report, indent=2) if as_json else eval.format_report(model, report))


@cli.command("fit-sampler")
@click.argument("model", metavar="NAME_OR_DIR")
@_options("dataset", "data_dir")
@click.option(
    "--kind",
    type=click.Choice(["gmm", "neighbours"]),
    default="gmm",
    show_default=True,
    help="gmm: a full-covariance Gaussian mixture; neighbours: the codes themselves and each one's nearest others, "
    "drawn on the segments between them.",
)
@click.option(
    "--components", type=click.IntRange(1, 1024), default=50, show_default=True, help="Gaussian-mixture components."
)
@click.option(
    "--neighbours",
    type=click.IntRange(1, 64),
    default=3,
    show_default=True,
    help="Neighbours kept per code (--kind neighbours).",
)
@click.option(
    "--max-codes",
    type=click.IntRange(100, 10_000_000),
    default=60_000,
    show_default=True,
    help="Training images to encode (spread over the whole set).",
)
@click.option(
    "--out",
    "out_dir",
    default=None,
    help="Folder to save the model with its sampler. Default: NAME_OR_DIR itself when it is a folder.",
)
@click.option("--seed", type=SEED, default=0, show_default=True)
@_options("device")
def fit_sampler_command(
    model: str,
    dataset: str | None,
    data_dir: str | None,
    kind: str,
    components: int,
    neighbours: int,
    max_codes: int,
    out_dir: str | None,
    seed: int,
    device: str,
) -> None:
    """Fit a latent sampler on a model's training codes.

    Encodes the training images, fits a full-covariance Gaussian mixture to their codes (EM in torch), or keeps
    the codes and each one's nearest neighbours (--kind neighbours), and saves the model with it: `bavae sample`
    then decodes the sampler's draws instead of the prior's.
    """
    out = Path(out_dir if out_dir is not None else model).expanduser()
    if out_dir is None and not out.is_dir():
        raise _usage(f"{model} is not a model folder: give --out DIR to save the model with its sampler there")
    try:
        check_output_folder(out, "--out")
    except OutputError as e:
        raise _usage(str(e)) from None
    zoo.model_source(model)
    from . import data, samplers  # torch and the datasets: once the arguments are checked

    dataset = dataset or _model_dataset(model, data.list_datasets())
    _check_data_dir(data, dataset, data_dir)
    m = zoo.load(model, device=device)
    images = data.build_dataset(
        dataset, data_dir=data_dir, image_size=m.config.image_size, channels=m.config.channels, split="train"
    )
    sampler = samplers.fit_latent_sampler(
        m, images, components, max_codes=max_codes, seed=seed, kind=kind, neighbours=neighbours
    )
    out.mkdir(parents=True, exist_ok=True)
    m.save_pretrained(out)
    click.echo(
        f"fitted {samplers.describe(sampler.config)} on {min(max_codes, len(images))} codes of {dataset}; "
        f"saved {out} (`bavae sample -m {out}` now draws from it)"
    )
    if note := stored_codes_note(sampler.config, str(out)):
        click.echo(note, err=True)


@cli.command("push")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--repo-id", required=True, help="USER/NAME on the Hub (created if missing).")
@click.option("--branch", default=None, help="Push to this branch (created from main if missing).")
@click.option("--private", is_flag=True, help="Create the repo private.")
@click.option("--token", default=None, envvar="HF_TOKEN", help="Hub token (default: `hf auth login`'s).")
def push_command(model_dir: str, repo_id: str, branch: str | None, private: bool, token: str | None) -> None:
    """Publish a model folder to the Hub.

    Uploads config.json, model.safetensors, a model card (README.md) and samples.png in one commit.
    """
    from . import hub, train_cli  # the Hub client: once the arguments are checked

    hub.check_repo_id(repo_id)  # the id, the folder and its files, before anything is sent
    folder = Path(model_dir).expanduser()
    if not folder.is_dir():
        raise _usage(f"{model_dir} {'is not a folder' if folder.exists() else 'does not exist'}")
    model_files(folder)
    with contextlib.suppress(OSError, ValueError, AttributeError):  # a bad config.json is zoo.push's to refuse
        if note := stored_codes_note(json.loads((folder / CONFIG_NAME).read_text()).get("sampler"), model_dir):
            click.echo(note, err=True)
    train_config_file = folder / "train_config.json"  # a `bavae train` run: its command
    try:
        train_config = json.loads(train_config_file.read_text()) if train_config_file.is_file() else {}
    except ValueError as e:
        raise click.ClickException(f"{train_config_file} is not valid JSON: {one_line(e)}") from None
    info = zoo.push(
        model_dir,
        repo_id,
        revision=branch,
        private=private,
        token=token,
        train_command=train_cli.train_command_line(train_config) if train_config else None,
    )
    click.echo(f"pushed {model_dir} to {repo_id}: {info.commit_url} (load it with bavae.load({repo_id!r}))")


@cli.command("export")
@click.argument("model", metavar="MODEL")
@click.option(
    "--format", "fmt", type=click.Choice(["onnx", "torch-export"]), required=True, help="ONNX files or .pt2 programs."
)
@click.option("-o", "--out", required=True, help="Output folder (new or empty).")
@click.option(
    "--part",
    "parts",
    type=click.Choice(["decoder", "encoder", "sampler"]),
    multiple=True,
    help="What to write (repeatable). Default: decoder, encoder, and the fitted sampler's draw if the model has one.",
)
@click.option("--opset", type=click.IntRange(18), default=None, help="ONNX opset. Default: torch.onnx's.")
def export_command(model: str, fmt: str, out: str, parts: tuple[str, ...], opset: int | None) -> None:
    """Export a model's networks as ONNX files or torch.export programs.

    Writes the decoder (codes -> images), the encoder (images and its noise -> codes) and the fitted sampler's
    draw (uniform and normal noise -> codes), each with a dynamic batch size, in float32, and export.json beside
    them (opset, versions, inputs, outputs, sha256). MODEL is a zoo name, a model folder or a Hub repo id.
    """
    zoo.model_source(model)
    from . import export  # torch: once the arguments are checked

    m = zoo.load(model, device="cpu")
    export.check_export(m, out, fmt, list(parts) or None)  # fails in one line before the slow part
    written = m.export(out, fmt, parts=list(parts) or None, opset=opset, source=model)
    files = sorted(p.name for p in written.iterdir())
    click.echo(f"wrote {written}: {', '.join(files)}")


@cli.command("demo")
@click.argument("model", required=False, default=None, metavar="[MODEL]")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=7860, show_default=True, help="Port (0: any free one).")
@_options("device")
def demo_command(model: str | None, host: str, port: int, device: str) -> None:
    """Serve the interactive demo page (Gradio; pip install 'bavae[demo]').

    Sample, Reconstruct, Interpolate and Explore tabs over the zoo's models with weights; MODEL (a zoo name,
    folder or Hub repo id) is the one shown first. Runs offline on the bundled weights.
    """
    if model is not None:
        zoo.model_source(model)
    try:
        from .demo import serve
    except ImportError as e:
        if e.name and e.name.split(".")[0] == "gradio":
            raise click.ClickException("`bavae demo` needs gradio: pip install 'bavae[demo]'") from None
        raise
    serve(model, host=host, port=port, device=device)


# ------------------------------------------------------------------------------------------------ entry point
def main(argv: list[str] | None = None) -> None:
    """`bavae` and `python -m bavae`: click without standalone mode, so every error becomes one line."""
    debug = bool(os.environ.get("BAVAE_DEBUG"))
    # The Hub client logs each retry as a warning; the outcome is ours to report, in one line.
    os.environ.setdefault("HF_HUB_VERBOSITY", "error")
    try:
        rc = cli.main(args=argv, prog_name="bavae", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("bavae: aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        if debug:
            raise
        where = e.ctx.command_path if isinstance(e, click.UsageError) and e.ctx else "bavae"
        click.echo(f"{where}: error: {one_line(e.format_message())}", err=True)
        sys.exit(e.exit_code)
    except (BAVAEError, OSError) as e:  # refused on purpose, or the system's (a full disk): one line; a bug is neither
        if debug:
            raise
        click.echo(f"bavae: error: {one_line(e)}", err=True)
        sys.exit(1)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
