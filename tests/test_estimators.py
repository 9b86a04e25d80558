"""The two critic value functions and InfoNCE against closed forms.

(a) eq. 6 at its optimum eq. 8 equals KL(q || p) (eq. 9);  (b) eq. 14 at its optimum eq. 16 equals
KL(r || p_theta) (eq. 17);  (c) a critic trained on such a pair approaches the KL from below;
(d) InfoNCE with the optimal critic is <= log N and close to min(I, log N), and ~0 on independent pairs.

All Gaussians are diagonal, so every KL has a closed form.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bavae.nets.common import CodeCritic, PairCritic
from bavae.objectives import generative_critic_value, inference_critic_value, info_nce, mmd_imq

torch.set_num_threads(1)
N_MC = 2_000_000
LOG2PI = math.log(2 * math.pi)


def log_normal(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor | float) -> torch.Tensor:
    """log N(x; mean, diag std^2), summed over the last dimension."""
    std = torch.as_tensor(std, dtype=x.dtype)
    return (-0.5 * ((x - mean) / std) ** 2 - torch.log(std) - 0.5 * LOG2PI).sum(-1)


def kl_normal(mu_q, s_q, mu_p, s_p) -> torch.Tensor:
    """KL(N(mu_q, s_q^2) || N(mu_p, s_p^2)) for diagonal Gaussians, summed over the last dimension."""
    mu_q, s_q, mu_p, s_p = (torch.as_tensor(v, dtype=torch.float64) for v in (mu_q, s_q, mu_p, s_p))
    return (torch.log(s_p / s_q) + (s_q**2 + (mu_q - mu_p) ** 2) / (2 * s_p**2) - 0.5).sum(-1)


def rel_err(estimate: float, exact: float) -> float:
    return abs(estimate - exact) / exact


# ------------------------------------------------------------------ (a) inference critic at its optimum
@pytest.mark.parametrize("d", [2, 3, 4])
def test_inference_value_at_optimum_is_kl(d):
    g = torch.Generator().manual_seed(100 + d)
    mu = torch.linspace(-0.6, 0.8, d, dtype=torch.float64)
    s = torch.linspace(0.6, 1.2, d, dtype=torch.float64)
    zero, one = torch.zeros(d, dtype=torch.float64), torch.ones(d, dtype=torch.float64)
    z_q = mu + s * torch.randn(N_MC, d, generator=g, dtype=torch.float64)
    z_p = torch.randn(N_MC, d, generator=g, dtype=torch.float64)

    def t_star(z):  # eq. 8: T*(z) = log p(z) - log q(z)
        return log_normal(z, zero, one) - log_normal(z, mu, s)

    value = inference_critic_value(t_star(z_q), t_star(z_p)).item()
    kl = kl_normal(mu, s, zero, one).item()
    err = rel_err(value, kl)
    print(f"\ninference d={d}: V_I(T*) = {value:.5f}, KL = {kl:.5f}, error {100 * err:.3f} %")
    assert err < 0.02


def test_conditional_inference_value_at_optimum_is_average_kl():
    """q(z|x) = N(Ax, s^2 I), x ~ N(0, I): V_I(T*) = E_x KL(q(z|x) || N(0, I))."""
    g = torch.Generator().manual_seed(7)
    dx, dz, s = 2, 3, 0.7
    a = torch.tensor([[0.6, -0.3], [0.2, 0.5], [-0.4, 0.1]], dtype=torch.float64)
    x = torch.randn(N_MC, dx, generator=g, dtype=torch.float64)
    mean = x @ a.T
    z_q = mean + s * torch.randn(N_MC, dz, generator=g, dtype=torch.float64)
    z_p = torch.randn(N_MC, dz, generator=g, dtype=torch.float64)
    zero = torch.zeros(dz, dtype=torch.float64)

    def t_star(z):  # T*(x, z) = log p(z) - log q(z|x), x paired row by row
        return log_normal(z, zero, 1.0) - log_normal(z, mean, s)

    value = inference_critic_value(t_star(z_q), t_star(z_p)).item()
    # E_x KL = 0.5 * (dz s^2 + tr(A A^T) - dz - 2 dz log s)  (E|Ax|^2 = tr(A A^T) for x ~ N(0, I))
    kl = 0.5 * (dz * s**2 + (a**2).sum().item() - dz - 2 * dz * math.log(s))
    kl_mc = kl_normal(mean, s, zero, 1.0).mean().item()  # the same average over the drawn x
    err = rel_err(value, kl)
    print(
        f"\nconditional inference: V_I(T*) = {value:.5f}, E_x KL = {kl:.5f} (over these x: {kl_mc:.5f}), "
        f"error {100 * err:.3f} %"
    )
    assert rel_err(kl_mc, kl) < 0.01
    assert err < 0.02


# ------------------------------------------------------------------ (b) generative critic at its optimum
def gaussian_pair_problem(n: int, g: torch.Generator):
    """z ~ N(0, I_2); r(x|z) = N(Bz, s_r^2), p_theta(x|z) = N(Cz + c, s_p^2), x in R^3."""
    b = torch.tensor([[1.0, 0.0], [0.5, -0.5], [0.0, 0.8]], dtype=torch.float64)
    c_mat = torch.tensor([[0.8, 0.1], [0.5, -0.2], [0.2, 0.6]], dtype=torch.float64)
    c = torch.tensor([0.2, -0.1, 0.3], dtype=torch.float64)
    s_r = torch.tensor([0.5, 0.6, 0.4], dtype=torch.float64)
    s_p = torch.tensor([0.6, 0.6, 0.55], dtype=torch.float64)  # s_r^2 < 2 s_p^2: finite variance of r/p
    z = torch.randn(n, 2, generator=g, dtype=torch.float64)
    m_r, m_p = z @ b.T, z @ c_mat.T + c
    x_real = m_r + s_r * torch.randn(n, 3, generator=g, dtype=torch.float64)
    x_fake = m_p + s_p * torch.randn(n, 3, generator=g, dtype=torch.float64)
    kl = kl_normal(m_r, s_r, m_p, s_p)  # per z
    return z, x_real, x_fake, (m_r, s_r, m_p, s_p), kl


def test_generative_value_at_optimum_is_kl():
    g = torch.Generator().manual_seed(11)
    z, x_real, x_fake, (m_r, s_r, m_p, s_p), kl_per_z = gaussian_pair_problem(N_MC, g)

    def d_star(x):  # eq. 16: D*(x, z) = 1 + log r(x|z) - log p_theta(x|z)
        return 1 + log_normal(x, m_r, s_r) - log_normal(x, m_p, s_p)

    value = generative_critic_value(d_star(x_real), d_star(x_fake)).item()
    kl = kl_per_z.mean().item()
    err = rel_err(value, kl)
    print(f"\ngenerative: V_G(D*) = {value:.5f}, E_z KL(r || p_theta) = {kl:.5f}, error {100 * err:.3f} %")
    assert err < 0.02


def test_value_functions_are_below_kl_off_optimum():
    """Any other critic gives less (the dual is a lower bound): shift and scale T*."""
    g = torch.Generator().manual_seed(3)
    d, n = 2, 400_000
    mu, s = torch.tensor([0.5, -0.3], dtype=torch.float64), torch.tensor([0.7, 0.9], dtype=torch.float64)
    z_q = mu + s * torch.randn(n, d, generator=g, dtype=torch.float64)
    z_p = torch.randn(n, d, generator=g, dtype=torch.float64)

    def t_star(z):
        return log_normal(z, torch.zeros(d, dtype=torch.float64), 1.0) - log_normal(z, mu, s)

    best = inference_critic_value(t_star(z_q), t_star(z_p)).item()
    for a, b in [(1.0, 0.3), (1.0, -0.3), (0.7, 0.0), (1.3, 0.0)]:
        worse = inference_critic_value(a * t_star(z_q) + b, a * t_star(z_p) + b).item()
        assert worse < best - 1e-3, (a, b, worse, best)


# ------------------------------------------------------------------ (c) trained critics approach the KL from below
def small_critic(x_dim: int, z_dim: int, hidden: int = 64) -> PairCritic:
    return PairCritic(nn.Identity(), x_dim, z_dim, hidden, spectral_norm=False)


def mc_stats(first: torch.Tensor, second: torch.Tensor, value: float) -> float:
    """Standard error of a value E[first] - E[second] estimated from independent samples."""
    n = first.numel()
    return math.sqrt(first.var().item() / n + second.var().item() / second.numel())


def test_trained_inference_critic_approaches_kl_from_below():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    dx, dz, s = 2, 2, 0.6
    a = torch.tensor([[0.8, -0.4], [0.3, 0.7]])
    true_kl = 0.5 * (dz * s**2 + (a**2).sum().item() - dz - 2 * dz * math.log(s))

    def draw(n):
        x = torch.randn(n, dx, generator=g)
        return x, x @ a.T + s * torch.randn(n, dz, generator=g), torch.randn(n, dz, generator=g)

    critic = small_critic(dx, dz)
    opt = torch.optim.Adam(critic.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 1500)
    for _ in range(1500):
        x, z_q, z_p = draw(512)
        loss = -inference_critic_value(critic(x, z_q), critic(x, z_p))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()

    with torch.no_grad():
        x, z_q, z_p = draw(200_000)
        t_q, t_p = critic(x, z_q), critic(x, z_p)
        value = inference_critic_value(t_q, t_p).item()
        se = mc_stats(1 - t_q, torch.exp(-t_p), value)
    print(
        f"\ntrained inference critic: V_I = {value:.4f} +- {se:.4f}, true E_x KL = {true_kl:.4f}, "
        f"gap {100 * (true_kl - value) / true_kl:.2f} %"
    )
    assert value <= true_kl + 4 * se + 1e-3  # a lower bound, up to Monte-Carlo noise
    assert value >= 0.9 * true_kl


def test_trained_code_critic_approaches_the_aggregate_kl_from_below():
    """The objective's ``code`` term: C(z) alone, trained with eq. 6 on codes q(z) = N(mu, s^2 I) against
    p(z) = N(0, I), estimates KL(q || p) = (d s^2 + |mu|^2 - d - 2 d log s) / 2 from below. (Unnormalised here, as
    the estimator; the model's C(z) is spectrally normalised, which bounds how fast it can grow far from the codes.)"""
    torch.manual_seed(2)
    g = torch.Generator().manual_seed(2)
    d, s, mu = 2, 0.6, torch.tensor([0.7, -0.3])
    true_kl = 0.5 * (d * s**2 + mu.pow(2).sum().item() - d - 2 * d * math.log(s))

    def draw(n):
        return mu + s * torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)

    critic = CodeCritic(d, 64, spectral_norm=False)
    opt = torch.optim.Adam(critic.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 1000)
    for _ in range(1000):
        z_q, z_p = draw(512)
        loss = -inference_critic_value(critic(z_q), critic(z_p))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()

    with torch.no_grad():
        z_q, z_p = draw(200_000)
        c_q, c_p = critic(z_q), critic(z_p)
        value = inference_critic_value(c_q, c_p).item()
        se = mc_stats(1 - c_q, torch.exp(-c_p), value)
    print(f"\ntrained code critic: V_C = {value:.4f} +- {se:.4f}, true KL(q(z) || p(z)) = {true_kl:.4f}")
    assert value <= true_kl + 4 * se + 1e-3
    assert value >= 0.9 * true_kl


