"""The table of network families: :func:`register_architecture` fills it, the rest of bavae reads it through
:func:`list_architectures`, :func:`get_architecture` and :func:`build` (re-exported by :mod:`bavae.nets`).

A family supplies two builders, an image *trunk* (image -> ``hidden_dim(spec)`` features; ``normalise`` is False
for the critics, which are spectrally normalised instead) and a decoder *body* (code -> image logits). The four
players are made here from them, so every family's players are the same maths around its own layers.
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass
from typing import Callable

from torch import nn

from ..errors import InvalidValue
from .common import Decoder, ImplicitEncoder, PairCritic, hidden_dim

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


Trunk = Callable[[NetSpec, bool], nn.Module]  # (spec, normalise) -> image to hidden_dim(spec) features
Body = Callable[[NetSpec], nn.Module]  # spec -> (z[, eta]) to image logits


@dataclass
class Architecture:
    name: str
    image_sizes: tuple[int, ...]
    channels: tuple[int, ...]
    image_trunk: Trunk | None = None
    decoder_body: Body | None = None

    def trunk(self, fn: Trunk) -> Trunk:
        """Decorator: the family's image trunk."""
        self.image_trunk = fn
        return fn

    def body(self, fn: Body) -> Body:
        """Decorator: the family's decoder body."""
        self.decoder_body = fn
        return fn

    @property
    def builders(self) -> dict[str, Callable[[NetSpec], nn.Module]]:
        """One builder per role (:data:`ROLES`), made from the trunk and the body."""

        def encoder(spec: NetSpec) -> nn.Module:
            trunk = self.image_trunk(spec, True)
            return ImplicitEncoder(trunk, hidden_dim(spec), spec.posterior_noise_dim, spec.latent_dim, hidden_dim(spec))

        def decoder(spec: NetSpec) -> nn.Module:
            return Decoder(self.decoder_body(spec), spec.latent_dim, spec.decoder_noise_dim)

        def critic(spec: NetSpec) -> nn.Module:  # T(x, z) and D(x, z) have the same shape
            trunk = self.image_trunk(spec, False)
            return PairCritic(trunk, hidden_dim(spec), spec.latent_dim, hidden_dim(spec), spec.spectral_norm)

        return {"encoder": encoder, "decoder": decoder, "inference_critic": critic, "generative_critic": critic}

    def check(self, image_size: int, channels: int) -> None:
        if image_size not in self.image_sizes or channels not in self.channels:
            raise InvalidValue(
                f"architecture {self.name!r} supports image sizes {list(self.image_sizes)} and channels "
                f"{list(self.channels)}; got image_size={image_size}, channels={channels}"
            )

    def build(self, role: str, spec: NetSpec) -> nn.Module:
        self.check(spec.image_size, spec.channels)
        if role not in ROLES:
            raise InvalidValue(f"architecture {self.name!r} has no {role!r} builder; roles: {list(ROLES)}")
        return self.builders[role](spec)


_ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(name: str, *, image_sizes: tuple[int, ...], channels: tuple[int, ...]) -> Architecture:
    if name in _ARCHITECTURES:
        raise InvalidValue(f"architecture {name!r} is already registered")
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
        raise InvalidValue(f"unknown architecture {name!r}{hint}; known: {list_architectures()}") from None


def build(arch: str, role: str, spec: NetSpec) -> nn.Module:
    return get_architecture(arch).build(role, spec)
