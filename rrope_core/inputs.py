"""Checks on array arguments, shared by the reference and every backend.

They work on shapes and dtype names only, so a backend can call them on its own tensors
before doing any work; every message names the argument, the value and what is allowed.
"""

from __future__ import annotations

import numpy as np

from .config import RopeConfig
from .errors import RopeInputError, bad

__all__ = [
    "check_cfg",
    "check_x_dtype",
    "check_x_shape",
    "check_positions_dtype",
    "check_positions_shape",
    "check_positions_values",
    "check_call",
    "as_positions",
    "MAX_FLOAT_EXACT",
]

#: Positions below this are exact in float64; the non-resonance phase needs them as floats.
MAX_FLOAT_EXACT = 2**53


def check_cfg(cfg) -> RopeConfig:
    """``cfg`` must be a ``RopeConfig`` (not a dict or a transformers config)."""
    if not isinstance(cfg, RopeConfig):
        raise bad(
            "cfg",
            cfg,
            "must be a rrope_core.RopeConfig (use RopeConfig.from_hf for transformers configs)",
            RopeInputError,
        )
    return cfg


def check_x_dtype(dtype_name: str, is_floating: bool, name: str = "x") -> None:
    """``x`` must be floating point."""
    if not is_floating:
        raise bad(
            f"{name}.dtype",
            dtype_name,
            "must be a floating dtype (float64, float32, float16, bfloat16)",
            RopeInputError,
        )


def check_positions_dtype(dtype_name: str, is_integer: bool) -> None:
    """``positions`` must be an integer dtype (bool is not)."""
    if not is_integer:
        raise bad("positions.dtype", dtype_name, "must be an integer dtype", RopeInputError)


def check_call(
    cfg, x_shape, x_dtype: str, x_floating: bool, pos_shape, pos_dtype: str, pos_integer: bool, name: str = "x"
) -> RopeConfig:
    """Every metadata check of an ``apply_rotary``/``inverse_rotary`` call, in the reference's order."""
    check_cfg(cfg)
    check_x_dtype(x_dtype, x_floating, name)
    check_x_shape(x_shape, cfg, name)
    check_positions_dtype(pos_dtype, pos_integer)
    check_positions_shape(pos_shape, x_shape, name)
    return cfg


def check_x_shape(shape: tuple, cfg: RopeConfig, name: str = "x") -> None:
    """``x`` must have shape ``(..., cfg.head_dim)``."""
    if len(shape) == 0 or shape[-1] != cfg.head_dim:
        raise bad(f"{name}.shape", tuple(shape), f"must end in head_dim={cfg.head_dim}", RopeInputError)


def check_positions_shape(pos_shape: tuple, x_shape: tuple, name: str = "x") -> None:
    """``positions`` must broadcast to ``x.shape[:-1]`` without growing it."""
    lead = tuple(x_shape[:-1])
    pos = tuple(pos_shape)
    # NumPy's broadcasting rule in plain Python (it runs on every backend call); None: a dimension
    # unknown until run time (tf.function, torch.compile), accepted when it could match.
    ok = len(pos) <= len(lead) and all(
        p in (1, None) or d is None or p == d for p, d in zip(reversed(pos), reversed(lead), strict=False)
    )
    if not ok:
        raise bad(
            "positions.shape",
            tuple(pos_shape),
            f"must broadcast to {name}.shape[:-1]={lead} (e.g. (T,) for (B,H,T,D), (T,1) for (B,T,H,D))",
            RopeInputError,
        )


def check_positions_values(lo: int, hi: int, cfg: RopeConfig) -> None:
    """Positions must be ``>= 0``; without resonance also ``< 2**53`` (exact in float64)."""
    if lo < 0:
        raise bad("positions", f"<min {lo}>", "must be >= 0", RopeInputError)
    if hi >= 2**63:
        raise bad("positions", f"<max {hi}>", "must be < 2**63 (int64)", RopeInputError)
    if not cfg.resonance and hi >= MAX_FLOAT_EXACT:
        raise bad(
            "positions",
            f"<max {hi}>",
            "must be < 2**53 for non-resonance configs (their phase is reduced in float64); "
            "resonance configs accept any int64 position",
            RopeInputError,
        )


def as_positions(positions, cfg: RopeConfig) -> np.ndarray:
    """Validate NumPy/Python positions and return them as int64 (a new array, never a view)."""
    arr = np.asarray(positions)
    check_positions_dtype(str(arr.dtype), arr.dtype.kind in "iu")
    if arr.size:
        check_positions_values(int(arr.min()), int(arr.max()), cfg)
    return arr.astype(np.int64, copy=True)