def test_trained_generative_critic_approaches_kl_from_below():
    torch.manual_seed(1)
    g = torch.Generator().manual_seed(1)
    true_kl = gaussian_pair_problem(1_000_000, g)[-1].mean().item()

    critic = small_critic(3, 2)
    opt = torch.optim.Adam(critic.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 1500)
    for _ in range(1500):
        z, x_real, x_fake, _, _ = gaussian_pair_problem(512, g)
        z, x_real, x_fake = z.float(), x_real.float(), x_fake.float()
        loss = -generative_critic_value(critic(x_real, z), critic(x_fake, z))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()

    with torch.no_grad():
        z, x_real, x_fake, _, _ = gaussian_pair_problem(200_000, g)
        z, x_real, x_fake = z.float(), x_real.float(), x_fake.float()
        d_real, d_fake = critic(x_real, z), critic(x_fake, z)
        value = generative_critic_value(d_real, d_fake).item()
        se = mc_stats(d_real, torch.exp(d_fake - 1), value)
    print(
        f"\ntrained generative critic: V_G = {value:.4f} +- {se:.4f}, true E_z KL = {true_kl:.4f}, "
        f"gap {100 * (true_kl - value) / true_kl:.2f} %"
    )
    assert value <= true_kl + 4 * se + 1e-3
    assert value >= 0.9 * true_kl


