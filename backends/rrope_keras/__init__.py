"""rrope_keras: the Keras 3 backend of resonance-rope (the contract of ``rrope_core.contract``).

One implementation in ``keras.ops`` that runs on every Keras backend (``KERAS_BACKEND=jax``,
``torch`` or ``tensorflow``, fixed when Keras is imported). All frequency math comes from
``rrope_core``; phases are exact with 32-bit integers only (``m mod L`` in int32 for resonance
configs, a 15-bit-limb fixed-point ``frac(m * theta/(2*pi))`` otherwise: see phases.py), the
rotation runs in float32 (float64 for float64 inputs where the backend has float64) with the
inverse rotation as its gradient (``keras.ops.custom_gradient``). ``RotaryEmbedding`` is a
serializable ``keras.layers.Layer``. Imports Keras only (and so the backend Keras loads).
"""

from __future__ import annotations

from .convert import DTYPES, MAX_POSITION, device_of, from_numpy, is_array, to_numpy
from .gradient import grad_apply_rotary
from .layer import RotaryEmbedding
from .rotation import apply_rotary, cos_sin, inv_freq, inverse_rotary

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
    "MAX_POSITION",
]

name = "keras"
