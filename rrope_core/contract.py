"""The backend contract: what every backend module exposes (see docs/backends.md).

A backend is a module. All frequency math (scaling, resonance rounding, attention factor) comes
from ``rrope_core``; a backend only computes phases on its device and rotates.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from .config import RopeConfig

__all__ = ["Backend", "REQUIRED", "check_backend"]

#: Names every backend module must define.
REQUIRED = (
    "name",
    "DTYPES",
    "inv_freq",
    "cos_sin",
    "apply_rotary",
    "inverse_rotary",
    "RotaryEmbedding",
    "to_numpy",
    "from_numpy",
    "is_array",
    "device_of",
)


@runtime_checkable
class Backend(Protocol):
    """Static description of a backend module (``typing.Protocol``; modules satisfy it structurally).

    ``grad_apply_rotary`` is optional: backends with autodiff define it, and the conformance
    suite checks it against the transpose of the rotation.
    """

    name: str
    #: dtype names the backend supports, a subset of ("float64", "float32", "float16", "bfloat16").
    DTYPES: tuple[str, ...]
    RotaryEmbedding: type

    def inv_freq(self, cfg: RopeConfig, seq_len: int | None = None, *, device: Any = None) -> Any: ...

    def cos_sin(self, cfg: RopeConfig, positions: Any, seq_len: int | None = None) -> tuple[Any, Any]: ...

    def apply_rotary(self, x: Any, positions: Any, cfg: RopeConfig, seq_len: int | None = None) -> Any: ...

    def inverse_rotary(self, y: Any, positions: Any, cfg: RopeConfig, seq_len: int | None = None) -> Any: ...

    def to_numpy(self, a: Any) -> np.ndarray: ...

    def from_numpy(self, a: np.ndarray, dtype: str | None = None, device: Any = None) -> Any: ...

    def is_array(self, obj: Any) -> bool: ...

    def device_of(self, a: Any) -> str: ...


def check_backend(module: Any) -> Any:
    """Raise ``TypeError`` naming what a would-be backend module lacks; return it otherwise."""
    missing = [n for n in REQUIRED if not hasattr(module, n)]
    if missing:
        raise TypeError(f"backend module {getattr(module, '__name__', module)!r} lacks {missing}")
    return module
