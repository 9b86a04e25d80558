"""bavae: Biadversarial Variational Autoencoders (arXiv 1902.03517), a model zoo with pretrained weights.

    import bavae
    model = bavae.load("bavae-fashionmnist32")
    images = model.sample(64)

Importing is cheap: torch and the Hub client load on first use of a name that needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it; resolved lazily so `import bavae` (and `bavae --help`) stays instant.
_LAZY = {
    "BAVAE": "bavae.model",
    "BAVAEConfig": "bavae.configs",
    "load": "bavae.zoo",
    "list_models": "bavae.zoo",
    "model_info": "bavae.zoo",
    "nets": "bavae.nets",
    "objectives": "bavae.objectives",
}

if TYPE_CHECKING:
    from . import nets, objectives
    from .configs import BAVAEConfig
    from .model import BAVAE
    from .zoo import list_models, load, model_info


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = module if module.__name__.endswith(name) else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bavae' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["BAVAE", "BAVAEConfig", "load", "list_models", "model_info", "nets", "objectives", "__version__"]
