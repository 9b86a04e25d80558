"""The errors bavae raises on purpose, and the few checks every layer shares (a leaf: it imports nothing of bavae).

Every deliberate error derives from :class:`BAVAEError`, and also from the built-in error it has always been
(``ValueError`` for a value bavae refuses, ``TypeError`` for a wrong type, ``OSError`` for a path), so
``except ValueError`` keeps working. Its message is one line meant for the user: the ``bavae`` command prints it
as it is, and anything else that escapes is a bug and shows its traceback.
"""

from __future__ import annotations

import math
from typing import Any


class BAVAEError(Exception):
    """Base of every error bavae raises on purpose; the message says what is wrong and what to do, in one line."""


class InvalidValue(BAVAEError, ValueError):
    """An argument bavae refuses: its shape, range or name."""


class InvalidType(BAVAEError, TypeError):
    """An argument of the wrong type."""


class ConfigError(InvalidValue):
    """A config field with a value it cannot take. ``field`` names it, ``problem`` says what it takes; the command
    line names the option instead of the field (``--latent-dim`` for ``latent_dim``)."""

    def __init__(self, field: str | None, problem: str, prefix: str = "config."):
        self.field, self.problem = field, problem
        super().__init__(self.naming(prefix + field) if field else problem)

    def naming(self, name: str) -> str:
        """The message with the field called ``name`` (``--latent-dim``, ``config.latent_dim``)."""
        return f"{name}{'' if self.problem.startswith(':') else ' '}{self.problem}"


class WeightsError(InvalidValue):
    """A weight file is missing, corrupt, or does not match the model."""


class WeightsUnavailableError(InvalidValue):
    """The weights are neither bundled, nor in the cache, nor downloadable right now."""


class UnknownModelError(InvalidValue):
    """Not a zoo name, a local folder or a Hub repo id."""


class HubError(InvalidValue):
    """A push the Hub refused or could not take."""


class DeviceError(InvalidValue):
    """A device this machine does not have."""


class MissingDependency(BAVAEError, ImportError):
    """An optional package a feature needs is not installed; the message says how to install it."""


def one_line(e: BaseException | str) -> str:
    """A message on one line (white space folded), or the error's type when it has none."""
    return " ".join(str(e).split()) or type(e).__name__


def is_int(value: Any) -> bool:
    """An int, and not a bool (which Python counts as one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


__all__ = [
    "BAVAEError",
    "InvalidValue",
    "InvalidType",
    "ConfigError",
    "WeightsError",
    "WeightsUnavailableError",
    "UnknownModelError",
    "HubError",
    "DeviceError",
    "MissingDependency",
    "one_line",
    "is_int",
    "is_number",
]
