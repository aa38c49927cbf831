"""Small validators shared by the config and scaling dataclasses (messages name field, value, rule)."""

from __future__ import annotations

import math
import numbers

from .errors import RopeConfigError, RopeError, bad


def positive_int(field: str, value: object, cls: type[RopeError] = RopeConfigError) -> int:
    """An int (not bool) > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise bad(field, value, "must be a positive integer", cls)
    return int(value)


def real(field: str, value: object, *, min_value: float | None = None, strict: bool = False) -> float:
    """A finite real number (not bool, not NaN), optionally ``>= min_value`` (``>`` if ``strict``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise bad(field, value, "must be a finite real number")
    value = float(value)
    if min_value is not None:
        if strict and not value > min_value:
            raise bad(field, value, f"must be > {min_value:g}")
        if not strict and not value >= min_value:
            raise bad(field, value, f"must be >= {min_value:g}")
    return value


def optional_real(field: str, value: object, *, min_value: float, strict: bool = False) -> float | None:
    """``None`` or a ``real`` with the same bounds."""
    return None if value is None else real(field, value, min_value=min_value, strict=strict)


def boolean(field: str, value: object) -> bool:
    """A real ``bool`` (so ``resonance="no"`` does not silently mean True)."""
    if not isinstance(value, bool):
        raise bad(field, value, "must be True or False")
    return value


def real_tuple(field: str, values: object) -> tuple[float, ...]:
    """A non-empty sequence of finite reals > 0, returned as a tuple (hashable, immutable)."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise bad(field, values, "must be a sequence of finite numbers > 0")
    out = tuple(values)
    if not out:
        raise bad(field, values, "must not be empty")
    for i, v in enumerate(out):
        real(f"{field}[{i}]", v, min_value=0.0, strict=True)
    return tuple(float(v) for v in out)


__all__ = ["positive_int", "real", "optional_real", "boolean", "real_tuple", "RopeConfigError"]
