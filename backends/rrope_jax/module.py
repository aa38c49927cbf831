"""``RotaryEmbedding``: a stateless callable rotating queries and keys (no parameters)."""

from __future__ import annotations

import rrope_core as rr
from rrope_core.inputs import check_cfg

from .rotation import apply_rotary

__all__ = ["RotaryEmbedding"]


class RotaryEmbedding:
    """``RotaryEmbedding(cfg)(q, k, positions)`` -> ``(q_rot, k_rot)``; q and k may differ in head count.

    Each is ``rrope_jax.apply_rotary``; usable inside ``jax.jit`` and any Flax/Equinox module
    (it holds only the config). ``get_config`` / ``from_config`` round-trip it.
    """

    def __init__(self, cfg: rr.RopeConfig):
        self.cfg = check_cfg(cfg)

    def __call__(self, q, k, positions, seq_len: int | None = None):
        return apply_rotary(q, positions, self.cfg, seq_len), apply_rotary(k, positions, self.cfg, seq_len)

    def get_config(self) -> dict:
        return {"cfg": self.cfg.to_dict()}

    @classmethod
    def from_config(cls, config: dict) -> RotaryEmbedding:
        return cls(rr.RopeConfig.from_dict(config["cfg"]))
