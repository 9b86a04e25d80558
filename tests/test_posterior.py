"""The implicit encoder can learn a bimodal posterior; a Gaussian-posterior VAE cannot.

Toy problem: z ~ N(0, 1), x | z ~ N(z^2, 0.1^2). Seeing x = 1 says z^2 ~ 1, so the true posterior
p(z | x=1) has two modes, at z = +1 and z = -1 (width ~0.05 each), with almost no mass near 0.

Both models maximise the ELBO  E_q[log p(x|z)] - KL(q(z|x) || p(z))  for x ~ U(0.25, 2):
* the library's ImplicitEncoder E(x, eps), whose KL term is estimated by the inference critic T(x, z)
  (PairCritic, eqs. 6-9): the critic maximises V_I, the encoder minimises E_q[-log p(x|z) - T(x, z)];
* a Gaussian encoder (mean + sigma * eps) with the analytic KL.
The likelihood weight is warmed up from 0 to 1 (a standard KL-annealing schedule, in reverse: the encoder
first matches the prior, which straddles 0, then the likelihood pushes each side towards its own mode);
the last 30 % of the steps optimise the exact ELBO. Both models get the same schedule, data and steps.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from bavae.nets.common import ImplicitEncoder, PairCritic, mlp
from bavae.objectives import inference_critic_value

torch.set_num_threads(1)
SIGMA = 0.1  # likelihood noise
STEPS, BATCH, HIDDEN, NOISE_DIM = 1600, 256, 64, 4
BC_BIMODAL = 5 / 9  # Sarle's bimodality coefficient of a uniform distribution: above it suggests bimodality


def neg_log_lik(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) up to a constant, per row."""
    return (x - z**2).pow(2).sum(-1) / (2 * SIGMA**2)


def likelihood_weight(step: int) -> float:
    f = step / STEPS
    if f < 0.2:
        return 0.0
    if f >= 0.7:
        return 1.0
    return 10 ** (-3 + 3 * (f - 0.2) / 0.5)


def draw_x(n: int, g: torch.Generator) -> torch.Tensor:
    return 0.25 + 1.75 * torch.rand(n, 1, generator=g)


def posterior_stats(z: torch.Tensor) -> dict[str, float]:
    z = z.flatten().double()
    n = z.numel()
    mean, c = z.mean(), z - z.mean()
    m2, m3, m4 = c.pow(2).mean(), c.pow(3).mean(), c.pow(4).mean()
    skew, excess_kurtosis = m3 / m2**1.5, m4 / m2**2 - 3
    bc = (skew**2 + 1) / (excess_kurtosis + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))
    std = m2.sqrt().item()
    # mass in |z| < 0.3 that one Gaussian with this mean and std (a unimodal cover of both modes) would hold
    cdf = lambda t: 0.5 * (1 + math.erf((t - mean.item()) / (std * math.sqrt(2))))  # noqa: E731
    return dict(
        positive=(z > 0).double().mean().item(),
        negative=(z < 0).double().mean().item(),
        near_zero=(z.abs() < 0.3).double().mean().item(),
        gaussian_near_zero=cdf(0.3) - cdf(-0.3),
        bimodality=bc.item(),
        mean=mean.item(),
        std=std,
        positive_median=z[z > 0].median().item() if (z > 0).any() else float("nan"),
        negative_median=z[z < 0].median().item() if (z < 0).any() else float("nan"),
    )


def looks_bimodal(s: dict[str, float]) -> bool:
    return (
        s["positive"] >= 0.2
        and s["negative"] >= 0.2
        and s["near_zero"] < s["gaussian_near_zero"] / 3
        and s["bimodality"] > BC_BIMODAL
    )


def train_implicit(seed: int):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    encoder = ImplicitEncoder(nn.Identity(), feature_dim=1, noise_dim=NOISE_DIM, latent_dim=1, hidden=HIDDEN)
    critic = PairCritic(nn.Identity(), feature_dim=1, latent_dim=1, hidden=HIDDEN, spectral_norm=False)
    opt_e = torch.optim.Adam(encoder.parameters(), 1e-3, betas=(0.5, 0.999))
    opt_c = torch.optim.Adam(critic.parameters(), 1e-3, betas=(0.5, 0.999))
    for step in range(STEPS):
        x = draw_x(BATCH, g)
        with torch.no_grad():
            z_q = encoder(x)
        z_p = torch.randn(BATCH, 1, generator=g)
        critic_loss = -inference_critic_value(critic(x, z_q), critic(x, z_p))  # eq. 6, maximised
        opt_c.zero_grad()
        critic_loss.backward()
        opt_c.step()

        x = draw_x(BATCH, g)
        z = encoder(x)
        # -ELBO with the KL replaced by its critic estimate E_q[-T(x, z)] (T ~ log p(z) - log q(z|x), eq. 8)
        loss = (likelihood_weight(step) * neg_log_lik(x, z) - critic(x, z)).mean()
        opt_e.zero_grad()
        loss.backward()
        opt_e.step()
    with torch.no_grad():
        z = encoder(torch.ones(20_000, 1), generator=torch.Generator().manual_seed(seed + 1000))
        kl = -critic_loss.item()
    return z, kl


def train_gaussian(seed: int):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    net = mlp(1, HIDDEN, HIDDEN, 2)  # x -> (mean, log sigma)
    opt = torch.optim.Adam(net.parameters(), 1e-3, betas=(0.5, 0.999))
    for step in range(STEPS):
        x = draw_x(BATCH, g)
        mean, log_sigma = net(x).chunk(2, dim=-1)
        z = mean + log_sigma.exp() * torch.randn(BATCH, 1, generator=g)
        kl = (0.5 * (mean**2 + (2 * log_sigma).exp() - 1) - log_sigma).sum(-1)
        loss = (likelihood_weight(step) * neg_log_lik(x, z) + kl).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        mean, log_sigma = net(torch.ones(20_000, 1)).chunk(2, dim=-1)
        z = mean + log_sigma.exp() * torch.randn(20_000, 1, generator=torch.Generator().manual_seed(seed + 1000))
    return z


def fmt(s: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in s.items())


def test_implicit_posterior_is_bimodal_and_gaussian_is_not():
    t0 = time.time()
    z_implicit, kl_estimate = train_implicit(seed=0)
    implicit = posterior_stats(z_implicit)
    t1 = time.time()
    gaussian = posterior_stats(train_gaussian(seed=0))
    print(f"\nimplicit q(z|x=1) ({t1 - t0:.1f} s, critic KL estimate {kl_estimate:.2f} nats): {fmt(implicit)}")
    print(f"gaussian q(z|x=1) ({time.time() - t1:.1f} s): {fmt(gaussian)}")

    # the implicit posterior finds both modes, at the right places, with a gap between them
    assert implicit["positive"] >= 0.2 and implicit["negative"] >= 0.2, implicit
    assert implicit["near_zero"] < implicit["gaussian_near_zero"] / 3, implicit
    assert implicit["near_zero"] < 0.08, implicit
    assert implicit["bimodality"] > BC_BIMODAL, implicit
    assert abs(implicit["positive_median"] - 1) < 0.15 and abs(implicit["negative_median"] + 1) < 0.15, implicit
    assert looks_bimodal(implicit)

    # mean + sigma * eps cannot: it either picks one mode or smears over the gap
    assert not looks_bimodal(gaussian), gaussian
