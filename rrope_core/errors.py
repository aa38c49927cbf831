"""The one exception family of resonance-rope.

Every error the library raises on purpose derives from ``RopeError``, itself a
``ValueError`` (so ``except ValueError`` keeps working for callers that predate us).
Messages always name the argument, the value received and what is allowed.
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = [
    "RopeError",
    "RopeConfigError",
    "RopeInputError",
    "BackendNotFoundError",
    "MixedFrameworkError",
    "RopeWarning",
    "warn",
]


class RopeError(ValueError):
    """Root of every error raised by resonance-rope."""


class RopeConfigError(RopeError):
    """An invalid RoPE configuration (raised when a config or scaling is constructed)."""


class RopeInputError(RopeError):
    """An invalid array argument: ``x``, ``positions`` or ``seq_len``."""


class BackendNotFoundError(RopeError, ImportError):
    """An unknown or uninstalled backend was asked for."""


class MixedFrameworkError(RopeError, TypeError):
    """Arrays of two different frameworks were passed to one call."""


class RopeWarning(UserWarning):
    """A config that works but probably does not mean what it says (unknown keys, odd values)."""


def warn(message: str) -> None:
    """``warnings.warn(message, RopeWarning)`` attributed to the first caller outside ``rrope_core``
    (the user's line), however deep in the package it is raised: what Python 3.12's
    ``skip_file_prefixes`` does, for the Python versions before it too."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(1), 2  # stacklevel 2: warn's caller
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, RopeWarning, stacklevel=level)


def bad(field: str, value: object, allowed: str, cls: type[RopeError] = RopeConfigError) -> RopeError:
    """Build the standard message: ``<field>=<value!r> is invalid: <allowed>``."""
    return cls(f"{field}={value!r} is invalid: {allowed}")
