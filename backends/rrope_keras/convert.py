"""NumPy <-> Keras tensors, dtype names, the int32 position rule and what can be read on the host.

A Keras tensor is the active backend's own tensor (``jax.Array``, ``torch.Tensor``, ``tf.Tensor``);
everything here goes through ``keras.ops`` / ``keras.backend``, apart from reading a tensor's
device (an attribute of each framework's tensor, detected by type, never imported).
"""

from __future__ import annotations

import contextlib
import warnings

import keras
import numpy as np
from keras import ops

from rrope_core.checked import check_range, positions_checked
from rrope_core.errors import RopeInputError, bad

__all__ = [
    "DTYPES",
    "MAX_POSITION",
    "to_numpy",
    "from_numpy",
    "is_array",
    "device_of",
    "meta",
    "readable",
    "as_tensor",
    "as_positions",
]

#: Positions lie in ``[-MAX_POSITION, MAX_POSITION)``: int32 on every Keras backend.
MAX_POSITION = 2**31
_INT32 = ("int8", "int16", "int32", "uint8", "uint16")  # integer dtypes whose values all fit int32


def _float64_works() -> bool:
    """True unless the backend narrows float64 tensors or their cos (JAX: Keras computes ``cos`` of a
    float64 array in float32 even with ``jax_enable_x64``; without it there are no float64 arrays)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # JAX warns while truncating the probe
        probe = ops.convert_to_tensor(np.zeros(1), dtype="float64")
        kept = [probe, ops.cos(probe), ops.sin(probe)]
    return all(keras.backend.standardize_dtype(t.dtype) == "float64" for t in kept)


DTYPES = ("float32", "float16", "bfloat16") + (("float64",) if _float64_works() else ())


def _dtype_name(a) -> str:
    return keras.backend.standardize_dtype(a.dtype)


def meta(a) -> tuple[tuple, str, bool, bool]:
    """``(static shape, dtype name, is floating, is integer)``; unknown dimensions are None."""
    if not hasattr(a, "dtype") or not hasattr(a, "shape"):
        a = np.asarray(a)
    name = _dtype_name(a)
    shape = tuple(None if d is None else int(d) for d in a.shape)
    return shape, name, name.startswith("float") or name == "bfloat16", name.startswith(("int", "uint"))


def is_array(obj) -> bool:
    """A tensor of the active Keras backend (eager or traced)."""
    return bool(ops.is_tensor(obj))


def readable(t) -> bool:
    """True when ``t``'s values exist now (not a JAX tracer, a TF graph tensor or a KerasTensor).

    Detected from the type's name (never by importing a framework): JAX tracers derive from a
    class named ``Tracer``; TensorFlow's eager tensors are ``EagerTensor``, graph ones are not.
    """
    if isinstance(t, (np.ndarray, np.generic)):
        return True
    if isinstance(t, keras.KerasTensor):
        return False
    names = {c.__name__ for c in type(t).__mro__}
    if "Tracer" in names:
        return False
    if type(t).__module__.startswith("tensorflow"):
        return "EagerTensor" in names
    return True


def _check_range(a: np.ndarray) -> None:
    if a.size and (int(a.min()) < -MAX_POSITION or int(a.max()) >= MAX_POSITION):
        raise bad(
            "positions",
            f"[{int(a.min())}, {int(a.max())}]",
            "must lie in [-2**31, 2**31): rrope_keras computes phases in int32 on every Keras backend",
            RopeInputError,
        )


def as_tensor(a):
    """``a`` itself if it is a backend tensor; NumPy / Python values become one (never a view to write to)."""
    return a if is_array(a) else ops.convert_to_tensor(np.array(a))


def _checked_mode(p) -> None:
    """Checked positions mode (``rrope_core.checked``): readable values are read (one device sync) and
    refused below 0 or at/above MAX_POSITION. Traced values cannot be read with keras.ops: not checked."""
    if not readable(p):
        return
    arr = np.asarray(ops.convert_to_numpy(p) if is_array(p) else p)
    if arr.size:
        check_range(int(arr.min()), int(arr.max()), MAX_POSITION)


def as_positions(p):
    """Integer positions (dtype already checked) as an int32 tensor, refusing values beyond int32.

    int8..int32 and uint8/uint16 are cast. Wider types (int64, uint32, uint64) are range-checked
    on the host first (one device read), which needs readable values: traced ones must be int32.
    """
    if positions_checked():
        _checked_mode(p)
    if not is_array(p):
        arr = np.asarray(p)
        _check_range(arr)
        return ops.convert_to_tensor(arr.astype(np.int32))
    name = _dtype_name(p)
    if name == "int32":
        return p
    if name not in _INT32:
        if not readable(p):
            raise bad(
                "positions.dtype",
                name,
                "must be int32 (or narrower) for traced positions: wider values cannot be checked "
                "against the int32 range inside jit / tf.function",
                RopeInputError,
            )
        _check_range(ops.convert_to_numpy(p))
    return ops.cast(p, "int32")


def to_numpy(a) -> np.ndarray:
    """A NumPy copy of a tensor; bfloat16 comes back as float32 (exactly)."""
    out = np.array(ops.convert_to_numpy(a))
    return out.astype(np.float32) if out.dtype.name == "bfloat16" else out


def _device_scope(device):
    if device is None:
        return contextlib.nullcontext()
    if not isinstance(device, str):
        raise bad("device", device, "must be None or a Keras device name such as 'cpu' or 'gpu:0'", RopeInputError)
    return keras.device(device)


def from_numpy(a, dtype: str | None = None, device=None):
    """A tensor of ``a`` (``dtype`` a name of DTYPES or an integer dtype) on ``device`` (e.g. ``"gpu:0"``).

    Integer arrays become int32; values outside ``[-2**31, 2**31)`` raise instead of wrapping.
    """
    a = np.asarray(a)
    with _device_scope(device):
        if dtype in ("float64", "float32", "float16", "bfloat16"):
            if dtype not in DTYPES:
                raise bad(
                    "dtype", dtype, f"is not supported by this Keras backend; supported: {DTYPES}", RopeInputError
                )
            return ops.convert_to_tensor(a, dtype=dtype)
        if a.dtype.kind in "iu" or (dtype is not None and np.dtype(dtype).kind in "iu"):
            return as_positions(a)
        if dtype is not None:
            raise bad("dtype", dtype, f"must be None, an integer dtype or one of {DTYPES}", RopeInputError)
        return ops.convert_to_tensor(a)


def device_of(a) -> str:
    """``"cpu:0"``, ``"gpu:0"``, ...: the device holding ``a`` in Keras's naming (``""`` if not yet placed)."""
    dev = getattr(a, "device", None)
    if dev is None:
        return ""
    platform = getattr(dev, "platform", None)  # a jax.Device
    if platform is not None:
        return f"{platform}:{dev.id}"
    kind = getattr(dev, "type", None)  # a torch.device
    if kind is not None:
        return f"{'gpu' if kind == 'cuda' else kind}:{dev.index or 0}"
    name = str(dev)  # TensorFlow: "/job:localhost/replica:0/task:0/device:CPU:0"
    if "device:" not in name:
        return name
    kind, _, index = name.rsplit("device:", 1)[1].partition(":")
    return f"{kind.lower()}:{index or 0}"
