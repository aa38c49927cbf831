"""Read and write transformers' RoPE config blocks.

v5: ``{"head_dim", "rope_parameters": {"rope_type", "rope_theta", "partial_rotary_factor", ...}}``;
v4: ``{"head_dim", "rope_theta", "partial_rotary_factor", "rope_scaling": {"rope_type" | "type", ...}}``.
Resonance variants are spelled ``"resonance"`` and ``"resonance_<type>"``. Key precedence follows
transformers' ``standardize_rope_params``: dynamic NTK's original length is the config's
``max_position_embeddings``; yarn/llama3/longrope read a top-level ``original_max_position_embeddings``
first, then the rope block's, then ``max_position_embeddings``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ._checks import positive_int
from .config import RopeConfig
from .errors import bad, warn
from .scaling import NTK, DynamicNTK, Linear, Llama3, LongRoPE, YaRN

__all__ = ["config_from_hf", "config_to_hf", "HF_ROPE_TYPES", "ROPE_KEYS", "CONFIG_KEYS", "unknown_keys"]

_BASE_TYPES = ("default", "linear", "dynamic", "yarn", "llama3", "longrope")
#: Every ``rope_type`` ``config_from_hf`` reads.
HF_ROPE_TYPES = _BASE_TYPES + ("resonance",) + tuple(f"resonance_{t}" for t in _BASE_TYPES[1:])


_COMMON_KEYS = ("rope_type", "type", "rope_theta", "partial_rotary_factor")
#: The config-level keys config_from_hf reads besides the rope block (DeepSeek: qk_rope_head_dim,
#: rope_interleave; Phi-3: a top-level original_max_position_embeddings).
CONFIG_KEYS = (
    "head_dim",
    "hidden_size",
    "num_attention_heads",
    "qk_rope_head_dim",
    "rope_interleave",
    "max_position_embeddings",
    "original_max_position_embeddings",
)
#: Keys each base type's rope block accepts besides ``rope_type``/``type``, ``rope_theta`` and
#: ``partial_rotary_factor`` (as transformers' ``_validate_<type>_rope_parameters``, v5).
ROPE_KEYS = {
    "default": (),
    "linear": ("factor",),
    "dynamic": ("factor",),
    "yarn": (
        "factor",
        "original_max_position_embeddings",
        "attention_factor",
        "beta_fast",
        "beta_slow",
        "mscale",
        "mscale_all_dim",
        "truncate",
    ),
    "llama3": ("factor", "original_max_position_embeddings", "low_freq_factor", "high_freq_factor"),
    "longrope": ("short_factor", "long_factor", "original_max_position_embeddings", "attention_factor", "factor"),
}


def _base_type(rope_type: str) -> str:
    return "default" if rope_type == "resonance" else rope_type.removeprefix("resonance_")


def unknown_keys(rope_type: str, rope: Mapping, ignore=()) -> list[str]:
    """The keys of a rope block that ``rope_type`` does not read (misspellings such as ``beta_fsat``)."""
    allowed = set(_COMMON_KEYS) | set(ROPE_KEYS.get(_base_type(rope_type), ())) | set(ignore)
    return sorted(set(rope) - allowed)


def _as_mapping(block) -> Mapping:
    if hasattr(block, "to_dict") and not isinstance(block, Mapping):
        block = block.to_dict()
    if not isinstance(block, Mapping):
        raise bad("block", type(block).__name__, "must be a mapping (config.json contents) or a transformers config")
    return block


def _rope_block(block: Mapping) -> dict:
    params = block.get("rope_parameters")
    scaling = block.get("rope_scaling")
    if params and scaling and isinstance(params, Mapping) and dict(params) != dict(scaling):
        warn(  # transformers' convert_rope_params_to_dict: `rope_scaling or rope_parameters`
            f"both rope_scaling={dict(scaling)!r} and rope_parameters={dict(params)!r} are given: rope_scaling is "
            "used, as transformers does; delete the one you do not mean"
        )
    if isinstance(params, Mapping) and not scaling:  # transformers: a non-empty rope_scaling wins
        nested = params and "rope_type" not in params and "rope_theta" not in params
        if nested and all(isinstance(v, Mapping) for v in params.values()):
            raise bad(
                "rope_parameters",
                sorted(params),
                "per-layer-type rope_parameters are not one config: pass one of the inner blocks (with head_dim)",
            )
        return dict(params)
    if scaling is not None and not isinstance(scaling, Mapping):
        raise bad("rope_scaling", scaling, "must be a mapping or null")
    rope = dict(scaling or {})
    if "rope_type" not in rope and "type" not in rope and "rope_type" in block:  # a bare rope block
        rope = dict(block)
    return rope


def _head_dim(block: Mapping) -> int:
    if block.get("qk_rope_head_dim") is not None:  # DeepSeek: RoPE covers only this part of the head
        return block["qk_rope_head_dim"]
    if block.get("head_dim") is not None:
        return block["head_dim"]
    hidden, heads = block.get("hidden_size"), block.get("num_attention_heads")
    if hidden is not None and heads:
        return positive_int("hidden_size", hidden) // positive_int("num_attention_heads", heads)
    raise bad("head_dim", None, "is required (or hidden_size and num_attention_heads)")


def _require(rope: Mapping, key: str, rope_type: str):
    if rope.get(key) is None:
        raise bad(key, None, f"is required for rope_type={rope_type!r}")
    return rope[key]


def _original_length(block: Mapping, rope: Mapping, rope_type: str) -> int:
    for value in (
        block.get("original_max_position_embeddings"),
        rope.get("original_max_position_embeddings"),
        block.get("max_position_embeddings"),
    ):
        if value is not None:
            return value
    raise bad("original_max_position_embeddings", None, f"is required for rope_type={rope_type!r}")


def config_from_hf(block) -> RopeConfig:
    """Build a ``RopeConfig`` from a transformers config (mapping or ``PretrainedConfig``)."""
    block = _as_mapping(block)
    rope = _rope_block(block)
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in HF_ROPE_TYPES:
        raise bad("rope_type", rope_type, f"must be one of {HF_ROPE_TYPES}")
    unknown = unknown_keys(rope_type, rope, ignore=CONFIG_KEYS)  # a bare rope block may carry the top-level ones
    if unknown:
        warn(
            f"rope block of rope_type={rope_type!r} has keys it does not read: {unknown} "
            f"(it reads {sorted(set(_COMMON_KEYS) | set(ROPE_KEYS[_base_type(rope_type)]))})"
        )
    resonance = rope_type.startswith("resonance")
    kind = _base_type(rope_type)
    base = rope.get("rope_theta", block.get("rope_theta", 10000.0))
    prf = rope.get("partial_rotary_factor", block.get("partial_rotary_factor", 1.0))
    if isinstance(prf, bool) or not isinstance(prf, (int, float)) or not 0.0 < prf <= 1.0:
        raise bad("partial_rotary_factor", prf, "must be a number in (0, 1]")
    head_dim = _head_dim(block)
    if isinstance(head_dim, bool) or not isinstance(head_dim, int):
        raise bad("head_dim", head_dim, "must be a positive integer")
    max_pos = block.get("max_position_embeddings")
    if max_pos is not None:
        max_pos = positive_int("max_position_embeddings", max_pos)

    scaling = None
    if kind == "linear":
        scaling = Linear(_require(rope, "factor", rope_type))
    elif kind == "dynamic":
        original = max_pos if max_pos is not None else rope.get("original_max_position_embeddings")
        if original is None:
            raise bad("max_position_embeddings", None, f"is required for rope_type={rope_type!r}")
        scaling = DynamicNTK(_require(rope, "factor", rope_type), original)
    elif kind == "yarn":
        original = _original_length(block, rope, rope_type)
        factor = rope.get("factor")
        if factor is None:
            if max_pos is None:
                raise bad("factor", None, f"is required for rope_type={rope_type!r} (or max_position_embeddings)")
            factor = max_pos / original
        scaling = YaRN(
            factor,
            original,
            beta_fast=rope.get("beta_fast") or 32.0,
            beta_slow=rope.get("beta_slow") or 1.0,
            attention_factor=rope.get("attention_factor"),
            mscale=rope.get("mscale"),
            mscale_all_dim=rope.get("mscale_all_dim"),
            truncate=rope.get("truncate", True),
        )
    elif kind == "llama3":
        scaling = Llama3(
            _require(rope, "factor", rope_type),
            _original_length(block, rope, rope_type),
            low_freq_factor=_require(rope, "low_freq_factor", rope_type),
            high_freq_factor=_require(rope, "high_freq_factor", rope_type),
        )
    elif kind == "longrope":
        original = _original_length(block, rope, rope_type)
        factor = rope.get("factor")
        if factor is None and max_pos is not None:
            factor = max_pos / original
        scaling = LongRoPE(
            _require(rope, "short_factor", rope_type),
            _require(rope, "long_factor", rope_type),
            original,
            attention_factor=rope.get("attention_factor"),
            factor=factor,
        )
    return RopeConfig(
        head_dim=head_dim,
        base=base,
        rotary_dim=int(head_dim * prf),
        scaling=scaling,
        resonance=resonance,
        layout="interleaved" if block.get("rope_interleave") else "half",
    )


def _partial_rotary_factor(cfg: RopeConfig) -> float:
    """``rotary_dim/head_dim``, nudged up by ulps until transformers' ``int(head_dim*prf)`` gives it back."""
    prf = cfg.rotary_dim / cfg.head_dim
    while int(cfg.head_dim * prf) < cfg.rotary_dim:
        prf = math.nextafter(prf, 2.0)
    return prf


