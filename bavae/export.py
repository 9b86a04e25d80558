"""A model's networks as files that run without bavae: ONNX (onnxruntime, and what reads ONNX) or torch.export.

    model.export("out/", format="onnx")            # decoder.onnx, encoder.onnx, sampler.onnx, export.json
    bavae export bavae-fashionmnist32 --format torch-export -o out/      # the same as .pt2 programs

What is written, each with a dynamic batch size (the first axis, named ``batch``), in float32:

- ``decoder``: codes (batch, latent_dim) -> images (batch, C, H, W) in [0, 1]; a model with a noisy decoder
  (``decoder_noise_dim`` > 0) takes its noise eta (batch, decoder_noise_dim) ~ N(0, I) as a second input.
- ``encoder``: images (batch, C, H, W) in [0, 1] and noise (batch, posterior_noise_dim) ~ N(0, I) -> codes
  (batch, latent_dim). The encoder is implicit (E(x, eps), eq. 3 of the paper has no density): its randomness
  is an input, so the same images and noise give the same codes in every runtime.
- ``sampler``: the fitted latent sampler's draw, when the model has one (``bavae fit-sampler``): u (batch,)
  ~ U(0, 1) and eps (batch, latent_dim) ~ N(0, I) -> codes (batch, latent_dim). u picks a mixture component by
  the inverse CDF of the weights and the code is ``mean_k + L_k eps``: the same distribution as
  ``model.sample_codes(n, "gmm")``, from noise the caller draws (a graph cannot hold torch's generator). For a
  nearest-neighbour sampler (``"neighbours"``) the inputs are u, v and t (batch,), each ~ U(0, 1): u picks a stored
  code i, v one of its neighbours j, and the code is ``codes[i] + t (codes[j] - codes[i])``. A model
  without a fitted sampler has nothing to export here: its codes come from the prior, N(0, I) (or U(-1, 1) for
  ``prior: uniform``), which any runtime draws itself.

Beside the files, ``export.json`` records the format, the opset (ONNX) or export schema (torch.export), the
versions of torch, onnx, onnxscript and bavae, the model's config, and each file's inputs, outputs and sha256.

This module works on the model it is handed (its ``encoder``, ``decoder``, ``latent_sampler`` and ``config``)
and imports no BAVAE: :meth:`bavae.BAVAE.export` calls it.

A ``.pt2`` file holds the program as JSON and its tensors as raw bytes (nothing bavae writes is pickled);
``torch.export.load`` unpickles only its example inputs, through torch's weights-only unpickler. Load programs
from sources you trust, as with any program.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from .errors import InvalidValue
from .files import OutputError, check_output_folder, sha256_file

FORMATS = ("onnx", "torch-export")
PARTS = ("decoder", "encoder", "sampler")
SUFFIXES = {"onnx": ".onnx", "torch-export": ".pt2"}
MANIFEST_NAME = "export.json"
BATCH = "batch"  # the name of the dynamic first axis of every input and output
MIN_OPSET = 18  # torch.onnx's exporter (onnxscript) writes opset 18 and later
SAMPLER_FORMULAS = {  # what the sampler graph computes, recorded in export.json
    "gmm": "sampler: u ~ U(0, 1) picks component k by the inverse CDF of the mixture's weights; codes = "
    "means[k] + scale_tril[k] @ eps",
    "neighbours": "sampler: u, v, t ~ U(0, 1); i = floor(u N), j = neighbours[i, floor(v K)]; codes = "
    "codes[i] + t (codes[j] - codes[i])",
}
EXAMPLE_BATCH = 2  # traced at 2: a batch of 1 would let the tracer specialise the axis to 1


class ExportError(InvalidValue):
    """An export that cannot be done as asked (format, part, output folder, missing package)."""


# ------------------------------------------------------------------------------------------------ the graphs
class DecoderGraph(nn.Module):
    """codes -> images: G(z)."""

    def __init__(self, decoder: nn.Module):
        super().__init__()
        self.decoder = decoder

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.decoder(codes)


class NoisyDecoderGraph(nn.Module):
    """(codes, noise) -> images: G(z, eta), eta given."""

    def __init__(self, decoder: nn.Module):
        super().__init__()
        self.decoder = decoder

    def forward(self, codes: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.decoder(codes, noise=noise)


class EncoderGraph(nn.Module):
    """(images, noise) -> codes: E(x, eps), eps given."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, images: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.encoder(images, noise=noise)


