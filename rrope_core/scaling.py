"""RoPE scaling methods: each class holds its parameters and its formula.

All formulas follow Hugging Face transformers' ``modeling_rope_utils.py`` (v5), because
that is what users' ``config.json`` files mean; they are evaluated here in float64 where
transformers uses float32. ``d`` is the rotary dimension, ``theta_i = base^(-2i/d)``.
Where other implementations disagree, docs/spec.md says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._checks import boolean, optional_real, positive_int, real, real_tuple
from .errors import bad, warn

__all__ = ["Scaling", "Linear", "NTK", "DynamicNTK", "YaRN", "Llama3", "LongRoPE", "default_inv_freq"]


def default_inv_freq(base: float, dim: int) -> np.ndarray:
    """``theta_i = base^(-2i/d)`` for ``i in [0, d/2)`` (Su et al. 2021, RoFormer eq. 15)."""
    return 1.0 / base ** (np.arange(0, dim, 2, dtype=np.float64) / dim)


def _ntk_exponent(dim: int, method: str) -> float:
    if dim <= 2:
        raise bad("rotary_dim", dim, f"must be >= 4 for {method} (its base is scaled by factor^(d/(d-2)))")
    return dim / (dim - 2)


class Scaling:
    """Base class: a scaling maps ``(base, d, seq_len)`` to ``inv_freq`` and has an attention factor."""

    hf_type: str = ""
    seq_len_dependent: bool = False

    def inv_freq(self, base: float, dim: int, seq_len: int | None = None) -> np.ndarray:
        raise NotImplementedError

    def attention_factor(self) -> float:
        """Factor transformers multiplies cos and sin by; 1.0 unless the method says otherwise."""
        return 1.0

    def check_dim(self, dim: int) -> None:
        """Raise ``RopeConfigError`` if this scaling cannot serve rotary dimension ``dim``."""

    def hf_params(self) -> dict:
        """The method's keys in a transformers ``rope_parameters`` block (without rope_type/theta)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Linear(Scaling):
    """Position interpolation (Chen et al. 2023): ``theta_i / factor``."""

    factor: float
    hf_type = "linear"

    def __post_init__(self):
        object.__setattr__(self, "factor", real("Linear.factor", self.factor, min_value=1.0))

    def inv_freq(self, base, dim, seq_len=None):
        return default_inv_freq(base, dim) / self.factor

    def hf_params(self):
        return {"factor": self.factor}


@dataclass(frozen=True)
class NTK(Scaling):
    """NTK-aware scaling (bloc97 2023): ``base' = base * factor^(d/(d-2))``.

    transformers has no static NTK type; ``RopeConfig.to_hf`` folds it into ``rope_theta``.
    """

    factor: float
    hf_type = "default"

    def __post_init__(self):
        object.__setattr__(self, "factor", real("NTK.factor", self.factor, min_value=1.0))

    def check_dim(self, dim):
        _ntk_exponent(dim, "NTK")

    def scaled_base(self, base: float, dim: int) -> float:
        return base * self.factor ** _ntk_exponent(dim, "NTK")

    def inv_freq(self, base, dim, seq_len=None):
        return default_inv_freq(self.scaled_base(base, dim), dim)

    def hf_params(self):
        return {}


@dataclass(frozen=True)
class DynamicNTK(Scaling):
    """Dynamic NTK (transformers ``dynamic``): with ``s = max(seq_len, L0)``,
    ``base' = base * (factor*s/L0 - (factor-1))^(d/(d-2))``; ``L0 = original_max_position``.
    """

    factor: float
    original_max_position: int
    hf_type = "dynamic"
    seq_len_dependent = True

    def __post_init__(self):
        object.__setattr__(self, "factor", real("DynamicNTK.factor", self.factor, min_value=1.0))
        object.__setattr__(
            self,
            "original_max_position",
            positive_int("DynamicNTK.original_max_position", self.original_max_position),
        )

    def check_dim(self, dim):
        _ntk_exponent(dim, "DynamicNTK")

    def inv_freq(self, base, dim, seq_len=None):
        l0 = self.original_max_position
        s = l0 if seq_len is None else max(int(seq_len), l0)
        scaled = base * (self.factor * s / l0 - (self.factor - 1.0)) ** _ntk_exponent(dim, "DynamicNTK")
        return default_inv_freq(scaled, dim)

    def hf_params(self):
        # transformers' dynamic type reads its original length from max_position_embeddings
        # (written at the top level by to_hf), not from the rope block.
        return {"factor": self.factor}


def _yarn_mscale(scale: float, mscale: float = 1.0) -> float:
    """YaRN's ``0.1 * mscale * ln(scale) + 1`` (1 for scale <= 1) (Peng et al. 2023, eq. 22)."""
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


