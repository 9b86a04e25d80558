"""The table of network families: :func:`register_architecture` fills it, the rest of bavae reads it through
:func:`list_architectures`, :func:`get_architecture` and :func:`build` (re-exported by :mod:`bavae.nets`)."""

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
