"""Lossless JSON-safe dicts for ``RopeConfig`` (framework layers serialize through these).

Unlike ``RopeConfig.to_hf``, every config round-trips, the interleaved layout and static NTK included.
"""

from __future__ import annotations

from collections.abc import Mapping

from .config import RopeConfig
from .errors import bad
from .scaling import NTK, DynamicNTK, Linear, Llama3, LongRoPE, YaRN

__all__ = ["config_to_dict", "config_from_dict"]

_SCALINGS = {"linear": Linear, "ntk": NTK, "dynamic": DynamicNTK, "yarn": YaRN, "llama3": Llama3, "longrope": LongRoPE}
_NAMES = {cls: name for name, cls in _SCALINGS.items()}
_FIELDS = ("head_dim", "base", "rotary_dim", "resonance", "layout")


def _scaling_params(scaling) -> dict:
    if isinstance(scaling, YaRN):
        return {
            "factor": scaling.factor,
            "original_max_position": scaling.original_max_position,
            "beta_fast": scaling.beta_fast,
            "beta_slow": scaling.beta_slow,
            "attention_factor": scaling.attention_factor_,
            "mscale": scaling.mscale,
            "mscale_all_dim": scaling.mscale_all_dim,
            "truncate": scaling.truncate,
        }
    if isinstance(scaling, LongRoPE):
        return {
            "short_factor": list(scaling.short_factor),
            "long_factor": list(scaling.long_factor),
            "original_max_position": scaling.original_max_position,
            "attention_factor": scaling.attention_factor_,
            "factor": scaling.factor,
        }
    return dict(vars(scaling))


def config_to_dict(cfg: RopeConfig) -> dict:
    out = {name: getattr(cfg, name) for name in _FIELDS}
    out["scaling"] = (
        None if cfg.scaling is None else {"type": _NAMES[type(cfg.scaling)], **_scaling_params(cfg.scaling)}
    )
    return out


def config_from_dict(data: Mapping) -> RopeConfig:
    if not isinstance(data, Mapping):
        raise bad("data", type(data).__name__, "must be a mapping produced by RopeConfig.to_dict()")
    unknown = set(data) - set(_FIELDS) - {"scaling"}
    if unknown:
        raise bad("data", sorted(unknown), f"has unknown keys; allowed: {list(_FIELDS) + ['scaling']}")
    kwargs = {k: data[k] for k in _FIELDS if k in data}
    scaling = data.get("scaling")
    if scaling is not None:
        if not isinstance(scaling, Mapping) or scaling.get("type") not in _SCALINGS:
            raise bad("scaling", scaling, f"must be null or a mapping with type in {list(_SCALINGS)}")
        params = {k: v for k, v in scaling.items() if k != "type"}
        try:
            kwargs["scaling"] = _SCALINGS[scaling["type"]](**params)
        except TypeError as exc:
            raise bad("scaling", dict(scaling), f"has wrong keys for {scaling['type']!r} ({exc})") from exc
    return RopeConfig(**kwargs)
