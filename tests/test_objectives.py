"""The wiring of the objective: each player's loss, term by term, against a computation written out here from the
model's networks (eq. 6, eq. 14, eq. 19 and the extra terms of docs/method.md section 6), and the weights that
`paper` and `informative` set.

tests/test_estimators.py checks the value functions themselves against closed forms; this file checks that the
training losses use them with the right signs, on the right pairs, with the right weights.
"""

from __future__ import annotations

import math
import re
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from helpers import images, tiny_model

from bavae.objectives import (
    CRITIC_TERMS,
    OBJECTIVES,
    ObjectiveWeights,
    autoencoder_losses,
    critic_losses,
    fake_pairs,
    mmd_imq,
    sliced_wasserstein,
    warmup_weights,
)

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
TERMS = ("kl", "generative", "info", "feature", "pixel", "cycle", "marginal", "sliced", "code", "sample")
N = 6


@pytest.fixture(scope="module")
def model():
    """A tiny model whose critics are redrawn with larger weights (N(0, 4 / fan_in), no bias): the untrained
    critics of a tiny model score every pair almost alike, and the terms would be too small to tell apart.
    Spectral norm is off so that the weights are the plain ones the hand computations use."""
    m = tiny_model(seed=0, spectral_norm=False)
    torch.manual_seed(9)
    with torch.no_grad():
        for critic in (m.inference_critic, m.generative_critic):
            for layer in critic.modules():
                if isinstance(layer, (torch.nn.Linear, torch.nn.Conv2d)):
                    layer.weight.normal_(0, 2 / math.sqrt(layer.weight[0].numel()))
                    if layer.bias is not None:
                        layer.bias.zero_()
    return m


@pytest.fixture(scope="module")
def batch(model):
    """x, z ~ q(z|x) and the fakes of eq. 14 (reconstructions: z_fake = z), all fixed."""
    x = images(N, 1, 32, seed=1)
    torch.manual_seed(2)
    with torch.no_grad():
        z = model.encoder(x)
        x_fake = model.decoder(z)
    return x, z, z.clone(), x_fake


@pytest.fixture(scope="module")
def mixed(model, batch):
    """The same batch with prior fakes: the last half of z_fake are prior draws (so z_fake differs from z)."""
    x, z, _, _ = batch
    torch.manual_seed(3)
    with torch.no_grad():
        z_fake, x_fake = fake_pairs(model, z, ObjectiveWeights(prior_fakes=0.5))
    assert not torch.equal(z_fake, z)
    return x, z, z_fake, x_fake


def only(term: str, **extra: float) -> ObjectiveWeights:
    return ObjectiveWeights(**{**{t: 0.0 for t in TERMS}, term: 1.0, **extra})


def T(model, x, z):
    """The inference critic on pairs (x_i, z_i), through its forward pass."""
    return model.inference_critic(x, z)


def D(model, x, z):
    return model.generative_critic(x, z)


def losses(model, batch, weights, seed=0):
    x, z, z_fake, x_fake = batch
    torch.manual_seed(seed)  # the terms that draw prior codes draw them from the global generator
    with torch.no_grad():
        return autoencoder_losses(model, x, weights, z=z, z_fake=z_fake, x_fake=x_fake)


def close(a, b):
    return math.isclose(float(a), float(b), rel_tol=1e-4, abs_tol=1e-5)


# ------------------------------------------------------------------------------------------------ critics
def test_critic_losses_are_minus_eq_6_and_minus_eq_14(model, mixed):
    x, z, z_fake, x_fake = mixed
    torch.manual_seed(3)
    with torch.no_grad():
        got = critic_losses(model, x, OBJECTIVES["paper"], z=z, z_fake=z_fake, x_fake=x_fake)
    torch.manual_seed(3)
    z_prior = torch.randn(N, z.shape[1])  # the one draw critic_losses makes: p(z) codes for eq. 6's second term
    with torch.no_grad():
        v_inference = (1 - T(model, x, z)).mean() - torch.exp(-T(model, x, z_prior)).mean()  # eq. 6
        v_generative = D(model, x, z).mean() - torch.exp(D(model, x_fake, z_fake) - 1).mean()  # eq. 14
    assert close(got.inference_critic, -v_inference), (got.inference_critic, v_inference)  # critics maximise V
    assert close(got.generative_critic, -v_generative), (got.generative_critic, v_generative)
    assert close(got.logs["kl_estimate"], v_inference) and close(got.logs["generative_value"], v_generative)
    assert abs(float(v_inference)) > 1e-3 and abs(float(v_generative)) > 1e-3  # not trivially zero