# ------------------------------------------------------------------ (d) InfoNCE
def correlated_gaussians(n: int, d: int, rho: float, g: torch.Generator):
    """x, z in R^d, coordinate-wise correlation rho; I(x; z) = -d/2 log(1 - rho^2)."""
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    z = rho * x + math.sqrt(1 - rho**2) * torch.randn(n, d, generator=g, dtype=torch.float64)
    return x, z


def optimal_scores(x: torch.Tensor, z: torch.Tensor, rho: float) -> torch.Tensor:
    """scores[i, j] = log p(z_j | x_i) - log p(z_j) for the correlated Gaussians."""
    cond = log_normal(z[None, :, :], rho * x[:, None, :], math.sqrt(1 - rho**2))
    return cond - log_normal(z, torch.zeros_like(z[0]), 1.0)[None, :]


def mean_info_nce(d, rho, n, batches, seed, scores_fn=optimal_scores, independent=False):
    g = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(batches):
        x, z = correlated_gaussians(n, d, rho, g)
        if independent:
            z = torch.randn(n, d, generator=g, dtype=torch.float64)
        value = info_nce(scores_fn(x, z, rho)).item()
        assert value <= math.log(n) + 1e-9  # deterministic: each term is diag - logsumexp <= 0
        values.append(value)
    return sum(values) / len(values)


