"""What every dataset shares: the one error type, the argument checks, and bavae's cache folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from ..errors import InvalidValue


class DataError(InvalidValue):
    """A dataset cannot be built; the message is one line meant for the user."""


def _check_channels(name: str, channels: int) -> None:
    if channels not in (1, 3):
        raise DataError(f"{name}: channels must be 1 or 3, got {channels!r}")


def _check_split(name: str, split: str, allowed: Sequence[str]) -> None:
    if split not in allowed:
        raise DataError(f"{name}: split must be one of {', '.join(map(repr, allowed))}, got {split!r}")


def _apply_limit(n: int, limit: int | None) -> int:
    if limit is None:
        return n
    if limit < 0:
        raise DataError(f"limit must be >= 0 or None, got {limit}")
    return min(n, limit)


def default_cache_dir() -> Path:
    """``$BAVAE_CACHE`` if set, else ``~/.cache/bavae``."""
    env = os.environ.get("BAVAE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "bavae"