# ------------------------------------------------------------------------------------------------ encoder/decoder
def test_kl_term_is_minus_t_on_posterior_pairs(model, batch):
    x, z, _, _ = batch
    got = losses(model, batch, only("kl"))
    with torch.no_grad():
        expected = -T(model, x, z).mean()  # eq. 19: the encoder minimises E_q[-T(x, z)]
    assert close(got.encoder, expected) and close(got.decoder, 0.0), (got.encoder, expected, got.decoder)


def test_generative_term_is_plus_eq_14(model, mixed):
    x, z, z_fake, x_fake = mixed
    got = losses(model, mixed, only("generative", prior_fakes=0.5))
    with torch.no_grad():
        expected = D(model, x, z).mean() - torch.exp(D(model, x_fake, z_fake) - 1).mean()
    assert close(got.decoder, expected) and close(got.encoder, 0.0), (got.decoder, expected)


def test_info_term_is_minus_infonce_with_minus_t_as_the_score(model, batch):
    x, z, _, _ = batch
    got = losses(model, batch, only("info"))
    with torch.no_grad():  # f(x_i, z_j) = -T(x_i, z_j), pair by pair (not through pairwise_scores)
        f = torch.stack([torch.stack([-T(model, x[i : i + 1], z[j : j + 1])[0] for j in range(N)]) for i in range(N)])
    # docs/method.md: I_NCE = log N + 1/N sum_j [f(x_j, z_j) - log sum_i exp f(x_i, z_j)]
    nce = math.log(N) + sum(f[j, j] - torch.logsumexp(f[:, j], 0) for j in range(N)) / N
    assert close(got.encoder, -nce) and close(got.logs["info_nce"], nce), (got.encoder, nce)
    assert abs(float(nce)) > 1e-4
    with torch.no_grad():  # and the transposed score (each image picking its code) would be another number
        wrong = math.log(N) + sum(f[j, j] - torch.logsumexp(f[j, :], 0) for j in range(N)) / N
    assert not close(wrong, nce)


def test_feature_term_is_the_squared_distance_of_generative_critic_features(model, batch):
    x, _, _, x_fake = batch
    got = losses(model, batch, only("feature"))
    phi = model.generative_critic.image_features
    with torch.no_grad():
        expected = (phi(x_fake) - phi(x)).pow(2).sum(1).mean()
    assert close(got.decoder, expected) and close(got.encoder, 0.0), (got.decoder, expected)


def test_pixel_term_is_the_l1_distance_per_image(model, batch):
    x, _, _, x_fake = batch
    got = losses(model, batch, only("pixel"))
    expected = (x_fake - x).abs().sum((1, 2, 3)).mean()
    assert close(got.decoder, expected) and close(got.encoder, 0.0), (got.decoder, expected)


def test_cycle_term_encodes_decoded_prior_codes_back(model, batch):
    got = losses(model, batch, only("cycle"), seed=4)
    torch.manual_seed(4)
    with torch.no_grad():
        z_prior = torch.randn(N, model.config.latent_dim)
        expected = (model.encoder(model.decoder(z_prior)) - z_prior).pow(2).sum(1).mean()
    assert close(got.decoder, expected) and close(got.encoder, 0.0), (got.decoder, expected)


def test_marginal_term_is_the_mmd_of_codes_and_prior_draws(model, batch):
    _, z, _, _ = batch
    got = losses(model, batch, only("marginal"), seed=5)
    torch.manual_seed(5)
    expected = mmd_imq(z, torch.randn(N, model.config.latent_dim))
    assert close(got.encoder, expected) and close(got.decoder, 0.0), (got.encoder, expected)


def test_sliced_term_is_the_sliced_wasserstein_distance_of_codes_and_prior_draws(model, batch):
    _, z, _, _ = batch
    got = losses(model, batch, only("sliced"), seed=5)
    torch.manual_seed(5)
    prior = torch.randn(N, model.config.latent_dim)
    expected = sliced_wasserstein(z, prior) * model.config.latent_dim
    assert close(got.encoder, expected) and close(got.decoder, 0.0), (got.encoder, expected)


