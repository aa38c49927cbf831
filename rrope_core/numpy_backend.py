"""The ``"numpy"`` backend: the reference itself, wrapped in the backend contract."""

from __future__ import annotations

import numpy as np

from . import frequencies
from .config import RopeConfig
from .errors import RopeInputError, bad
from .rotation import apply_rotary, cos_sin, inverse_rotary

__all__ = [
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
]

name = "numpy"
DTYPES = ("float64", "float32", "float16")


def inv_freq(cfg: RopeConfig, seq_len: int | None = None, *, device=None) -> np.ndarray:
    """``rrope_core.inv_freq`` (float64)."""
    _check_device(device)
    return frequencies.inv_freq(cfg, seq_len)


def _check_device(device) -> None:
    if device not in (None, "cpu"):
        raise bad("device", device, "the numpy backend runs on 'cpu' only", RopeInputError)


def to_numpy(a) -> np.ndarray:
    return np.asarray(a)


def from_numpy(a: np.ndarray, dtype: str | None = None, device=None) -> np.ndarray:
    _check_device(device)
    if dtype is not None and dtype not in DTYPES + ("int64", "int32"):
        raise bad("dtype", dtype, f"must be one of {DTYPES}", RopeInputError)
    return np.array(a, dtype=dtype)


def is_array(obj) -> bool:
    return isinstance(obj, np.ndarray)


def device_of(a) -> str:
    return "cpu"


class RotaryEmbedding:
    """``RotaryEmbedding(cfg)(q, k, positions)`` -> rotated ``(q, k)`` (q and k may differ in head count)."""

    def __init__(self, cfg: RopeConfig):
        if not isinstance(cfg, RopeConfig):
            raise bad("cfg", cfg, "must be a rrope_core.RopeConfig", RopeInputError)
        self.cfg = cfg

    def forward(self, q, k, positions, seq_len: int | None = None):
        return apply_rotary(q, positions, self.cfg, seq_len), apply_rotary(k, positions, self.cfg, seq_len)

    __call__ = forward
