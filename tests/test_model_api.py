"""The user-facing API of BAVAE: shapes, seeded determinism, config round trips, input validation, imports."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import gen, images, tiny_config, tiny_model

from bavae import BAVAE, BAVAEConfig

torch.set_num_threads(1)
PACKAGE_DIR = Path(__file__).resolve().parent.parent / "bavae"
C, S, LATENT = 1, 32, 4  # helpers.TINY


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=0)


@pytest.fixture(scope="module")
def x():
    return images(3, C, S, seed=1)


# ------------------------------------------------------------------ shapes and seeded determinism
def test_sample_shapes_and_determinism(model):
    a, b = model.sample(5, generator=gen(0)), model.sample(5, generator=gen(0))
    assert a.shape == (5, C, S, S) and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)
    assert not torch.equal(a, model.sample(5, generator=gen(1)))
    for bad in (0, -2, 2.5, "4"):
        with pytest.raises(ValueError, match="n must be a positive integer"):
            model.sample(bad)


def test_sample_with_decoder_noise_is_seeded_too():
    m = tiny_model(seed=0, decoder_noise_dim=3)
    a, b = m.sample(4, generator=gen(7)), m.sample(4, generator=gen(7))
    assert torch.equal(a, b)
    z = m.prior_sample(4, generator=gen(8))
    # the decoder noise makes G(z, eta) vary for a fixed z
    assert not torch.equal(m.decode(z, generator=gen(1)), m.decode(z, generator=gen(2)))


def test_encode_shapes_and_determinism(model, x):
    z = model.encode(x, generator=gen(0))
    assert z.shape == (3, LATENT)
    assert torch.equal(z, model.encode(x, generator=gen(0)))
    assert not torch.equal(z, model.encode(x, generator=gen(1)))  # a posterior, not a point
    zk = model.encode(x, n_samples=4, generator=gen(0))
    assert zk.shape == (3, 4, LATENT)
    assert torch.equal(zk, model.encode(x, n_samples=4, generator=gen(0)))
    with pytest.raises(ValueError, match="n_samples"):
        model.encode(x, n_samples=0)


def test_reconstruct_is_decode_of_encode_for_the_same_noise(model, x):
    r = model.reconstruct(x, generator=gen(3))
    assert r.shape == x.shape and r.min() >= 0 and r.max() <= 1
    assert torch.equal(r, model.reconstruct(x, generator=gen(3)))
    assert torch.equal(r, model.decode(model.encode(x, generator=gen(3))))
    assert model(x).shape == x.shape  # forward = reconstruct


def test_interpolate_endpoints_are_the_reconstructions(model, x):
    x2 = images(3, C, S, seed=2)
    path = model.interpolate(x, x2, steps=5, generator=gen(4))
    assert path.shape == (3, 5, C, S, S) and path.min() >= 0 and path.max() <= 1
    assert torch.equal(path, model.interpolate(x, x2, steps=5, generator=gen(4)))
    # the same noise: interpolate draws the codes of x1 then of x2 from the generator
    g = gen(4)
    z1, z2 = model.encode(x, generator=g), model.encode(x2, generator=g)
    torch.testing.assert_close(path[:, 0], model.decode(z1), rtol=0, atol=1e-6)
    torch.testing.assert_close(path[:, -1], model.decode(z2), rtol=0, atol=1e-6)
    torch.testing.assert_close(path[:, 0], model.reconstruct(x, generator=gen(4)), rtol=0, atol=1e-6)
    # the middle is neither end
    assert (path[:, 2] - path[:, 0]).abs().max() > 0 and (path[:, 2] - path[:, -1]).abs().max() > 0
    with pytest.raises(ValueError, match="steps"):
        model.interpolate(x, x2, steps=1)
    with pytest.raises(ValueError, match="as many images"):
        model.interpolate(x, x2[:2])


def test_kl_estimate_is_eq_6_with_the_models_critic(model, x, monkeypatch):
    kl = model.kl_estimate(x, n_samples=16, generator=gen(5))
    assert kl.shape == (3,) and kl.dtype == torch.float32 and torch.isfinite(kl).all()
    assert torch.equal(kl, model.kl_estimate(x, n_samples=16, generator=gen(5)))
    assert model.kl_estimate(x, n_samples=1, generator=gen(5)).shape == (3,)
    with pytest.raises(ValueError, match="n_samples"):
        model.kl_estimate(x, n_samples=0)
    # With the critic replaced by T(x, z) = |z|^2 / 2, eq. 6 has a closed-form prior term, E_p[exp(-|z|^2/2)] =
    # 2^(-d/2) for p = N(0, I_d), and a posterior term measured here on the encoder's own samples:
    # kl_estimate = 1 - E_q[|z|^2 / 2] - 2^(-d/2), image by image.
    monkeypatch.setattr(model.inference_critic, "score", lambda features, z: 0.5 * z.pow(2).sum(-1))
    n = 20000
    got = model.kl_estimate(x, n_samples=n, generator=gen(6))
    half_sq = 0.5 * model.encode(x, n_samples=n, generator=gen(7)).pow(2).sum(-1)  # other draws of q(z|x)
    expected = 1 - half_sq.mean(1) - 2 ** (-LATENT / 2)
    # Monte Carlo error, 5 sd: of the two posterior means and of the prior term (sd of exp(-|z|^2/2) is
    # sqrt(3^(-d/2) - 2^(-d)))
    sd = (2 * half_sq.var(1) / n + (3 ** (-LATENT / 2) - 2.0 ** (-LATENT)) / n).sqrt()
    assert ((got - expected).abs() < 5 * sd).all(), (got, expected, sd)
    assert (expected - 1 + 2 ** (-LATENT / 2)).abs().min() > 20 * sd.max()  # the posterior term is not negligible


def test_decode_rejects_bad_codes(model):
    for bad in (
        torch.zeros(2, LATENT + 1),
        torch.zeros(LATENT),
        torch.zeros(2, LATENT, dtype=torch.long),
        np.zeros((2, LATENT), dtype=np.float32),
    ):
        with pytest.raises(ValueError, match=rf"\(N, {LATENT}\)"):
            model.decode(bad)


# ------------------------------------------------------------------ config round trips
def test_config_round_trip_through_config_json(tmp_path):
    config = tiny_config(
        decoder_noise_dim=2,
        critic_width=4,
        prior="uniform",
        objective="paper",
        objective_weights={"cycle": 0.5},
        spectral_norm=False,
    )
    assert BAVAEConfig.from_dict(config.to_dict()) == config
    assert BAVAEConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    torch.manual_seed(0)
    BAVAE(config).save_pretrained(tmp_path)
    on_disk = json.loads((tmp_path / "config.json").read_text())
    assert on_disk == config.to_dict()
    assert BAVAEConfig.from_json_file(tmp_path / "config.json") == config
    loaded = BAVAE.from_pretrained(str(tmp_path))
    assert loaded.config == config
    assert loaded.config.weights.cycle == 0.5 and loaded.config.weights.kl == 1.0


def test_unknown_config_fields_are_rejected(tmp_path):
    data = tiny_config().to_dict() | {"dropout": 0.1}
    with pytest.raises(ValueError, match="dropout"):
        BAVAEConfig.from_dict(data)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="dropout"):
        BAVAEConfig.from_json_file(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="JSON"):
        BAVAEConfig.from_json_file(path)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="object"):
        BAVAEConfig.from_json_file(path)


INVALID = [
    ("arch", "vgg"),
    ("arch", 3),
    ("image_size", 0),
    ("image_size", 32.0),
    ("image_size", "32"),
    ("image_size", True),
    ("image_size", 48),
    ("channels", 0),
    ("channels", 2),
    ("latent_dim", 0),
    ("latent_dim", -1),
    ("latent_dim", 1.5),
    ("posterior_noise_dim", 0),
    ("decoder_noise_dim", -1),
    ("decoder_noise_dim", 1.5),
    ("decoder_noise_dim", True),
    ("width", 0),
    ("width", None),
    ("critic_width", 0),
    ("critic_width", 2.5),
    ("critic_width", True),
    ("spectral_norm", "false"),
    ("spectral_norm", 1),
    ("spectral_norm", None),
    ("prior", "cauchy"),
    ("prior", None),
    ("objective", "vae"),
    ("objective", None),
    ("objective_weights", {"bogus": 1.0}),
    ("objective_weights", {"info": "a"}),
    ("objective_weights", {"info": float("nan")}),
    ("objective_weights", [1, 2]),
]


@pytest.mark.parametrize("field,value", INVALID, ids=[f"{f}={v!r}" for f, v in INVALID])
def test_each_invalid_config_value_names_its_field(field, value):
    assert field in {f.name for f in dataclasses.fields(BAVAEConfig)}
    with pytest.raises(ValueError) as info:
        BAVAEConfig(**{field: value})
    message = str(info.value)
    # the field is named ("architecture" names arch; "image sizes" accompanies image_size when unsupported)
    names = {field, field.replace("_", " ")} | ({"architecture"} if field == "arch" else set())
    assert any(n in message for n in names), message
    # and so is the received value (for a dict of weights, the offending name), so the user sees what was wrong
    shown = [repr(value), str(value)] + ([repr(k) for k in value] if isinstance(value, dict) else [])
    assert any(s in message for s in shown), message


# ------------------------------------------------------------------ bad inputs to encode / reconstruct
def bad_inputs():
    good = images(2, C, S, seed=3)
    return [
        ("rank", good[0], r"rank 3"),
        ("rank", good.flatten(1), r"rank 2"),
        ("size", images(2, C, 28, seed=0), r"\(2, 1, 28, 28\)"),
        ("channels", images(2, 3, S, seed=0), r"\(2, 3, 32, 32\)"),
        ("channels-last", good.permute(0, 2, 3, 1).contiguous(), r"\(2, 32, 32, 1\)"),
        ("integer dtype", (good * 255).to(torch.uint8), r"torch\.uint8"),
        ("integer dtype", (good * 255).long(), r"torch\.int64"),
        ("above 1", good * 255, r"got values in \[[\d.]+, 2\d\d\]"),
        ("below 0", good - 0.5, r"got values in \[-0\.\d+"),
        ("nan", good.masked_fill(good > 0.5, float("nan")), r"values in"),
        ("numpy", good.numpy(), r"ndarray"),
        ("list", good.tolist(), r"list"),
    ]


@pytest.mark.parametrize("method", ["encode", "reconstruct", "kl_estimate"])
def test_bad_images_give_value_errors_with_expected_and_received(model, method):
    expected = re.escape(f"(N, {C}, {S}, {S})")
    for what, bad, received in bad_inputs():
        with pytest.raises(ValueError, match=expected) as info:
            getattr(model, method)(bad)
        assert re.search(received, str(info.value)), (what, str(info.value))


def test_interpolate_checks_both_inputs(model):
    good = images(2, C, S, seed=3)
    with pytest.raises(ValueError, match="x2"):
        model.interpolate(good, good * 2)
    with pytest.raises(ValueError, match="x1"):
        model.interpolate(good.numpy(), good)


def test_good_edge_inputs_are_accepted(model):
    """The bounds themselves, float64 and a single image are all valid."""
    for x in (torch.zeros(1, C, S, S), torch.ones(1, C, S, S), images(1, C, S).double()):
        z = model.encode(x, generator=gen(0))
        assert z.shape == (1, LATENT) and z.dtype == torch.float32


# ------------------------------------------------------------------ packaging hygiene
def test_import_bavae_does_not_import_torch():
    out = subprocess.run(
        [sys.executable, "-c", "import bavae, sys; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "False", out.stdout + out.stderr


def test_no_pickle_anywhere_in_the_package():
    forbidden = re.compile(
        r"torch\.load\s*\(|\bimport\s+(c?pickle|dill|joblib)\b|\bpickle\.|allow_pickle\s*=\s*True"
        r"|weights_only\s*=\s*False"
    )
    sources = sorted(PACKAGE_DIR.rglob("*.py"))
    assert len(sources) >= 5
    hits = [
        f"{p.relative_to(PACKAGE_DIR.parent)}:{i}: {line.strip()}"
        for p in sources
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if forbidden.search(line)
    ]
    assert not hits, hits
