"""rrope_jax: the JAX backend of resonance-rope (the contract of ``rrope_core.contract``).

All frequency math comes from ``rrope_core``; this package computes exact phases on the device
with JAX's default 32-bit types (``m mod L`` in int32 for resonance configs, a fixed-point
``frac(m * theta/(2*pi))`` in wrapping unsigned integers otherwise), rotates in float32 (float64
for float64 inputs, which need ``jax_enable_x64``) and defines the gradient as the inverse
rotation (``jax.custom_vjp``). Works under ``jax.jit`` and ``vmap``; positions may be traced.
Imports JAX only.
"""

from __future__ import annotations

from .convert import DTYPES, device_of, from_numpy, is_array, to_numpy
from .module import RotaryEmbedding
from .rotation import MAX_POSITION, apply_rotary, apply_rotary_qk, cos_sin, grad_apply_rotary, inv_freq, inverse_rotary

__all__ = [
    "name",
    "DTYPES",
    "inv_freq",
    "cos_sin",
    "apply_rotary",
    "apply_rotary_qk",
    "inverse_rotary",
    "RotaryEmbedding",
    "to_numpy",
    "from_numpy",
    "is_array",
    "device_of",
    "grad_apply_rotary",
    "MAX_POSITION",
]

name = "jax"
#: MAX_POSITION: positions must be below it: 2**31 with JAX's default 32-bit types, 2**63 with
#: jax_enable_x64 (read at import). Larger positions raise RopeInputError in from_numpy (and in any
#: call under checked positions mode, rrope_core.checked); traced int32 positions cannot exceed it.
