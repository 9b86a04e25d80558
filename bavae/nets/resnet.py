"""ResNet family: pre-activation residual blocks, average-pool down / nearest up, to and from 4x4."""

import torch
from torch import nn
from torch.nn import functional as F

from ._registry import NetSpec, register_architecture
from .common import act, conv_stages, group_norm, hidden_dim

resnet = register_architecture("resnet", image_sizes=(32, 64, 128), channels=(1, 3))


class ResBlock(nn.Module):
    """norm-act-conv twice, with a 1x1 skip when channels change; resamples by 2 before ('up') or after ('down')."""

    def __init__(self, c_in: int, c_out: int, resample: str, normalise: bool):
        super().__init__()
        norm = group_norm if normalise else (lambda c: nn.Identity())
        self.resample = resample
        self.body = nn.Sequential(
            norm(c_in),
            act(),
            nn.Conv2d(c_in, c_out, 3, 1, 1),
            norm(c_out),
            act(),
            nn.Conv2d(c_out, c_out, 3, 1, 1),
        )
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample == "up":
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        out = self.body(x) + self.skip(x)
        return F.avg_pool2d(out, 2) if self.resample == "down" else out


def channel_plan(spec: NetSpec) -> list[int]:
    """Channels per resolution stage, doubling up to 8w."""
    return [spec.width * min(2**i, 8) for i in range(conv_stages(spec.image_size))]


@resnet.trunk
def image_trunk(spec: NetSpec, normalise: bool) -> nn.Module:
    chans = channel_plan(spec)
    layers: list[nn.Module] = [nn.Conv2d(spec.channels, chans[0], 3, 1, 1)]
    c_in = chans[0]
    for c in chans:
        layers.append(ResBlock(c_in, c, "down", normalise))
        c_in = c
    layers += [act(), nn.Flatten(), nn.Linear(c_in * 16, hidden_dim(spec)), act()]
    return nn.Sequential(*layers)


@resnet.body
def decoder_body(spec: NetSpec) -> nn.Module:
    chans = channel_plan(spec)[::-1]
    layers: list[nn.Module] = [
        nn.Linear(spec.latent_dim + spec.decoder_noise_dim, chans[0] * 16),
        nn.Unflatten(1, (chans[0], 4, 4)),
    ]
    c_in = chans[0]
    for c in chans:
        layers.append(ResBlock(c_in, c, "up", normalise=True))
        c_in = c
    layers += [group_norm(c_in), act(), nn.Conv2d(c_in, spec.channels, 3, 1, 1)]
    return nn.Sequential(*layers)
