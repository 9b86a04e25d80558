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
    """The fitted latent sampler the weights hold (``{"kind": "gmm", "components": K}``), or None.

    Saving writes the weights, then config.json: a process killed between the two leaves a new sampler beside an
    old config. The weights are the checked file, so their sampler is the one that loads."""
    means = header.get("latent_sampler.means")
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
    "optimizer_tensors",
    "load_optimizer",
    "save_training_state",
    "read_training_state",
]