class MixtureDrawGraph(nn.Module):
    """(u, eps) -> codes: the Gaussian mixture's draw with its randomness as inputs.

    Component k is the one whose interval of the weights' CDF holds u (u >= the first k cumulative weights); the
    code is ``means[k] + scale_tril[k] @ eps``, as :meth:`bavae.samplers.GaussianMixtureSampler.sample` computes
    it. Comparisons and a sum pick k (no searchsorted), so every ONNX runtime can run it."""

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, scale_tril: torch.Tensor):
        super().__init__()
        # the last cumulative weight is left out: rounding may put it below 1, and u in [that, 1) is component K-1
        self.register_buffer("thresholds", (weights.double().cumsum(0) / weights.double().sum())[:-1].float())
        self.register_buffer("means", means.float().clone())
        self.register_buffer("scale_tril", scale_tril.float().clone())

    def forward(self, u: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        k = (u[:, None] >= self.thresholds[None, :]).sum(dim=1)
        return self.means[k] + torch.matmul(self.scale_tril[k], eps[:, :, None])[:, :, 0]


class NeighbourDrawGraph(nn.Module):
    """(u, v, t) -> codes: the nearest-neighbour sampler's draw with its randomness as inputs: code i = floor(u N),
    its neighbour j = neighbours[i, floor(v K)], and the point t of the way from code i to code j, as
    :meth:`bavae.samplers.NeighbourSampler.sample` computes it."""

    def __init__(self, codes: torch.Tensor, neighbours: torch.Tensor):
        super().__init__()
        self.register_buffer("codes", codes.float().clone())
        self.register_buffer("neighbours", neighbours.long().clone())

    def forward(self, u: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        n, k = self.neighbours.shape
        i = (u * n).long().clamp(0, n - 1)  # u = 1 (or rounding up) stays on the last code
        j = self.neighbours[i, (v * k).long().clamp(0, k - 1)]
        return self.codes[i] + t[:, None] * (self.codes[j] - self.codes[i])


@dataclass(frozen=True)
class Graph:
    """One part to write: the module, its named inputs (shapes without the batch axis) and outputs."""

    part: str
    module: nn.Module
    inputs: tuple[tuple[str, tuple[int, ...], str], ...]  # (name, shape after batch, what it holds)
    outputs: tuple[tuple[str, tuple[int, ...], str], ...]

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(0)
        out = []
        for name, shape, _ in self.inputs:
            draw = torch.rand if name in ("images", "u", "v", "t") else torch.randn
            out.append(draw((EXAMPLE_BATCH, *shape), generator=g))
        return tuple(out)


def has_sampler(model: Any) -> bool:
    return getattr(model, "latent_sampler", None) is not None


def graphs(model: Any, parts: Sequence[str]) -> list[Graph]:
    """The graphs of ``parts`` for a float32 CPU copy of ``model``'s networks (the model itself is not changed)."""
    c = model.config
    image = (c.channels, c.image_size, c.image_size)
    images = ("images", image, "float32 images in [0, 1]")
    codes = ("codes", (c.latent_dim,), "float32 latent codes")
    out = []
    for part in parts:
        if part == "decoder":
            decoder = copy.deepcopy(model.decoder).float().cpu().eval()
            if c.decoder_noise_dim:
                noise = ("noise", (c.decoder_noise_dim,), "eta ~ N(0, I), the decoder's noise")
                out.append(Graph(part, NoisyDecoderGraph(decoder), (codes, noise), (images,)))
            else:
                out.append(Graph(part, DecoderGraph(decoder), (codes,), (images,)))
        elif part == "encoder":
            encoder = copy.deepcopy(model.encoder).float().cpu().eval()
            noise = ("noise", (c.posterior_noise_dim,), "eps ~ N(0, I), the implicit posterior's noise")
            out.append(Graph(part, EncoderGraph(encoder), (images, noise), (codes,)))
        elif part == "sampler":
            s = model.latent_sampler
            if c.sampler["kind"] == "neighbours":
                module = NeighbourDrawGraph(s.codes.cpu(), s.neighbours.cpu())
                inputs = (
                    ("u", (), "u ~ U(0, 1): picks the stored code i = floor(u N)"),
                    ("v", (), "v ~ U(0, 1): picks its neighbour j = neighbours[i, floor(v K)]"),
                    ("t", (), "t ~ U(0, 1): the point on the segment from code i to code j"),
                )
            else:
                module = MixtureDrawGraph(s.weights.cpu(), s.means.cpu(), s.scale_tril.cpu())
                inputs = (
                    ("u", (), "u ~ U(0, 1): picks the mixture component"),
                    ("eps", (c.latent_dim,), "eps ~ N(0, I)"),
                )
            out.append(Graph(part, module.eval(), inputs, (codes,)))
    for graph in out:
        graph.module.eval()
    return out


# ------------------------------------------------------------------------------------------------ checks
def check_export(model: Any, directory: str | os.PathLike, format: str, parts: Sequence[str] | None) -> list[str]:
    """Everything that can be checked before any work: the format, the parts, the output folder, the packages.
    Returns the parts to write (default: decoder, encoder, and the sampler when the model has one)."""
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}: use {' or '.join(FORMATS)}")
    if parts is None:
        parts = [p for p in PARTS if p != "sampler" or has_sampler(model)]
    else:
        if isinstance(parts, str):
            parts = [parts]
        parts = list(dict.fromkeys(parts))
        unknown = [p for p in parts if p not in PARTS]
        if unknown or not parts:
            raise ExportError(f"unknown part(s) {unknown or parts!r} to export: choose from {', '.join(PARTS)}")
        if "sampler" in parts and not has_sampler(model):
            raise ExportError(
                "this model has no fitted latent sampler to export (its codes come from the prior "
                f"{'U(-1, 1)' if model.config.prior == 'uniform' else 'N(0, I)'}): leave out the sampler part, "
                "or fit one first with `bavae fit-sampler`"
            )
    p = Path(directory).expanduser()
    if p.exists() and not p.is_dir():
        raise ExportError(f"cannot export to {directory}: it is a file (give a new or empty folder)")
    if p.is_dir() and any(p.iterdir()):
        raise ExportError(f"cannot export to {directory}: the folder is not empty (give a new or empty folder)")
    try:
        check_output_folder(p)
    except OutputError as e:
        raise ExportError(str(e)) from None
    if format == "onnx":
        missing = [m for m in ("onnx", "onnxscript") if not _importable(m)]
        if missing:
            raise ExportError(
                f"exporting to ONNX needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not "
                "installed: pip install 'bavae[export]'"
            )
    return list(parts)


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _check_opset(opset: Any) -> int | None:
    if opset is None:
        return None
    if not isinstance(opset, int) or isinstance(opset, bool) or opset < MIN_OPSET:
        raise ExportError(f"opset must be an integer >= {MIN_OPSET} (torch.onnx's exporter), got {opset!r}")
    return opset


# ------------------------------------------------------------------------------------------------ writing
def _write_onnx(graph: Graph, path: Path, opset: int | None) -> dict[str, Any]:
    import onnx

    args = graph.example_inputs()
    with warnings.catch_warnings():  # the exporter's notes on its own internals are not the user's business
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph.module,
            args,
            str(path),
            input_names=[name for name, _, _ in graph.inputs],
            output_names=[name for name, _, _ in graph.outputs],
            dynamic_shapes=tuple({0: BATCH} for _ in graph.inputs),
            opset_version=opset,
            external_data=False,  # one self-contained file per part (bavae's models are far below 2 GB)
            dynamo=True,
            verbose=False,
        )
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    return {
        "opset": next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
        "ir_version": proto.ir_version,
    }


