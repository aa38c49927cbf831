"""Checked positions: every backend validates position *values* before it rotates.

Off by default. The reference refuses negative positions (``rrope_core.inputs``); the backends
check metadata only and rotate a negative position backwards without a word, because reading
values costs a device-to-host sync per call. Checked mode makes every backend read them and raise
the reference's ``RopeInputError`` for ``m < 0`` (and for ``m`` beyond the backend's
``MAX_POSITION`` where it has one). Turn it on with

* ``RROPE_CHECK_POSITIONS=1`` in the environment (read once, when ``rrope_core`` is imported),
* ``rr.set_checked_positions(True)`` (the process default), or
* ``with rr.checked_positions():`` (this thread / asyncio task only; a ``contextvars.ContextVar``).

Inside traced code the values are not known on the host: ``rrope_jax`` under ``jax.jit`` checks
through ``jax.debug.callback`` (the error surfaces as a ``JaxRuntimeError`` carrying this message
when the result is computed), ``rrope_tensorflow`` inside ``tf.function`` through
``tf.debugging`` assertions (an ``InvalidArgumentError``); there the mode is read when the
function is *traced*, and a compiled function keeps it. Inside ``torch.compile`` tracing
``rrope_torch`` does not check (no values; the first eager call does); inside ``mx.compile``
``rrope_mlx``'s read of the values fails, so turn the mode off around compiled MLX functions;
``rrope_keras`` checks only values it can read (not traced ones). The mode is for debugging and tests:
it costs a sync per call and does not work inside CUDA-graph capture.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator

from .errors import RopeInputError, bad

__all__ = ["ENV_VAR", "positions_checked", "checked_positions", "set_checked_positions", "check_range", "NEGATIVE"]

ENV_VAR = "RROPE_CHECK_POSITIONS"
_ON, _OFF = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")
#: The reason given for a negative position (also the text of graph-mode assertions).
NEGATIVE = f"must be >= 0 (checked positions mode: {ENV_VAR} / rrope_core.checked_positions)"


def _from_env() -> bool:
    value = os.environ.get(ENV_VAR, "").strip().lower()
    if value not in _ON + _OFF:
        raise bad(ENV_VAR, value, f"must be one of {_ON} (on) or {_OFF} (off)", RopeInputError)
    return value in _ON


_default = _from_env()
_local: contextvars.ContextVar[bool | None] = contextvars.ContextVar("rrope_checked_positions", default=None)


def positions_checked() -> bool:
    """Whether backends validate position values now (the context's setting, else the default)."""
    local = _local.get()
    return _default if local is None else local


def set_checked_positions(enabled: bool) -> None:
    """Set the process default (what a context without ``checked_positions`` sees)."""
    global _default
    if not isinstance(enabled, bool):
        raise bad("enabled", enabled, "must be True or False", RopeInputError)
    _default = enabled


@contextlib.contextmanager
def checked_positions(enabled: bool = True) -> Iterator[None]:
    """``with checked_positions():`` validates position values inside the block (this context only)."""
    if not isinstance(enabled, bool):
        raise bad("enabled", enabled, "must be True or False", RopeInputError)
    token = _local.set(enabled)
    try:
        yield
    finally:
        _local.reset(token)


def check_range(lo: int, hi: int, limit: int | None = None) -> None:
    """Raise ``RopeInputError`` unless ``0 <= lo`` and ``hi < limit`` (the values a backend read)."""
    if lo < 0:
        raise bad("positions", f"<min {lo}>", NEGATIVE, RopeInputError)
    if limit is not None and hi >= limit:
        raise bad("positions", f"<max {hi}>", f"must be < {limit} on this backend (its MAX_POSITION)", RopeInputError)
