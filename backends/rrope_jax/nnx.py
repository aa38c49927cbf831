"""``rrope_jax.nnx.RotaryEmbedding``: a Flax NNX module rotating queries and keys (needs ``flax``).

A module with no parameters and no state: it holds the config (a static, hashable attribute), so
``nnx.split`` gives an empty state and ``nnx.jit`` compiles one program per config. Each call is
``rrope_jax.apply_rotary`` (exact phases; formulas in ``rrope_jax.rotation``). Importing
``rrope_jax`` does not import flax; importing this module does.
"""

from __future__ import annotations

from flax import nnx

import rrope_core as rr
from rrope_core.inputs import check_cfg

from .rotation import apply_rotary

__all__ = ["RotaryEmbedding"]


class RotaryEmbedding(nnx.Module):
    """``RotaryEmbedding(cfg)(q, k, positions)`` -> ``(q_rot, k_rot)``; q and k may differ in head count."""

    def __init__(self, cfg: rr.RopeConfig):
        self.cfg = check_cfg(cfg)

    def __call__(self, q, k, positions, seq_len: int | None = None):
        return apply_rotary(q, positions, self.cfg, seq_len), apply_rotary(k, positions, self.cfg, seq_len)
