"""`bavae export` and `model.export`: the files run at parity with the eager model, in onnxruntime (ONNX) and in torch
(torch.export programs), for every family and both image sizes, at batch sizes other than the traced one; bad input
fails in one line before anything is written."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_one_line_error, bavae_cli, clean_env, gen, ok, save_tiny, tiny_model

from bavae.export import MANIFEST_NAME, ExportError, export_model
from bavae.samplers import GaussianMixtureSampler, NeighbourSampler

try:
    import onnxruntime as ort
except ImportError:  # `make test` installs the export extra: a missing onnxruntime is a broken install, not a skip
    pytest.fail("onnxruntime is not installed: pip install -e '.[export]' (make install does)", pytrace=False)
TOLERANCE = 1e-4  # fp32, max abs difference


def with_mixture(model, components: int = 3, seed: int = 0):
    """A fitted-looking Gaussian mixture on the model's codes (random weights, means and Cholesky factors)."""
    d, g = model.config.latent_dim, gen(seed)
    s = GaussianMixtureSampler(components, d)
    w = torch.rand(components, generator=g) + 0.1
    s.weights.copy_(w / w.sum())
    s.means.copy_(torch.randn(components, d, generator=g))
    s.scale_tril.copy_(torch.randn(components, d, d, generator=g).tril() * 0.3 + torch.diag(torch.ones(d)))
    model.set_latent_sampler(s)
    return model


def inputs(model, n: int, seed: int = 1) -> dict[str, dict[str, torch.Tensor]]:
    c, g = model.config, gen(seed)
    return {
        "decoder": {"codes": torch.randn(n, c.latent_dim, generator=g)},
        "encoder": {
            "images": torch.rand(n, c.channels, c.image_size, c.image_size, generator=g),
            "noise": torch.randn(n, c.posterior_noise_dim, generator=g),
        },
        "sampler": {"u": torch.rand(n, generator=g), "eps": torch.randn(n, c.latent_dim, generator=g)},
    }


@torch.no_grad()
def eager(model, part: str, feed: dict[str, torch.Tensor]) -> torch.Tensor:
    """The eager model on the same inputs and noise: the networks themselves, and the sampler's own formula."""
    m = model.float()
    if part == "decoder":
        return m.decoder(feed["codes"])
    if part == "encoder":
        return m.encoder(feed["images"], noise=feed["noise"])
    s = m.latent_sampler  # component k holds u in [cdf_{k-1}, cdf_k); the code is mean_k + L_k eps, as sample() does
    k = torch.searchsorted(s.weights.double().cumsum(0), feed["u"].double(), right=True).clamp(max=len(s.weights) - 1)
    return torch.stack([s.means[i] + s.scale_tril[i] @ e for i, e in zip(k.tolist(), feed["eps"])])


def run_onnx(folder: Path, part: str, feed: dict[str, torch.Tensor]) -> np.ndarray:
    session = ort.InferenceSession(str(folder / f"{part}.onnx"), providers=["CPUExecutionProvider"])
    return session.run(None, {k: v.numpy() for k, v in feed.items()})[0]


