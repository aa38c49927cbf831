"""``RopeConfig``: everything that determines a rotary embedding, validated at construction."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

import numpy as np

from ._checks import boolean, positive_int, real
from .errors import RopeInputError, bad
from .limits import MAX_HEAD_DIM
from .scaling import LongRoPE, Scaling

__all__ = ["RopeConfig", "LAYOUTS"]

#: ``"half"``: pair ``i`` is features ``(i, i + d/2)`` (GPT-NeoX, transformers' ``rotate_half``).
#: ``"interleaved"``: pair ``i`` is features ``(2i, 2i+1)`` (GPT-J, Meta's Llama, MLX ``traditional``).
LAYOUTS = ("half", "interleaved")


@dataclass(frozen=True)
class RopeConfig:
    """A rotary position embedding.

    ``head_dim`` features per head, of which the first ``rotary_dim`` (default: all) are rotated
    in pairs laid out by ``layout``; ``base`` is RoPE's theta; ``scaling`` one of the methods of
    ``rrope_core.scaling`` or ``None``; ``resonance=True`` rounds every wavelength the scaling
    produced to the nearest integer (Wang et al. 2024, Resonance RoPE, eq. 6).
    """

    head_dim: int = 128
    base: float = 10000.0
    rotary_dim: int | None = None
    scaling: Scaling | None = None
    resonance: bool = False
    layout: str = "half"

    def __post_init__(self):
        s = object.__setattr__
        head_dim = positive_int("head_dim", self.head_dim)
        if head_dim > MAX_HEAD_DIM:
            raise bad(
                "head_dim",
                self.head_dim,
                f"must be <= {MAX_HEAD_DIM} (2**20, rrope_core.limits.MAX_HEAD_DIM: 4096x the widest head in common use)",
            )
        if head_dim % 2:
            raise bad("head_dim", self.head_dim, "must be even (features are rotated in pairs)")
        rotary_dim = head_dim if self.rotary_dim is None else positive_int("rotary_dim", self.rotary_dim)
        if rotary_dim % 2:
            raise bad("rotary_dim", self.rotary_dim, "must be even (features are rotated in pairs)")
        if rotary_dim > head_dim:
            raise bad("rotary_dim", self.rotary_dim, f"must be <= head_dim={head_dim}")
        s(self, "head_dim", head_dim)
        s(self, "rotary_dim", rotary_dim)
        s(self, "base", real("base", self.base, min_value=1.0, strict=True))
        if self.scaling is not None and not isinstance(self.scaling, Scaling):
            raise bad("scaling", self.scaling, "must be None or one of Linear, NTK, DynamicNTK, YaRN, Llama3, LongRoPE")
        s(self, "resonance", boolean("resonance", self.resonance))
        if self.layout not in LAYOUTS:
            raise bad("layout", self.layout, f"must be one of {LAYOUTS}")
        if self.scaling is not None:
            self.scaling.check_dim(rotary_dim)
        if self.resonance:
            self._check_roundable()
        # Not a field: a stable string of every field, for caches that must not hold the object.
        s(self, "fingerprint", json.dumps(self.to_dict(), sort_keys=True))

    def _check_roundable(self) -> None:
        """Every wavelength must round to >= 1 position, for every seq_len the scaling may see."""
        from .frequencies import scaled_inv_freq

        lengths = [None]
        if isinstance(self.scaling, LongRoPE):
            lengths.append(self.scaling.original_max_position + 1)
        for seq_len in lengths:
            shortest = float(2 * math.pi / scaled_inv_freq(self, seq_len).max())
            if not np.rint(shortest) >= 1:
                raise bad(
                    "resonance",
                    True,
                    f"must be False when a wavelength is <= 0.5 (it would round to period 0); the shortest is {shortest:g}",
                )

    @property
    def n_pairs(self) -> int:
        """Number of rotated feature pairs, ``rotary_dim // 2``."""
        return self.rotary_dim // 2

    @property
    def seq_len_dependent(self) -> bool:
        """True when the frequencies depend on ``seq_len`` (dynamic NTK, LongRoPE)."""
        return self.scaling is not None and self.scaling.seq_len_dependent

    def with_resonance(self, resonance: bool = True) -> RopeConfig:
        """The same config with ``resonance`` set (a new object; configs are immutable)."""
        return replace(self, resonance=resonance)

    def to_dict(self) -> dict:
        """A JSON-safe dict of every field (``scaling`` as ``{"type": ..., **params}``); see ``from_dict``."""
        from .serialize import config_to_dict

        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RopeConfig:
        """Inverse of ``to_dict`` (validated like any construction)."""
        from .serialize import config_from_dict

        return config_from_dict(data)

    @classmethod
    def from_hf(cls, block) -> RopeConfig:
        """Read a transformers config (v5 ``rope_parameters`` or v4 ``rope_scaling``+``rope_theta``)."""
        from .hf import config_from_hf

        return config_from_hf(block)

    def to_hf(self, version: int = 5) -> dict:
        """Write the config as transformers' v5 (``rope_parameters``) or v4 (``rope_scaling``) keys."""
        from .hf import config_to_hf

        return config_to_hf(self, version)


def check_seq_len(seq_len: object) -> int | None:
    """``None`` or a positive int: the sequence length that dynamic scalings adapt to."""
    return None if seq_len is None else positive_int("seq_len", seq_len, RopeInputError)