@dataclass(frozen=True)
class YaRN(Scaling):
    """YaRN (Peng et al. 2023, "NTK-by-parts" + attention temperature), as transformers ``yarn``.

    Correction dims ``c(r) = d*ln(L0/(2*pi*r)) / (2*ln base)``; ``low = c(beta_fast)``,
    ``high = c(beta_slow)`` (floored/ceiled when ``truncate``), clamped to ``[0, d-1]``;
    ``ramp_i = clip((i-low)/(high-low), 0, 1)`` over ``i in [0, d/2)``;
    ``inv_freq_i = theta_i/factor * ramp_i + theta_i * (1-ramp_i)``.
    Attention factor: given, else ``mscale(factor, mscale)/mscale(factor, mscale_all_dim)``
    when both are set and non-zero (DeepSeek), else ``0.1*ln(factor)+1``.
    """

    factor: float
    original_max_position: int
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    attention_factor_: float | None = None
    mscale: float | None = None
    mscale_all_dim: float | None = None
    truncate: bool = True
    hf_type = "yarn"

    def __init__(
        self,
        factor,
        original_max_position,
        beta_fast=32.0,
        beta_slow=1.0,
        attention_factor=None,
        mscale=None,
        mscale_all_dim=None,
        truncate=True,
    ):
        s = object.__setattr__
        s(self, "factor", real("YaRN.factor", factor, min_value=1.0))
        s(self, "original_max_position", positive_int("YaRN.original_max_position", original_max_position))
        s(self, "beta_fast", real("YaRN.beta_fast", beta_fast, min_value=0.0, strict=True))
        s(self, "beta_slow", real("YaRN.beta_slow", beta_slow, min_value=0.0, strict=True))
        if self.beta_fast < self.beta_slow:  # transformers logs the same; the ramp then runs backwards
            warn(
                f"YaRN.beta_fast={self.beta_fast} < beta_slow={self.beta_slow}: beta_fast should be the larger "
                "(rotations per original context of the pairs left unscaled)"
            )
        s(
            self,
            "attention_factor_",
            optional_real("YaRN.attention_factor", attention_factor, min_value=0.0, strict=True),
        )
        s(self, "mscale", optional_real("YaRN.mscale", mscale, min_value=0.0))
        s(self, "mscale_all_dim", optional_real("YaRN.mscale_all_dim", mscale_all_dim, min_value=0.0))
        s(self, "truncate", boolean("YaRN.truncate", truncate))

    def __repr__(self):
        return (
            f"YaRN(factor={self.factor!r}, original_max_position={self.original_max_position!r}, "
            f"beta_fast={self.beta_fast!r}, beta_slow={self.beta_slow!r}, "
            f"attention_factor={self.attention_factor_!r}, mscale={self.mscale!r}, "
            f"mscale_all_dim={self.mscale_all_dim!r}, truncate={self.truncate!r})"
        )

    def correction_range(self, base: float, dim: int) -> tuple[float, float]:
        """``(low, high)`` pair indices between which YaRN ramps from extrapolation to interpolation."""

        def corr(rotations: float) -> float:
            return dim * math.log(self.original_max_position / (rotations * 2 * math.pi)) / (2 * math.log(base))

        low, high = corr(self.beta_fast), corr(self.beta_slow)
        if self.truncate:
            low, high = math.floor(low), math.ceil(high)
        return max(low, 0), min(high, dim - 1)

    def inv_freq(self, base, dim, seq_len=None):
        theta = default_inv_freq(base, dim)
        low, high = self.correction_range(base, dim)
        if low == high:
            high += 0.001  # transformers' guard against a zero-width ramp
        ramp = np.clip((np.arange(dim // 2, dtype=np.float64) - low) / (high - low), 0.0, 1.0)
        return theta / self.factor * ramp + theta * (1.0 - ramp)

    def attention_factor(self):
        if self.attention_factor_ is not None:
            return self.attention_factor_
        if self.mscale and self.mscale_all_dim:
            return _yarn_mscale(self.factor, self.mscale) / _yarn_mscale(self.factor, self.mscale_all_dim)
        return _yarn_mscale(self.factor)

    def hf_params(self):
        out = {
            "factor": self.factor,
            "original_max_position_embeddings": self.original_max_position,
            "beta_fast": self.beta_fast,
            "beta_slow": self.beta_slow,
        }
        for key, value in (
            ("attention_factor", self.attention_factor_),
            ("mscale", self.mscale),
            ("mscale_all_dim", self.mscale_all_dim),
        ):
            if value is not None:
                out[key] = value
        if not self.truncate:
            out["truncate"] = False
        return out


@dataclass(frozen=True)
class Llama3(Scaling):
    """Llama 3.1 banded scaling (transformers ``llama3``), with ``L0 = original_max_position``:
    wavelengths ``< L0/high_freq_factor`` kept, ``> L0/low_freq_factor`` divided by ``factor``,
    in between ``(1-s)*theta/factor + s*theta`` with ``s = (L0/lambda - low)/(high - low)``.
    """

    factor: float
    original_max_position: int
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    hf_type = "llama3"

    def __post_init__(self):
        s = object.__setattr__
        s(self, "factor", real("Llama3.factor", self.factor, min_value=1.0))
        s(self, "original_max_position", positive_int("Llama3.original_max_position", self.original_max_position))
        s(self, "low_freq_factor", real("Llama3.low_freq_factor", self.low_freq_factor, min_value=0.0, strict=True))
        s(self, "high_freq_factor", real("Llama3.high_freq_factor", self.high_freq_factor, min_value=0.0, strict=True))
        if not self.high_freq_factor > self.low_freq_factor:
            raise bad(
                "Llama3.high_freq_factor",
                self.high_freq_factor,
                f"must be > low_freq_factor={self.low_freq_factor!r}",
            )

    def inv_freq(self, base, dim, seq_len=None):
        theta = default_inv_freq(base, dim)
        l0 = self.original_max_position
        wavelen = 2 * math.pi / theta
        scaled = np.where(wavelen > l0 / self.low_freq_factor, theta / self.factor, theta)
        smooth = (l0 / wavelen - self.low_freq_factor) / (self.high_freq_factor - self.low_freq_factor)
        smoothed = (1 - smooth) * scaled / self.factor + smooth * scaled
        medium = ~(wavelen < l0 / self.high_freq_factor) & ~(wavelen > l0 / self.low_freq_factor)
        return np.where(medium, smoothed, scaled)

    def hf_params(self):
        return {
            "factor": self.factor,
            "original_max_position_embeddings": self.original_max_position,
            "low_freq_factor": self.low_freq_factor,
            "high_freq_factor": self.high_freq_factor,
        }


@dataclass(frozen=True)
class LongRoPE(Scaling):
    """LongRoPE / Phi-3 (transformers ``longrope``): ``inv_freq_i = theta_i / f_i`` with ``f`` =
    ``long_factor`` when ``seq_len > original_max_position`` else ``short_factor``.
    Attention factor: given, else ``sqrt(1 + ln(factor)/ln(L0))`` for ``factor > 1`` else 1, where
    ``factor`` defaults to 1 (transformers derives it from ``max_position_embeddings / L0``;
    ``RopeConfig.from_hf`` does the same).
    """

    short_factor: tuple
    long_factor: tuple
    original_max_position: int
    attention_factor_: float | None = None
    factor: float | None = None
    hf_type = "longrope"
    seq_len_dependent = True

    def __init__(self, short_factor, long_factor, original_max_position, attention_factor=None, factor=None):
        s = object.__setattr__
        s(self, "short_factor", real_tuple("LongRoPE.short_factor", short_factor))
        s(self, "long_factor", real_tuple("LongRoPE.long_factor", long_factor))
        s(self, "original_max_position", positive_int("LongRoPE.original_max_position", original_max_position))
        s(
            self,
            "attention_factor_",
            optional_real("LongRoPE.attention_factor", attention_factor, min_value=0.0, strict=True),
        )
        s(self, "factor", optional_real("LongRoPE.factor", factor, min_value=0.0, strict=True))
        if self.attention_factor_ is None and (self.factor or 1.0) > 1.0 and self.original_max_position < 2:
            raise bad(
                "LongRoPE.original_max_position",
                self.original_max_position,
                "must be >= 2 when factor > 1 (the default attention factor divides by its log)",
            )
        if len(self.short_factor) != len(self.long_factor):
            raise bad(
                "LongRoPE.long_factor",
                f"<{len(self.long_factor)} values>",
                f"must have as many values as short_factor ({len(self.short_factor)})",
            )

    def __repr__(self):
        return (
            f"LongRoPE(short_factor={self.short_factor!r}, long_factor={self.long_factor!r}, "
            f"original_max_position={self.original_max_position!r}, "
            f"attention_factor={self.attention_factor_!r}, factor={self.factor!r})"
        )

    def check_dim(self, dim):
        if len(self.short_factor) != dim // 2:
            raise bad(
                "LongRoPE.short_factor",
                f"<{len(self.short_factor)} values>",
                f"must have rotary_dim//2 = {dim // 2} values",
            )

    def inv_freq(self, base, dim, seq_len=None):
        use_long = seq_len is not None and seq_len > self.original_max_position
        ext = np.asarray(self.long_factor if use_long else self.short_factor, dtype=np.float64)
        return default_inv_freq(base, dim) / ext

    def attention_factor(self):
        if self.attention_factor_ is not None:
            return self.attention_factor_
        factor = 1.0 if self.factor is None else self.factor
        if factor <= 1.0:
            return 1.0
        return math.sqrt(1 + math.log(factor) / math.log(self.original_max_position))

    def hf_params(self):
        out = {
            "short_factor": list(self.short_factor),
            "long_factor": list(self.long_factor),
            "original_max_position_embeddings": self.original_max_position,
        }
        if self.attention_factor_ is not None:
            out["attention_factor"] = self.attention_factor_
        # Always written: without it transformers derives factor from max_position_embeddings.
        out["factor"] = 1.0 if self.factor is None else self.factor
        return out


SCALINGS_BY_HF_TYPE = {cls.hf_type: cls for cls in (Linear, DynamicNTK, YaRN, Llama3, LongRoPE)}
