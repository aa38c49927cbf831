"""Per-``(cfg, seq_len)`` constants, all taken from ``rrope_core`` (the backend derives no frequency).

Resonance configs: integer periods ``L_i = rr.integer_wavelengths`` and the step ``2*pi/L_i``
(float64, ``rr.inv_freq``). Other configs: ``theta_i = rr.inv_freq`` (float64). Both: the
attention factor ``rr.attention_factor``.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

import rrope_core as rr
from rrope_core.inputs import check_cfg
from rrope_core.rotation import resolve_seq_len

__all__ = ["Constants", "constants", "inv_freq"]


@dataclass(frozen=True)
class Constants:
    """NumPy constants of one ``(cfg, seq_len)`` (read-only arrays)."""

    resonance: bool
    inv_freq: np.ndarray  # float64 theta_i (resonance: 2*pi/L_i)
    periods: np.ndarray | None  # int64 L_i (resonance only)
    half_periods: np.ndarray | None  # int64 L_i // 2 (resonance only)
    attention_factor: float


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a)
    a.setflags(write=False)
    return a


def constants(cfg: rr.RopeConfig, seq_len: int | None) -> Constants:
    """The cached NumPy constants of ``cfg`` at ``seq_len`` (ignored unless the config depends on it)."""
    return _constants(cfg, seq_len if cfg.seq_len_dependent else None)


@functools.lru_cache(maxsize=512)
def _constants(cfg: rr.RopeConfig, seq_len: int | None) -> Constants:
    """Keyed by the frozen, hashable config."""
    theta = _frozen(rr.inv_freq(cfg, seq_len))
    periods = half = None
    if cfg.resonance:
        periods = _frozen(rr.integer_wavelengths(cfg, seq_len))
        half = _frozen(periods // 2)
    return Constants(cfg.resonance, theta, periods, half, float(rr.attention_factor(cfg, seq_len)))


def inv_freq(cfg: rr.RopeConfig, seq_len: int | None = None, *, device: str | None = None) -> tf.Tensor:
    """``rrope_core.inv_freq`` as a float64 tensor (on ``device`` when given)."""
    check_cfg(cfg)
    seq_len = resolve_seq_len(cfg, seq_len, None)
    with tf.device(device) if device is not None else contextlib.nullcontext():
        return tf.identity(tf.constant(constants(cfg, seq_len).inv_freq, dtype=tf.float64))
