"""rrope_mlx: the MLX backend of resonance-rope (rrope_core.contract), on CPU or Metal GPU.

All frequency math comes from ``rrope_core``; this package reduces phases exactly on the device
(``rrope_mlx.phases``, int64 arithmetic, no float64 needed) and rotates. Where accuracy allows,
``mx.fast.rope`` runs instead (``rrope_mlx.fast``); ``path_for`` tells which path a call takes.
Importing it imports mlx, numpy and rrope_core only.
"""

from .convert import DTYPES, device_of, from_numpy, is_array, to_numpy
from .fast import PATHS, path_for
from .module import RotaryEmbedding
from .rotation import apply_rotary, cos_sin, grad_apply_rotary, inv_freq, inverse_rotary

name = "mlx"

__all__ = [
    "name",
    "DTYPES",
    "PATHS",
    "inv_freq",
    "cos_sin",
    "apply_rotary",
    "inverse_rotary",
    "grad_apply_rotary",
    "path_for",
    "RotaryEmbedding",
    "to_numpy",
    "from_numpy",
    "is_array",
    "device_of",
]
