"""``bavae train`` (and ``python -m bavae.train``): the command line of :func:`bavae.train.train`.

Its options are the fields of :class:`~bavae.configs.TrainConfig` and the model fields of
:class:`~bavae.configs.BAVAEConfig` (:func:`bavae.options.field_options`), plus ``--config FILE`` (JSON or YAML;
the command line wins) and ``--resume DIR``. Every check is made here, before any data is scanned, model built or
folder written; then :func:`_run` trains, and leaves no folder behind a run that failed before its first checkpoint.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import click
from tqdm.auto import tqdm

from . import data, zoo
from .configs import SAVED_RUN_DEFAULTS, BAVAEConfig, TrainConfig, model_options
from .errors import BAVAEError, ConfigError, one_line
from .files import check_output_folder, file_problem
from .options import field_options, flag
from .train import (
    STATE_NAME,
    TrainingError,
    batch_hint,
    check_run_files,
    check_unfinished,
    read_training_state,
    train,
)

_MODEL_OPTIONS = {f.name: f for f in model_options()}


def _flag(name: str) -> str:
    return flag(name, BAVAEConfig if name in _MODEL_OPTIONS else TrainConfig)


def _weights(items: tuple[str, ...], weights: dict[str, float]) -> dict[str, float]:
    """``--objective-weight NAME=NUMBER`` items over ``weights``."""
    weights = dict(weights or {})
    for item in items:
        name, _, value = item.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise TrainingError(f"--objective-weight expects NAME=NUMBER, got {item!r}") from None
        if not name.strip():
            raise TrainingError(f"--objective-weight expects NAME=NUMBER, got {item!r}")
    return weights


def _flat(train_config: dict[str, Any]) -> dict[str, Any]:
    """A train config with its model options at the top level, as the command line has them."""
    return {**{k: v for k, v in train_config.items() if k != "model"}, **(train_config.get("model") or {})}


def options_config(options: dict[str, Any]) -> TrainConfig:
    """The TrainConfig of parsed options (command-line names, ``objective_weights`` as NAME=VALUE items); a
    ConfigError names the option."""
    values = {k: v for k, v in options.items() if k not in ("config_file", "resume")}
    values["objective_weights"] = _weights(values.get("objective_weights") or (), {})
    return _config(values)


def _config(values: dict[str, Any]) -> TrainConfig:
    try:
        return TrainConfig.from_dict(values)
    except ConfigError as e:
        raise _option_error(e) from None


def _option_error(e: ConfigError) -> TrainingError:
    """A config's error about a field, naming the option instead (``--latent-dim`` for ``latent_dim``)."""
    return TrainingError(e.naming(_flag(e.field)) if e.field else str(e))


# ------------------------------------------------------------------------------------------------ the options
def _command_config(ctx: click.Context, config_file: str | None, resume: str | None, options: dict) -> TrainConfig:
    """The run's TrainConfig from the command line, the --config file and the resumed run, checked (_validate)."""
    weight_items = options.pop("objective_weights")
    explicit = {
        k: v
        for k, v in options.items()
        if ctx.get_parameter_source(k) not in (click.core.ParameterSource.DEFAULT, None)
    }
    given = set(explicit) | ({"objective_weights"} if weight_items else set())
    from_file = _read_config_file(config_file) if config_file else {}
    given |= set(from_file)
    values: dict[str, Any] = {}
    meta = None
    if resume:
        meta = _resumed(resume, explicit, from_file, given, config_file)
        values.update({**SAVED_RUN_DEFAULTS, **_flat(meta["train_config"])})
        values["out"] = resume
    values.update(from_file)
    if resume is None:  # defaults fill in what neither the file nor the command line said
        values = {**options, **values}
    values.update(explicit)
    values["objective_weights"] = _weights(weight_items, values.get("objective_weights"))
    cfg = _config(values)
    _validate(cfg, frozenset(given))
    if meta is not None:  # the folder's model files are its run's, and the run has steps left
        folder = Path(resume).expanduser()
        check_run_files(folder, meta, f"--resume {resume}")
        if cfg.epochs is None:  # (a run of --epochs needs its data to count its steps: train() checks it)
            check_unfinished(folder, int(meta["step"]), cfg.steps, cfg, f"--resume {resume}")
    if cfg.init:  # the model's own config decides: record none of its options (train_config.json, the card)
        cfg.model = {k: v for k, v in cfg.model.items() if _MODEL_OPTIONS[k].metadata.get("finetune")}
    if resume is None and (Path(cfg.out) / STATE_NAME).exists():  # never continue or clobber silently
        raise TrainingError(
            f"--out {cfg.out} already holds a training run: continue it with `bavae train --resume {cfg.out}`, "
            "or choose another --out"
        )
    return cfg