def config_to_hf(cfg: RopeConfig, version: int = 5) -> dict:
    """The transformers keys for ``cfg``: v5 ``rope_parameters`` or v4 ``rope_scaling`` + ``rope_theta``.

    Static NTK has no transformers type: it is written as ``default`` with ``rope_theta`` already
    scaled (identical frequencies). The interleaved layout cannot be expressed (transformers
    rotates halves) and raises.
    """
    if version not in (4, 5):
        raise bad("version", version, "must be 4 (rope_scaling) or 5 (rope_parameters)")
    if cfg.layout != "half":
        raise bad("cfg.layout", cfg.layout, "transformers configs describe the 'half' layout only")
    base, kind, params = cfg.base, "default", {}
    if isinstance(cfg.scaling, NTK):
        base = cfg.scaling.scaled_base(cfg.base, cfg.rotary_dim)
    elif cfg.scaling is not None:
        kind, params = cfg.scaling.hf_type, cfg.scaling.hf_params()
    rope_type = ("resonance" if kind == "default" else f"resonance_{kind}") if cfg.resonance else kind
    out: dict = {"head_dim": cfg.head_dim}
    if isinstance(cfg.scaling, DynamicNTK):
        out["max_position_embeddings"] = cfg.scaling.original_max_position
    prf = _partial_rotary_factor(cfg)
    if version == 5:
        out["rope_parameters"] = {"rope_type": rope_type, "rope_theta": base, **params}
        if cfg.rotary_dim != cfg.head_dim:
            out["rope_parameters"]["partial_rotary_factor"] = prf
        return out
    out["rope_theta"] = base
    out["rope_scaling"] = None if rope_type == "default" else {"rope_type": rope_type, **params}
    if cfg.rotary_dim != cfg.head_dim:
        out["partial_rotary_factor"] = prf
    return out
