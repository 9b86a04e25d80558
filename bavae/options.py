"""Click types and options the ``bavae`` commands share: one ``--device``, choices read from a registry, and the
options of ``bavae train`` made from the fields of :mod:`bavae.configs` (their defaults, help and flags).

Light, as :mod:`bavae.cli` is: click and the configs, no torch.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Callable, Iterable

import click

from .configs import DEVICE_HELP, check_device
from .errors import BAVAEError


class RegistryChoice(click.Choice):
    """One of the names a registry holds, read from it when a command needs them (its help, its parsing): the
    registry may be a torch module that ``bavae --help`` must not load. A name it does not hold fails with the
    registry's own message (``check``), e.g. "unknown architecture 'vit' (did you mean ...)"."""

    def __init__(self, names: Callable[[], Iterable[str]], check: Callable[[str], Any] | None = None):
        self._names, self._check, self.case_sensitive = names, check, True

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self._names())

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if self._check is not None and value not in self.choices:
            try:
                self._check(value)
            except BAVAEError as e:
                self.fail(str(e), param, ctx)
        return super().convert(value, param, ctx)


class DeviceType(click.ParamType):
    """A device name by its form (auto, cpu, cuda, cuda:N, mps); this machine is asked when the device is used."""

    name = "device"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            check_device(value)
        except BAVAEError as e:
            self.fail(str(e), param, ctx)
        return value


DEVICE = DeviceType()


def device_option(f: Callable) -> Callable:
    return click.option("--device", type=DEVICE, default="auto", show_default=True, help=DEVICE_HELP + ".")(f)


def flag(name: str, cls: type | None = None) -> str:
    """The command-line option of a config field (``--latent-dim`` for ``latent_dim``)."""
    field = cls.__dataclass_fields__.get(name) if cls is not None else None
    return (field.metadata.get("flag") if field is not None else None) or "--" + name.replace("_", "-")


def field_options(cls: type, train_defaults: bool = False) -> list[click.Option]:
    """A click option per field of the dataclass ``cls`` (all but those marked ``cli=False``), from the field's
    type, default and metadata (see :func:`bavae.configs.option`). ``train_defaults``: a field's
    ``train_default``, where it has one, is the option's default."""
    hints = typing.get_type_hints(cls)
    options = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        default = f.default_factory() if callable(f.default_factory) else f.default
        if train_defaults and "train_default" in meta:
            default = meta["train_default"]
        kind = hints[f.name]
        if isinstance(kind, types.UnionType):  # `int | None`: an optional int
            kind = next(k for k in typing.get_args(kind) if k is not type(None))
        kw: dict[str, Any] = dict(default=default, help=meta.get("help") or None)
        decls = [f.name, flag(f.name, cls)]
        if "choices" in meta:
            kw["type"] = RegistryChoice(meta["choices"], meta.get("check"))
        elif meta.get("device"):
            kw["type"] = DEVICE
        elif kind is bool:
            decls[1] += "/" + meta.get("off_flag", "--no-" + f.name.replace("_", "-"))
        elif typing.get_origin(kind) is dict:  # NAME=VALUE, repeated
            kw.update(multiple=True, default=(), metavar="NAME=VALUE")
        else:
            kw["type"] = kind
        options.append(click.Option(decls, **kw))
    return options


__all__ = ["RegistryChoice", "DeviceType", "DEVICE", "device_option", "flag", "field_options"]
