"""Pretrained models: one record per model, and the single door to them, :func:`load`.

    import bavae
    bavae.list_models("*mnist*")            # ['bavae-fashionmnist32']
    model = bavae.load("bavae-fashionmnist32")   # BAVAE in eval mode, on cuda if there is one
    model = bavae.load("runs/celeba64")     # a folder written by `bavae train` / save_pretrained
    model = bavae.load("user/my-bavae")     # any Hub repo written by `bavae push` / BAVAE.push_to_hub

Records are data (timm's pretrained cfgs): repo, revision, the sha256 of ``model.safetensors``, the config,
dataset, metrics, license and the exact ``bavae train`` command that made the weights.

Where :func:`load` looks, in order (:func:`model_source` decides, before anything loads):
  0. a name that must be a local path -- it starts with ``.``, ``/``, ``~`` (or a drive or ``\\`` on Windows), or
     its parent folder exists, as ``runs/mine`` does once ``runs/`` does -- is that folder or an error ("no model
     folder ..."), never a Hub repo id; ``hf://USER/NAME`` forces the Hub for a repo id that looks like a folder;
  1. an existing local folder (``config.json`` + ``model.safetensors``);
  2. a zoo record's weights bundled in the installed package (``bavae/weights/<name>/``; the environment
     variable ``BAVAE_WEIGHTS_DIR`` points this at another folder of ``<name>/`` subfolders, for tests);
  3. the Hugging Face cache (zoo records look there first, without a network call);
  4. the Hub, through ``huggingface_hub`` (which honours ``HF_ENDPOINT``, ``HF_HOME``, ``HF_HUB_OFFLINE``, tokens).
     For a branch revision of a non-zoo repo the client asks the Hub for the current commit first and, when the
     Hub cannot be reached (or answers 5xx), falls back to the cached copy by itself (huggingface_hub 2.4).

Every downloaded or bundled weight file is checked before it is loaded: against the record's ``sha256`` (the record
is the source of truth), else against the hash the Hub published for it (:mod:`bavae.hub` downloads, checks and
evicts; it also pushes and writes model cards).
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

# `name as name`: re-exported, importable from bavae.zoo as before files.py and hub.py took them over
from .files import sha256_file as sha256_file
from .hub import CARD_NAME as CARD_NAME
from .hub import CONFIG_NAME, WEIGHTS_NAME, WeightsUnavailableError, fetch_model_files, folder_files, push
from .hub import SAMPLES_NAME as SAMPLES_NAME
from .hub import model_card as _hub_model_card

if TYPE_CHECKING:  # torch and the Hub client load on first use: `bavae list` stays instant
    import torch

    from .hub import ModelCard  # huggingface_hub's, through the one module that talks to it
    from .model import BAVAE

DEFAULT_MODEL = "bavae-fashionmnist32"
WEIGHTS_DIR_ENV = "BAVAE_WEIGHTS_DIR"
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
HUB_PREFIX = "hf://"  # hf://USER/NAME: the Hub, even where USER/ is also a local folder
SEED_MAX = 2**32 - 1  # seeds reach numpy and scikit-learn too, which take 0 <= seed < 2**32
DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps"


class UnknownModelError(ValueError):
    """Not a zoo name, a local folder or a Hub repo id."""


@dataclass(frozen=True)
class ModelRecord:
    """One pretrained model. ``config`` is ``BAVAEConfig.to_dict()``; ``sha256`` is that of ``model.safetensors``
    (None until published: then the Hub's own hash is checked instead)."""

    name: str
    hf_hub_id: str
    revision: str = "main"  # a commit sha pins the weights; "main" follows the repo
    sha256: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    dataset: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    license: str = "mit"
    bundled: bool = False  # ships inside the package under weights/<name>/
    description: str = ""
    train_command: str = ""  # the exact `bavae train ...` command that made the weights
    size_mb: float | None = None  # of model.safetensors (all four networks; sampling needs only the decoder)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def has_weights(self) -> bool:
        """Whether weights were published for this record (bundled or on the Hub): their sha256 is recorded."""
        return bool(self.sha256)


_MODELS: dict[str, ModelRecord] = {}


def register_pretrained(record: ModelRecord, *, overwrite: bool = False) -> ModelRecord:
    if not isinstance(record, ModelRecord):
        raise TypeError(f"register_pretrained expects a ModelRecord, got {type(record).__name__}")
    if record.name in _MODELS and not overwrite:
        raise ValueError(f"pretrained model {record.name!r} is already registered")
    _MODELS[record.name] = record
    return record


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_models(pattern: str | Iterable[str] = "*", pretrained: bool = False) -> list[str]:
    """Names of the zoo's models matching an fnmatch pattern (or any of several), sorted naturally; with
    ``pretrained=True`` only those that have weights (timm's ``list_models(pretrained=True)``): a record such as
    ``bavae-celeba64`` is registered for its recipe before any weights exist."""
    if not isinstance(pretrained, bool):
        raise TypeError(f"pretrained must be True or False, got {pretrained!r}")
    patterns = [pattern] if isinstance(pattern, str) else list(pattern) if isinstance(pattern, (list, tuple)) else None
    if patterns is None or not all(isinstance(p, str) for p in patterns):
        raise TypeError(f"pattern must be an fnmatch pattern (a str) or a list of them, got {pattern!r}")
    names = {n for n in _MODELS for p in patterns if fnmatch.fnmatch(n, p)}
    if pretrained:
        names = {n for n in names if _MODELS[n].has_weights}
    return sorted(names, key=_natural_key)


def _unknown(name: str) -> UnknownModelError:
    close = difflib.get_close_matches(name, list(_MODELS), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return UnknownModelError(f"unknown model {name!r}{hint}; known: {', '.join(list_models())} (see `bavae list`)")


def model_info(name: str) -> ModelRecord:
    if not isinstance(name, str):
        raise TypeError(f"model name must be a str (see `bavae list`), got {name!r}")
    try:
        return _MODELS[name]
    except KeyError:
        raise _unknown(name) from None


def bundled_root() -> Path:
    """The folder of bundled weights: ``$BAVAE_WEIGHTS_DIR`` if set, else the installed ``bavae.weights``."""
    if os.environ.get(WEIGHTS_DIR_ENV):
        return Path(os.environ[WEIGHTS_DIR_ENV]).expanduser()
    from importlib.resources import files

    return Path(str(files("bavae.weights")))


def publish_command(record: ModelRecord) -> str:
    """`bavae push OUT --repo-id USER/<name>`, OUT being the --out of the record's train command."""
    args = shlex.split(record.train_command)
    out = args[args.index("--out") + 1] if "--out" in args[:-1] else "runs/" + record.name
    return f"bavae push {out} --repo-id USER/{record.name}"


# ------------------------------------------------------------------------------------------------ devices
_DEVICE = re.compile(r"(auto|cpu|cuda|mps)(:(\d+))?")


def check_device(device: Any) -> None:
    """The form of a device, without torch: None, "auto", "cpu", "cuda", "cuda:N", "mps", N (cuda:N) or a torch.device.
    ValueError (TypeError for a non-string) naming the value and what was expected."""
    if device is None or type(device).__name__ == "device":  # a torch.device: torch has checked its form
        return
    if isinstance(device, int) and not isinstance(device, bool) and device >= 0:  # torch's shorthand for cuda:N
        return
    if not isinstance(device, str):
        raise TypeError(f"device must be one of {DEVICE_HELP} (a str) or a torch.device, got {device!r}")
    m = _DEVICE.fullmatch(device)
    if not m:
        raise ValueError(f"device {device!r} is not one of {DEVICE_HELP}")
    kind, index = m.group(1), m.group(3)
    if index is not None and kind == "auto":
        raise ValueError(f"device {device!r}: 'auto' takes no index")
    if index is not None and kind in ("cpu", "mps") and int(index) != 0:
        raise ValueError(f"device {device!r}: there is one {kind} device; use {kind!r}")


def resolve_device(device: Any = None) -> torch.device:
    """The torch.device for ``device`` (None/"auto": cuda if available, else cpu), checked against this machine."""
    check_device(device)
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} was asked for, but torch sees no CUDA device")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise ValueError(
            f"device {str(device)!r} was asked for, but torch sees {n} CUDA device(s): cuda:0 to cuda:{n - 1}"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(device)!r} was asked for, but torch sees no MPS device")
    if device.type == "cpu" and device.index not in (None, 0):
        raise ValueError(f"device {str(device)!r}: there is one cpu device; use 'cpu'")
    return device


