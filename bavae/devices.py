"""Which device to run on: a name the user gave (checked for its form by :func:`bavae.configs.check_device`,
without torch) resolved against this machine, and seeded noise on it."""

from __future__ import annotations

from typing import Any

import torch

from .configs import check_device
from .errors import DeviceError


def resolve_device(device: Any = None) -> torch.device:
    """The torch.device for ``device`` (None/"auto": cuda if available, else cpu), checked against this machine."""
    check_device(device)
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {str(device)!r} was asked for, but torch sees no CUDA device")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise DeviceError(
            f"device {str(device)!r} was asked for, but torch sees {n} CUDA device(s): cuda:0 to cuda:{n - 1}"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {str(device)!r} was asked for, but torch sees no MPS device")
    if device.type == "cpu" and device.index not in (None, 0):
        raise DeviceError(f"device {str(device)!r}: there is one cpu device; use 'cpu'")
    return device


def seeded_generator(seed: int | None, device: Any) -> torch.Generator | None:
    """A torch.Generator on ``device`` seeded with ``seed`` (None: no generator, the global RNG draws)."""
    return None if seed is None else torch.Generator(device).manual_seed(seed)


__all__ = ["resolve_device", "seeded_generator", "check_device"]
