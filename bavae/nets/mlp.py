"""MLP family: fully connected trunks, for small images (28x28 Fashion-MNIST and the like)."""

from torch import nn

from ._registry import NetSpec, register_architecture
from .common import act, hidden_dim

mlp = register_architecture("mlp", image_sizes=(28, 32, 64), channels=(1, 3))


@mlp.trunk
def image_trunk(spec: NetSpec, normalise: bool) -> nn.Module:
    """Two dense layers; nothing to normalise (``normalise`` is for the convolutional families)."""
    pixels, hidden = spec.channels * spec.image_size**2, hidden_dim(spec)
    return nn.Sequential(nn.Flatten(), nn.Linear(pixels, hidden), act(), nn.Linear(hidden, hidden), act())


@mlp.body
def decoder_body(spec: NetSpec) -> nn.Module:
    hidden, size = hidden_dim(spec), spec.image_size
    return nn.Sequential(
        nn.Linear(spec.latent_dim + spec.decoder_noise_dim, hidden),
        act(),
        nn.Linear(hidden, hidden),
        act(),
        nn.Linear(hidden, spec.channels * size * size),
        nn.Unflatten(1, (spec.channels, size, size)),
    )
