"""MLP family: fully connected trunks, for small images (28x28 Fashion-MNIST and the like)."""

from torch import nn

from ._registry import NetSpec, register_architecture
from .common import act, decoder, hidden_dim, implicit_encoder, pair_critic

mlp = register_architecture("mlp", image_sizes=(28, 32, 64), channels=(1, 3))


def image_trunk(spec: NetSpec) -> nn.Module:
    pixels, hidden = spec.channels * spec.image_size**2, hidden_dim(spec)
    return nn.Sequential(nn.Flatten(), nn.Linear(pixels, hidden), act(), nn.Linear(hidden, hidden), act())


@mlp.encoder
def mlp_encoder(spec: NetSpec) -> nn.Module:
    return implicit_encoder(image_trunk(spec), spec, hidden_dim(spec))


@mlp.decoder
def mlp_decoder(spec: NetSpec) -> nn.Module:
    hidden, size = hidden_dim(spec), spec.image_size
    body = nn.Sequential(
        nn.Linear(spec.latent_dim + spec.decoder_noise_dim, hidden),
        act(),
        nn.Linear(hidden, hidden),
        act(),
        nn.Linear(hidden, spec.channels * size * size),
        nn.Unflatten(1, (spec.channels, size, size)),
    )
    return decoder(body, spec)


@mlp.inference_critic
def mlp_inference_critic(spec: NetSpec) -> nn.Module:
    return pair_critic(image_trunk(spec), spec, hidden_dim(spec))


@mlp.generative_critic
def mlp_generative_critic(spec: NetSpec) -> nn.Module:
    return pair_critic(image_trunk(spec), spec, hidden_dim(spec))