# ------------------------------------------------------------------------------------------------ loading
def _looks_like_path(name: str) -> bool:
    """Whether ``name`` must be a local path: it starts with ., /, ~ (or a drive, or \\), or its parent folder
    exists (``runs/mine`` once ``runs/`` does). Such a name is never sent to the Hub."""
    if name.startswith((".", "/", "~", "\\")) or (os.altsep and os.altsep in name) or re.match(r"[A-Za-z]:[\\/]", name):
        return True
    if os.sep != "/" and os.sep in name:
        return True
    parent = Path(name).expanduser().parent
    return parent != Path(".") and parent.is_dir()


def model_source(name_or_path: Any) -> tuple[str, str]:
    """Where :func:`load` would look for ``name_or_path``, decided without loading anything: ``("folder", path)``,
    ``("zoo", name)`` or ``("hub", repo_id)``. Raises UnknownModelError (TypeError for a non-string) naming the
    value and why it is none of them: a missing folder is reported at once, without a Hub call."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(
            f"model must be a zoo name (see `bavae list`), a model folder or a Hub repo id, got {name_or_path!r}"
        )
    name = os.fspath(name_or_path)
    if not isinstance(name, str):
        raise TypeError(f"model must be given as a str path, got {name!r}")
    if not name.strip():
        raise UnknownModelError(
            "the model name is empty: give a zoo name (see `bavae list`), a folder or a Hub repo id"
        )
    if name.startswith(HUB_PREFIX):
        repo_id = name[len(HUB_PREFIX) :]
        if not _REPO_ID.fullmatch(repo_id) or "--" in repo_id or ".." in repo_id:
            raise UnknownModelError(f"{name}: {repo_id!r} is not a Hub repo id (USER/NAME)")
        return "hub", repo_id
    folder = Path(name).expanduser()
    if folder.is_dir():
        return "folder", name
    if folder.exists():
        raise UnknownModelError(f"{name} is a file, not a model folder (expected {CONFIG_NAME} + {WEIGHTS_NAME})")
    if name in _MODELS:
        return "zoo", name
    if _looks_like_path(name):
        parent = folder.parent
        why = "it does not exist" if parent.is_dir() else f"{parent} does not exist either"
        rule = (
            f" ({parent}{os.sep} exists, so this is read as a local path; for the Hub repo write {HUB_PREFIX}{name})"
            if parent.is_dir()
            and parent != Path(".")
            and _REPO_ID.fullmatch(name)
            and not name.startswith((".", "/", "~"))
            else ""
        )
        raise UnknownModelError(f"no model folder {name}: {why}{rule}")
    if not _REPO_ID.fullmatch(name) or "--" in name or ".." in name:
        raise _unknown(name)
    return "hub", name


def load(
    name_or_path: str | os.PathLike,
    device: Any = None,
    revision: str | None = None,
    *,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> BAVAE:
    """A pretrained BAVAE in eval mode on ``device`` (None/"auto": cuda if available, else cpu).

    ``name_or_path``: a zoo name (:func:`list_models`), a folder written by ``save_pretrained`` / ``bavae train``,
    or a Hub repo id. A name that looks like a path (it starts with ``.``, ``/`` or ``~``, or its parent folder
    exists, as ``runs/mine`` does once ``runs/`` does) is a local folder and never a repo id: if it does not exist,
    that is the error, with no Hub call; ``hf://USER/NAME`` always means the Hub (:func:`model_source`). ``revision`` (branch, tag or commit) overrides a zoo record's pinned revision; its weights
    are then checked against the Hub's hash instead of the record's.
    """
    kind, name = model_source(name_or_path)
    check_device(device)
    hub = dict(token=token, cache_dir=cache_dir)
    if kind == "folder":
        config, weights = folder_files(Path(name).expanduser())
        return _build(config, weights, None, device)
    if kind == "zoo":
        return _load_record(_MODELS[name], revision, device, hub)
    try:
        config, weights = fetch_model_files(name, revision, None, None, cache_first=False, **hub)
    except WeightsUnavailableError as e:
        if os.fspath(name_or_path).startswith(HUB_PREFIX):
            raise
        raise WeightsUnavailableError(f"{e} (nor is there a local folder {name})") from None
    return _build(config, weights, None, device)


def _load_record(record: ModelRecord, revision: str | None, device: Any, hub: dict) -> BAVAE:
    pinned = revision in (None, record.revision)
    if pinned and record.bundled:
        weights = bundled_root() / record.name / WEIGHTS_NAME
        if weights.is_file():  # a stripped install without weights/ falls through to the cache and the Hub
            return _build(record.config, weights, record.sha256, device)
    # A pinned record names its config and hash: only the weight file is needed, and a cached one is used
    # without asking the Hub. An unpublished record (sha256 None) is read like any Hub repo.
    known = pinned and record.sha256 is not None
    try:
        config, weights = fetch_model_files(
            record.hf_hub_id,
            record.revision if pinned else revision,
            record.config if known else None,
            record.sha256 if known else None,
            cache_first=pinned,
            **hub,
        )
    except WeightsUnavailableError as e:
        raise WeightsUnavailableError(
            f"{record.name}: {e}. To make these weights yourself: `{record.train_command}`; "
            f"to publish them: `{publish_command(record)}`"
        ) from None
    return _build(config, weights, None, device)  # already checked by fetch_model_files


def _build(config: Any, weights: Path, sha256: str | None, device: Any) -> BAVAE:
    import torch

    from .model import BAVAE, BAVAEConfig  # torch loads here, not at `import bavae`

    if isinstance(config, (str, Path)):
        config = BAVAEConfig.from_json_file(config)
    elif isinstance(config, dict):
        config = BAVAEConfig.from_dict(config)
    # Building runs hundreds of tiny ops (spectral norm's power iterations on every critic layer) whose results
    # the weights then overwrite. Intra-op threads only add barriers there: on a busy 2-core machine 2 threads
    # took 8 s where 1 took 0.06 s. So build single-threaded, then give the threads back for the real work.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = BAVAE.from_files(config, weights, map_location=resolve_device(device), expected_sha256=sha256)
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def zoo_table(pattern: str = "*") -> str:
    """The model zoo as a Markdown table, from the records (the docs site and the README are built from this).
    FID is the model's default sampling path (its fitted mixture, unless the prior samples better); "FID, prior"
    decodes N(0, I) codes."""

    def num(r: ModelRecord, key: str, fmt: str) -> str:
        return fmt.format(r.metrics[key]) if key in r.metrics else "–"

    rows = [
        "| model | dataset | architecture | objective | FID ↓ | FID, prior ↓ | recon MSE ↓ | class agreement ↑ | MIG ↑ "
        "| size |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in list_models(pattern):
        r = model_info(name)
        c = r.config
        shape = f"{c.get('channels')}x{c.get('image_size')}x{c.get('image_size')}"
        size = f"{r.size_mb:.1f} MB" if r.size_mb else "not published"
        rows.append(
            f"| `{name}`{' (default)' if name == DEFAULT_MODEL else ''} | {r.dataset} {shape} | "
            f"{c.get('arch')} (width {c.get('width')}, latent {c.get('latent_dim')}) | {c.get('objective')} | "
            f"{num(r, 'fid', '{:.2f}')} | {num(r, 'fid_prior', '{:.2f}')} | {num(r, 'recon_mse', '{:.4f}')} | "
            f"{num(r, 'class_agreement', '{:.1%}')} | {num(r, 'mig', '{:.3f}')} | {size} |"
        )
    return "\n".join(rows)


# ------------------------------------------------------------------------------------------------ cards
def model_card(
    record_or_model: Any,
    metrics: dict[str, Any] | None = None,
    sample_grid_path: str | None = None,
    *,
    name: str | None = None,
    repo_id: str | None = None,
    dataset: str | None = None,
    license: str | None = None,
    train_command: str | None = None,
    description: str | None = None,
) -> ModelCard:
    """A Hub model card (:func:`bavae.hub.model_card`). Takes a :class:`ModelRecord`, or a BAVAE / BAVAEConfig /
    config dict with the keyword arguments filling in what a record would say."""
    if isinstance(record_or_model, ModelRecord):
        r = record_or_model
        return _hub_model_card(
            r.config,
            {**r.metrics, **(metrics or {})},
            sample_grid_path,
            name=name or r.name,
            load_id=r.name,
            dataset=dataset or r.dataset,
            license=license or r.license,
            train_command=train_command or r.train_command,
            description=description or r.description,
        )
    return _hub_model_card(
        record_or_model,
        metrics,
        sample_grid_path,
        name=name,
        repo_id=repo_id,
        dataset=dataset,
        license=license,
        train_command=train_command,
        description=description,
    )


# ------------------------------------------------------------------------------------------------ the zoo
def _config(**overrides: Any) -> dict[str, Any]:
    """A full BAVAEConfig.to_dict(), written out so that `bavae list/info` need not import torch."""
    base = dict(
        arch="dcgan",
        image_size=32,
        channels=1,
        latent_dim=16,
        posterior_noise_dim=16,
        decoder_noise_dim=0,
        width=32,
        critic_width=None,
        spectral_norm=True,
        shared_critic_trunk=False,
        prior="normal",
        objective="informative",
        objective_weights={},
        sampler=None,
        default_sampler="auto",
    )
    return {**base, **overrides}


register_pretrained(
    ModelRecord(
        name="bavae-fashionmnist32",
        hf_hub_id="bavae/bavae-fashionmnist32",
        revision="main",
        sha256="704ef8fcc19fd6e8ee10242e87b5e881bd4a994dd996275f0694f0d99af2b725",
        config=_config(sampler={"kind": "gmm", "components": 50}),
        dataset="fashion-mnist",
        # `bavae eval bavae-fashionmnist32` (10,000 test images and samples, seed 0); fid is the default sampler's
        metrics={
            "fid": 25.87,
            "fid_prior": 210.05,
            "fid_gmm": 25.87,
            "recon_mse": 0.009417,
            "recon_ssim": 0.7497,
            "class_agreement": 0.8675,
            "kl_nats": 1.954,
            "infonce_nats": 1.914,
            "code_std": 1.003,
        },
        license="mit",
        bundled=True,
        size_mb=5.98,
        description="The default model: Fashion-MNIST, 32x32 grayscale (28x28 zero-padded), DCGAN networks, the "
        "informative objective; 10,000 steps of batch 64 on the CPU (fp32, two critic trunks), then a 50-component "
        "Gaussian mixture fitted on the 60,000 training codes, which it samples from by default (sample FID 25.9 "
        "against 210.0 from the N(0, I) prior). Networks stored in fp16.",
        train_command="bavae train --dataset fashion-mnist --arch dcgan --separate-critic-trunks --steps 10000 "
        "--checkpoint-every 500 --sample-every 1000 --sampler-components 0 --out runs/fashionmnist32 && bavae fit-sampler runs/fashionmnist32 "
        "--dataset fashion-mnist --components 50",
    )
)

register_pretrained(
    ModelRecord(
        name="bavae-fashionmnist28-mlp",
        hf_hub_id="bavae/bavae-fashionmnist28-mlp",
        revision="main",
        sha256="7d5b5489bb42fab62c530c2f39265d01e87e599c78d59808f1974e2ecf2cb849",
        config=_config(arch="mlp", image_size=28, shared_critic_trunk=True, sampler={"kind": "gmm", "components": 50}),
        dataset="fashion-mnist",
        # `bavae eval bavae-fashionmnist28-mlp` (10,000 test images and samples, seed 0)
        metrics={
            "fid": 168.93,
            "fid_prior": 268.75,
            "fid_gmm": 168.93,
            "recon_mse": 0.01523,
            "recon_ssim": 0.6348,
            "class_agreement": 0.7295,
            "kl_nats": 1.519,
            "infonce_nats": 1.464,
            "code_std": 1.019,
        },
        license="mit",
        bundled=True,
        size_mb=3.04,
        description="Fashion-MNIST at its native 28x28, MLP networks (width 32: 256-wide hidden layers), the informative "
        "objective; 20,000 steps of batch 64 in 16.8 CPU-minutes on one core of a 2-core AMD EPYC VM (shared critic "
        "trunk, bf16), then its 50-component mixture. The smallest and fastest model (88,000 samples/s on one core), "
        "and the weakest: its sample FID (168.9) is 6.5x the default's (25.9), far outside the 1.5x the zoo aims "
        "for. Fully connected networks see no locality, so edges and textures blur; it stays as the MLP family's "
        "reference, not as a model to sample from.",
        train_command="bavae train --dataset fashion-mnist --arch mlp --steps 20000 --shared-critic-trunk --precision bf16 "
        "--checkpoint-every 1000 --sample-every 2000 --sampler-components 50 --out runs/zoo/bavae-fashionmnist28-mlp",
    )
)

register_pretrained(
    ModelRecord(
        name="bavae-fashionmnist32-paper",
        hf_hub_id="bavae/bavae-fashionmnist32-paper",
        revision="main",
        sha256="74b035c69cdcca56409310e9cfd80d5ef53049b056d75ff19d31b4d95b3719a8",
        config=_config(objective="paper", sampler={"kind": "gmm", "components": 50}, default_sampler="prior"),
        dataset="fashion-mnist",
        metrics={
            "fid": 462.30,
            "fid_prior": 462.30,
            "fid_gmm": 783.52,
            "recon_mse": 0.08911,
            "recon_ssim": 0.2321,
            "class_agreement": 0.1991,
            "kl_nats": 0.162,
            "infonce_nats": 0.014,
            "code_std": 0.115,
        },
        license="mit",
        bundled=True,
        size_mb=5.98,
        description="The paper's objective (eq. 19 as published) with the first release's default networks (two critic "
        "trunks), data, seed and budget (10,000 steps of batch 64, CPU, fp32): kept for comparison. Its objective "
        "penalises the information in the codes, and its reconstructions show it (see docs/method.md). Its codes "
        "collapse (spread 0.115), so the mixture fitted on them samples worse than the prior: the prior is its default.",
        train_command="bavae train --dataset fashion-mnist --arch dcgan --separate-critic-trunks --objective paper "
        "--steps 10000 --checkpoint-every 500 --sample-every 1000 --sampler-components 0 --out runs/fashionmnist32-paper "
        "&& bavae fit-sampler runs/fashionmnist32-paper --dataset fashion-mnist --components 50",
    )
)

register_pretrained(
    ModelRecord(
        name="bavae-fashionmnist32-resnet",
        hf_hub_id="bavae/bavae-fashionmnist32-resnet",
        revision="main",
        sha256="09e06f750a719c76a9f073c83949d367b1080726e25ef6dfc9afe05f9a4bb240",
        config=_config(arch="resnet", width=16, shared_critic_trunk=True, sampler={"kind": "gmm", "components": 50}),
        dataset="fashion-mnist",
        # `bavae eval bavae-fashionmnist32-resnet` (10,000 test images and samples, seed 0)
        metrics={
            "fid": 170.92,
            "fid_prior": 334.89,
            "fid_gmm": 170.92,
            "recon_mse": 0.01213,
            "recon_ssim": 0.6812,
            "class_agreement": 0.7249,
            "kl_nats": 1.479,
            "infonce_nats": 1.237,
            "code_std": 0.980,
        },
        license="mit",
        bundled=True,
        size_mb=1.52,
        description="Fashion-MNIST 32x32, ResNet networks (pre-activation blocks, width 16), the informative objective; "
        "5,000 steps of batch 64 in 25.7 CPU-minutes on one core of a 2-core AMD EPYC VM (shared critic trunk, bf16), "
        "then its 50-component mixture. At about the default's CPU time it is well behind it: sample FID 170.9 "
        "against 25.9 (6.6x, outside the 1.5x the zoo aims for), MSE 0.0121 against 0.0094. A ResNet step costs "
        "2.5x a DCGAN step here, so it saw half the steps; `bavae train --resume runs/zoo/bavae-fashionmnist32-resnet "
        "--steps 20000` continues the run.",
        train_command="bavae train --dataset fashion-mnist --arch resnet --width 16 --steps 5000 --shared-critic-trunk "
        "--precision bf16 --checkpoint-every 1000 --sample-every 2000 --sampler-components 50 "
        "--out runs/zoo/bavae-fashionmnist32-resnet",
    )
)

register_pretrained(
    ModelRecord(
        name="bavae-dsprites64",
        hf_hub_id="bavae/bavae-dsprites64",
        revision="main",
        sha256="1714ce6a9a79b17b46a8bae88b604938069bc8dc939eaccc12eb130f3136c711",
        config=_config(
            image_size=64,
            width=16,
            latent_dim=10,
            posterior_noise_dim=10,
            shared_critic_trunk=True,
            sampler={"kind": "gmm", "components": 50},
        ),
        dataset="dsprites",
        # `bavae eval bavae-dsprites64 --dataset dsprites` (10,000 test images, seed 0)
        metrics={
            "recon_mse": 0.001821,
            "recon_ssim": 0.9790,
            "kl_nats": 1.456,
            "infonce_nats": 1.389,
            "mig": 0.01379,
            "code_std": 1.016,
        },
        license="mit",
        bundled=True,
        size_mb=2.52,
        description="dSprites 64x64 (rendered by bavae), DCGAN networks (width 16), latent 10, the informative objective; "
        "15,000 steps of batch 64 in 37.7 CPU-minutes on one core of a 2-core AMD EPYC VM (shared critic trunk, bf16). "
        "It reconstructs the sprites closely (SSIM 0.98) but its codes are entangled: nothing in the objective asks "
        "for one factor per dimension, and MIG is low (0.014; see docs/benchmarks.md for a Gaussian VAE on the same "
        "trunks and budget). Its card has a latent-traversal picture.",
        train_command="bavae train --dataset dsprites --arch dcgan --width 16 --latent-dim 10 --posterior-noise-dim 10 "
        "--steps 15000 --shared-critic-trunk --precision bf16 --checkpoint-every 1000 --sample-every 2000 "
        "--sampler-components 50 --out runs/zoo/bavae-dsprites64",
    )
)

register_pretrained(
    ModelRecord(
        name="bavae-emoji64",
        hf_hub_id="bavae/bavae-emoji64",
        revision="main",
        sha256="4e8d7d6b4bbf5538951904ac435cffd3c554384532f9ccb897e2dd5b7468c4c2",
        config=_config(
            image_size=64,
            channels=3,
            latent_dim=64,
            posterior_noise_dim=64,
            width=32,
            shared_critic_trunk=True,
            sampler={"kind": "gmm", "components": 12},
        ),
        dataset="noto-color-emoji",
        metrics={
            "recon_mse": 0.01989,
            "recon_ssim": 0.5823,
            "kl_nats": 2.575,
            "infonce_nats": 1.098,
            "code_std": 0.969,
        },
        license="apache-2.0",
        bundled=True,
        size_mb=10.56,
        description="Colour emoji, 64x64 RGB: 1,687 Noto Color Emoji glyphs rendered on white (183 more held out; "
        "the images are Apache-2.0, the font SIL OFL 1.1, and these weights Apache-2.0), DCGAN networks, the informative objective; 10,000 steps of batch 64 in 76 CPU-minutes "
        "on one core of a 2-core AMD EPYC VM. bavae-celeba64's recipe, and the model to fine-tune on colour "
        "pictures. Trained on a small set: held-out glyphs reconstruct roughly, and samples are best from its "
        "fitted sampler. The image folder is written by `python benchmarks/make_emoji_folder.py --out data/emoji` "
        "(Debian packages fonts-noto-color-emoji and unicode-data).",
        train_command="bavae train --dataset folder "
        "--data-dir data/emoji --arch dcgan --image-size 64 --channels 3 --width 32 --latent-dim 64 "
        "--posterior-noise-dim 64 --steps 10000 --shared-critic-trunk --precision bf16 --checkpoint-every 1000 "
        "--sample-every 2000 --sampler-components 50 --out runs/zoo/bavae-emoji64",
    )
)

register_pretrained(
    ModelRecord(
        name="bavae-celeba64",
        hf_hub_id="bavae/bavae-celeba64",
        revision="main",
        sha256=None,  # not published yet: trained by users who have CelebA (it cannot be had on our machines)
        config=_config(
            image_size=64,
            channels=3,
            latent_dim=64,
            posterior_noise_dim=64,
            width=32,
            shared_critic_trunk=True,
            sampler={"kind": "gmm", "components": 50},
        ),
        dataset="celeba",
        license="mit",
        bundled=False,
        description="CelebA faces, 64x64 RGB (aligned, 140px centre crop), DCGAN networks: bavae-emoji64's recipe, "
        "proven on the same 3x64x64 path. Not bundled: CelebA cannot be had where bavae is built; train it with the "
        "command below and publish it.",
        train_command="bavae train --dataset celeba --data-dir PATH/TO/celeba --arch dcgan --image-size 64 --channels 3 "
        "--width 32 --latent-dim 64 --posterior-noise-dim 64 --shared-critic-trunk --precision bf16 --steps 50000 "
        "--sampler-components 50 --out runs/celeba64",
    )
)

__all__ = [
    "ModelRecord",
    "register_pretrained",
    "list_models",
    "model_info",
    "load",
    "model_card",
    "push",
    "zoo_table",
    "bundled_root",
    "resolve_device",
    "check_device",
    "model_source",
    "UnknownModelError",
    "WeightsUnavailableError",
    "DEFAULT_MODEL",
]
