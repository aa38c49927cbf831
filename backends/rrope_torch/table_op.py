"""transformers' ``(cos, sin)`` table from exact phases, and the same as one opaque op under
``torch.compile`` (``torch.ops.rrope.exact_cos_sin``).

``cos/sin(cat(phi, phi)) * a`` with ``phi`` from ``rrope_torch.phases`` (``m mod L`` in int64 for
resonance configs, a float64 ``fmod`` otherwise). Why an op: compiled, Inductor inlines a
pointwise producer into each consumer, so a transformers model recomputed the table's int64
``m mod L``, cos and sin for every element of q and k in every layer (on an H100 1.6 ms of a 37 ms
training step, 3 % of the model's speed: docs/benchmarks.md, "Whole-model speed"). Inside a custom
op the table is computed once per forward, then read by every layer, as transformers' own table
is. The op needs ``torch.library.custom_op`` (torch >= 2.4); on older torch the table stays
inline.
"""

from __future__ import annotations

import torch

import rrope_core as rr

from .phases import phases

__all__ = ["table", "register", "compiled_table", "OPAQUE"]

OPAQUE = hasattr(torch.library, "custom_op")
_CONFIGS: dict[str, rr.RopeConfig] = {}  # the op's string argument -> its config


def table(position_ids: torch.Tensor, cfg: rr.RopeConfig, seq_len: int | None, dtype: torch.dtype):
    """``(cos, sin)`` of shape ``position_ids.shape + (rotary_dim,)`` in ``dtype`` (float64 trig
    for float64, float32 otherwise)."""
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    angles, a = phases(position_ids, cfg, seq_len, compute)
    emb = torch.cat((angles, angles), dim=-1)
    return (emb.cos() * a).to(dtype), (emb.sin() * a).to(dtype)


def register(cfg: rr.RopeConfig) -> str:
    """The op's name for ``cfg`` (its ``repr``), remembered; call it outside compiled code."""
    key = repr(cfg)
    _CONFIGS.setdefault(key, cfg)
    return key


if OPAQUE:

    @torch.library.custom_op("rrope::exact_cos_sin", mutates_args=())
    def _op(
        position_ids: torch.Tensor, cfg_key: str, seq_len: int, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return table(position_ids, _CONFIGS[cfg_key], None if seq_len < 0 else seq_len, dtype)

    @_op.register_fake
    def _(position_ids, cfg_key, seq_len, dtype):
        shape = (*position_ids.shape, _CONFIGS[cfg_key].rotary_dim)
        return position_ids.new_empty(shape, dtype=dtype), position_ids.new_empty(shape, dtype=dtype)


def compiled_table(position_ids: torch.Tensor, cfg_key: str, seq_len: int | None, dtype: torch.dtype):
    """``table`` for the config ``register`` named ``cfg_key``: the opaque op where it exists."""
    if OPAQUE:
        return torch.ops.rrope.exact_cos_sin(position_ids, cfg_key, -1 if seq_len is None else seq_len, dtype)
    return table(position_ids, _CONFIGS[cfg_key], seq_len, dtype)
