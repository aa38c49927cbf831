"""``RotaryEmbedding``: an ``mlx.nn.Module`` rotating queries and keys (no trainable parameters)."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

import rrope_core as rr
from rrope_core.inputs import check_cfg

from .rotation import apply_rotary

__all__ = ["RotaryEmbedding"]


class RotaryEmbedding(nn.Module):
    """``RotaryEmbedding(cfg)(q, k, positions)`` -> ``(q_rot, k_rot)``; q and k may differ in head count.

    Each is ``rrope_mlx.apply_rotary`` with the module's ``path`` (``"auto"``, ``"fast"``, ``"exact"``).
    The config round-trips through ``get_config`` / ``from_config`` (``RopeConfig.to_dict``).
    """

    def __init__(self, cfg: rr.RopeConfig, *, path: str = "auto"):
        super().__init__()
        self.cfg = check_cfg(cfg)
        self.path = path

    def __call__(self, q: mx.array, k: mx.array, positions: mx.array, seq_len: int | None = None):
        return (
            apply_rotary(q, positions, self.cfg, seq_len, path=self.path),
            apply_rotary(k, positions, self.cfg, seq_len, path=self.path),
        )

    def get_config(self) -> dict:
        return {"cfg": self.cfg.to_dict(), "path": self.path}

    @classmethod
    def from_config(cls, config: dict) -> RotaryEmbedding:
        return cls(rr.RopeConfig.from_dict(config["cfg"]), path=config.get("path", "auto"))

    def _extra_repr(self) -> str:
        return f"cfg={self.cfg!r}, path={self.path!r}"