def _write_torch_export(graph: Graph, path: Path) -> dict[str, Any]:
    batch = torch.export.Dim(BATCH, min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(
            graph.module, graph.example_inputs(), dynamic_shapes=tuple({0: batch} for _ in graph.inputs)
        )
        torch.export.save(program, str(path))
    return {}


def versions(format: str) -> dict[str, str]:
    """The versions the files were written with: bavae, torch, python, and onnx/onnxscript for ONNX."""
    # the package's version without importing the package's door (whose names reach up to the zoo)
    out = {
        "bavae": sys.modules[__package__].__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if format == "onnx":
        import onnx
        import onnxscript

        out.update(onnx=onnx.__version__, onnxscript=onnxscript.__version__)
    else:
        from torch._export.serde.schema import SCHEMA_VERSION

        out["torch_export_schema"] = ".".join(map(str, SCHEMA_VERSION))
    return out


def export_model(
    model: Any,
    directory: str | os.PathLike,
    format: str = "onnx",
    *,
    parts: Sequence[str] | None = None,
    opset: int | None = None,
    source: str | None = None,
) -> Path:
    """Write ``model``'s decoder, encoder and fitted sampler's draw (or the ``parts`` named) to ``directory`` in
    ``format`` ("onnx" or "torch-export"), with ``export.json`` beside them; see the module's docstring.

    ``directory`` must be new or empty; the files appear in it together or not at all (they are written to a
    temporary folder beside it first). ``opset``: the ONNX opset (default: torch.onnx's, recorded in
    export.json). ``source``: what the model was loaded from, recorded in export.json. Returns the folder."""
    parts = check_export(model, directory, format, parts)
    opset = _check_opset(opset)
    if format != "onnx" and opset is not None:
        raise ExportError("an opset applies to the onnx format only")
    target = Path(directory).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.export-"))
    try:
        files: dict[str, Any] = {}
        recorded: dict[str, Any] = {}
        for graph in graphs(model, parts):
            path = tmp / (graph.part + SUFFIXES[format])
            recorded.update(_write_onnx(graph, path, opset) if format == "onnx" else _write_torch_export(graph, path))
            files[graph.part] = {
                "file": path.name,
                "inputs": {name: [BATCH, *shape] for name, shape, _ in graph.inputs},
                "outputs": {name: [BATCH, *shape] for name, shape, _ in graph.outputs},
                "what": {name: what for name, _, what in graph.inputs + graph.outputs},
                "sha256": sha256_file(path),
            }
        manifest = {
            "format": format,
            **recorded,
            "dtype": "float32",
            "dynamic_axes": {BATCH: "the first axis of every input and output"},
            "versions": versions(format),
            "source": source,
            "config": model.config.to_dict(),
            "files": files,
            "sampler": (
                SAMPLER_FORMULAS[model.config.sampler["kind"]]
                if "sampler" in parts
                else "not exported: "
                + (
                    "not asked for"
                    if has_sampler(model)
                    else "the model has no fitted sampler; draw codes from its prior ("
                    + ("U(-1, 1)" if model.config.prior == "uniform" else "N(0, I)")
                    + ")"
                )
            ),
        }
        text = json.dumps(manifest, indent=2) + "\n"
        (tmp / MANIFEST_NAME).write_text(text, encoding="utf-8")
        if target.is_dir():  # checked empty above
            for f in tmp.iterdir():
                os.replace(f, target / f.name)
            tmp.rmdir()
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


__all__ = [
    "FORMATS",
    "PARTS",
    "MANIFEST_NAME",
    "ExportError",
    "DecoderGraph",
    "NoisyDecoderGraph",
    "EncoderGraph",
    "MixtureDrawGraph",
    "NeighbourDrawGraph",
    "export_model",
    "check_export",
    "graphs",
    "versions",
]
