"""A saved model on disk: ``config.json`` + ``model.safetensors`` (the Hub layout), each written atomically, and the
checks made on a weight file before a byte of the model it describes is allocated; and the training checkpoint
(``training_state.safetensors``) of ``bavae train``. Nothing is pickled.

:class:`bavae.model.BAVAE` saves and loads through these functions; it supplies what the file should hold (the names
and shapes of the tensors its config builds), this module compares the file's header with it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from .configs import BAVAEConfig
from .errors import WeightsError, one_line
from .files import CONFIG_NAME, WEIGHTS_NAME, atomic_write, hash_problem

_SN = re.compile(r"^(.*)\.parametrizations\.(\w+)\.(original|0\._u|0\._v)$")  # torch's spectral-norm names
Header = dict[str, tuple[int, ...]]


def save_model_files(folder: Path, state: dict[str, torch.Tensor], config: dict[str, Any]) -> None:
    """Write the weights, then ``config.json``, each atomically (a reader sees the old file or the new one)."""
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    atomic_write(folder / WEIGHTS_NAME, lambda p: save_file(state, p, metadata={"format": "pt"}))
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    atomic_write(folder / CONFIG_NAME, lambda p: Path(p).write_text(text, encoding="utf-8"))


def check_sha256(weights_file: str | os.PathLike, expected_sha256: str) -> None:
    """The file hashes to ``expected_sha256``, or a WeightsError says it does not and that nothing was loaded."""
    problem = hash_problem(Path(weights_file), expected_sha256)
    if problem:
        raise WeightsError(f"{problem}; the file is corrupt or not the published one and was not loaded")


def read_header(weights_file: str | os.PathLike) -> Header:
    """A safetensors file's tensor names and shapes, from its header alone (no tensor is read)."""
    try:
        with safe_open(str(weights_file), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types on a damaged header
        raise WeightsError(f"{weights_file} is not a readable safetensors file: {one_line(e)}") from None


def header_sampler(header: Header) -> dict[str, Any] | None:
    """The fitted latent sampler the weights hold (``{"kind": "gmm", "components": K}`` or ``{"kind": "neighbours",
    "codes": N, "k": K}``), or None.

    Saving writes the weights, then config.json: a process killed between the two leaves a new sampler beside an
    old config. The weights are the checked file, so their sampler is the one that loads."""
    means, neighbours = header.get("latent_sampler.means"), header.get("latent_sampler.neighbours")
    if neighbours is not None and len(neighbours) == 2:
        return {"kind": "neighbours", "codes": neighbours[0], "k": neighbours[1]}
    return {"kind": "gmm", "components": means[0]} if means is not None and len(means) == 2 else None


def check_header(config: Any, weights_file: str | os.PathLike, header: Header, expected: Header) -> None:
    """Compare a file's header with the tensors ``config``'s model has (``expected``, built without spectral norm:
    spectral norm only renames a layer's ``weight`` to ``parametrizations.weight.original`` and adds two small
    vectors, so the header is read with that renaming undone). A WeightsError names the first tensor that differs."""
    plain, normed = {}, False
    for k, shape in header.items():
        m = _SN.match(k)
        if m is None:
            plain[k] = shape
        elif m.group(3) == "original":
            plain[f"{m.group(1)}.{m.group(2)}"] = shape
            normed = True
    differ = [k for k in expected if plain.get(k) != expected[k]] + [k for k in plain if k not in expected]
    where = (
        f"{weights_file} does not match its config ({config.arch}, {config.image_size}px, {config.channels} "
        f"channel(s), width {config.width}, latent {config.latent_dim})"
    )
    if differ:
        k = differ[0]
        if k not in plain:
            first = f"{k} {list(expected[k])} is not in the file"
        elif k not in expected:
            first = f"the file has {k} {list(plain[k])}, which the config's model does not"
        else:
            first = f"{k} is {list(plain[k])} in the file but {list(expected[k])} for the config"
        raise WeightsError(
            f"{where}: {first}"
            + (f" ({len(differ)} tensors differ)" if len(differ) > 1 else "")
            + "; the config and the weights come from different models"
        )
    if normed != config.spectral_norm:
        raise WeightsError(
            f"{where}: the config says spectral_norm {str(config.spectral_norm).lower()}, but the file's critics "
            f"were saved {'with' if normed else 'without'} it"
        )


def load_state(weights_file: str | os.PathLike, device: Any = "cpu") -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, on ``device``; one WeightsError line for a damaged file."""
    try:
        return load_file(str(weights_file), device=str(device))
    except Exception as e:  # safetensors raises its own error types on a damaged file
        raise WeightsError(f"{weights_file} is not a readable safetensors file: {one_line(e)}") from None


def check_values(weights_file: str | os.PathLike, state: dict[str, torch.Tensor]) -> None:
    """What a header cannot show: every floating-point tensor is finite (a diverged or corrupt checkpoint has the
    right shapes). A WeightsError names the file and the tensor. (Whether a fitted mixture is a distribution is the
    sampler's own rule: :func:`bavae.samplers.sampler_problem`.)

    Finiteness is read from one sum per tensor (NaN and inf propagate through a sum), taken in float32 (float64 for
    float64 tensors), where the bundled float16 weights cannot overflow; a sum that is not finite is confirmed
    element by element (a float32 sum of huge finite values may overflow). isfinite() itself, on float16, is
    several times slower than the load. What this costs a cold `bavae sample`: benchmarks/cold_start.py."""
    floats = [(name, t) for name, t in state.items() if t.is_floating_point() and t.numel()]
    sums = [t.sum(dtype=torch.float64 if t.dtype == torch.float64 else torch.float32) for _, t in floats]
    if sums and not bool(torch.stack(sums).isfinite().all()):
        for (name, t), total in zip(floats, sums):
            if bool(total.isfinite()) or bool(torch.isfinite(t).all()):
                continue
            nan, inf = int(t.isnan().sum()), int(t.isinf().sum())
            held = " and ".join(f"{k} {what}" for k, what in ((nan, "NaN"), (inf, "inf")) if k)
            raise WeightsError(
                f"{weights_file}: {name} holds {held} of its {t.numel()} values (not finite): the file is corrupt "
                "or the training that wrote it diverged; it was not loaded"
            )


def run_files_problem(folder: Path, meta: dict[str, Any], state_file: Path) -> str | None:
    """Whether the model files of a run folder are the model its training state trains, which resuming will write
    over them: ``config.json`` holds the state's model config (but for the latent sampler, fitted at the end) and
    ``model.safetensors`` the names and shapes of the state's EMA model (``ema.*``, spectral norm and all). Values
    are not compared: a run killed between its two saves has an older model beside a newer state. None when they
    agree, or are not there yet (a run killed before its first save); else what differs, in a few words."""
    config_file, weights_file = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    differ: list[str] = []
    if config_file.exists():
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as e:
            return f"{CONFIG_NAME} cannot be read as the run's model config ({one_line(e)})"
        if not isinstance(config, dict):
            return f"{CONFIG_NAME} holds no model config (a JSON {type(config).__name__})"
        defaults, recorded = BAVAEConfig.defaults(), meta.get("model_config") or {}
        for k in sorted((set(config) | set(recorded)) - {"sampler", "default_sampler"}):
            mine, theirs = config.get(k, defaults.get(k)), recorded.get(k, defaults.get(k))
            if mine != theirs:
                differ.append(f"{CONFIG_NAME} has {k} {json.dumps(mine)}, the training state {json.dumps(theirs)}")
    if weights_file.exists():
        try:
            header = {k: v for k, v in read_header(weights_file).items() if not k.startswith("latent_sampler.")}
        except WeightsError as e:
            return one_line(e)
        try:
            with safe_open(str(state_file), framework="pt") as f:
                ema = {k[4:]: tuple(f.get_slice(k).get_shape()) for k in f.keys() if k.startswith("ema.")}
        except Exception as e:  # safetensors raises its own error types on a damaged file
            raise WeightsError(f"cannot read the training state {state_file}: {one_line(e)}") from None
        ema = {k: v for k, v in ema.items() if not k.startswith("latent_sampler.")}
        names = [k for k in ema if header.get(k) != ema[k]] + [k for k in header if k not in ema]
        for k in names[:1]:
            mine = list(header[k]) if k in header else "nothing"
            theirs = list(ema[k]) if k in ema else "nothing"
            more = f" ({len(names)} tensors differ)" if len(names) > 1 else ""
            differ.append(f"{WEIGHTS_NAME} has {k} {mine}, the training state's model {theirs}{more}")
    if not differ:
        return None
    return "; ".join(differ[:3]) + (f"; and {len(differ) - 3} more" if len(differ) > 3 else "")


# ------------------------------------------------------------------------------------------------ training states
STATE_KEY = "bavae_training_state"  # the metadata entry that holds a checkpoint's JSON


def optimizer_tensors(prefix: str, opt) -> tuple[dict[str, Any], dict[str, Any]]:
    """An optimiser's state dict as tensors (for safetensors) and JSON (hyper-parameters and scalar state)."""
    sd = opt.state_dict()
    tensors, meta = {}, {"param_groups": sd["param_groups"], "scalars": {}}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if hasattr(v, "shape") and v.dim() > 0:
                tensors[f"{prefix}.{idx}.{k}"] = v.contiguous()
            else:
                meta["scalars"][f"{idx}.{k}"] = float(v)
    return tensors, meta


def load_optimizer(prefix: str, opt, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
    """Load what :func:`optimizer_tensors` wrote (``meta`` is its JSON half) into ``opt``."""
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith(prefix + "."):
            idx, name = key[len(prefix) + 1 :].split(".", 1)
            state.setdefault(int(idx), {})[name] = v
    for key, v in meta["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = torch.tensor(v)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_training_state(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """A training checkpoint: one safetensors file holds every tensor, its JSON state rides in the metadata, so one
    atomic rename replaces it. Its tensors: ``model.*``, ``ema.*``, ``opt_critic.<i>.<name>``,
    ``opt_autoencoder.<i>.<name>``, ``rng.cpu`` (and ``rng.cuda``); every run folder since the first release has
    this layout."""
    atomic_write(path, lambda p: save_file(tensors, p, metadata={STATE_KEY: json.dumps(meta)}))


def read_training_state(path: Path, tensors: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A checkpoint's tensors (none when not asked for) and its JSON (the step, both configs, the optimisers'
    hyper-parameters, ...)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()[STATE_KEY])
        return (load_file(str(path)) if tensors else {}), meta
    except Exception as e:  # safetensors raises its own error types on a damaged file
        raise WeightsError(f"cannot read the training state {path}: {e}") from None


__all__ = [
    "save_model_files",
    "check_sha256",
    "read_header",
    "header_sampler",
    "check_header",
    "load_state",
    "check_values",
    "run_files_problem",
    "optimizer_tensors",
    "load_optimizer",
    "save_training_state",
    "read_training_state",
]
