"""Pretrained models: one record per model, and the single door to them, :func:`load`.

    import bavae
    bavae.list_models("*mnist*")            # ['bavae-fashionmnist32']
    model = bavae.load("bavae-fashionmnist32")   # BAVAE in eval mode, on cuda if there is one
    model = bavae.load("runs/celeba64")     # a folder written by `bavae train` / save_pretrained
    model = bavae.load("user/my-bavae")     # any Hub repo written by `bavae push` / BAVAE.push_to_hub

Records are data (timm's pretrained cfgs), kept in ``zoo.json`` beside this module: repo, revision, the sha256 of
``model.safetensors``, what the config changes from BAVAEConfig's defaults, dataset, metrics, license and the exact
``bavae train`` command that made the weights.

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
import importlib.util
import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from .configs import BAVAEConfig, check_device
from .errors import InvalidType, InvalidValue, UnknownModelError, WeightsUnavailableError
from .files import CONFIG_NAME, WEIGHTS_NAME, model_files
from .files import sha256_file as sha256_file  # re-exported: the zoo's records are checked with it

if TYPE_CHECKING:  # the model and the Hub client load when a model does: `bavae list` stays instant
    from .hub import CommitInfo, ModelCard
    from .model import BAVAE

DEFAULT_MODEL = "bavae-fashionmnist32"
WEIGHTS_DIR_ENV = "BAVAE_WEIGHTS_DIR"
RECORDS_FILE = Path(__file__).with_name("zoo.json")  # the records, as data
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
HUB_PREFIX = "hf://"  # hf://USER/NAME: the Hub, even where USER/ is also a local folder


@dataclass(frozen=True)
class ModelRecord:
    """One pretrained model. ``config`` is a full ``BAVAEConfig.to_dict()`` (a record may give only what differs
    from the defaults: the rest is filled in); ``sha256`` is that of ``model.safetensors`` (None until published:
    then the Hub's own hash is checked instead)."""

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

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", {**BAVAEConfig.defaults(), **self.config})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def has_weights(self) -> bool:
        """Whether weights were published for this record (bundled or on the Hub): their sha256 is recorded."""
        return bool(self.sha256)


_MODELS: dict[str, ModelRecord] = {}


def register_pretrained(record: ModelRecord, *, overwrite: bool = False) -> ModelRecord:
    if not isinstance(record, ModelRecord):
        raise InvalidType(f"register_pretrained expects a ModelRecord, got {type(record).__name__}")
    if record.name in _MODELS and not overwrite:
        raise InvalidValue(f"pretrained model {record.name!r} is already registered")
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
        raise InvalidType(f"pattern must be an fnmatch pattern (a str) or a list of them, got {pattern!r}")
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
        raise InvalidType(f"model name must be a str (see `bavae list`), got {name!r}")
    try:
        return _MODELS[name]
    except KeyError:
        raise _unknown(name) from None


def bundled_root() -> Path:
    """The folder of bundled weights: ``$BAVAE_WEIGHTS_DIR`` if set, else the installed ``bavae.weights``."""
    if os.environ.get(WEIGHTS_DIR_ENV):
        return Path(os.environ[WEIGHTS_DIR_ENV]).expanduser()
    return Path(importlib.util.find_spec("bavae.weights").submodule_search_locations[0])


def publish_command(record: ModelRecord) -> str:
    """`bavae push OUT --repo-id USER/<name>`, OUT being the --out of the record's train command."""
    args = shlex.split(record.train_command)
    out = args[args.index("--out") + 1] if "--out" in args[:-1] else "runs/" + record.name
    return f"bavae push {out} --repo-id USER/{record.name}"


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
        raise InvalidType(
            f"model must be a zoo name (see `bavae list`), a model folder or a Hub repo id, got {name_or_path!r}"
        )
    name = os.fspath(name_or_path)
    if not isinstance(name, str):
        raise InvalidType(f"model must be given as a str path, got {name!r}")
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
    if device not in (None, "auto"):  # a missing CUDA fails before any download ("auto" cannot fail)
        from .devices import resolve_device

        device = resolve_device(device)
    if kind == "folder":
        return _build(*model_files(Path(name).expanduser()), None, device)
    if kind == "zoo":
        return _load_record(_MODELS[name], revision, device, dict(token=token, cache_dir=cache_dir))
    from . import hub  # the Hub client: only a model from the Hub needs it

    try:
        config, weights = hub.fetch_model_files(
            name, revision, None, None, cache_first=False, token=token, cache_dir=cache_dir
        )
    except WeightsUnavailableError as e:
        if os.fspath(name_or_path).startswith(HUB_PREFIX):
            raise
        raise WeightsUnavailableError(f"{e} (nor is there a local folder {name})") from None
    return _build(config, weights, None, device)


def _load_record(record: ModelRecord, revision: str | None, device: Any, hub_options: dict) -> BAVAE:
    pinned = revision in (None, record.revision)
    if pinned and record.bundled:
        weights = bundled_root() / record.name / WEIGHTS_NAME
        if weights.is_file():  # a stripped install without weights/ falls through to the cache and the Hub
            return _build(record.config, weights, record.sha256, device)
    from . import hub  # the Hub client: only weights that are not bundled need it

    # A pinned record names its config and hash: only the weight file is needed, and a cached one is used
    # without asking the Hub. An unpublished record (sha256 None) is read like any Hub repo.
    known = pinned and record.sha256 is not None
    try:
        config, weights = hub.fetch_model_files(
            record.hf_hub_id,
            record.revision if pinned else revision,
            record.config if known else None,
            record.sha256 if known else None,
            cache_first=pinned,
            **hub_options,
        )
    except WeightsUnavailableError as e:
        raise WeightsUnavailableError(
            f"{record.name}: {e}. To make these weights yourself: `{record.train_command}`; "
            f"to publish them: `{publish_command(record)}`"
        ) from None
    return _build(config, weights, None, device)  # already checked by fetch_model_files


def _build(config: Any, weights: Path, sha256: str | None, device: Any) -> BAVAE:
    """The model of a config (a file, a dict or a BAVAEConfig) and its weights, on ``device``."""
    from . import devices, model  # torch loads here: `import bavae` and `bavae list` need none

    if isinstance(config, (str, Path)):
        config = BAVAEConfig.from_json_file(config)
    elif isinstance(config, dict):
        config = BAVAEConfig.from_dict(config)
    return model.BAVAE.from_files(config, weights, map_location=devices.resolve_device(device), expected_sha256=sha256)


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


# ------------------------------------------------------------------------------------------------ publishing
def push(model_dir: str | os.PathLike, repo_id: str, revision: str | None = None, **kwargs: Any) -> CommitInfo:
    """:func:`bavae.hub.push`, after checking that the folder's config loads: what is published must load back."""
    from . import hub

    folder = Path(model_dir).expanduser()
    config = BAVAEConfig.from_json_file(model_files(folder)[0]).to_dict() if folder.is_dir() else None
    return hub.push(model_dir, repo_id, revision, config=config, **kwargs)


def model_card(source: Any, *args: Any, **kwargs: Any) -> ModelCard:
    """:func:`bavae.hub.model_card` of a record, a model or a config (the Hub client loads here)."""
    from . import hub

    return hub.model_card(source, *args, **kwargs)


# ------------------------------------------------------------------------------------------------ the zoo
for _record in json.loads(RECORDS_FILE.read_text(encoding="utf-8"))["models"]:
    register_pretrained(ModelRecord(**_record))

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
    "model_source",
    "UnknownModelError",
    "WeightsUnavailableError",
    "DEFAULT_MODEL",
]