def test_sliced_wasserstein_matches_closed_forms():
    """Along a unit direction u, N(m, s^2 I) projects to N(m.u, s^2): W2^2 against N(0, 1) is (m.u)^2 + (s - 1)^2,
    whose mean over uniform directions is |m|^2 / d + (s - 1)^2."""
    g = torch.Generator().manual_seed(0)
    d, n = 8, 20000
    a, b = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    torch.manual_seed(1)
    assert sliced_wasserstein(a, b, projections=256) < 0.005
    assert sliced_wasserstein(1.5 * a, b, projections=256) == pytest.approx(0.25, abs=0.02)
    shift = torch.full((d,), 0.5)
    assert sliced_wasserstein(a + shift, b, projections=1024) == pytest.approx(0.25 * d / d, abs=0.03)


def test_weights_scale_their_terms_and_the_losses_add_up(model, batch):
    weights = ObjectiveWeights(kl=0.5, generative=2.0, info=3.0, feature=0.25, pixel=4.0, cycle=0.0, marginal=7.0)
    total = losses(model, batch, weights, seed=6)
    enc = sum(
        w * float(losses(model, batch, only(t), seed=6).encoder)
        for t, w in (("kl", 0.5), ("info", 3.0), ("marginal", 7.0))
    )
    dec = sum(
        w * float(losses(model, batch, only(t), seed=6).decoder)
        for t, w in (("generative", 2.0), ("feature", 0.25), ("pixel", 4.0))
    )
    assert close(total.encoder, enc) and close(total.decoder, dec), (total.encoder, enc, total.decoder, dec)


def test_warmup_is_the_pixel_anchor_and_the_marginal_with_no_critic_pass(model, batch):
    """Before `--critic-start`: every term that needs a critic off, the pixel anchor (at least 1: `paper` has none)
    and the marginal MMD as `informative` weighs it; the losses are then those two alone, and no critic layer runs."""
    informative = OBJECTIVES["informative"]
    warm = warmup_weights(informative)
    assert {t for t in TERMS if getattr(warm, t)} == {"pixel", "marginal"} and not warm.prior_fakes
    assert (warm.pixel, warm.marginal) == (informative.pixel, informative.marginal)
    assert warmup_weights(OBJECTIVES["paper"]).pixel == 1.0
    assert set(CRITIC_TERMS) == {"kl", "generative", "info", "feature", "code", "sample"}
    calls = []
    critic_layers = [m for c in (model.inference_critic, model.generative_critic) for m in c.modules()]
    hooks = [m.register_forward_hook(lambda *_: calls.append(1)) for m in critic_layers]
    try:
        got = losses(model, batch, warm, seed=5)
    finally:
        for h in hooks:
            h.remove()
    x, z, _, x_fake = batch
    torch.manual_seed(5)
    expected_encoder = informative.marginal * mmd_imq(z, torch.randn(N, model.config.latent_dim))
    expected_decoder = informative.pixel * (x_fake - x).abs().sum((1, 2, 3)).mean()
    assert not calls, f"{len(calls)} critic layer calls in a warm-up step"
    assert close(got.encoder, expected_encoder) and close(got.decoder, expected_decoder), got