def run_program(folder: Path, part: str, feed: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.export.load(str(folder / f"{part}.pt2")).module()(*feed.values())


def parity(model, folder: Path, fmt: str, parts: list[str]) -> dict[str, float]:
    """Max abs difference per part over batches of 1 and 5 (traced at 2: the batch axis is dynamic)."""
    worst = {}
    for n in (1, 5):
        for part, feed in inputs(model, n).items():
            if part not in parts:
                continue
            ref = eager(model, part, feed)
            got = run_onnx(folder, part, feed) if fmt == "onnx" else run_program(folder, part, feed).detach().numpy()
            assert got.shape == tuple(ref.shape), (part, got.shape, ref.shape)
            worst[part] = max(worst.get(part, 0.0), float(np.abs(got - ref.numpy()).max()))
    return worst


@pytest.mark.slow  # 20-100 s each on 2 busy cores: 4 or 5 ONNX exports and as many programs
@pytest.mark.parametrize("arch", ["mlp", "dcgan", "resnet"])
def test_parity_for_every_family_and_both_image_sizes(arch, tmp_path):
    figures = []
    for size, channels in ((32, 1), (64, 3)):
        model = tiny_model(seed=size, arch=arch, image_size=size, channels=channels)
        parts = ["decoder", "encoder"]
        if arch == "dcgan" and size == 32:  # the sampler's graph depends on the latent size alone: exported once
            with_mixture(model, seed=size)
            parts.append("sampler")
        for fmt in ("onnx", "torch-export"):
            out = export_model(model, tmp_path / f"{size}-{fmt}", fmt, source="tiny")
            manifest = json.loads((out / MANIFEST_NAME).read_text())
            assert sorted(manifest["files"]) == sorted(parts)
            assert manifest["dtype"] == "float32" and manifest["versions"]["torch"] == torch.__version__
            diffs = parity(model, out, fmt, parts)
            figures.append(f"{arch} {size}px {fmt}: " + ", ".join(f"{p} {d:.1e}" for p, d in diffs.items()))
            assert max(diffs.values()) <= TOLERANCE, figures[-1]
            if fmt == "onnx":
                assert manifest["opset"] >= 18 and manifest["versions"]["onnx"]
                session = ort.InferenceSession(str(out / "decoder.onnx"), providers=["CPUExecutionProvider"])
                assert session.get_inputs()[0].shape == ["batch", model.config.latent_dim]
                assert session.get_outputs()[0].shape == ["batch", channels, size, size]
            else:
                assert manifest["versions"]["torch_export_schema"]
                no_pickled_tensors(out / "decoder.pt2")
    print("\n" + "\n".join(figures))


def no_pickled_tensors(program: Path) -> None:
    """A .pt2 holds its weights as raw bytes (the archive's JSON says so for each), none pickled."""
    with zipfile.ZipFile(program) as z:
        configs = [n for n in z.namelist() if n.endswith("_weights_config.json")]
        assert configs, z.namelist()
        for name in configs:
            entries = json.loads(z.read(name))["config"].values()
            assert entries and not any(e["use_pickle"] for e in entries), name


def test_the_sampler_graph_draws_the_mixture(tmp_path):
    """u picks component k with probability weights[k]: draws of the exported graph and of the model's own
    sampler agree in their component frequencies and moments."""
    model = with_mixture(tiny_model(), components=3, seed=5)
    out = export_model(model, tmp_path / "x", "torch-export", parts=["sampler"])
    program = torch.export.load(str(out / "sampler.pt2")).module()
    g, n = gen(0), 20000
    drawn = program(torch.rand(n, generator=g), torch.randn(n, 4, generator=g))
    reference = model.latent_sampler.sample(n, generator=gen(1))
    assert torch.allclose(drawn.mean(0), reference.mean(0), atol=0.08)
    assert torch.allclose(drawn.std(0), reference.std(0), rtol=0.08)


@pytest.mark.slow  # 20-40 s on 2 busy cores: a CLI process exporting the bundled default model
def test_cli_exports_the_default_model_to_onnx_at_parity(tmp_path, bundled_default):
    from bavae import load

    out = tmp_path / "out"
    proc = ok(bavae_cli("export", bundled_default, "--format", "onnx", "-o", out, env=clean_env(HF_HUB_OFFLINE="1")))
    assert proc.stdout.startswith(f"wrote {out}: decoder.onnx, encoder.onnx, export.json, sampler.onnx"), proc.stdout
    assert proc.stderr == "", proc.stderr
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    model = load(bundled_default, device="cpu")
    assert manifest["source"] == bundled_default and manifest["config"]["latent_dim"] == model.config.latent_dim
    diffs = parity(model, out, "onnx", ["decoder", "encoder", "sampler"])
    print(f"\n{bundled_default} onnx: {diffs}")
    assert max(diffs.values()) <= TOLERANCE, diffs


@pytest.mark.slow  # 10-20 s on 2 busy cores: three CLI processes
def test_bad_exports_fail_in_one_line_and_write_nothing(tmp_path):
    plain = tmp_path / "plain"
    save_tiny(plain)  # no fitted sampler
    env = clean_env(HF_HUB_OFFLINE="1")
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    cases = [
        (("--format", "tflite", "-o", tmp_path / "a"), ("'tflite'", "onnx", "torch-export")),
        (("--format", "onnx", "--part", "sampler", "-o", tmp_path / "b"), ("no fitted latent sampler", "fit-sampler")),
        (("--format", "torch-export", "-o", full), ("not empty",)),
    ]
    for args, expected in cases:
        assert_one_line_error(bavae_cli("export", plain, *args, env=env), *expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "plain"]
    assert [p.name for p in full.iterdir()] == ["keep.txt"]

    model = tiny_model()  # the API says the same, as ExportError (a ValueError)
    for kwargs, expected in [
        (dict(format="onnx2"), "unknown export format"),
        (dict(format="onnx", parts=["sampler"]), "no fitted latent sampler"),
        (dict(format="onnx", parts=["critic"]), "unknown part"),
        (dict(format="onnx", opset=9), "opset must be an integer >= 18"),
        (dict(format="torch-export", opset=20), "opset applies to the onnx format only"),
    ]:
        with pytest.raises(ExportError, match=expected):
            model.export(tmp_path / "d", **kwargs)
    with pytest.raises(ExportError, match="it is a file"):
        model.export(full / "keep.txt", "onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "plain"]


@pytest.mark.parametrize("fmt", ["onnx", "torch-export"])
def test_the_neighbour_sampler_graph_computes_its_draw(tmp_path, fmt):
    """u picks a stored code, v one of its neighbours, t the point between them: the graph computes exactly that
    in each runtime, and its export.json says so."""
    model = tiny_model()
    model.set_latent_sampler(NeighbourSampler.fit(torch.randn(50, 4, generator=gen(0)), k=3))
    out = export_model(model, tmp_path / "x", fmt, parts=["sampler"])
    s, g = model.latent_sampler, gen(2)
    feed = {"u": torch.rand(7, generator=g), "v": torch.rand(7, generator=g), "t": torch.rand(7, generator=g)}
    feed["u"][0], feed["v"][0] = 0.9999999, 0.9999999  # the last code and its last neighbour
    i = (feed["u"] * 50).long()
    j = s.neighbours[i, (feed["v"] * 3).long()].long()
    expected = s.codes[i] + feed["t"][:, None] * (s.codes[j] - s.codes[i])
    got = run_onnx(out, "sampler", feed) if fmt == "onnx" else run_program(out, "sampler", feed).detach().numpy()
    assert np.abs(got - expected.numpy()).max() <= TOLERANCE
    assert i[0] == 49 and "neighbours[i, floor(v K)]" in json.loads((out / MANIFEST_NAME).read_text())["sampler"]
