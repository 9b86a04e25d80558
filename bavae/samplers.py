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

from typing import Any

import torch
from torch import nn

SAMPLER_KINDS = ("gmm",)
MAX_COMPONENTS = 1024  # a config asking for more is not one we wrote


def check_sampler_config(sampler: Any, latent_dim: int) -> None:
    """Raise ValueError naming what is wrong with a config's ``sampler`` entry (None means: no fitted sampler)."""
    if sampler is None:
        return
    expected = f'null or {{"kind": "gmm", "components": K}} with 1 <= K <= {MAX_COMPONENTS}'
    if (
        not isinstance(sampler, dict)
        or sampler.get("kind") not in SAMPLER_KINDS
        or set(sampler) != {"kind", "components"}
    ):
        raise ValueError(f"config.sampler must be {expected}, got {sampler!r}")
    k = sampler["components"]
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_COMPONENTS:
        raise ValueError(f"config.sampler must be {expected}, got {sampler!r}")


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

    @classmethod
    def fit(
        cls, codes: torch.Tensor, components: int = 50, seed: int = 0, max_iter: int = 200
    ) -> GaussianMixtureSampler:
        """Fit on codes (N, latent_dim) with scikit-learn's EM (k-means initialisation, full covariances)."""
        try:
            from sklearn.mixture import GaussianMixture
        except ImportError:
            raise ImportError(
                "fitting a latent sampler needs scikit-learn: pip install 'bavae[train]' (or pip install scikit-learn)"
            ) from None
        import numpy as np

        codes = codes.detach().double().cpu().numpy()
        if codes.ndim != 2 or len(codes) < 2 * components:
            raise ValueError(
                f"fitting {components} components needs at least {2 * components} codes, "
                f"got an array of shape {codes.shape}"
            )
        if not np.isfinite(codes).all():
            raise ValueError("the codes to fit hold NaN or inf values: the model is broken")
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


__all__ = ["SAMPLER_KINDS", "GaussianMixtureSampler", "build_sampler", "check_sampler_config"]
