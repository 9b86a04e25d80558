"""Post-hoc latent samplers: a density fitted on the training set's codes, to draw codes from instead of p(z).

The prior p(z) = N(0, I) is what the objective matches the codes to, but only in mean and spread: the aggregate
posterior keeps the data's clusters, and prior draws that fall between them decode to blends. Fitting a Gaussian
mixture on the codes after training and decoding its draws ("ex-post density estimation", Ghosh et al. 2020;
pythae's GaussianMixtureSampler) puts the codes where the decoder has seen data.

A sampler is part of a saved model: its tensors ride in ``model.safetensors`` (under ``latent_sampler.``) and its
description in ``config.json`` (``"sampler": {"kind": "gmm", "components": K}``), so it is sha256-checked with the
weights. Fitting and drawing need torch alone: the EM below follows scikit-learn's ``GaussianMixture`` (k-means
initialisation, full covariances, ``reg_covar`` on the diagonal, stop when the mean log-likelihood gains less than
``tol``), and a test checks it against scikit-learn on the same codes.

The second kind, ``{"kind": "neighbours", "codes": N, "k": K}``, keeps N training codes and each one's K nearest
others, and draws a point on the segment between a random code and one of its neighbours. Codes that fill a thin,
curved set (the colour model's 64-d codes fill about 5 dimensions) are poorly covered by a few dozen full-covariance
Gaussians, whose draws land off the set; the segments between near neighbours stay on it. Measured in
docs/method.md, section 8.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .configs import MAX_SAMPLER_CODES, SAMPLER_KINDS, check_sampler_config
from .errors import InvalidValue


def supported_components(n_codes: int, latent_dim: int) -> int:
    """The most components ``n_codes`` codes can fit: a full covariance has d(d+1)/2 numbers, so at least 2(d+1)
    codes per component, or the mixture copies codes."""
    return max(1, n_codes // (2 * (latent_dim + 1)))


def sampler_problem(state: dict[str, torch.Tensor], prefix: str = "latent_sampler.") -> str | None:
    """Why the sampler tensors of a state dict (under ``prefix``) are not a sampler, in one sentence, or None:
    a Gaussian mixture's (:func:`mixture_problem`) or the neighbour sampler's (:func:`neighbours_problem`)."""
    if prefix + "neighbours" in state:
        return neighbours_problem(state[prefix + "codes"], state[prefix + "neighbours"])
    return mixture_problem(state.get(prefix + "weights"), state.get(prefix + "scale_tril"))


def neighbours_problem(codes: torch.Tensor, neighbours: torch.Tensor) -> str | None:
    """Why a neighbour table cannot index its codes, or None: integers, each in [0, N) and not the row's own code
    (an index out of range would read past the codes at the first draw, or fail there)."""
    if neighbours.is_floating_point() or neighbours.is_complex() or neighbours.dtype == torch.bool:
        return f"latent_sampler.neighbours must hold integer indices, got {neighbours.dtype}"
    n = codes.shape[0]
    idx = neighbours.detach().cpu().long()
    bad = (idx < 0) | (idx >= n)
    if bool(bad.any()):
        row, col = (int(v) for v in bad.nonzero()[0])
        return f"latent_sampler.neighbours must index its {n} codes (0 to {n - 1}); row {row} has {int(idx[row, col])}"
    own = idx == torch.arange(n)[:, None]
    if bool(own.any()):
        row = int(own.nonzero()[0, 0])
        return f"latent_sampler.neighbours lists a code as its own neighbour (row {row})"
    return None


def mixture_problem(weights: torch.Tensor | None, scale_tril: torch.Tensor | None) -> str | None:
    """Why component weights and Cholesky factors are not a Gaussian mixture, in one sentence, or None when they are
    one: weights positive and summing to 1, factors lower-triangular with a positive diagonal (so each covariance is
    positive-definite). Checked where a mixture comes in: at load, and by ``BAVAE.set_latent_sampler``."""
    if weights is not None:
        w = weights.detach().double().cpu()
        if w.numel() and w.min() <= 0:
            k = int(w.argmin())
            return f"latent_sampler.weights, its component weights, must all be positive (> 0); component {k} has {w[k].item():.4g}"
        tolerance = max(1e-3, torch.finfo(weights.dtype).eps)  # float32 sums of K weights are off by ~K x 1e-7
        if abs(w.sum().item() - 1) > tolerance:
            return (
                f"latent_sampler.weights, its component weights, must sum to 1 (within {tolerance:.3g}); they sum to "
                f"{w.sum().item():.6g}"
            )
    if scale_tril is not None and scale_tril.dim() == 3:
        L = scale_tril.detach().cpu()
        diagonal = L.diagonal(dim1=-2, dim2=-1)
        if diagonal.numel() and diagonal.min() <= 0:
            k, i = divmod(int(diagonal.argmin()), diagonal.shape[1])
            return (
                "latent_sampler.scale_tril, the Cholesky factors of its covariances, must have a positive diagonal (a "
                f"covariance is positive-definite); component {k} has {diagonal[k, i].item():.4g} at [{i}, {i}]"
            )
        upper = torch.triu(L, diagonal=1)
        if bool((upper != 0).any()):
            k, i, j = (int(v) for v in (upper != 0).nonzero()[0])
            return (
                "latent_sampler.scale_tril, the Cholesky factors of its covariances, must be lower-triangular; "
                f"component {k} has {L[k, i, j].item():.4g} above the diagonal at [{i}, {j}]"
            )
    return None


class GaussianMixtureSampler(nn.Module):
    """A K-component, full-covariance Gaussian mixture over codes: weights, means and Cholesky factors as buffers."""

    def __init__(self, components: int, latent_dim: int):
        super().__init__()
        self.register_buffer("weights", torch.full((components,), 1.0 / components))
        self.register_buffer("means", torch.zeros(components, latent_dim))
        scale_tril = torch.zeros(components, latent_dim, latent_dim)
        scale_tril.diagonal(dim1=-2, dim2=-1).fill_(1.0)  # not torch.eye: on the meta device it imports dynamo (0.7 s)
        self.register_buffer("scale_tril", scale_tril)

    @property
    def config(self) -> dict[str, Any]:
        return {"kind": "gmm", "components": self.means.shape[0]}

    @property
    def latent_dim(self) -> int:
        return self.means.shape[1]

    @classmethod
    def fit(
        cls,
        codes: torch.Tensor,
        components: int = 50,
        seed: int = 0,
        max_iter: int = 200,
        tol: float = 1e-3,
        reg_covar: float = 1e-5,
    ) -> GaussianMixtureSampler:
        """Fit on codes (N, latent_dim) by EM in float64 (k-means initialisation, full covariances)."""
        if codes.dim() != 2 or len(codes) < 2 * components:
            raise InvalidValue(
                f"fitting {components} components needs at least {2 * components} codes, "
                f"got a tensor of shape {tuple(codes.shape)}"
            )
        x = codes.detach().double().cpu()
        if not torch.isfinite(x).all():
            raise InvalidValue("the codes to fit hold NaN or inf values: the model is broken")
        generator = torch.Generator().manual_seed(seed)
        resp = torch.nn.functional.one_hot(_kmeans(x, components, generator), components).double()
        weights, means, scale_tril = _m_step(x, resp, reg_covar)
        bound = -math.inf
        for _ in range(max_iter):
            log_joint = _log_gaussians(x, means, scale_tril) + weights.log()  # (N, K)
            log_density = log_joint.logsumexp(1, keepdim=True)
            weights, means, scale_tril = _m_step(x, (log_joint - log_density).exp(), reg_covar)
            bound, previous = log_density.mean().item(), bound
            if abs(bound - previous) < tol:
                break
        sampler = cls(components, x.shape[1])
        sampler.weights.copy_(weights / weights.sum())
        sampler.means.copy_(means)
        sampler.scale_tril.copy_(scale_tril)
        return sampler

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n codes (n, latent_dim): a component per code by its weight, then mean + L eps."""
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.means.shape[1], device=self.means.device, dtype=self.means.dtype, generator=generator)
        codes = torch.empty_like(eps)
        for k in component.unique().tolist():  # per component: memory n x d, not n x d x d
            rows = component == k
            codes[rows] = self.means[k] + eps[rows] @ self.scale_tril[k].T
        return codes

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """Log density of codes (N, latent_dim) under the mixture."""
        dist = torch.distributions.MultivariateNormal(self.means, scale_tril=self.scale_tril)
        return torch.logsumexp(dist.log_prob(z[:, None, :]) + self.weights.log(), dim=1)


