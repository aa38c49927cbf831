"""rrope_tensorflow: the TensorFlow backend of resonance-rope (the contract of ``rrope_core.contract``).

All frequency math comes from ``rrope_core``; this package computes the exact phases on the
device (int64 residues for resonance configs, float64 reduction otherwise), rotates in float32
(float64 for float64 inputs), and registers the inverse rotation as the gradient. Works eagerly,
inside ``tf.function`` and under XLA (``jit_compile=True``). Imports TensorFlow (and its Keras) only.
"""

from __future__ import annotations

from .convert import DTYPES, device_of, from_numpy, is_array, to_numpy
from .frequencies import inv_freq
from .layer import RotaryEmbedding
from .rotation import apply_rotary, cos_sin, grad_apply_rotary, inverse_rotary

__all__ = [
    "name",
    "DTYPES",
    "inv_freq",
    "cos_sin",
    "apply_rotary",
    "inverse_rotary",
    "RotaryEmbedding",
    "to_numpy",
    "from_numpy",
    "is_array",
    "device_of",
    "grad_apply_rotary",
]

name = "tensorflow"