# What a resumed run keeps: its model (every model option that --init refuses too) and these options, which make it
# the run it is. --data-dir may change (the data moved), and so may the length and pace of the run.
_RUN_OPTIONS = ("dataset", "init", "out")


def _resumed(
    resume: str, explicit: dict[str, Any], from_file: dict[str, Any], given: set[str], config_file: str | None
) -> dict[str, Any]:
    """The training state's JSON of the run in ``resume``, once the options given with --resume are known not to
    contradict it: a model option, --dataset, --init or --out with another value than the run's is refused in one
    line naming both (one with the run's own value is dropped: it changes nothing)."""
    folder = Path(resume).expanduser()
    state = folder / STATE_NAME
    try:
        meta = read_training_state(state, tensors=False)[1] if state.is_file() else None
    except BAVAEError:
        meta = None  # refused below, once the options have been
    model = (meta or {}).get("model_config") or {}
    run = _flat((meta or {}).get("train_config") or {})

    def value(name: str) -> tuple[Any, str]:
        source = f" (from --config {config_file})" if name not in explicit else ""
        return explicit[name] if name in explicit else from_file[name], source

    for name in sorted(given & set(_MODEL_OPTIONS)):  # before the state is checked: this refusal needs none
        if _MODEL_OPTIONS[name].metadata.get("finetune"):
            continue
        mine, source = value(name)
        if name in model and mine == model[name]:
            explicit.pop(name, None), from_file.pop(name, None), given.discard(name)
            continue
        theirs = f"the run in {resume} has {_flag(name)} {_shown(model[name])}; " if name in model else ""
        raise TrainingError(
            f"{_flag(name)} {_shown(mine)}{source} cannot be combined with --resume: {theirs}--resume {resume} "
            f"continues with the run's own model; drop {_flag(name)}"
        )
    if not folder.is_dir():
        raise TrainingError(f"--resume {resume} {'is a file' if folder.exists() else 'does not exist'}")
    if not state.is_file():
        raise TrainingError(f"--resume {resume}: no {STATE_NAME} there (is it a bavae train --out folder?)")
    if meta is None:
        read_training_state(state, tensors=False)  # raises, naming the file and what is wrong with it
    for name in _RUN_OPTIONS:
        if name not in given:
            continue
        mine, source = value(name)
        theirs = run.get(name)
        same = mine == theirs or (name == "out" and Path(mine).expanduser().resolve() == folder.resolve())
        if same:
            explicit.pop(name, None), from_file.pop(name, None), given.discard(name)
            continue
        if name == "out":
            why = f"--resume {resume} continues the run in its own folder; drop --out"
        else:
            was = f"{_flag(name)} {theirs}" if theirs is not None else f"no {_flag(name)}"
            why = f"the run in {resume} was started with {was}, and a resumed run keeps it; drop {_flag(name)}"
        raise TrainingError(f"{_flag(name)} {_shown(mine)}{source} contradicts --resume {resume}: {why}")
    return meta


