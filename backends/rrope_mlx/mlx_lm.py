"""Resonance RoPE types for mlx-lm: ``register()`` / ``unregister()``.

mlx-lm builds every model's rope with ``mlx_lm.models.rope_utils.initialize_rope(dims, base,
traditional, scaling_config, max_position_embeddings)``, which dispatches on
``scaling_config["rope_type"]`` (or ``"type"``) and raises ``ValueError`` for any type it does not
know: there is no registry. So ``register()`` (idempotent) replaces ``initialize_rope`` by a thin
wrapper, ``initialize_rope``, in ``mlx_lm.models.rope_utils`` and in every already-imported module
that bound the original by ``from .rope_utils import initialize_rope`` (``mlx_lm.models.llama``,
``qwen3``, ...: found by identity with the original function); modules imported later get the
wrapper from ``rope_utils``. The wrapper builds ``ResonanceRoPE`` for ``resonance`` and
``resonance_<type>`` and calls mlx-lm's original for everything else. It also wraps
``mlx_lm.utils.load_config`` so that a transformers v5 ``config.json`` (``rope_parameters`` only,
which mlx-lm's models do not read) gets the v4 keys they do read (``with_v4_rope_keys``).
``unregister()`` puts the originals back; models already built keep their rope modules.

The block is read by ``rr.RopeConfig.from_hf`` (transformers' semantics) with ``dims`` as the
rotary dimension, ``base`` as ``rope_theta`` and ``traditional`` as the interleaved layout.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from functools import lru_cache
from typing import Any

import mlx.core as mx
import mlx.nn as nn

import rrope_core as rr
from rrope_core.errors import RopeError
from rrope_core.inputs import check_cfg

from .rotation import apply_rotary, inverse_rotary

__all__ = [
    "RESONANCE_TYPES",
    "ResonanceRoPE",
    "resonance_rope",
    "initialize_rope",
    "register",
    "unregister",
    "is_registered",
    "with_v4_rope_keys",
    "load_config",
]

#: The rope types ``register`` adds (every resonance type ``rr.RopeConfig.from_hf`` reads).
RESONANCE_TYPES = tuple(t for t in rr.HF_ROPE_TYPES if t.startswith("resonance"))

_original = None  # mlx-lm's initialize_rope, captured by register()
_original_load_config = None  # mlx-lm's utils.load_config, captured by register()


@lru_cache(maxsize=64)
def _for_head_dim(cfg: rr.RopeConfig, head_dim: int) -> rr.RopeConfig:
    """``cfg`` (built with ``head_dim == rotary_dim == dims``) for inputs of ``head_dim`` features."""
    return cfg if head_dim == cfg.head_dim else replace(cfg, head_dim=head_dim, rotary_dim=cfg.rotary_dim)


class ResonanceRoPE(nn.Module):
    """mlx-lm's rope interface over ``rrope_mlx.apply_rotary``: ``rope(x, offset=0)``.

    ``x`` is ``(B, H, T, D)`` (any ``(..., T, D)``); positions are ``offset + arange(T)``, ``offset``
    an int or an ``(B,)`` array (mlx-lm's batched caches). The first ``cfg.rotary_dim`` features are
    rotated, the rest copied. ``seq_len`` (dynamic NTK, LongRoPE) is ``max(positions) + 1``, as
    mlx-lm's ``DynamicNTKScalingRoPE`` and transformers do. No parameters: nothing to load or save.
    """

    def __init__(self, cfg: rr.RopeConfig):
        super().__init__()
        self.cfg = check_cfg(cfg)

    def _positions(self, x: mx.array, offset) -> tuple[mx.array, int | None]:
        t = x.shape[-2]
        if isinstance(offset, mx.array) and offset.ndim > 0:  # one offset per batch row
            lead = (offset.shape[0],) + (1,) * (x.ndim - 3)
            return offset.astype(mx.int64).reshape(*lead, 1) + mx.arange(t, dtype=mx.int64), None
        start = int(offset.item()) if isinstance(offset, mx.array) else int(offset)
        return mx.arange(start, start + t, dtype=mx.int64), start + t

    def __call__(self, x: mx.array, offset: int | mx.array = 0, inverse: bool = False) -> mx.array:
        cfg = _for_head_dim(self.cfg, x.shape[-1])
        positions, seq_len = self._positions(x, offset)
        seq_len = seq_len if cfg.seq_len_dependent else None
        rotate = inverse_rotary if inverse else apply_rotary
        return rotate(x, positions, cfg, seq_len)

    def _extra_repr(self) -> str:
        return f"cfg={self.cfg!r}"


def _rope_type(scaling_config) -> str:
    if not scaling_config:
        return "default"
    return scaling_config.get("type") or scaling_config.get("rope_type", "default")


def resonance_rope(
    dims: int, base: float, traditional: bool, scaling_config: dict, max_position_embeddings: int | None = None
) -> ResonanceRoPE:
    """The ``ResonanceRoPE`` of an mlx-lm rope block (arguments as ``initialize_rope``'s).

    ``base`` wins over a ``rope_theta`` in the block and ``dims`` is the rotary dimension (mlx-lm
    models pass ``int(head_dim * partial_rotary_factor)``), so those two keys of the block are ignored.
    Invalid parameters raise ``rrope_core.RopeConfigError`` (a ``ValueError``).
    """
    drop = ("rope_theta", "partial_rotary_factor", "type")
    rope = {k: v for k, v in dict(scaling_config).items() if k not in drop}
    rope["rope_type"] = _rope_type(scaling_config)  # mlx-lm's precedence: "type" before "rope_type"
    block = {
        "head_dim": dims,
        "rope_theta": base,
        "max_position_embeddings": max_position_embeddings,
        "rope_scaling": rope,
        "rope_interleave": bool(traditional),
    }
    return ResonanceRoPE(rr.RopeConfig.from_hf(block))


def initialize_rope(
    dims: int,
    base: float,
    traditional: bool,
    scaling_config: dict[str, Any] | None = None,
    max_position_embeddings: int | None = None,
):
    """mlx-lm's ``initialize_rope``, plus the resonance types (installed by ``register``)."""
    if _rope_type(scaling_config) in RESONANCE_TYPES:
        return resonance_rope(dims, base, traditional, scaling_config, max_position_embeddings)
    if _original is None:
        raise RopeError("rrope_mlx.mlx_lm.initialize_rope: call register() first (it captures mlx-lm's original)")
    return _original(dims, base, traditional, scaling_config, max_position_embeddings)


def _rebind(old, new) -> None:
    """Point every loaded module's ``initialize_rope`` that is ``old`` to ``new`` (except this module's)."""
    for name, module in list(sys.modules.items()):
        namespace = getattr(module, "__dict__", None)
        if name == __name__:
            continue
        if isinstance(namespace, dict) and namespace.get("initialize_rope") is old:
            module.initialize_rope = new


def with_v4_rope_keys(config: dict) -> dict:
    """``config`` plus ``rope_scaling``/``rope_theta``/``partial_rotary_factor`` from a transformers v5
    ``rope_parameters`` block when it has no ``rope_scaling`` (mlx-lm's models read only the v4 keys
    and would build plain RoPE). Per-layer-type blocks and v4 configs come back unchanged."""
    params = config.get("rope_parameters")
    if config.get("rope_scaling") or not isinstance(params, dict) or "rope_type" not in params:
        return config
    rope = {k: v for k, v in params.items() if k not in ("rope_theta", "partial_rotary_factor")}
    out = dict(config, rope_scaling=None if rope.get("rope_type") == "default" else rope)
    for key in ("rope_theta", "partial_rotary_factor"):
        if key in params:
            out.setdefault(key, params[key])
    return out


def load_config(model_path):
    """mlx-lm's ``utils.load_config`` then ``with_v4_rope_keys`` (installed by ``register``)."""
    if _original_load_config is None:
        raise RopeError("rrope_mlx.mlx_lm.load_config: call register() first (it captures mlx-lm's original)")
    return with_v4_rope_keys(_original_load_config(model_path))


def _rope_utils():
    try:
        from mlx_lm.models import rope_utils
    except ImportError as err:
        raise RopeError("rrope_mlx.mlx_lm needs mlx-lm (pip install mlx-lm)") from err
    return rope_utils


def register() -> None:
    """Make mlx-lm's ``initialize_rope`` build the resonance types and its ``load_config`` read v5
    ``rope_parameters`` (idempotent; see the module docstring)."""
    global _original, _original_load_config
    rope_utils = _rope_utils()
    from mlx_lm import utils

    if rope_utils.initialize_rope is not initialize_rope:
        _original = rope_utils.initialize_rope
    _rebind(_original, initialize_rope)
    if utils.load_config is not load_config:
        _original_load_config = utils.load_config
        utils.load_config = load_config


def is_registered() -> bool:
    """True when ``mlx_lm.models.rope_utils.initialize_rope`` is this module's wrapper."""
    return _rope_utils().initialize_rope is initialize_rope


def unregister() -> None:
    """Undo ``register`` in every loaded module (models already built keep their rope modules)."""
    if _original is not None:
        _rebind(initialize_rope, _original)
    if _original_load_config is not None:
        from mlx_lm import utils

        if utils.load_config is load_config:
            utils.load_config = _original_load_config