class NeighbourSampler(nn.Module):
    """Training codes and each one's ``k`` nearest others: a draw picks a code, one of its neighbours and a point
    uniformly on the segment between them. Its draws stay where the codes are, whatever the shape of their set."""

    def __init__(self, n_codes: int, latent_dim: int, k: int):
        super().__init__()
        self.register_buffer("codes", torch.zeros(n_codes, latent_dim))
        self.register_buffer("neighbours", torch.zeros(n_codes, k, dtype=torch.int32))  # int32: half of int64's bytes

    @property
    def config(self) -> dict[str, Any]:
        return {"kind": "neighbours", "codes": self.codes.shape[0], "k": self.neighbours.shape[1]}

    @property
    def latent_dim(self) -> int:
        return self.codes.shape[1]

    @classmethod
    def fit(cls, codes: torch.Tensor, k: int = 3, chunk: int | None = None) -> NeighbourSampler:
        """Keep codes (N, latent_dim) and find each one's k nearest others (Euclidean), ``chunk`` rows at a time
        (default: as many as keep a chunk's distances within 256 MB)."""
        if codes.dim() != 2 or not 1 <= k < len(codes):
            raise InvalidValue(
                f"{k} neighbours per code need more than {k} codes, got a tensor of shape {tuple(codes.shape)}"
            )
        x = codes.detach().float().cpu()
        if not torch.isfinite(x).all():
            raise InvalidValue("the codes to fit hold NaN or inf values: the model is broken")
        sampler = cls(len(x), x.shape[1], k)
        sampler.codes.copy_(x)
        chunk = chunk or max(1, 64_000_000 // len(x))
        for start in range(0, len(x), chunk):
            d = torch.cdist(x[start : start + chunk], x)
            d[torch.arange(len(d)), torch.arange(start, start + len(d))] = math.inf  # not its own neighbour
            sampler.neighbours[start : start + chunk] = d.topk(k, largest=False).indices.int()
        return sampler

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n codes (n, latent_dim): z_i + t (z_j - z_i), i uniform, j one of i's neighbours, t ~ U(0, 1)."""
        device, (n_codes, k) = self.codes.device, self.neighbours.shape
        i = torch.randint(n_codes, (n,), device=device, generator=generator)
        j = self.neighbours[i, torch.randint(k, (n,), device=device, generator=generator)].long()
        t = torch.rand(n, 1, device=device, dtype=self.codes.dtype, generator=generator)
        return self.codes[i] + t * (self.codes[j] - self.codes[i])


def _kmeans(x: torch.Tensor, k: int, generator: torch.Generator, iters: int = 100) -> torch.Tensor:
    """Lloyd's k-means from a k-means++ start (Arthur and Vassilvitskii 2007); returns each point's cluster."""
    centres = x[torch.randint(len(x), (1,), generator=generator)]
    nearest = torch.cdist(x, centres).pow(2).squeeze(1)
    for _ in range(1, k):  # each next centre drawn with probability proportional to its squared distance
        pick = torch.multinomial(nearest.clamp_min(1e-30), 1, generator=generator)
        centres = torch.cat([centres, x[pick]])
        nearest = torch.minimum(nearest, torch.cdist(x, x[pick]).pow(2).squeeze(1))
    labels = torch.cdist(x, centres).argmin(1)
    for _ in range(iters):
        counts = torch.bincount(labels, minlength=k).unsqueeze(1)
        sums = torch.zeros_like(centres).index_add_(0, labels, x)
        centres = torch.where(counts > 0, sums / counts.clamp_min(1), centres)  # an empty cluster keeps its centre
        new = torch.cdist(x, centres).argmin(1)
        if torch.equal(new, labels):
            break
        labels = new
    return labels


def _m_step(x: torch.Tensor, resp: torch.Tensor, reg_covar: float) -> tuple[torch.Tensor, ...]:
    """Weights, means and Cholesky factors of the covariances from responsibilities (N, K)."""
    counts = resp.sum(0) + 10 * torch.finfo(resp.dtype).eps  # as scikit-learn: no component of zero mass
    means = resp.T @ x / counts[:, None]
    cov = torch.empty(len(means), x.shape[1], x.shape[1], dtype=x.dtype)
    for k in range(len(means)):  # one component at a time: memory N x d, not K x N x d
        centred = x - means[k]
        cov[k] = (resp[:, k, None] * centred).T @ centred / counts[k]
    cov.diagonal(dim1=-2, dim2=-1).add_(reg_covar)
    return counts / len(x), means, torch.linalg.cholesky(cov)


def _log_gaussians(x: torch.Tensor, means: torch.Tensor, scale_tril: torch.Tensor) -> torch.Tensor:
    """log N(x_n | mean_k, L_k L_k^T) for every point and component: (N, K)."""
    out = torch.empty(len(x), len(means), dtype=x.dtype)
    constant = 0.5 * x.shape[1] * math.log(2 * math.pi)
    for k in range(len(means)):
        white = torch.linalg.solve_triangular(scale_tril[k], (x - means[k]).T, upper=False)
        out[:, k] = -0.5 * white.pow(2).sum(0) - scale_tril[k].diagonal().log().sum() - constant
    return out


LatentSampler = GaussianMixtureSampler | NeighbourSampler


def build_sampler(sampler: dict[str, Any] | None, latent_dim: int) -> LatentSampler | None:
    """An unfitted sampler of the shape a config describes (its buffers are then loaded from the weights)."""
    if sampler is None:
        return None
    check_sampler_config(sampler, latent_dim)
    if sampler["kind"] == "neighbours":
        return NeighbourSampler(sampler["codes"], latent_dim, sampler["k"])
    return GaussianMixtureSampler(sampler["components"], latent_dim)


def describe(sampler: dict[str, Any] | None) -> str:
    """A config's sampler in words, for messages, cards and the demo."""
    if sampler is None:
        return "none (codes from the prior)"
    if sampler["kind"] == "neighbours":
        return f"nearest neighbours ({sampler['codes']} training codes, {sampler['k']} neighbours each)"
    return f"a {sampler['components']}-component Gaussian mixture"


def spread_indices(size: int, most: int) -> list[int]:
    """Up to ``most`` indices spread evenly over ``range(size)``: the images :func:`training_codes` encodes."""
    return torch.linspace(0, size - 1, min(most, size)).round().long().tolist()


def training_codes(
    model: Any,
    dataset: torch.utils.data.Dataset,
    max_codes: int = 60_000,
    batch_size: int = 500,
    seed: int = 0,
    progress: bool = True,
) -> torch.Tensor:
    """(n, latent_dim) float32 codes on the CPU of up to ``max_codes`` images of ``dataset``, spread over the whole
    set, one posterior draw each (one generator seeded with ``seed``)."""
    index = spread_indices(len(dataset), max_codes)
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, index), batch_size=batch_size)
    generator = torch.Generator(model.device).manual_seed(seed)
    codes = [
        model.encode(x.to(model.device), generator=generator).float().cpu()
        for x in tqdm(loader, desc="encoding for the sampler", disable=not progress, leave=False)
    ]
    return torch.cat(codes)


