"""Config dataclass helpers: documented fields, and a round trip to and from strings (CLI ``--set``, URL).

Every demo's ``Config`` is a frozen dataclass whose fields are declared with :func:`param`, so one
description (help text, range, choices) feeds the widgets, the CLI, the URL and validation.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from .i18n import N_, Msg


@dataclass(frozen=True)
class Spec:
    """What a config field accepts; read by widgets, the CLI and the URL parser."""

    help: str
    lo: float | None = None  # inclusive lower bound for numbers
    hi: float | None = None  # inclusive upper bound for numbers
    choices: tuple | None = None  # the allowed values (strings, or numbers shown on a select slider)
    step: float | None = None  # slider step for numbers
    label: str | None = None  # widget label; defaults to the field name
    widget: bool = True  # False: set by the CLI/URL only (e.g. seed, set from the sidebar)


def param(default: Any, help: str, *, lo=None, hi=None, choices: Sequence | None = None, step=None,
          label: str | None = None, widget: bool = True):
    """A dataclass field with its documentation and range; use for every field of a demo ``Config``."""
    spec = Spec(help=help, lo=lo, hi=hi, choices=tuple(choices) if choices is not None else None,
                step=step, label=label, widget=widget)
    return field(default=default, metadata={"spec": spec})


def spec_of(f: dataclasses.Field) -> Spec:
    return f.metadata.get("spec") or Spec(help="")


class ConfigError(ValueError):
    """A value that does not fit a config field; the message (a :class:`dlviz.i18n.Msg`: English, shown translated
    with ``tr``) says which field and what it accepts."""


def _short(value: Any, limit: int = 60) -> str:
    """A value for a message: repr for text, at most ``limit`` characters (a link may carry 5,000 digits)."""
    r = repr(value) if isinstance(value, str) else str(value)
    return r if len(r) <= limit else r[: limit - 1] + "…"


def parse_value(f: dataclasses.Field, text: str) -> Any:
    """Parse ``text`` into the type of field ``f`` (its default's type) and check its range and choices."""
    default = f.default
    try:
        if isinstance(default, bool):
            low = text.strip().lower()
            if low not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                raise ValueError
            value: Any = low in ("true", "1", "yes", "on")
        elif isinstance(default, int):
            value = int(float(text)) if float(text).is_integer() else int(text)
        elif isinstance(default, float):
            value = float(text)
            if not math.isfinite(value):
                raise ValueError
        else:
            value = str(text)
    except (ValueError, OverflowError):  # int("9" * 5000) is a ValueError (digit limit); int(inf) would overflow
        raise ConfigError(Msg(N_("{setting}: expected {type}"), setting=f"{f.name}={_short(text)}",
                               type=type(default).__name__)) from None
    return check_value(f, value, shown=_short(text))


def check_value(f: dataclasses.Field, value: Any, shown: str | None = None) -> Any:
    """``value`` if it fits field ``f``'s choices and range, else a ConfigError (showing ``shown``, e.g. the text
    as typed, instead of the value)."""
    spec = spec_of(f)
    shown = shown or _short(value)
    setting = f"{f.name}={shown}"
    if spec.choices is not None and isinstance(value, (str, bool)) and value not in spec.choices:
        raise ConfigError(Msg(N_("{setting}: choose one of {choices}"), setting=setting,
                              choices=", ".join(map(str, spec.choices))))
    if spec.choices is not None and isinstance(value, int) and not isinstance(value, bool) \
            and value not in spec.choices:  # sizes, head counts: only the listed values make a valid model
        raise ConfigError(Msg(N_("{setting}: choose one of {choices}"), setting=setting,
                              choices=", ".join(map(str, spec.choices))))
    if spec.choices is not None and isinstance(value, float) and not min(spec.choices) <= value <= max(spec.choices):
        raise ConfigError(Msg(N_("{setting}: must lie in [{lo}, {hi}]"), setting=setting, lo=min(spec.choices),
                              hi=max(spec.choices)))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if (spec.lo is not None and value < spec.lo) or (spec.hi is not None and value > spec.hi):
            raise ConfigError(Msg(N_("{setting}: must lie in [{lo}, {hi}]"), setting=setting, lo=spec.lo, hi=spec.hi))
    return value


def with_overrides(config, overrides: dict[str, str]):
    """Return ``config`` with string overrides applied (``--set key=value``, URL query params).

    Unknown keys and bad values raise :class:`ConfigError` naming the key and what it accepts.
    """
    fields = {f.name: f for f in dataclasses.fields(config)}
    changes = {}
    for key, text in overrides.items():
        if key not in fields:
            raise ConfigError(Msg(N_("unknown setting {key}; known: {known}"), key=_short(key), known=", ".join(fields)))
        changes[key] = parse_value(fields[key], text)
    return dataclasses.replace(config, **changes)


def to_strings(config, base=None) -> dict[str, str]:
    """The fields of ``config`` as strings; with ``base``, only the fields that differ from it."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if base is not None and getattr(base, f.name) == value:
            continue
        out[f.name] = str(value).lower() if isinstance(value, bool) else repr(value) if isinstance(value, float) else str(value)
    return out


def describe(config_cls) -> dict[str, dict]:
    """JSON-ready description of a Config class: default, help, range and choices per field."""
    out = {}
    for f in dataclasses.fields(config_cls):
        s = spec_of(f)
        d = {"default": f.default, "type": type(f.default).__name__, "help": s.help}
        if s.lo is not None or s.hi is not None:
            d["range"] = [s.lo, s.hi]
        if s.choices is not None:
            d["choices"] = list(s.choices)
        out[f.name] = d
    return out
