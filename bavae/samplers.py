"""Post-hoc latent samplers: a density fitted on the training set's codes, to draw codes from instead of p(z).

The prior p(z) = N(0, I) is what the objective matches the codes to, but only in mean and spread: the aggregate
posterior keeps the data's clusters, and prior draws that fall between them decode to blends. Fitting a Gaussian
mixture on the codes after training and decoding its draws ("ex-post density estimation", Ghosh et al. 2020;
pythae's GaussianMixtureSampler) puts the codes where the decoder has seen data.

A sampler is part of a saved model: its tensors ride in ``model.safetensors`` (under ``latent_sampler.``) and its
description in ``config.json`` (``"sampler": {"kind": "gmm", "components": K}``), so it is sha256-checked with the
weights. Drawing needs torch alone; fitting uses scikit-learn (the ``train`` extra).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .configs import SAMPLER_KINDS, check_sampler_config
from .errors import InvalidValue, MissingDependency


class GaussianMixtureSampler(nn.Module):
    """A K-component, full-covariance Gaussian mixture over codes: weights, means and Cholesky factors as buffers."""

    def __init__(self, components: int, latent_dim: int):
        super().__init__()
        self.register_buffer("weights", torch.full((components,), 1.0 / components))
        self.register_buffer("means", torch.zeros(components, latent_dim))
        scale_tril = torch.zeros(components, latent_dim, latent_dim)
        scale_tril.diagonal(dim1=-2, dim2=-1).fill_(1.0)  # not torch.eye: on the meta device it imports torch._dynamo
        self.register_buffer("scale_tril", scale_tril)

    @property
    def config(self) -> dict[str, Any]:
        return {"kind": "gmm", "components": self.means.shape[0]}

    @classmethod
    def fit(
        cls, codes: torch.Tensor, components: int = 50, seed: int = 0, max_iter: int = 200
    ) -> GaussianMixtureSampler:
        """Fit on codes (N, latent_dim) with scikit-learn's EM (k-means initialisation, full covariances)."""
        try:  # an extra (bavae[train]): drawing from a fitted mixture needs torch alone
            from sklearn.mixture import GaussianMixture
        except ImportError:
            raise MissingDependency(
                "fitting a latent sampler needs scikit-learn: pip install 'bavae[train]' (or pip install scikit-learn)"
            ) from None

        codes = codes.detach().double().cpu().numpy()
        if codes.ndim != 2 or len(codes) < 2 * components:
            raise InvalidValue(
                f"fitting {components} components needs at least {2 * components} codes, "
                f"got an array of shape {codes.shape}"
            )
        if not np.isfinite(codes).all():
            raise InvalidValue("the codes to fit hold NaN or inf values: the model is broken")
        gmm = GaussianMixture(
            components, covariance_type="full", reg_covar=1e-5, max_iter=max_iter, random_state=seed
        ).fit(codes)
        sampler = cls(components, codes.shape[1])
        sampler.weights.copy_(torch.from_numpy(gmm.weights_ / gmm.weights_.sum()))
        sampler.means.copy_(torch.from_numpy(gmm.means_))
        sampler.scale_tril.copy_(torch.linalg.cholesky(torch.from_numpy(gmm.covariances_)))
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


def build_sampler(sampler: dict[str, Any] | None, latent_dim: int) -> GaussianMixtureSampler | None:
    """An unfitted sampler of the shape a config describes (its buffers are then loaded from the weights)."""
    if sampler is None:
        return None
    check_sampler_config(sampler, latent_dim)
    return GaussianMixtureSampler(sampler["components"], latent_dim)


def fit_latent_sampler(
    model: Any,
    dataset: torch.utils.data.Dataset,
    components: int = 50,
    max_codes: int = 60_000,
    batch_size: int = 500,
    seed: int = 0,
    progress: bool = True,
) -> GaussianMixtureSampler:
    """Fit a Gaussian mixture on the codes of up to ``max_codes`` training images (one posterior draw each, spread
    over the whole set) and attach it to ``model`` (a BAVAE); its ``sample`` then draws from it. Returns the sampler."""
    n = min(max_codes, len(dataset))
    index = torch.linspace(0, len(dataset) - 1, n).round().long().tolist()
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, index), batch_size=batch_size)
    generator = torch.Generator(model.device).manual_seed(seed)
    codes = [
        model.encode(x.to(model.device), generator=generator).float().cpu()
        for x in tqdm(loader, desc="encoding for the sampler", disable=not progress, leave=False)
    ]
    codes = torch.cat(codes)
    # A full covariance has d(d+1)/2 numbers: keep at least 2(d+1) codes per component, or the mixture copies codes
    supported = max(1, len(codes) // (2 * (codes.shape[1] + 1)))
    if components > supported:
        print(
            f"fitting {supported} mixture component(s), not {components}: {len(codes)} codes of dimension "
            f"{codes.shape[1]} support no more",
            file=sys.stderr,
        )
    sampler = GaussianMixtureSampler.fit(codes, min(components, supported), seed=seed)
    model.set_latent_sampler(sampler)
    return sampler


__all__ = ["SAMPLER_KINDS", "GaussianMixtureSampler", "build_sampler", "check_sampler_config", "fit_latent_sampler"]
