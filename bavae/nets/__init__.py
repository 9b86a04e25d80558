"""Registry of network families (timm-style).

A family is one file in this package (``mlp.py``, ``dcgan.py``, ``resnet.py``). It declares an
:class:`Architecture` with the image sizes and channel counts it supports, then registers its image trunk and its
decoder body with decorators; the registry makes the encoder, the decoder and both critics from them::

    dcgan = register_architecture("dcgan", image_sizes=(32, 64), channels=(1, 3))

    @dcgan.trunk
    def image_trunk(spec: NetSpec, normalise: bool) -> nn.Module: ...  # image -> hidden_dim(spec) features

    @dcgan.body
    def decoder_body(spec: NetSpec) -> nn.Module: ...  # (z[, eta]) -> image logits

Adding a family touches only its own file (plus one import line below). The table lives in ``_registry.py``,
which the family files import (this package's ``__init__`` only gathers them). Nothing outside the registry
knows how the table is stored: use :func:`list_architectures`, :func:`get_architecture` and :func:`build`.
"""

# Importing the family files registers them.
from . import dcgan, mlp, resnet  # noqa: F401
from ._registry import ROLES, Architecture, NetSpec, build, get_architecture, list_architectures, register_architecture
from .common import CodeCritic, hidden_dim

__all__ = [
    "ROLES",
    "NetSpec",
    "Architecture",
    "register_architecture",
    "list_architectures",
    "get_architecture",
    "build",
    "CodeCritic",
    "hidden_dim",
]