def test_info_nce_close_to_mi_when_n_is_large():
    d, rho = 2, 0.8
    mi = -d / 2 * math.log(1 - rho**2)  # 1.02 nats
    n = 2048
    value = mean_info_nce(d, rho, n, batches=4, seed=0)
    print(f"\nInfoNCE: I = {mi:.4f}, log N = {math.log(n):.3f}, bound = {value:.4f}")
    assert value <= mi + 0.02
    assert value >= 0.95 * mi


def test_info_nce_saturates_at_log_n():
    d, rho = 4, 0.995
    mi = -d / 2 * math.log(1 - rho**2)  # 9.2 nats >> log 16
    n = 16
    value = mean_info_nce(d, rho, n, batches=32, seed=1)
    print(f"\nInfoNCE: I = {mi:.3f}, log N = {math.log(n):.4f}, bound = {value:.4f}")
    assert math.log(n) - 0.05 <= value <= math.log(n)


def test_info_nce_is_zero_on_independent_pairs():
    n = 512
    # the optimal critic for independent x, z is constant: the bound is exactly 0
    exact = mean_info_nce(2, 0.0, n, batches=2, seed=2)
    assert abs(exact) < 1e-9
    # a critic built for correlated data, shown independent data, cannot find information that is not there
    wrong = mean_info_nce(
        2, 0.8, n, batches=8, seed=3, scores_fn=lambda x, z, _: optimal_scores(x, z, 0.8), independent=True
    )
    # nor can a random network
    torch.manual_seed(0)
    critic = small_critic(2, 2, hidden=32).double()
    with torch.no_grad():
        random_net = mean_info_nce(2, 0.0, n, batches=4, seed=4, scores_fn=lambda x, z, _: critic.pairwise_scores(x, z))
    print(
        f"\nInfoNCE on independent pairs: optimal critic {exact:.2e}, mismatched critic {wrong:.4f}, "
        f"random critic {random_net:.4f}"
    )
    assert wrong < 0.02
    assert abs(random_net) < 0.05


# ------------------------------------------------------------------ (e) the marginal term of `informative`
def test_mmd_is_zero_on_one_distribution_and_grows_with_the_mismatch():
    """MMD^2(aggregate posterior, prior): unbiased (about 0 for one distribution, even negative), and larger the
    further the codes are from the prior, for the two ways codes go wrong: shrinking and shifting."""
    g = torch.Generator().manual_seed(0)
    draw = lambda: torch.randn(256, 16, generator=g)  # noqa: E731
    same = torch.stack([mmd_imq(draw(), draw()) for _ in range(20)])
    assert abs(same.mean()) < 3 * same.std() / math.sqrt(20) + 1e-3, same  # zero in expectation
    shrunk = [mmd_imq(s * draw(), draw()).item() for s in (0.9, 0.6, 0.3)]
    shifted = [mmd_imq(draw() + m, draw()).item() for m in (0.1, 0.3, 1.0)]
    print(f"\nMMD^2 same {same.mean():.4f} +- {same.std():.4f}; std x0.9/0.6/0.3: {shrunk}; mean +0.1/0.3/1: {shifted}")
    assert same.abs().max() < shrunk[0] < shrunk[1] < shrunk[2]
    assert same.abs().max() < shifted[1] < shifted[2]
    # the gradient pulls shrunken codes outwards, towards the prior's scale
    z = (0.3 * draw()).requires_grad_()
    mmd_imq(z, draw()).backward()
    assert (z.grad * z).sum() < 0
