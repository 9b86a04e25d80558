"""Pieces every family shares: the implicit encoder, the decoder wrapper, the pair critic and the code critic.

A family only supplies an image *trunk* (image -> feature vector) and a decoder *body*
(vector -> image logits); the roles below wrap them, so the maths of the four players lives in one place.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import InvalidValue


def act() -> nn.Module:
    return nn.LeakyReLU(0.2)


def group_norm(ch: int) -> nn.GroupNorm:
    groups = min(32, ch)
    while ch % groups:
        groups -= 1
    return nn.GroupNorm(groups, ch)


def mlp(*dims: int) -> nn.Sequential:
    """Linear layers with LeakyReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation on every linear and conv layer.

    The critics' outputs go through exp() in both value functions; without a Lipschitz bound they blow up
    (docs/method.md, section 7).
    """
    for name, child in module.named_children():
        if isinstance(child, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            setattr(module, name, nn.utils.parametrizations.spectral_norm(child))
        else:
            apply_spectral_norm(child)
    return module


class ImplicitEncoder(nn.Module):
    """E(x, eps): samples of an implicit posterior q(z|x), with no density.

    The noise eps ~ N(0, I) enters *before* two non-linear layers, so q(z|x) can be any shape
    (bimodal, skewed, ...) rather than mean + sigma * eps.
    """

    def __init__(self, trunk: nn.Module, feature_dim: int, noise_dim: int, latent_dim: int, hidden: int):
        super().__init__()
        if noise_dim < 1:
            raise InvalidValue("posterior_noise_dim must be >= 1: a deterministic encoder has an infinite KL")
        self.trunk, self.noise_dim, self.latent_dim = trunk, noise_dim, latent_dim
        self.noisy_head = nn.Sequential(
            nn.Linear(feature_dim + noise_dim, hidden),
            act(),
            nn.Linear(hidden, hidden),
            act(),
            nn.Linear(hidden, latent_dim),
        )

    def forward(
        self,
        x: torch.Tensor,
        n_samples: int = 1,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Codes of shape (N, latent) for one sample, else (N, n_samples, latent)."""
        features = self.trunk(x)
        n = features.shape[0]
        if noise is None:
            noise = torch.randn(
                n * n_samples, self.noise_dim, device=features.device, dtype=features.dtype, generator=generator
            )
        features = features.repeat_interleave(n_samples, dim=0)  # the trunk runs once per image
        z = self.noisy_head(torch.cat([features, noise.reshape(n * n_samples, -1)], dim=1))
        return z if n_samples == 1 else z.reshape(n, n_samples, -1)


class Decoder(nn.Module):
    """G(z[, eta]): a body maps (z, eta) to logits; a sigmoid maps them to images in [0, 1]."""

    def __init__(self, body: nn.Module, latent_dim: int, noise_dim: int = 0):
        super().__init__()
        self.body, self.latent_dim, self.noise_dim = body, latent_dim, noise_dim

    def forward(
        self, z: torch.Tensor, noise: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if self.noise_dim:
            if noise is None:
                noise = torch.randn(z.shape[0], self.noise_dim, device=z.device, dtype=z.dtype, generator=generator)
            z = torch.cat([z, noise], dim=1)
        return torch.sigmoid(self.body(z))


class PairCritic(nn.Module):
    """A critic on pairs, f(x, z) -> scalar: T(x, z) for inference, D(x, z) for generation.

    It is split into image features, code features and a joint head so that scores for every
    (x_i, z_j) pair of a batch (InfoNCE) cost one trunk pass per image, not one per pair.
    """

    def __init__(self, trunk: nn.Module, feature_dim: int, latent_dim: int, hidden: int, spectral_norm: bool = True):
        super().__init__()
        self.trunk = trunk
        self._trunk_owner: tuple[PairCritic, ...] = ()  # set by borrow_trunk; a tuple, so it is not a submodule
        self.code_net = mlp(latent_dim, hidden, hidden)
        self.from_image = nn.Linear(feature_dim, hidden)
        self.from_code = nn.Linear(hidden, hidden, bias=False)
        self.head = nn.Sequential(act(), nn.Linear(hidden, hidden), act(), nn.Linear(hidden, 1))
        self._spectral_norm = spectral_norm
        if spectral_norm:
            apply_spectral_norm(self)

    def add_sample_head(self) -> None:
        """An image-only score s(x) on the same image features (the objective's ``sample`` term)."""
        head = nn.Linear(self.from_image.in_features, 1)
        self.sample_head = nn.utils.parametrizations.spectral_norm(head) if self._spectral_norm else head

    def sample_score(self, features: torch.Tensor) -> torch.Tensor:
        """Scores of shape (N,) of images alone, given image_features(x); float32 like :meth:`score`."""
        return self.sample_head(features).squeeze(-1).float()

    def borrow_trunk(self, owner: PairCritic) -> None:
        """Score on ``owner``'s image trunk instead of an own one: one trunk, two heads. One trunk pass over a batch
        then serves both critics. The trunk stays registered in ``owner`` alone, so its weights are saved, stepped
        and copied once."""
        del self.trunk
        self._trunk_owner = (owner,)

    @property
    def image_trunk(self) -> nn.Module:
        return self._trunk_owner[0].trunk if self._trunk_owner else self.trunk

    def shares_trunk_with(self, other: PairCritic) -> bool:
        return self.image_trunk is other.image_trunk

    def image_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.image_trunk(x)

    def score(self, features: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Scores of shape (N,) for pairs (x_i, z_i), given image_features(x). Float32 even under autocast: the
        value functions exponentiate them."""
        return self.head(self.from_image(features) + self.from_code(self.code_net(z))).squeeze(-1).float()

    def pairwise_scores(self, features: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Scores of shape (N_x, N_z) for every pair (x_i, z_j), given image_features(x)."""
        hx, hz = self.from_image(features), self.from_code(self.code_net(z))
        return self.head(hx[:, None, :] + hz[None, :, :]).squeeze(-1).float()

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.score(self.image_trunk(x), z)


class CodeCritic(nn.Module):
    """A critic on codes alone, C(z) -> scalar: the objective's ``code`` term. It tells the batch's codes (the
    aggregate posterior q(z)) from prior draws, as the adversary of an adversarial autoencoder does, but with eq. 6's
    KL dual, so at its optimum C* = log p(z) - log q(z) and its value is KL(q(z) || p(z)). No family supplies it:
    codes are vectors in every family."""

    def __init__(self, latent_dim: int, hidden: int, spectral_norm: bool = True):
        super().__init__()
        self.net = mlp(latent_dim, hidden, hidden, 1)
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Scores of shape (N,), float32 even under autocast (the value function exponentiates them)."""
        return self.net(z).squeeze(-1).float()


def conv_stages(image_size: int) -> int:
    """Number of stride-2 stages between image_size and a 4x4 map."""
    stages = int(math.log2(image_size // 4))
    if 4 * 2**stages != image_size:
        raise InvalidValue(f"image_size must be 4 * 2**k, got {image_size}")
    return stages


def hidden_dim(spec) -> int:
    """Width of the dense heads (noisy head, critic heads) for a family width."""
    return 8 * spec.width
