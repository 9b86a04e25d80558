"""Pretrained models: one record per model, and the single door to them, :func:`load`.

    import bavae
    bavae.list_models("*mnist*")            # ['bavae-fashionmnist32']
    model = bavae.load("bavae-fashionmnist32")   # BAVAE in eval mode, on cuda if there is one
    model = bavae.load("runs/celeba64")     # a folder written by `bavae train` / save_pretrained
    model = bavae.load("user/my-bavae")     # any Hub repo written by `bavae push` / BAVAE.push_to_hub

Records are data (timm's pretrained cfgs): repo, revision, the sha256 of ``model.safetensors``, the config,
dataset, metrics, license and the exact ``bavae train`` command that made the weights.

Where :func:`load` looks, in order:
  1. an existing local folder (``config.json`` + ``model.safetensors``);
  2. a zoo record's weights bundled in the installed package (``bavae/weights/<name>/``; the environment
     variable ``BAVAE_WEIGHTS_DIR`` points this at another folder of ``<name>/`` subfolders, for tests);
  3. the Hugging Face cache (zoo records look there first, without a network call);
  4. the Hub, through ``huggingface_hub`` (which honours ``HF_ENDPOINT``, ``HF_HOME``, ``HF_HUB_OFFLINE``, tokens).
     For a branch revision of a non-zoo repo the client asks the Hub for the current commit first and, when the
     Hub cannot be reached (or answers 5xx), falls back to the cached copy by itself (huggingface_hub 2.4).

Every downloaded or bundled weight file is checked before it is loaded:
  * zoo records: against the record's ``sha256`` (the record is the source of truth);
  * other Hub repos: against the hash the Hub published for the file. The Hub's ETag of an LFS file (``.safetensors``
    are LFS) is its sha256, of a regular file its git blob sha1, and the cache names each blob after that ETag;
    the file's content must hash to its blob's name. (Where the cache cannot use symlinks, e.g. Windows without
    developer mode, the blob name is not visible and the check is skipped.)
A file that fails is deleted from the cache (nothing ever loads it), downloaded once more, and if it is still
wrong the load fails naming the file and both hashes. A local folder (1.) is loaded as it is: it is the user's own
run or copy and nothing records what its hash should be (a damaged file still fails to load).
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import hashlib
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:  # torch and the Hub client load on first use: `bavae list` stays instant
    import torch
    from huggingface_hub import CommitInfo, ModelCard

    from .model import BAVAE

CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, SAMPLES_NAME = "config.json", "model.safetensors", "README.md", "samples.png"
DEFAULT_MODEL = "bavae-fashionmnist32"
WEIGHTS_DIR_ENV = "BAVAE_WEIGHTS_DIR"
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_HEX64, _HEX40 = re.compile(r"[0-9a-f]{64}"), re.compile(r"[0-9a-f]{40}")


class UnknownModelError(ValueError):
    """Not a zoo name, a local folder or a Hub repo id."""


class WeightsUnavailableError(ValueError):
    """The weights are neither bundled, nor in the cache, nor downloadable right now."""


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


def list_models(pattern: str | Iterable[str] = "*") -> list[str]:
    """Names of the pretrained models matching an fnmatch pattern (or any of several), sorted naturally."""
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    names = {n for n in _MODELS for p in patterns if fnmatch.fnmatch(n, p)}
    return sorted(names, key=_natural_key)


def _unknown(name: str) -> UnknownModelError:
    close = difflib.get_close_matches(name, list(_MODELS), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return UnknownModelError(f"unknown model {name!r}{hint}; known: {', '.join(list_models())} (see `bavae list`)")


def model_info(name: str) -> ModelRecord:
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


# ------------------------------------------------------------------------------------------------ loading
def resolve_device(device: Any = None) -> torch.device:
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} was asked for, but torch sees no CUDA device")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(device)!r} was asked for, but torch sees no MPS device")
    return device


def load(name_or_path: str | os.PathLike, device: Any = None, revision: str | None = None, *,
         token: str | bool | None = None, cache_dir: str | os.PathLike | None = None) -> BAVAE:
    """A pretrained BAVAE in eval mode on ``device`` (None/"auto": cuda if available, else cpu).

    ``name_or_path``: a zoo name (:func:`list_models`), a folder written by ``save_pretrained`` / ``bavae train``,
    or a Hub repo id. ``revision`` (branch, tag or commit) overrides a zoo record's pinned revision; its weights
    are then checked against the Hub's hash instead of the record's.
    """
    name = os.fspath(name_or_path)
    hub = dict(token=token, cache_dir=cache_dir)
    folder = Path(name).expanduser()
    if folder.is_dir():
        config, weights = _folder_files(folder)
        return _build(config, weights, None, device)
    if name in _MODELS:
        return _load_record(_MODELS[name], revision, device, hub)
    if not _REPO_ID.fullmatch(name) or name.startswith((".", "~")) or "--" in name or ".." in name:
        if folder.exists():
            raise UnknownModelError(f"{name} is a file, not a model folder (expected {CONFIG_NAME} + {WEIGHTS_NAME})")
        if name.startswith((".", "~", os.sep)) or os.sep in name:
            raise UnknownModelError(f"no model folder {name} (and it is neither a zoo name nor a Hub repo id)")
        raise _unknown(name)
    config, weights = _hub_files(name, revision, None, None, cache_first=False, **hub)
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
        config, weights = _hub_files(record.hf_hub_id, record.revision if pinned else revision,
                                     record.config if known else None, record.sha256 if known else None,
                                     cache_first=pinned, **hub)
    except WeightsUnavailableError as e:
        raise WeightsUnavailableError(
            f"{record.name}: {e}. To make these weights yourself: `{record.train_command}`; "
            f"to publish them: `{publish_command(record)}`") from None
    return _build(config, weights, None, device)  # already checked by _hub_files


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


def _folder_files(folder: Path) -> tuple[Path, Path]:
    from .model import WeightsError

    files = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for f in files:
        if not f.is_file():
            raise WeightsError(f"{folder} is not a saved BAVAE: {f.name} is missing "
                               f"(expected {CONFIG_NAME} and {WEIGHTS_NAME})")
    return files


# ------------------------------------------------------------------------------------------------ the Hub
def _hub_files(repo_id: str, revision: str | None, config: dict | None, sha256: str | None, *, cache_first: bool,
               token: Any = None, cache_dir: Any = None) -> tuple[Any, Path]:
    """(config, weights path) from the cache or the Hub, each file checked (``sha256`` or the Hub's own hash)."""
    kw = dict(repo_id=repo_id, revision=revision, token=token, cache_dir=cache_dir, cache_first=cache_first)
    if config is None:
        config = _fetch_checked(CONFIG_NAME, None, **kw)
    return config, _fetch_checked(WEIGHTS_NAME, sha256, **kw)


def _fetch_checked(filename: str, expected_sha256: str | None, **kw: Any) -> Path:
    """Download (or find in the cache) one file and check its hash; a bad file is evicted and fetched once more."""
    path = _download(filename, **kw)
    problem = _hash_problem(path, expected_sha256)
    if problem is None:
        return path
    _evict(path)
    try:
        path = _download(filename, **{**kw, "cache_first": False})
        problem = _hash_problem(path, expected_sha256)
    except WeightsUnavailableError as e:  # offline, or the Hub went away: the mismatch is still the news
        problem += f" (and downloading it again failed: {e})"
    if problem is None:
        return path
    _evict(path)
    from .model import WeightsError

    raise WeightsError(f"{problem}; the file was deleted from the cache and not loaded")


def _hash_problem(path: Path, expected_sha256: str | None) -> str | None:
    blob = Path(os.path.realpath(path))
    data_sha256 = sha256_file(blob)
    if expected_sha256 is not None:
        if data_sha256 == expected_sha256:
            return None
        return f"sha256 mismatch for {path.name} ({blob}): expected {expected_sha256}, got {data_sha256}"
    published = blob.name  # the cache names blobs after the Hub's ETag
    if _HEX64.fullmatch(published) and published != data_sha256:
        return f"sha256 mismatch for {path.name} ({blob}): expected {published} (published by the Hub), got {data_sha256}"
    if _HEX40.fullmatch(published):
        h = _digest(blob, hashlib.sha1(b"blob %d\0" % blob.stat().st_size))  # git's blob id: the Hub's ETag
        if h.hexdigest() != published:
            return (f"git blob hash mismatch for {path.name} ({blob}): expected {published} (published by the Hub), "
                    f"got {h.hexdigest()}")
    return None


def _digest(path: str | os.PathLike, h: Any) -> Any:
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h


def sha256_file(path: str | os.PathLike) -> str:
    return _digest(path, hashlib.sha256()).hexdigest()


def _evict(path: Path) -> None:
    """Delete a cached file that failed its hash check (its snapshot link and its blob): nothing may load it."""
    blob = Path(os.path.realpath(path))
    for p in {Path(path), blob}:
        try:
            p.unlink()
        except OSError:
            pass


def _download(filename: str, *, repo_id: str, revision: str | None, token: Any, cache_dir: Any,
              cache_first: bool) -> Path:
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    kw = dict(repo_id=repo_id, filename=filename, revision=revision, token=token, cache_dir=cache_dir)
    if cache_first:
        try:
            return Path(huggingface_hub.hf_hub_download(**kw, local_files_only=True))
        except LocalEntryNotFoundError:
            pass
    for attempt in range(2):
        try:
            return Path(huggingface_hub.hf_hub_download(**kw))
        except HfHubHTTPError as e:
            # The client retries 5xx on its metadata request but not on the download itself: one more try.
            status = e.response.status_code if e.response is not None else None
            if attempt == 0 and status is not None and status >= 500 and not _is_not_found(e):
                continue
            raise WeightsUnavailableError(_why(e, repo_id, filename, revision)) from e
        except Exception as e:  # the client also lets transport errors through (e.g. a body cut short 5 times)
            raise WeightsUnavailableError(_why(e, repo_id, filename, revision)) from e
    raise AssertionError("unreachable")


def _is_not_found(e: Exception) -> bool:
    from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    return isinstance(e, (RepositoryNotFoundError, RevisionNotFoundError, RemoteEntryNotFoundError))


def _why(e: Exception, repo_id: str, filename: str, revision: str | None) -> str:
    """One line saying why a Hub file could not be had, in the user's terms."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (HfHubHTTPError, LocalEntryNotFoundError, RemoteEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    where, rev = constants.ENDPOINT, revision or "main"
    cache = f"the Hugging Face cache ({constants.HF_HUB_CACHE})"
    if isinstance(e, LocalEntryNotFoundError):
        if constants.HF_HUB_OFFLINE:
            return f"the weights are not available offline: HF_HUB_OFFLINE is set and {repo_id}@{rev} is not in {cache}"
        cause = e.__cause__
        if isinstance(cause, HfHubHTTPError) and cause.response is not None:
            return (f"the Hub ({where}) answered {cause.response.status_code} and {repo_id}@{rev} is not in {cache}; "
                    "try again later")
        return (f"the weights are not available offline: the Hub ({where}) could not be reached and {repo_id}@{rev} "
                f"is not in {cache} (set HF_HUB_OFFLINE=1 to skip the Hub's retries when working offline)")
    if isinstance(e, RepositoryNotFoundError):
        return (f"the Hub ({where}) has no repo {repo_id} (if it is private or gated, log in with `hf auth login` "
                f"or pass a token), and it is not in {cache}")
    if isinstance(e, RevisionNotFoundError):
        return f"the Hub repo {repo_id} has no revision {rev!r}"
    if isinstance(e, RemoteEntryNotFoundError):
        return f"the Hub repo {repo_id}@{rev} has no {filename} (is it a bavae model?)"
    if isinstance(e, HfHubHTTPError) and e.response is not None:
        return f"the Hub ({where}) answered {e.response.status_code} for {repo_id}/{filename}; try again later"
    first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"downloading {repo_id}/{filename}@{rev} from {where} failed ({type(e).__name__}: {first_line})"


def zoo_table(pattern: str = "*") -> str:
    """The model zoo as a Markdown table, from the records (the docs site and the README are built from this)."""
    def num(r: ModelRecord, key: str, fmt: str) -> str:
        return fmt.format(r.metrics[key]) if key in r.metrics else "–"

    rows = ["| model | dataset | architecture | objective | FID ↓ | recon MSE ↓ | class agreement ↑ | MIG ↑ | size |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name in list_models(pattern):
        r = model_info(name)
        c = r.config
        shape = f"{c.get('channels')}x{c.get('image_size')}x{c.get('image_size')}"
        size = f"{r.size_mb:.1f} MB" if r.size_mb else "not published"
        rows.append(f"| `{name}`{' (default)' if name == DEFAULT_MODEL else ''} | {r.dataset} {shape} | "
                    f"{c.get('arch')} (width {c.get('width')}, latent {c.get('latent_dim')}) | {c.get('objective')} | "
                    f"{num(r, 'fid', '{:.2f}')} | {num(r, 'recon_mse', '{:.4f}')} | "
                    f"{num(r, 'class_agreement', '{:.1%}')} | {num(r, 'mig', '{:.3f}')} | {size} |")
    return "\n".join(rows)


# ------------------------------------------------------------------------------------------------ cards, push
_HUB_DATASETS = {"fashion-mnist": "zalando-datasets/fashion_mnist"}  # our dataset names -> Hub dataset ids


def model_card(record_or_model: Any, metrics: dict[str, Any] | None = None, sample_grid_path: str | None = None, *,
               name: str | None = None, repo_id: str | None = None, dataset: str | None = None,
               license: str | None = None, train_command: str | None = None, description: str | None = None
               ) -> ModelCard:
    """A Hub model card: YAML metadata (library_name bavae, license, tags, datasets, model-index metrics), usage,
    the training command and a link to a sample grid. Takes a :class:`ModelRecord`, or a BAVAE / BAVAEConfig /
    config dict with the keyword arguments filling in what a record would say."""
    import json

    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    if isinstance(record_or_model, ModelRecord):
        r = record_or_model
        name, config, load_id = name or r.name, r.config, r.name
        dataset, license = dataset or r.dataset, license or r.license
        train_command, description = train_command or r.train_command, description or r.description
        metrics = {**r.metrics, **(metrics or {})}
    else:
        config = getattr(record_or_model, "config", record_or_model)
        config = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        name = name or (repo_id.split("/")[-1] if repo_id else "bavae-model")
        load_id = repo_id or name
    metrics = {k: v for k, v in (metrics or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    task = "unconditional-image-generation"
    data = ModelCardData(
        library_name="bavae", license=license or "mit", pipeline_tag=task, model_name=name,
        tags=["bavae", "vae", "gan", "generative", "biadversarial-vae", task],
        datasets=[_HUB_DATASETS.get(dataset, dataset)] if dataset else None,
        eval_results=[EvalResult(task_type=task, dataset_type=_HUB_DATASETS.get(dataset, dataset),
                                 dataset_name=dataset, metric_type=k, metric_value=v) for k, v in metrics.items()]
        if metrics and dataset else None,
    )
    size = f"{config.get('image_size')}x{config.get('image_size')}, {config.get('channels')} channel(s)"
    lines = [
        f"# {name}", "",
        description or (f"A Biadversarial VAE ([arXiv:1902.03517](https://arxiv.org/abs/1902.03517)): implicit "
                        f"posterior and likelihood, each KL term estimated by its own critic. "
                        f"`{config.get('arch')}` networks, {size}, latent dimension {config.get('latent_dim')}"
                        + (f", trained on {dataset}." if dataset else ".")),
        "", "## Usage", "", "```python", "import bavae", "",
        f"model = bavae.load({load_id!r})  # eval mode, on cuda when available",
        "images = model.sample(64)              # (64, C, H, W) in [0, 1]",
        "codes = model.encode(images)           # samples of q(z|x)",
        "```", "", "```bash", f"bavae sample -m {load_id} -n 64 -o grid.png", "```", "",
    ]
    if sample_grid_path:
        lines += ["## Samples", "", f"![samples]({sample_grid_path})", ""]
    if train_command:
        lines += ["## Training", "", "```bash", train_command, "```", ""]
    if metrics:
        lines += ["## Metrics", "", "| metric | value |", "|---|---|",
                  *(f"| {k} | {v:.4g} |" for k, v in metrics.items()), ""]
    lines += ["## Config", "", "```json", json.dumps(config, indent=2, sort_keys=True), "```", ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def _train_command_from(train_config: dict[str, Any]) -> str:
    """Rebuild the `bavae train` command line from a run's train_config.json, through the command's own options."""
    try:
        import click

        from .train import train_command
    except Exception:  # no train module: no command on the card
        return ""
    parts = ["bavae", "train"]
    for p in train_command.params:
        value = train_config.get(p.name)
        if not isinstance(p, click.Option) or p.name in ("config_file", "resume") or value in (None, {}):
            continue
        flag = max(p.opts, key=len)
        if p.is_flag:
            parts.append(flag if value else max(p.secondary_opts, key=len, default=""))
        elif isinstance(value, dict):  # --objective-weight NAME=VALUE, repeated
            parts += [x for k, v in value.items() for x in (flag, f"{k}={v}")]
        else:
            parts += [flag, str(value)]
    return shlex.join(p for p in parts if p)


def push(model_dir: str | os.PathLike, repo_id: str, revision: str | None = None, private: bool = False,
         token: str | None = None, *, metrics: dict[str, float] | None = None,
         commit_message: str = "Upload bavae model") -> CommitInfo:
    """Upload a saved model folder to the Hub in one commit and return the commit info.

    Uploads ``config.json``, ``model.safetensors``, the model card ``README.md`` and ``samples.png`` (or the newest
    ``samples/step_*.png`` written by ``bavae train``). The card is the folder's own README.md unless that is
    missing or the generic one ``save_pretrained`` writes; then :func:`model_card` makes one from the config,
    ``train_config.json`` (for the training command), ``metrics`` or ``eval.json``. The folder is not modified.
    ``revision``: a branch, created from main when missing.
    """
    import json

    from huggingface_hub import CommitOperationAdd, HfApi, ModelCard

    from .model import BAVAEConfig

    folder = Path(model_dir).expanduser()
    if not folder.is_dir():
        raise WeightsUnavailableError(f"{folder} is not a folder")
    config_file, weights_file = _folder_files(folder)
    config = BAVAEConfig.from_json_file(config_file)  # refuse to publish what we could not load back
    samples = folder / SAMPLES_NAME
    if not samples.is_file():
        steps = sorted((folder / "samples").glob("step_*.png"))
        samples = steps[-1] if steps else None
    card_file = folder / CARD_NAME
    card = ModelCard.load(card_file) if card_file.is_file() else None
    if card is None or "model_hub_mixin" in (card.data.tags or []):
        read = lambda f: json.loads((folder / f).read_text()) if (folder / f).is_file() else {}  # noqa: E731
        train_config = read("train_config.json")
        card = model_card(config, metrics if metrics is not None else read("eval.json"),
                          SAMPLES_NAME if samples else None, repo_id=repo_id, dataset=train_config.get("dataset"),
                          train_command=_train_command_from(train_config) if train_config else None)
    ops = [CommitOperationAdd(CONFIG_NAME, str(config_file)), CommitOperationAdd(WEIGHTS_NAME, str(weights_file)),
           CommitOperationAdd(CARD_NAME, str(card).encode())]
    if samples:
        ops.append(CommitOperationAdd(SAMPLES_NAME, str(samples)))
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    if revision:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    return api.create_commit(repo_id, ops, commit_message=commit_message, revision=revision)


# ------------------------------------------------------------------------------------------------ the zoo
def _config(**overrides: Any) -> dict[str, Any]:
    """A full BAVAEConfig.to_dict(), written out so that `bavae list/info` need not import torch."""
    base = dict(arch="dcgan", image_size=32, channels=1, latent_dim=16, posterior_noise_dim=16, decoder_noise_dim=0,
                width=32, critic_width=None, shared_critic_trunk=False, spectral_norm=True, prior="normal",
                objective="informative", objective_weights={}, sampler=None)
    return {**base, **overrides}


register_pretrained(ModelRecord(
    name="bavae-fashionmnist32",
    hf_hub_id="bavae/bavae-fashionmnist32",
    revision="main",
    sha256="97f603c0aafb914e889e96dec90bc31249b09643a6b55f3de93f2c67776e9d6f",
    config=_config(),
    dataset="fashion-mnist",
    # `bavae eval bavae-fashionmnist32` (10,000 test images and samples, seed 0), as in benchmarks/peers.py's run
    metrics={"fid": 208.98, "recon_mse": 0.009416, "recon_ssim": 0.7497, "class_agreement": 0.8674, "kl_nats": 1.953,
             "infonce_nats": 1.914, "code_std": 1.007},
    license="mit",
    bundled=True,
    size_mb=11.83,
    description="The default model: Fashion-MNIST, 32x32 grayscale (28x28 zero-padded), DCGAN networks, the "
                "informative objective; 10,000 steps of batch 64 in 72 minutes on one core of a 2-core AMD EPYC VM "
                "(CPU only).",
    train_command="bavae train --dataset fashion-mnist --arch dcgan --steps 10000 --checkpoint-every 500 "
                  "--sample-every 1000 --out runs/fashionmnist32",
))

register_pretrained(ModelRecord(
    name="bavae-fashionmnist28-mlp",
    hf_hub_id="bavae/bavae-fashionmnist28-mlp",
    revision="main",
    sha256="a50870b413fa6697c0c2f014f09c4c94034722cc9480e0451fc123f39b1ccd36",
    config=_config(arch="mlp", image_size=28),
    dataset="fashion-mnist",
    metrics={"fid": 381.09, "recon_mse": 0.02324, "recon_ssim": 0.5348, "class_agreement": 0.6106, "kl_nats": 1.550,
             "infonce_nats": 1.307, "code_std": 1.010},
    license="mit",
    bundled=True,
    size_mb=7.03,
    description="Fashion-MNIST at its native 28x28, MLP networks (width 32: 256-wide hidden layers), the informative "
                "objective; 5,000 steps of batch 64 on the CPU.",
    train_command="bavae train --dataset fashion-mnist --arch mlp --steps 5000 --checkpoint-every 500 "
                  "--sample-every 2000 --out runs/fashionmnist28-mlp",
))

register_pretrained(ModelRecord(
    name="bavae-fashionmnist32-paper",
    hf_hub_id="bavae/bavae-fashionmnist32-paper",
    revision="main",
    sha256="e52220eef61324d8ea2b41d5dce64796f3c64b5dbfc9751a9235dace615816f7",
    config=_config(objective="paper"),
    dataset="fashion-mnist",
    metrics={"fid": 461.77, "recon_mse": 0.08913, "recon_ssim": 0.2321, "class_agreement": 0.1991, "kl_nats": 0.162,
             "infonce_nats": 0.014, "code_std": 0.115},
    license="mit",
    bundled=True,
    size_mb=11.83,
    description="The paper's objective (eq. 19 as published) with the default model's networks, data, seed and budget "
                "(10,000 steps of batch 64, CPU): kept for comparison. Its objective penalises the information in the "
                "codes, and its reconstructions show it (see docs/method.md).",
    train_command="bavae train --dataset fashion-mnist --arch dcgan --objective paper --steps 10000 "
                  "--checkpoint-every 500 --sample-every 1000 --out runs/fashionmnist32-paper",
))

register_pretrained(ModelRecord(
    name="bavae-fashionmnist32-resnet",
    hf_hub_id="bavae/bavae-fashionmnist32-resnet",
    revision="main",
    sha256="03a33dca27245b792a3decbca41f22b166186f943933856ce114757b68911d99",
    config=_config(arch="resnet", width=16),
    dataset="fashion-mnist",
    metrics={"fid": 556.07, "recon_mse": 0.02320, "recon_ssim": 0.4774, "class_agreement": 0.5558, "kl_nats": 1.628,
             "infonce_nats": 1.239, "code_std": 0.937},
    license="mit",
    bundled=True,
    size_mb=3.77,
    description="Fashion-MNIST 32x32, ResNet networks (pre-activation blocks, width 16), the informative objective; "
                "only 1,000 steps of batch 64 on the CPU (the budget we had): undertrained, its samples are rough. "
                "It shows the family end to end; retrain it with more --steps for real use.",
    train_command="bavae train --dataset fashion-mnist --arch resnet --width 16 --steps 1000 --checkpoint-every 500 "
                  "--sample-every 500 --out runs/fashionmnist32-resnet",
))

register_pretrained(ModelRecord(
    name="bavae-dsprites64",
    hf_hub_id="bavae/bavae-dsprites64",
    revision="main",
    sha256="50569b024587e627f7daa973b9e1f7929dafceb52c7abc4b9a478551624a285b",
    config=_config(image_size=64, width=16, latent_dim=10, posterior_noise_dim=10),
    dataset="dsprites",
    metrics={"recon_mse": 0.01715, "recon_ssim": 0.3625, "kl_nats": 1.077, "infonce_nats": 1.024, "mig": 0.00888,
             "code_std": 1.045},
    license="mit",
    bundled=True,
    size_mb=6.74,
    description="dSprites 64x64 (rendered by bavae), DCGAN networks (width 16), latent 10, the informative objective; "
                "1,000 steps of batch 64 on the CPU. Its card has a latent-traversal picture and the MIG score.",
    train_command="bavae train --dataset dsprites --arch dcgan --width 16 --latent-dim 10 --posterior-noise-dim 10 "
                  "--steps 1000 --checkpoint-every 500 --sample-every 1000 --out runs/dsprites64",
))

register_pretrained(ModelRecord(
    name="bavae-celeba64",
    hf_hub_id="bavae/bavae-celeba64",
    revision="main",
    sha256=None,  # not published yet: trained by users who have CelebA (it cannot be had on our machines)
    config=_config(image_size=64, channels=3, latent_dim=128, posterior_noise_dim=64, width=64),
    dataset="celeba",
    license="mit",
    bundled=False,
    description="CelebA faces, 64x64 RGB (aligned, 140px centre crop), DCGAN networks. Not bundled: CelebA cannot "
                "be had where bavae is built; train it with the command below and publish it.",
    train_command="bavae train --dataset celeba --data-dir PATH/TO/celeba --arch dcgan --image-size 64 --channels 3 "
                  "--latent-dim 128 --posterior-noise-dim 64 --width 64 --batch-size 128 --steps 50000 "
                  "--out runs/celeba64",
))

__all__ = ["ModelRecord", "register_pretrained", "list_models", "model_info", "load", "model_card", "push", "zoo_table",
           "bundled_root", "resolve_device", "UnknownModelError", "WeightsUnavailableError", "DEFAULT_MODEL"]
