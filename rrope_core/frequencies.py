"""Frequencies, wavelengths, the resonance rounding and the attention factor.

Resonance RoPE (Wang et al. 2024, arXiv 2403.00071, eq. 6): ``lambda~_i = round(2*pi/theta_i)``,
``theta~_i = 2*pi / lambda~_i``. Rounding is to the nearest integer, ties to even (``np.rint``).
"""

from __future__ import annotations

import numpy as np

from ._checks import positive_int
from .config import RopeConfig, check_seq_len
from .errors import RopeConfigError, RopeInputError, bad
from .scaling import default_inv_freq

__all__ = [
    "scaled_inv_freq",
    "inv_freq",
    "wavelengths",
    "integer_wavelengths",
    "attention_factor",
    "critical_dim",
]

TWO_PI = 2.0 * np.pi


def scaled_inv_freq(cfg: RopeConfig, seq_len: int | None = None) -> np.ndarray:
    """``theta_i`` after the config's scaling, before any resonance rounding (float64)."""
    if cfg.scaling is None:
        return default_inv_freq(cfg.base, cfg.rotary_dim)
    return cfg.scaling.inv_freq(cfg.base, cfg.rotary_dim, check_seq_len(seq_len))


def integer_wavelengths(cfg: RopeConfig, seq_len: int | None = None) -> np.ndarray:
    """Resonance periods ``lambda~_i = rint(2*pi/theta_i)`` as int64 (resonance configs only)."""
    if not cfg.resonance:
        raise bad("cfg.resonance", False, "integer wavelengths exist only for resonance=True configs", RopeConfigError)
    return np.rint(TWO_PI / scaled_inv_freq(cfg, seq_len)).astype(np.int64)


def inv_freq(cfg: RopeConfig, seq_len: int | None = None) -> np.ndarray:
    """Per-pair angular frequency, shape ``(rotary_dim//2,)``, float64.

    ``seq_len`` matters only for dynamic NTK and LongRoPE (``None``: the original length).
    With resonance: ``2*pi / lambda~_i``.
    """
    if cfg.resonance:
        return TWO_PI / integer_wavelengths(cfg, seq_len).astype(np.float64)
    return scaled_inv_freq(cfg, seq_len)


def wavelengths(cfg: RopeConfig, seq_len: int | None = None) -> np.ndarray:
    """Per-pair wavelength ``2*pi/theta_i`` in positions (exact integers for resonance), float64."""
    if cfg.resonance:
        return integer_wavelengths(cfg, seq_len).astype(np.float64)
    return TWO_PI / scaled_inv_freq(cfg, seq_len)


def attention_factor(cfg: RopeConfig, seq_len: int | None = None) -> float:
    """The factor transformers multiplies cos and sin by (YaRN's ``0.1 ln s + 1``, LongRoPE's, else 1)."""
    check_seq_len(seq_len)
    return 1.0 if cfg.scaling is None else float(cfg.scaling.attention_factor())


def critical_dim(cfg: RopeConfig, train_len: int, seq_len: int | None = None) -> int:
    """Number of rotary features (2 per pair) whose wavelength (at ``seq_len``) is ``<= train_len``.

    These are the pre-critical features of Liu et al. 2023 ("Scaling laws of RoPE-based
    extrapolation"): they complete a full turn within training.
    """
    train_len = positive_int("train_len", train_len, RopeInputError)
    return 2 * int(np.count_nonzero(wavelengths(cfg, seq_len) <= train_len))