def test_prior_fakes_replace_the_last_codes_with_prior_draws(model, batch):
    x, z, _, _ = batch
    torch.manual_seed(7)
    with torch.no_grad():
        z_fake, x_fake = fake_pairs(model, z, ObjectiveWeights(prior_fakes=0.5))
    torch.manual_seed(7)
    prior = torch.randn(N // 2, z.shape[1])
    assert torch.equal(z_fake[: N // 2], z[: N // 2]) and torch.equal(z_fake[N // 2 :], prior)
    with torch.no_grad():
        assert torch.allclose(x_fake, model.decoder(z_fake), atol=1e-6)
    # the reconstruction terms use the reconstructions only (the first rows), not the decoded prior codes
    got = losses(model, (x, z, z_fake, x_fake), only("pixel", prior_fakes=0.5))
    assert close(got.decoder, (x_fake[: N // 2] - x[: N // 2]).abs().sum((1, 2, 3)).mean())


# ------------------------------------------------------------------------------------------------ the named objectives
def test_paper_is_eq_19_and_informative_is_the_documented_table():
    # eq. 19: both games with weight 1, nothing else, fakes are the paper's reconstructions
    paper = {**{t: 0.0 for t in TERMS}, "kl": 1.0, "generative": 1.0, "prior_fakes": 0.0}
    assert OBJECTIVES["paper"].to_dict() == paper
    # docs/method.md section 6 tabulates the informative weights: the code must say the same
    text = (ROOT / "docs" / "method.md").read_text()
    table = dict(re.findall(r"^\| `(\w+)` \| ([\d.]+) \|", text.split("## 6.")[1], re.M))
    assert set(table) == set(TERMS), table
    informative = OBJECTIVES["informative"].to_dict()
    assert {t: informative[t] for t in TERMS} == {t: float(v) for t, v in table.items()}
    assert informative["prior_fakes"] == 0  # measured: decoded prior codes among the fakes did not pay (section 6)
    assert {f.name for f in fields(ObjectiveWeights)} == {*TERMS, "prior_fakes"}  # a new term needs a row here


def test_the_code_term_is_eq_6_on_codes_alone_with_its_own_critic(tmp_path):
    """``code``: the model gains C(z) (a critic: stepped with the critics, frozen for the encoder), the critics' loss
    gains -V_C on the batch's codes against the critic step's prior draw, the encoder's gains E_q[-C(z)]; models
    without the term keep their tensors, and a saved model with it loads with its C."""
    plain, m = tiny_model(seed=0), tiny_model(seed=0, spectral_norm=False, objective_weights={"code": 2.0})
    assert plain.code_critic is None and not any(k.startswith("code_critic.") for k in plain.state_dict())
    code_ids = {id(p) for p in m.code_critic.parameters()}
    assert code_ids <= {id(p) for p in m.critic_parameters()}
    assert not code_ids & {id(p) for p in m.autoencoder_parameters()}
    x = images(N, 1, 32, seed=1)
    weights = ObjectiveWeights(**{**{t: 0.0 for t in TERMS}, "code": 2.0})
    torch.manual_seed(4)
    with torch.no_grad():
        z = m.encoder(x)
        z_fake, x_fake = fake_pairs(m, z, weights)
        torch.manual_seed(5)
        got = critic_losses(m, x, weights, z=z, z_fake=z_fake, x_fake=x_fake)
        torch.manual_seed(5)
        z_prior = torch.randn(N, z.shape[1])
        v_code = (1 - m.code_critic(z)).mean() - torch.exp(-m.code_critic(z_prior)).mean()  # eq. 6 without x
        assert close(got.logs["code_kl_estimate"], v_code)
        v_inference = (1 - T(m, x, z)).mean() - torch.exp(-T(m, x, z_prior)).mean()  # the same prior draw
        assert close(got.inference_critic, -(v_inference + v_code))  # one optimiser steps T and C together
        ae = autoencoder_losses(m, x, weights, z=z, z_fake=z_fake, x_fake=x_fake)
        assert close(ae.encoder, 2.0 * (-m.code_critic(z)).mean())
    from bavae.train import game_step, optimizers

    before = [p.detach().clone() for p in m.code_critic.parameters()]
    game_step(m.train(), [x], *optimizers(m, 1e-3, 1e-3, (0.5, 0.999), "cpu"))
    assert all(not torch.equal(a, p) for a, p in zip(before, m.code_critic.parameters()))  # the critic step moved C
    assert all(p.requires_grad for p in m.code_critic.parameters())  # frozen for the encoder's step only
    m.eval().save_pretrained(tmp_path / "m")
    from bavae import load

    loaded = load(str(tmp_path / "m"))
    assert all(
        torch.equal(a, b) for a, b in zip(loaded.code_critic.state_dict().values(), m.code_critic.state_dict().values())
    )


def test_a_models_config_selects_its_objective():
    assert tiny_model(objective="paper").config.weights == OBJECTIVES["paper"]
    m = tiny_model(objective="informative", objective_weights={"marginal": 3.0})
    assert m.config.weights == ObjectiveWeights(**{**OBJECTIVES["informative"].to_dict(), "marginal": 3.0})