def fit_latent_sampler(
    model: Any,
    dataset: torch.utils.data.Dataset,
    components: int = 50,
    max_codes: int = 60_000,
    batch_size: int = 500,
    seed: int = 0,
    progress: bool = True,
    kind: str = "gmm",
    neighbours: int = 3,
) -> LatentSampler:
    """Fit a sampler of ``kind`` on the codes of up to ``max_codes`` training images (one posterior draw each, spread
    over the whole set) and attach it to ``model`` (a BAVAE); its ``sample`` then draws from it. Returns the sampler.
    ``"gmm"``: a Gaussian mixture of ``components``; ``"neighbours"``: the codes and ``neighbours`` of each."""
    if kind not in SAMPLER_KINDS:
        raise InvalidValue(f"sampler kind must be one of {list(SAMPLER_KINDS)}, got {kind!r}")
    if kind == "neighbours":  # every code is kept: no more than a config may describe
        max_codes = min(max_codes, MAX_SAMPLER_CODES)
    codes = training_codes(model, dataset, max_codes, batch_size, seed, progress)
    if kind == "neighbours":
        sampler = NeighbourSampler.fit(codes, min(neighbours, len(codes) - 1))
        model.set_latent_sampler(sampler)
        return sampler
    supported = supported_components(len(codes), codes.shape[1])
    if components > supported:
        print(
            f"fitting {supported} mixture component(s), not {components}: {len(codes)} codes of dimension "
            f"{codes.shape[1]} support no more",
            file=sys.stderr,
        )
    sampler = GaussianMixtureSampler.fit(codes, min(components, supported), seed=seed)
    model.set_latent_sampler(sampler)
    return sampler


__all__ = [
    "SAMPLER_KINDS",
    "GaussianMixtureSampler",
    "LatentSampler",
    "NeighbourSampler",
    "build_sampler",
    "describe",
    "check_sampler_config",
    "fit_latent_sampler",
    "mixture_problem",
    "neighbours_problem",
    "sampler_problem",
    "spread_indices",
    "supported_components",
    "training_codes",
]
