"""The post-hoc latent sampler: fitting recovers a mixture, it travels with the weights, and it does its job.

Its job (docs/method.md, section 8): the default model's codes match the prior in mean and spread but not in
shape, so prior draws fall between the clusters the decoder knows. Draws from the mixture fitted on the training
codes must land where held-out images' codes are, far more often than prior draws do.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from helpers import clean_env, fashion_mnist, gen, save_tiny, tiny_model

from bavae import BAVAE, load
from bavae.samplers import GaussianMixtureSampler, NeighbourSampler


def test_fit_recovers_a_known_mixture_and_draws_from_it():
    g = gen(0)
    means = torch.tensor([[4.0, 0.0, 0.0], [-4.0, 1.0, 0.0]])
    scales = torch.tensor([[[1.0, 0, 0], [0.5, 0.5, 0], [0, 0, 0.2]], [[0.3, 0, 0], [0, 2.0, 0], [0, -0.5, 1.0]]])
    weights = torch.tensor([0.7, 0.3])
    which = torch.multinomial(weights, 20000, replacement=True, generator=g)
    codes = means[which] + (scales[which] @ torch.randn(20000, 3, 1, generator=g)).squeeze(-1)

    fitted = GaussianMixtureSampler.fit(codes, components=2, seed=0)
    order = fitted.means[:, 0].argsort(descending=True)  # component 0 is the one at x = +4
    assert torch.allclose(fitted.weights[order].float(), weights, atol=0.02)
    assert torch.allclose(fitted.means[order].float(), means, atol=0.08)
    covariance = fitted.scale_tril @ fitted.scale_tril.transpose(1, 2)
    assert torch.allclose(covariance[order].float(), scales @ scales.transpose(1, 2), atol=0.12)

    draws = fitted.sample(20000, generator=gen(1))
    assert draws.shape == (20000, 3)
    assert (draws[:, 0] > 0).float().mean().item() == pytest.approx(0.7, abs=0.02)
    # the mixture explains its own draws as well as the truth's, far better than one Gaussian would
    single = GaussianMixtureSampler.fit(codes, components=1, seed=0)
    assert fitted.log_prob(codes).mean() > single.log_prob(codes).mean() + 0.5
    assert torch.equal(fitted.sample(5, generator=gen(2)), fitted.sample(5, generator=gen(2)))


def test_torch_em_fits_codes_as_well_as_scikit_learn(bundled_default, fashion_mnist_dir):
    """The EM in torch against scikit-learn's GaussianMixture (the same settings) on the default model's codes:
    held-out codes are as likely under either fit, and both are far more likely than under one Gaussian."""
    sklearn_mixture = pytest.importorskip("sklearn.mixture")
    model = load(bundled_default, device="cpu")
    with torch.no_grad():
        codes = model.encode(fashion_mnist(4000, image_size=32), generator=gen(0)).double()
    train, held_out = codes[:3000], codes[3000:]
    ours = GaussianMixtureSampler.fit(train, components=8, seed=0)
    theirs = sklearn_mixture.GaussianMixture(8, covariance_type="full", reg_covar=1e-5, max_iter=200, random_state=0)
    theirs.fit(train.numpy())
    ours_ll, theirs_ll = ours.log_prob(held_out).mean().item(), float(theirs.score(held_out.numpy()))
    one = GaussianMixtureSampler.fit(train, components=1, seed=0).log_prob(held_out).mean().item()
    # EM finds a local optimum from a random k-means start: the two fits agree within 0.25 nats of 16 dimensions
    assert ours_ll == pytest.approx(theirs_ll, abs=0.25), (ours_ll, theirs_ll)
    assert min(ours_ll, theirs_ll) > one + 1.0
    assert torch.allclose(ours.weights.sum().double(), torch.tensor(1.0, dtype=torch.float64))
    assert torch.equal(ours.means, GaussianMixtureSampler.fit(train, components=8, seed=0).means)  # seeded


def test_sampler_rides_in_the_weights_and_a_changed_one_changes_the_samples(tmp_path):
    model = tiny_model()
    codes = torch.randn(400, model.config.latent_dim, generator=gen(0)) * 0.1 + 2.0
    model.latent_sampler = GaussianMixtureSampler.fit(codes, components=3, seed=0)
    model.config = type(model.config)(**{**model.config.to_dict(), "sampler": model.latent_sampler.config})
    model.save_pretrained(tmp_path / "m")

    assert json.loads((tmp_path / "m" / "config.json").read_text())["sampler"] == {"kind": "gmm", "components": 3}
    loaded = BAVAE.from_pretrained(str(tmp_path / "m")).eval()
    assert loaded.default_sampler == "gmm"
    gmm = loaded.sample(16, generator=gen(5))
    assert torch.equal(gmm, model.sample(16, generator=gen(5), sampler="gmm"))
    assert not torch.allclose(gmm, loaded.sample(16, generator=gen(5), sampler="prior"))


def test_default_model_mixture_draws_land_among_held_out_codes(bundled_default, fashion_mnist_dir):
    model = load(bundled_default, device="cpu")
    assert model.default_sampler == "gmm"
    x = fashion_mnist(2000, split="test", image_size=32)  # 28x28 zero-padded, as the model was trained
    with torch.no_grad():
        held_out = model.encode(x, generator=gen(0)).float()
    gmm = model.latent_sampler.sample(2000, generator=gen(1)).float()
    prior = torch.randn(2000, model.config.latent_dim, generator=gen(1))

    def nearest(z: torch.Tensor) -> torch.Tensor:  # distance from each draw to the closest held-out code
        return torch.cdist(z, held_out).min(dim=1).values

    # measured: median 1.93 (mixture) against 2.91 (prior); codes of 2,000 other held-out images: 1.79.
    # Log-density of the held-out codes: -13.3 under the mixture, -22.7 under N(0, I).
    assert nearest(gmm).median() < 0.8 * nearest(prior).median()
    assert (
        model.latent_sampler.log_prob(held_out).mean()
        > torch.distributions.Normal(0, 1).log_prob(held_out).sum(1).mean() + 4.0
    )


@pytest.mark.slow  # 20 s on 2 busy cores: four CLI processes
def test_fit_sampler_cli_then_sample_cli_needs_no_scikit_learn(tmp_path, fashion_mnist_dir):
    save_tiny(tmp_path / "tiny")
    env = clean_env()
    no_sklearn = "import sys; sys.modules['sklearn'] = None; from bavae.cli import main; sys.argv[0] = 'bavae'; main()"
    fit = subprocess.run(
        [sys.executable, "-c", no_sklearn, "fit-sampler", str(tmp_path / "tiny"), "--dataset", "fashion-mnist",
         "--data-dir", str(fashion_mnist_dir), "--components", "3", "--max-codes", "500", "--out",
         str(tmp_path / "fitted"), "--device", "cpu"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert fit.returncode == 0, fit.stderr
    assert json.loads((tmp_path / "fitted" / "config.json").read_text())["sampler"] == {"kind": "gmm", "components": 3}
    assert json.loads((tmp_path / "tiny" / "config.json").read_text())["sampler"] is None  # --out: source untouched
    neighbours = subprocess.run(
        [sys.executable, "-m", "bavae", "fit-sampler", str(tmp_path / "tiny"), "--kind", "neighbours", "--dataset",
         "fashion-mnist", "--data-dir", str(fashion_mnist_dir), "--max-codes", "500", "--out", str(tmp_path / "nb"),
         "--device", "cpu"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert neighbours.returncode == 0, neighbours.stderr
    assert "nearest neighbours (500 training codes, 3 neighbours each)" in neighbours.stdout
    assert f"bavae fit-sampler {tmp_path / 'nb'} --kind gmm" in neighbours.stderr  # the codes are the pictures
    assert "training pictures" not in fit.stderr
    sampler = json.loads((tmp_path / "nb" / "config.json").read_text())["sampler"]
    assert sampler == {"kind": "neighbours", "codes": 500, "k": 3}

    # fitting (above) and drawing from a stored mixture are torch alone: scikit-learn made unimportable
    script = (
        "import sys; sys.modules['sklearn'] = None\n"
        "from bavae.cli import main\n"
        "sys.argv = ['bavae', 'sample', '-m', sys.argv[1], '-n', '4', '-o', sys.argv[2], '--sampler', 'gmm', '--seed', '3']\n"
        "main()\n"
    )
    for name in ("a.png", "b.png"):
        proc = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / "fitted"), str(tmp_path / name)],
            capture_output=True, text=True, env=env,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()

    refused = subprocess.run(
        [sys.executable, "-m", "bavae", "sample", "-m", str(tmp_path / "tiny"), "-n", "4", "-o", str(tmp_path / "c.png"),
         "--sampler", "gmm"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "fit-sampler" in refused.stderr and not (tmp_path / "c.png").exists()


def test_refitting_keeps_a_measured_prior_default_and_refuses_a_wrong_latent_size():
    model = tiny_model(default_sampler="prior")
    codes = torch.randn(200, model.config.latent_dim, generator=gen(0))
    model.set_latent_sampler(GaussianMixtureSampler.fit(codes, components=2, seed=0))
    assert model.config.sampler == {"kind": "gmm", "components": 2} and model.default_sampler == "prior"
    with pytest.raises(ValueError, match="latent size is 4"):
        model.set_latent_sampler(GaussianMixtureSampler.fit(torch.randn(200, 3, generator=gen(1)), 2))


def test_a_save_killed_between_weights_and_config_still_loads_the_new_sampler(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path / "m")  # the old folder: no sampler
    old_config = (tmp_path / "m" / "config.json").read_text()
    model.set_latent_sampler(GaussianMixtureSampler.fit(torch.randn(200, 4, generator=gen(0)), components=3))
    model.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(old_config)  # as if killed after the weights' rename
    loaded = BAVAE.from_pretrained(str(tmp_path / "m"))
    assert loaded.config.sampler == {"kind": "gmm", "components": 3} and loaded.default_sampler == "gmm"
    assert torch.equal(loaded.latent_sampler.means, model.latent_sampler.means)


def test_an_invalid_mixture_is_refused_when_attached(tmp_path):
    """One rule (bavae.samplers.mixture_problem) guards both doors: set_latent_sampler here, load in bad_inputs."""
    model = tiny_model()
    codes = torch.randn(400, model.config.latent_dim, generator=gen(0))
    model.set_latent_sampler(GaussianMixtureSampler.fit(codes, 2))
    model.save_pretrained(tmp_path / "good")
    assert load(str(tmp_path / "good")).latent_sampler is not None  # the rows of tests/bad_inputs.py break it on disk
    for broken, pattern in (
        (lambda s: s.weights.copy_(torch.tensor([1.5, -0.5])), "must all be positive"),
        (lambda s: s.weights.copy_(torch.tensor([0.6, 0.6])), "must sum to 1"),
        (lambda s: s.scale_tril[1, 0, 0].fill_(0.0), "positive diagonal"),
        (lambda s: s.scale_tril[0, 0, 1].fill_(0.3), "lower-triangular"),
    ):
        sampler = GaussianMixtureSampler.fit(codes, 2)
        broken(sampler)
        with pytest.raises(ValueError, match=pattern):
            model.set_latent_sampler(sampler)
        assert model.latent_sampler is not None and bool((model.latent_sampler.weights > 0).all())  # the old one stays


# ---------------------------------------------------------------------------------------------- the neighbour sampler
def test_neighbour_sampler_keeps_the_nearest_codes_and_stays_on_a_thin_set_where_a_mixture_does_not():
    """Codes on a circle (a 1-d set in 6 dimensions, as the colour model's codes fill ~5 of 64): the neighbour
    table is the brute-force one, and draws stay near the circle, where a Gaussian mixture's fall inside it."""
    g = gen(0)
    angle = torch.rand(2000, generator=g) * 2 * torch.pi
    codes = torch.zeros(2000, 6)
    codes[:, 0], codes[:, 1] = 3 * angle.cos(), 3 * angle.sin()
    codes += 0.01 * torch.randn(2000, 6, generator=g)
    sampler = NeighbourSampler.fit(codes, k=3, chunk=300)  # chunks: the table must not depend on them
    assert sampler.config == {"kind": "neighbours", "codes": 2000, "k": 3}
    distances = torch.cdist(codes, codes).fill_diagonal_(float("inf"))
    assert torch.equal(
        sampler.neighbours.long().sort(1).values, distances.topk(3, largest=False).indices.sort(1).values
    )

    def off_circle(z: torch.Tensor) -> torch.Tensor:
        return (z[:, :2].norm(dim=1) - 3).abs() + z[:, 2:].norm(dim=1)

    draws = sampler.sample(5000, generator=gen(1))
    mixture = GaussianMixtureSampler.fit(codes, components=8, seed=0).sample(5000, generator=gen(1)).float()
    # measured: 95th percentile 0.036 (neighbours) against 0.25 (8-component mixture)
    assert off_circle(draws).quantile(0.95) < 0.1 < off_circle(mixture).quantile(0.95)
    assert torch.equal(draws, sampler.sample(5000, generator=gen(1)))  # seeded
    # a draw lies between a code and a near neighbour, so close to a stored code (measured: at most 0.025)
    assert torch.cdist(draws[:500], codes).min(1).values.max() < 0.05


def test_neighbour_sampler_rides_in_the_weights_and_only_its_own_kind_is_drawn(tmp_path):
    model = tiny_model()
    codes = torch.randn(300, model.config.latent_dim, generator=gen(0)) + 2.0
    model.set_latent_sampler(NeighbourSampler.fit(codes, k=4))
    assert model.config.sampler == {"kind": "neighbours", "codes": 300, "k": 4}
    model.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["sampler"] == model.config.sampler
    loaded = load(str(tmp_path / "m")).eval()
    assert loaded.default_sampler == "neighbours"
    assert torch.equal(loaded.latent_sampler.codes, codes) and loaded.latent_sampler.neighbours.dtype == torch.int32
    drawn = loaded.sample(8, generator=gen(5))
    assert torch.equal(drawn, model.eval().sample(8, generator=gen(5), sampler="neighbours"))
    with pytest.raises(ValueError, match="fitted sampler is 'neighbours', not 'gmm'"):
        loaded.sample(8, sampler="gmm")
    broken = NeighbourSampler.fit(codes, k=2)
    broken.neighbours[5, 1] = 300
    with pytest.raises(ValueError, match="index its 300 codes.*row 5 has 300"):
        model.set_latent_sampler(broken)
    assert model.config.sampler["k"] == 4  # the old one stays