def _shown(value: Any) -> str:
    return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _read_config_file(path: str) -> dict[str, Any]:
    p = Path(path).expanduser()
    problem = file_problem(p)  # missing, a folder, unreadable, a device or a pipe: said as it is
    if problem:
        raise TrainingError(f"--config {path} {problem}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise TrainingError(f"--config {path} cannot be read: {e}") from None
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml  # an extra: JSON needs none
        except ImportError:
            raise TrainingError("reading a YAML config needs PyYAML (pip install pyyaml), or use JSON") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise TrainingError(f"--config {path} is not valid YAML: {one_line(e)}") from None
    else:
        try:
            data = json.loads(text)
        except ValueError as e:
            raise TrainingError(f"--config {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise TrainingError(f"{path} must hold a mapping of option names to values")
    data = _flat({k.replace("-", "_"): v for k, v in data.items()})
    unknown = set(data) - {*TrainConfig.__dataclass_fields__, *_MODEL_OPTIONS} - {"model"}
    if unknown:
        raise TrainingError(f"{path}: unknown option(s) {sorted(unknown)}")
    return data


def _validate(cfg: TrainConfig, given: frozenset[str] = frozenset()) -> None:
    """The checks TrainConfig cannot make alone, before any data is scanned, model built or folder written: the
    command line's own minimums, the combinations (model options with --init), the data, the model, --init, --out.
    ``given``: the options the user set (command line or --config file), to refuse the ones --init would ignore."""
    for name, f in TrainConfig.__dataclass_fields__.items():
        least = f.metadata.get("cli_least")
        if least is not None and getattr(cfg, name) < least:
            raise TrainingError(f"{_flag(name)} must be an integer from {least} up, got {getattr(cfg, name)!r}")
    for name in sorted(given & set(_MODEL_OPTIONS)):  # (with --resume they are refused before the state is read)
        if cfg.init and not _MODEL_OPTIONS[name].metadata.get("finetune"):
            raise TrainingError(
                f"{_flag(name)} cannot be combined with --init: --init {cfg.init} keeps that model's own config; "
                f"drop {_flag(name)}"
            )
    data.check_data_dir(cfg.dataset, cfg.data_dir)
    if cfg.init:
        config = _init_config(cfg.init)
        size, channels = (config.get("image_size"), config.get("channels")) if config else (None, None)
    elif (Path(cfg.out) / STATE_NAME).exists():
        size = channels = None  # a resumed run: its own model, checked when it was started
    else:
        try:  # the model this run would build: every model option's type and range (BAVAEConfig's own checks)
            config = cfg.model_config()
        except ConfigError as e:
            raise _option_error(e) from None
        size, channels = config.image_size, config.channels
    if isinstance(size, int) and isinstance(channels, int):
        try:
            data.check_dataset_fits(cfg.dataset, size, channels)
        except data.DataError as e:
            raise TrainingError(f"--dataset {cfg.dataset}: {e}") from None
    world = int(os.environ.get("WORLD_SIZE", 1))  # --batch-size is per process: a step takes world x batch_size
    if cfg.limit is not None and cfg.limit < cfg.batch_size * world:
        per = f" ({cfg.batch_size} per process x {world} processes)" if world > 1 else ""
        raise TrainingError(
            f"--limit {cfg.limit} is fewer images than one batch of {cfg.batch_size * world}{per}: "
            + (f"try --batch-size {batch_hint(cfg.limit, world)}" if cfg.limit >= 2 * world else "raise --limit")
        )
    if not cfg.out:
        raise TrainingError("--out is empty: give the folder to write the run to, e.g. --out runs/mine")
    check_output_folder(cfg.out, "--out")


def _init_config(init: str) -> dict[str, Any] | None:
    """The config of the --init model when it can be had without loading it (a zoo record, a folder's config.json)."""
    kind, name = zoo.model_source(init)  # a missing folder, a mistyped zoo name: refused here, with no Hub call
    if kind == "zoo":
        return zoo.model_info(name).config
    config_file = Path(name).expanduser() / "config.json"
    if kind == "folder" and config_file.is_file():
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return config if isinstance(config, dict) else None
    return None


# ------------------------------------------------------------------------------------------------ the run
def _saved_step(state_path: Path) -> int | None:
    """The step of a run's training state (from its metadata alone), or None when there is none to read."""
    try:
        return int(read_training_state(state_path, tensors=False)[1]["step"])
    except (BAVAEError, KeyError, TypeError, ValueError):
        return None


def _run(cfg: TrainConfig) -> Path:
    """train(cfg); if it fails, leave no run folder behind unless it saved a checkpoint worth resuming (past step 0),
    and say which: what this invocation created is removed, nothing that was there before is touched."""
    out = Path(cfg.out)
    existed = out.exists()
    before = set(out.iterdir()) if out.is_dir() else set()
    state_before = _saved_step(out / STATE_NAME)
    try:
        return train(cfg)
    except BaseException as e:
        if int(os.environ.get("RANK", 0)) != 0:  # rank 0 owns the folder
            raise
        step = _saved_step(out / STATE_NAME)
        if step and (state_before is None or step > state_before):
            hint = f"the run is saved at step {step}: continue it with `bavae train --resume {out}`"
        elif state_before:
            hint = f"the run is still saved at step {state_before}: continue it with `bavae train --resume {out}`"
        else:
            hint = None
            if not existed:
                shutil.rmtree(out, ignore_errors=True)
            elif out.is_dir():
                for p in set(out.iterdir()) - before:
                    if p.is_dir() and not p.is_symlink():
                        shutil.rmtree(p, ignore_errors=True)
                    else:
                        p.unlink(missing_ok=True)
        if hint is None:
            raise
        if isinstance(e, (BAVAEError, OSError)):  # a disk that filled up is no bug either
            raise TrainingError(f"{one_line(e)}; {hint}") from e
        print(f"bavae train: {hint}", file=sys.stderr)  # Ctrl-C and the like: say where the run is, then stop
        raise


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings during `bavae train` as one line each, written above the progress bar (tqdm.write)."""
    what = "" if category is UserWarning else f"{category.__name__}: "
    tqdm.write(f"bavae train: {what}{one_line(message)}", file=sys.stderr)


@click.pass_context
def _train(ctx: click.Context, config_file: str | None, resume: str | None, **options: Any) -> None:
    """Train (or resume, or fine-tune) a Biadversarial VAE."""
    try:
        cfg = _command_config(ctx, config_file, resume, options)
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning  # one line each, above the progress bar, not Python's two
            out = _run(cfg)
    except (BAVAEError, OSError) as e:
        if os.environ.get("BAVAE_DEBUG"):
            raise
        click.echo(f"bavae train: error: {one_line(e)}", err=True)
        ctx.exit(2)
    click.echo(f"saved the model to {out} (load it with bavae.load({str(out)!r}))")


def _params() -> list[click.Parameter]:
    """--config, the data options, the model options, the rest of the run's, --resume."""
    run, model = field_options(TrainConfig), field_options(BAVAEConfig, train_defaults=True)
    cut = [p.name for p in run].index("limit") + 1
    config = click.Option(
        ["config_file", "--config"],
        type=click.Path(readable=False),  # a folder, an unreadable file: refused by _read_config_file, in one line
        help="JSON or YAML file of options; the command line wins.",
    )
    resume = click.Option(["--resume"], default=None, help="Continue the run in this folder (its options are reused).")
    return [config, *run[:cut], *model, *run[cut:], resume]


train_command = click.Command(
    "train",
    callback=_train,
    params=_params(),
    help=_train.__doc__,
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)


def train_command_line(train_config: dict[str, Any]) -> str:
    """Rebuild the `bavae train` command line from a run's train_config.json, through the command's own options."""
    values, parts = _flat(train_config), ["bavae", "train"]
    for p in train_command.params:
        value = values.get(p.name)
        if not isinstance(p, click.Option) or p.name in ("config_file", "resume") or value in (None, {}):
            continue
        name = max(p.opts, key=len)
        if p.is_flag:
            parts.append(name if value else max(p.secondary_opts, key=len, default=""))
        elif isinstance(value, dict):  # --objective-weight NAME=VALUE, repeated
            parts += [x for k, v in value.items() for x in (name, f"{k}={v}")]
        else:
            parts += [name, str(value)]
    return shlex.join(p for p in parts if p)


def main() -> None:
    """``python -m bavae.train``: click's usage errors become one line too (exit 2, no usage dump)."""
    try:
        code = train_command.main(prog_name="bavae train", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)  # click returns ctx.exit()'s code when not standalone
    except click.ClickException as e:
        click.echo(f"bavae train: error: {e.format_message()}", err=True)
        sys.exit(e.exit_code)
    except click.Abort:
        sys.exit(130)


if __name__ == "__main__":
    main()
