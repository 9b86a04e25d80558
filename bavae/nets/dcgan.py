"""DCGAN family (Radford et al. 2016): stride-2 4x4 convolutions down to a 4x4 map and back up.

GroupNorm instead of BatchNorm in the encoder/decoder so outputs do not depend on the batch
(encode one image or a thousand, same codes); no normalisation in the critics (spectral norm instead).
"""

from torch import nn

from ._registry import NetSpec, register_architecture
from .common import act, conv_stages, group_norm, hidden_dim

dcgan = register_architecture("dcgan", image_sizes=(32, 64), channels=(1, 3))


def channel_plan(spec: NetSpec) -> list[int]:
    """Channels after each downsampling stage: w, 2w, 4w, (8w)."""
    return [spec.width * 2**i for i in range(conv_stages(spec.image_size))]


@dcgan.trunk
def image_trunk(spec: NetSpec, normalise: bool) -> nn.Module:
    chans, layers, c_in = channel_plan(spec), [], spec.channels
    for i, c in enumerate(chans):
        layers.append(nn.Conv2d(c_in, c, 4, 2, 1))
        if normalise and i > 0:
            layers.append(group_norm(c))
        layers.append(act())
        c_in = c
    layers += [nn.Flatten(), nn.Linear(c_in * 16, hidden_dim(spec)), act()]
    return nn.Sequential(*layers)


@dcgan.body
def decoder_body(spec: NetSpec) -> nn.Module:
    chans = channel_plan(spec)[::-1]  # 4w, 2w, w at 32px
    layers: list[nn.Module] = [
        nn.Linear(spec.latent_dim + spec.decoder_noise_dim, chans[0] * 16),
        nn.Unflatten(1, (chans[0], 4, 4)),
        group_norm(chans[0]),
        nn.ReLU(),
    ]
    for c_in, c_out in zip(chans[:-1], chans[1:]):
        layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), group_norm(c_out), nn.ReLU()]
    layers.append(nn.ConvTranspose2d(chans[-1], spec.channels, 4, 2, 1))
    return nn.Sequential(*layers)
