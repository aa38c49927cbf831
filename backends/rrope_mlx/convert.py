"""Arrays in and out of MLX, dtype names, and the device the backend computes on.

MLX arrays live in unified memory and carry no device: an op runs on the stream of the default
device (``mx.default_device()``, the GPU on Apple silicon, the CPU elsewhere). ``RROPE_MLX_DEVICE``
(``cpu`` or ``gpu``), read once at import, sets MLX's default device for the whole process.
"""

from __future__ import annotations

import os

import mlx.core as mx
import numpy as np

from rrope_core.errors import RopeInputError, bad

__all__ = [
    "DTYPES",
    "ENV_DEVICE",
    "to_numpy",
    "from_numpy",
    "is_array",
    "device_of",
    "on_gpu",
    "dtype_name",
    "meta",
]

ENV_DEVICE = "RROPE_MLX_DEVICE"
_DEVICES = {"cpu": mx.cpu, "gpu": mx.gpu}

#: dtype name -> MLX dtype, for every name ``from_numpy`` accepts.
_MX = {
    "float64": mx.float64,
    "float32": mx.float32,
    "float16": mx.float16,
    "bfloat16": mx.bfloat16,
    "int64": mx.int64,
    "int32": mx.int32,
    "int16": mx.int16,
    "int8": mx.int8,
    "uint64": mx.uint64,
    "uint32": mx.uint32,
    "uint16": mx.uint16,
    "uint8": mx.uint8,
    "bool": mx.bool_,
}


def _select_device() -> None:
    want = os.environ.get(ENV_DEVICE, "").strip().lower()
    if not want:
        return
    if want not in _DEVICES:
        raise bad(ENV_DEVICE, want, "must be 'cpu' or 'gpu' (or unset: MLX's default device)", RopeInputError)
    if not mx.is_available(_DEVICES[want]):
        raise bad(ENV_DEVICE, want, "names a device MLX does not have on this machine", RopeInputError)
    mx.set_default_device(_DEVICES[want])


def _float64_works() -> bool:
    """MLX implements float64 on the CPU only; probe the default device once."""
    try:
        mx.eval(mx.array([1.0], dtype=mx.float64) * 2)
    except (RuntimeError, ValueError):
        return False
    return True


_select_device()
#: Floating dtypes this backend rotates; float64 only where the default device (at import) has it.
DTYPES = (("float64",) if _float64_works() else ()) + ("float32", "float16", "bfloat16")


def dtype_name(dt) -> str:
    """``mx.bfloat16`` -> ``"bfloat16"`` (the names the reference's messages use)."""
    return str(dt).rsplit(".", 1)[-1]


def meta(a) -> tuple[tuple, str, bool, bool]:
    """``(shape, dtype name, is floating, is integer)`` of an MLX or NumPy array, without reading values."""
    if isinstance(a, mx.array):
        return tuple(a.shape), dtype_name(a.dtype), mx.issubdtype(a.dtype, mx.floating), _is_int(a.dtype)
    a = np.asarray(a)
    return a.shape, str(a.dtype), a.dtype.kind == "f", a.dtype.kind in "iu"


def _is_int(dt) -> bool:
    return dt != mx.bool_ and mx.issubdtype(dt, mx.integer)


def on_gpu() -> bool:
    """True when ops run on the GPU (Metal) now."""
    return mx.default_device().type == mx.DeviceType.gpu


def _check_device(device) -> None:
    if device is None:
        return
    kind = device.type.name if isinstance(device, mx.Device) else str(device).strip().lower()
    if kind not in _DEVICES:
        raise bad("device", device, "must be None, 'cpu', 'gpu' or an mlx.core.Device", RopeInputError)
    if _DEVICES[kind] != mx.default_device().type:
        raise bad(
            "device",
            device,
            f"must be MLX's default device {mx.default_device()} (MLX arrays have no device; "
            f"set {ENV_DEVICE} or mx.set_default_device before importing rrope_mlx)",
            RopeInputError,
        )


def is_array(obj) -> bool:
    return isinstance(obj, mx.array)


def device_of(a) -> str:
    """The device MLX runs ops on now, e.g. ``"Device(gpu, 0)"`` (arrays themselves have none)."""
    return str(mx.default_device())


def to_numpy(a) -> np.ndarray:
    """A NumPy copy; bfloat16 (which NumPy lacks) comes back as float32, exactly."""
    if a.dtype == mx.bfloat16:
        a = a.astype(mx.float32)
    return np.array(a, copy=True)


def from_numpy(a, dtype: str | None = None, device=None) -> mx.array:
    """An MLX array of ``a``'s values in ``dtype`` (default: ``a``'s own dtype, float64 kept)."""
    _check_device(device)
    a = np.asarray(a)
    name = str(a.dtype) if dtype is None else dtype
    allowed = [n for n in _MX if n != "float64" or "float64" in DTYPES]
    if name not in allowed:
        raise bad("dtype", name, f"must be one of {allowed}", RopeInputError)
    return mx.array(a, dtype=_MX[name])
