"""Registry of network families (timm-style).

A family is one file in this package (``mlp.py``, ``dcgan.py``, ``resnet.py``). It declares an
:class:`Architecture` with the image sizes and channel counts it supports, then registers one builder
per role with a decorator::

    dcgan = register_architecture("dcgan", image_sizes=(32, 64), channels=(1, 3))

    @dcgan.encoder
    def dcgan_encoder(spec: NetSpec) -> nn.Module: ...

Adding a family touches only its own file (plus one import line below). The table lives in ``_registry.py``,
which the family files import (this package's ``__init__`` only gathers them). Nothing outside the registry
knows how the table is stored: use :func:`list_architectures`, :func:`get_architecture` and :func:`build`.
"""

# Importing the family files registers them.
from . import dcgan, mlp, resnet  # noqa: F401
from ._registry import ROLES, Architecture, NetSpec, build, get_architecture, list_architectures, register_architecture

__all__ = [
    "ROLES",
    "NetSpec",
    "Architecture",
    "register_architecture",
    "list_architectures",
    "get_architecture",
    "build",
]
