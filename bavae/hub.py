"""The Hub: the only module that talks to ``huggingface_hub``, for downloads, pushes and model cards (it knows the
files of a model folder, not the model).

Every downloaded weight file is checked before anything loads it (:func:`bavae.files.hash_problem`):
  * zoo records: against the record's ``sha256`` (the record is the source of truth);
  * other Hub repos: against the hash the Hub published for the file. The Hub's ETag of an LFS file (``.safetensors``
    are LFS) is its sha256, of a regular file its git blob sha1, and the cache names each blob after that ETag;
    the file's content must hash to its blob's name. (Where the cache cannot use symlinks, e.g. Windows without
    developer mode, the blob name is not visible and the check is skipped.)
A file that fails is deleted from the cache (nothing ever loads it), downloaded once more, and if it is still
wrong the load fails naming the file and both hashes. A local folder is loaded as it is: it is the user's own run or
copy and nothing records what its hash should be (a damaged file still fails to load).

:func:`bavae.load` and ``BAVAE.from_pretrained`` both download through :func:`fetch_model_files`; ``BAVAE``
subclasses the client's ``ModelHubMixin`` (re-exported here) for ``from_pretrained`` / ``push_to_hub``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from huggingface_hub import (
    CommitInfo,
    CommitOperationAdd,
    EvalResult,
    HfApi,
    ModelCard,
    ModelCardData,
    ModelHubMixin,
    constants,
    hf_hub_download,
)
from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import HFValidationError, validate_repo_id

from .errors import HubError, WeightsError, WeightsUnavailableError, is_number, one_line
from .files import CARD_NAME, CONFIG_NAME, SAMPLES_NAME, WEIGHTS_NAME, hash_problem, model_files


def check_repo_id(repo_id: Any) -> str:
    """A Hub repo id as the Hub takes it (USER/NAME or NAME): checked here, before any file is read or sent."""
    if not isinstance(repo_id, str) or not repo_id:
        raise HubError(f"the repo id must be USER/NAME, got {repo_id!r}")
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise HubError(
            f"{repo_id!r} is not a Hub repo id: USER/NAME, each of letters, digits, '-', '_' and '.' "
            "(not starting or ending with '-' or '.'), at most 96 characters"
        ) from None
    return repo_id


def _push_problem(e: Exception, repo_id: str) -> str:
    """One line saying why a push failed, in the user's terms (the client's own messages name URLs and errnos)."""
    where = constants.ENDPOINT
    if isinstance(e, OfflineModeIsEnabled):
        return f"cannot push {repo_id}: HF_HUB_OFFLINE is set; unset it to reach the Hub ({where})"
    if isinstance(e, HfHubHTTPError) and e.response is not None:
        status = e.response.status_code
        hint = {
            401: "log in with `hf auth login` or pass --token",
            403: "this token may not write to that repo or namespace",
            404: "the repo or namespace was not found",
        }.get(status, "try again later" if status >= 500 else "")
        first = (str(e).strip().splitlines() or [""])[0]
        return f"cannot push {repo_id}: the Hub ({where}) answered {status} ({first}){'; ' + hint if hint else ''}"
    names = {c.__name__ for c in type(e).__mro__}
    if isinstance(e, OSError) or names & {"TransportError", "ConnectionError", "RequestError", "NetworkError"}:
        why = one_line(e)
        return (
            f"cannot push {repo_id}: the Hub ({where}) could not be reached ({why}); check your network, "
            "or HF_ENDPOINT if you meant another Hub"
        )
    return f"cannot push {repo_id} to {where}: {type(e).__name__}: {one_line(e)}"


# ------------------------------------------------------------------------------------------------ downloads
def fetch_model_files(
    repo_id: str,
    revision: str | None,
    config: dict | None,
    sha256: str | None,
    *,
    cache_first: bool,
    token: Any = None,
    cache_dir: Any = None,
    force_download: bool = False,
    local_files_only: bool = False,
) -> tuple[Any, Path]:
    """(config, weights path) from the cache or the Hub, each file checked (``sha256`` or the Hub's own hash).
    ``config`` given (a zoo record's) is returned as it is: only the weights are fetched. ``cache_first``: a cached
    file is used without asking the Hub; the last two are ``hf_hub_download``'s."""
    kw = dict(repo_id=repo_id, revision=revision, token=token, cache_dir=cache_dir, cache_first=cache_first)
    kw.update(force_download=force_download, local_files_only=local_files_only)
    if config is None:
        config = _fetch_checked(CONFIG_NAME, None, **kw)
    return config, _fetch_checked(WEIGHTS_NAME, sha256, **kw)


def _fetch_checked(filename: str, expected_sha256: str | None, **kw: Any) -> Path:
    """Download (or find in the cache) one file and check its hash; a bad file is evicted and fetched once more."""
    path = _download(filename, **kw)
    problem = hash_problem(path, expected_sha256)
    if problem is None:
        return path
    _evict(path)
    try:
        path = _download(filename, **{**kw, "cache_first": False})
        problem = hash_problem(path, expected_sha256)
    except WeightsUnavailableError as e:  # offline, or the Hub went away: the mismatch is still the news
        problem += f" (and downloading it again failed: {e})"
    if problem is None:
        return path
    _evict(path)
    raise WeightsError(f"{problem}; the file was deleted from the cache and not loaded")


def _evict(path: Path) -> None:
    """Delete a cached file that failed its hash check (its snapshot link and its blob): nothing may load it."""
    blob = Path(os.path.realpath(path))
    for p in {Path(path), blob}:
        try:
            p.unlink()
        except OSError:
            pass


def _download(filename: str, *, repo_id: str, revision: str | None, cache_first: bool, **kw: Any) -> Path:
    kw = dict(repo_id=repo_id, filename=filename, revision=revision, **kw)
    if cache_first and not kw["force_download"]:
        try:
            return Path(hf_hub_download(**{**kw, "local_files_only": True}))
        except LocalEntryNotFoundError:
            pass
    for attempt in range(2):
        try:
            return Path(hf_hub_download(**kw))
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
    return isinstance(e, (RepositoryNotFoundError, RevisionNotFoundError, RemoteEntryNotFoundError))


def _why(e: Exception, repo_id: str, filename: str, revision: str | None) -> str:
    """One line saying why a Hub file could not be had, in the user's terms."""
    where, rev = constants.ENDPOINT, revision or "main"
    cache = f"the Hugging Face cache ({constants.HF_HUB_CACHE})"
    if isinstance(e, LocalEntryNotFoundError):
        if constants.HF_HUB_OFFLINE:
            return f"the weights are not available offline: HF_HUB_OFFLINE is set and {repo_id}@{rev} is not in {cache}"
        cause = e.__cause__
        if isinstance(cause, HfHubHTTPError) and cause.response is not None:
            return (
                f"the Hub ({where}) answered {cause.response.status_code} and {repo_id}@{rev} is not in {cache}; "
                "try again later"
            )
        return (
            f"the weights are not available offline: the Hub ({where}) could not be reached and {repo_id}@{rev} "
            f"is not in {cache} (set HF_HUB_OFFLINE=1 to skip the Hub's retries when working offline)"
        )
    if isinstance(e, RepositoryNotFoundError):
        return (
            f"the Hub ({where}) has no repo {repo_id} (if it is private or gated, log in with `hf auth login` "
            f"or pass a token), and it is not in {cache}"
        )
    if isinstance(e, RevisionNotFoundError):
        return f"the Hub repo {repo_id} has no revision {rev!r}"
    if isinstance(e, RemoteEntryNotFoundError):
        return f"the Hub repo {repo_id}@{rev} has no {filename} (is it a bavae model?)"
    if isinstance(e, HfHubHTTPError) and e.response is not None:
        return f"the Hub ({where}) answered {e.response.status_code} for {repo_id}/{filename}; try again later"
    first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"downloading {repo_id}/{filename}@{rev} from {where} failed ({type(e).__name__}: {first_line})"


# ------------------------------------------------------------------------------------------------ cards, push
_HUB_DATASETS = {"fashion-mnist": "zalando-datasets/fashion_mnist"}  # our dataset names -> Hub dataset ids


def model_card(
    source: Any,
    metrics: dict[str, Any] | None = None,
    sample_grid_path: str | None = None,
    *,
    name: str | None = None,
    repo_id: str | None = None,
    load_id: str | None = None,
    dataset: str | None = None,
    license: str | None = None,
    train_command: str | None = None,
    description: str | None = None,
) -> ModelCard:
    """A Hub model card: YAML metadata (library_name bavae, license, tags, datasets, model-index metrics), usage,
    the training command and a link to a sample grid. ``source``: a zoo record (:class:`bavae.zoo.ModelRecord`,
    whose name, dataset, metrics, license, command and description fill in what the keywords leave out), a BAVAE,
    a BAVAEConfig or a config dict. ``load_id`` is what the usage section passes to ``bavae.load`` (default: a
    record's name, else ``repo_id``, else ``name``)."""
    if hasattr(source, "hf_hub_id"):  # a zoo record
        r, source = source, source.config
        metrics, name, load_id = {**r.metrics, **(metrics or {})}, name or r.name, load_id or r.name
        dataset, license, train_command = dataset or r.dataset, license or r.license, train_command or r.train_command
        description = description or r.description
    config = getattr(source, "config", source)
    config = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    name = name or (repo_id.split("/")[-1] if repo_id else "bavae-model")
    load_id = load_id or repo_id or name
    metrics = {k: v for k, v in (metrics or {}).items() if is_number(v)}
    task = "unconditional-image-generation"
    data = ModelCardData(
        library_name="bavae",
        license=license or "mit",
        pipeline_tag=task,
        model_name=name,
        tags=["bavae", "vae", "gan", "generative", "biadversarial-vae", task],
        datasets=[_HUB_DATASETS.get(dataset, dataset)] if dataset else None,
        eval_results=[
            EvalResult(
                task_type=task,
                dataset_type=_HUB_DATASETS.get(dataset, dataset),
                dataset_name=dataset,
                metric_type=k,
                metric_value=v,
            )
            for k, v in metrics.items()
        ]
        if metrics and dataset
        else None,
    )
    size = f"{config.get('image_size')}x{config.get('image_size')}, {config.get('channels')} channel(s)"
    lines = [
        f"# {name}",
        "",
        description
        or (
            f"A Biadversarial VAE ([arXiv:1902.03517](https://arxiv.org/abs/1902.03517)): implicit "
            f"posterior and likelihood, each KL term estimated by its own critic. "
            f"`{config.get('arch')}` networks, {size}, latent dimension {config.get('latent_dim')}"
            + (f", trained on {dataset}." if dataset else ".")
        ),
        "",
        "## Usage",
        "",
        "```python",
        "import bavae",
        "",
        f"model = bavae.load({load_id!r})  # eval mode, on cuda when available",
        "images = model.sample(64)              # (64, C, H, W) in [0, 1]",
        "codes = model.encode(images)           # samples of q(z|x)",
        "```",
        "",
        "```bash",
        f"bavae sample -m {load_id} -n 64 -o grid.png",
        "```",
        "",
    ]
    if sample_grid_path:
        lines += ["## Samples", "", f"![samples]({sample_grid_path})", ""]
    sampler = config.get("sampler")
    if isinstance(sampler, dict) and sampler.get("kind") == "neighbours":
        lines += [
            "## Training pictures in the weights",
            "",
            f"The latent sampler keeps the codes of the {sampler.get('codes', 0):,} training pictures (it draws "
            "between neighbouring codes), so decoding them gives those pictures back, roughly. A model fine-tuned on "
            "private pictures should be shared with a Gaussian mixture instead: `bavae fit-sampler MODEL_DIR --kind gmm`.",
            "",
        ]
    if train_command:
        lines += ["## Training", "", "```bash", train_command, "```", ""]
    if metrics:
        lines += [
            "## Metrics",
            "",
            "| metric | value |",
            "|---|---|",
            *(f"| {k} | {v:.4g} |" for k, v in metrics.items()),
            "",
        ]
    lines += ["## Config", "", "```json", json.dumps(config, indent=2, sort_keys=True), "```", ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def push(
    model_dir: str | os.PathLike,
    repo_id: str,
    revision: str | None = None,
    private: bool = False,
    token: str | None = None,
    *,
    metrics: dict[str, float] | None = None,
    train_command: str | None = None,
    config: dict[str, Any] | None = None,
    commit_message: str = "Upload bavae model",
) -> CommitInfo:
    """Upload a saved model folder to the Hub in one commit and return the commit info.

    Uploads ``config.json``, ``model.safetensors``, the model card ``README.md`` and ``samples.png`` (or the newest
    ``samples/step_*.png`` written by ``bavae train``). The card is the folder's own README.md unless that is
    missing or the generic one ``save_pretrained`` writes; then :func:`model_card` makes one from the config,
    ``train_config.json`` (for the dataset), ``metrics`` or ``eval.json``, and ``train_command`` (``bavae push``
    renders it from ``train_config.json``, see :func:`bavae.train_cli.train_command_line`). ``config``: the
    folder's config as the caller loaded and checked it (:func:`bavae.zoo.push` does), else its ``config.json``
    as it is. The folder is not modified. ``revision``: a branch, created from main when missing.
    """
    check_repo_id(repo_id)
    folder = Path(model_dir).expanduser()
    if not folder.is_dir():
        raise WeightsUnavailableError(f"{folder} {'is not a folder' if folder.exists() else 'does not exist'}")
    config_file, weights_file = model_files(folder)
    if config is None:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    samples = folder / SAMPLES_NAME
    if not samples.is_file():
        steps = sorted((folder / "samples").glob("step_*.png"))
        samples = steps[-1] if steps else None
    card_file = folder / CARD_NAME
    card = ModelCard.load(card_file) if card_file.is_file() else None
    if card is None or "model_hub_mixin" in (card.data.tags or []):
        read = lambda f: json.loads((folder / f).read_text()) if (folder / f).is_file() else {}  # noqa: E731
        train_config = read("train_config.json")
        card = model_card(
            config,
            metrics if metrics is not None else read("eval.json"),
            SAMPLES_NAME if samples else None,
            repo_id=repo_id,
            dataset=train_config.get("dataset"),
            train_command=train_command,
        )
    ops = [
        CommitOperationAdd(CONFIG_NAME, str(config_file)),
        CommitOperationAdd(WEIGHTS_NAME, str(weights_file)),
        CommitOperationAdd(CARD_NAME, str(card).encode()),
    ]
    if samples:
        ops.append(CommitOperationAdd(SAMPLES_NAME, str(samples)))
    api = HfApi(token=token)
    try:
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        return api.create_commit(repo_id, ops, commit_message=commit_message, revision=revision)
    except Exception as e:  # the client's errors name URLs, errnos and stack internals
        raise HubError(_push_problem(e, repo_id)) from e


__all__ = [
    "HubError",
    "check_repo_id",
    "fetch_model_files",
    "ModelHubMixin",
    "model_card",
    "push",
    "WeightsUnavailableError",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "CARD_NAME",
    "SAMPLES_NAME",
]
