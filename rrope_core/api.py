"""Framework-generic entry points: ``rrope_core.apply_rotary(x, ...)`` with a torch / tf / mlx
array runs that framework's backend and returns the same array type; NumPy runs the reference."""

from __future__ import annotations

from .config import RopeConfig
from .dispatch import backend_for

__all__ = ["apply_rotary", "inverse_rotary", "cos_sin"]


def apply_rotary(x, positions, cfg: RopeConfig, seq_len: int | None = None):
    """Rotate ``x`` (``(..., head_dim)``) at ``positions``; see ``rrope_core.rotation.apply_rotary``."""
    return backend_for(x, positions).apply_rotary(x, positions, cfg, seq_len)


def inverse_rotary(y, positions, cfg: RopeConfig, seq_len: int | None = None):
    """Undo ``apply_rotary``; see ``rrope_core.rotation.inverse_rotary``."""
    return backend_for(y, positions).inverse_rotary(y, positions, cfg, seq_len)


def cos_sin(cfg: RopeConfig, positions, seq_len: int | None = None):
    """``(cos, sin)`` of shape ``positions.shape + (rotary_dim//2,)`` in the positions' framework."""
    return backend_for(positions).cos_sin(cfg, positions, seq_len)
