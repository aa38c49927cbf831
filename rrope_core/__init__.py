"""rrope_core: the NumPy reference specification of Resonance RoPE.

Everything here is float64 NumPy and imports no array framework. Backends
(``rrope_torch``, ``rrope_tensorflow``, ``rrope_mlx``, ``rrope_jax``, ``rrope_keras``) take all
frequency math from here. ``checked_positions`` makes every backend validate position values.
``apply_rotary``/``inverse_rotary``/``cos_sin`` dispatch on the array's framework;
``backend()`` returns the one picked by ``RROPE_BACKEND`` (read once, at import).
"""

from ._version import __version__
from .analysis import circular_distance, feature_gap
from .api import apply_rotary, cos_sin, inverse_rotary
from .checked import checked_positions, positions_checked, set_checked_positions
from .config import LAYOUTS, RopeConfig
from .dispatch import backend, backend_for, framework_of, known_backends
from .errors import (
    BackendNotFoundError,
    MixedFrameworkError,
    RopeConfigError,
    RopeError,
    RopeInputError,
    RopeWarning,
)
from .frequencies import (
    attention_factor,
    critical_dim,
    integer_wavelengths,
    inv_freq,
    scaled_inv_freq,
    wavelengths,
)
from .hf import HF_ROPE_TYPES
from .phases import phases
from .rotation import pair_slices
from .scaling import NTK, DynamicNTK, Linear, Llama3, LongRoPE, Scaling, YaRN

__all__ = [
    "__version__",
    "RopeConfig",
    "LAYOUTS",
    "Scaling",
    "Linear",
    "NTK",
    "DynamicNTK",
    "YaRN",
    "Llama3",
    "LongRoPE",
    "RopeError",
    "RopeConfigError",
    "RopeWarning",
    "RopeInputError",
    "BackendNotFoundError",
    "MixedFrameworkError",
    "inv_freq",
    "scaled_inv_freq",
    "wavelengths",
    "integer_wavelengths",
    "attention_factor",
    "critical_dim",
    "phases",
    "cos_sin",
    "apply_rotary",
    "inverse_rotary",
    "pair_slices",
    "feature_gap",
    "circular_distance",
    "HF_ROPE_TYPES",
    "backend",
    "backend_for",
    "framework_of",
    "known_backends",
    "checked_positions",
    "positions_checked",
    "set_checked_positions",
]
