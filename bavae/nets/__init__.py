"""Registry of network families (timm-style).

A family is one file in this package (``mlp.py``, ``dcgan.py``, ``resnet.py``). It declares an
:class:`Architecture` with the image sizes and channel counts it supports, then registers one builder
per role with a decorator::

    dcgan = register_architecture("dcgan", image_sizes=(32, 64), channels=(1, 3))

    @dcgan.encoder
    def dcgan_encoder(spec: NetSpec) -> nn.Module: ...

Adding a family touches only its own file (plus one import line below). Nothing outside this module
knows how the table is stored: use :func:`list_architectures`, :func:`get_architecture` and :func:`build`.
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass, field
from typing import Callable

from torch import nn

ROLES = ("encoder", "decoder", "inference_critic", "generative_critic")


@dataclass(frozen=True)
class NetSpec:
    """Everything a builder needs to know; a view of the model config."""

    image_size: int
    channels: int
    latent_dim: int
    posterior_noise_dim: int  # size of eps in E(x, eps)
    decoder_noise_dim: int  # size of eta in G(z, eta); 0 = deterministic decoder
    width: int  # base channel / hidden width of the family
    spectral_norm: bool  # on the critics only


@dataclass
class Architecture:
    name: str
    image_sizes: tuple[int, ...]
    channels: tuple[int, ...]
    builders: dict[str, Callable[[NetSpec], nn.Module]] = field(default_factory=dict)

    def _register(self, role: str) -> Callable:
        def decorator(fn: Callable[[NetSpec], nn.Module]) -> Callable[[NetSpec], nn.Module]:
            self.builders[role] = fn
            return fn

        return decorator

    @property
    def encoder(self) -> Callable:
        return self._register("encoder")

    @property
    def decoder(self) -> Callable:
        return self._register("decoder")

    @property
    def inference_critic(self) -> Callable:
        return self._register("inference_critic")

    @property
    def generative_critic(self) -> Callable:
        return self._register("generative_critic")

    def check(self, image_size: int, channels: int) -> None:
        if image_size not in self.image_sizes or channels not in self.channels:
            raise ValueError(
                f"architecture {self.name!r} supports image sizes {list(self.image_sizes)} and channels "
                f"{list(self.channels)}; got image_size={image_size}, channels={channels}"
            )

    def build(self, role: str, spec: NetSpec) -> nn.Module:
        self.check(spec.image_size, spec.channels)
        if role not in self.builders:
            raise ValueError(f"architecture {self.name!r} has no {role!r} builder; roles: {list(ROLES)}")
        return self.builders[role](spec)


_ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(name: str, *, image_sizes: tuple[int, ...], channels: tuple[int, ...]) -> Architecture:
    if name in _ARCHITECTURES:
        raise ValueError(f"architecture {name!r} is already registered")
    arch = Architecture(name, tuple(image_sizes), tuple(channels))
    _ARCHITECTURES[name] = arch
    return arch


def list_architectures(pattern: str = "*") -> list[str]:
    """Names of the registered families matching an fnmatch ``pattern``, sorted."""
    return sorted(n for n in _ARCHITECTURES if fnmatch.fnmatch(n, pattern))


def get_architecture(name: str) -> Architecture:
    try:
        return _ARCHITECTURES[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_ARCHITECTURES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown architecture {name!r}{hint}; known: {list_architectures()}") from None


def build(arch: str, role: str, spec: NetSpec) -> nn.Module:
    return get_architecture(arch).build(role, spec)


# Importing the family files registers them.
from . import dcgan, mlp, resnet  # noqa: E402,F401

__all__ = ["ROLES", "NetSpec", "Architecture", "register_architecture", "list_architectures", "get_architecture", "build"]
