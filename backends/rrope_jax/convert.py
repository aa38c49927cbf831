"""NumPy <-> JAX conversion, dtype names and the 32-bit position rule (x64 off: int32 positions)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rrope_core.errors import RopeInputError, bad

__all__ = ["DTYPES", "x64", "to_numpy", "from_numpy", "is_array", "device_of", "meta", "position_limit"]


def x64() -> bool:
    """True when ``jax_enable_x64`` is on (int64 positions, float64 arrays)."""
    return bool(jax.config.jax_enable_x64)


DTYPES = ("float32", "float16", "bfloat16") + (("float64",) if x64() else ())
_NAMES = {"float64": jnp.float64, "float32": jnp.float32, "float16": jnp.float16, "bfloat16": jnp.bfloat16}


def position_limit() -> int:
    """Positions must be below this: 2**31 with 32-bit types, 2**63 with x64."""
    return 2**63 if x64() else 2**31


def to_numpy(a) -> np.ndarray:
    """A NumPy copy of a JAX array (bfloat16 comes back as float32, exactly)."""
    out = np.asarray(a)
    return out.astype(np.float32) if out.dtype.name == "bfloat16" else out


def _device(device):
    if device is None or isinstance(device, jax.Device):
        return device
    if isinstance(device, str):
        kind, _, index = device.partition(":")
        devices = jax.devices(kind)
        return devices[int(index or 0)]
    raise bad("device", device, "must be None, a jax.Device or a string like 'cpu' or 'gpu:0'", RopeInputError)


def from_numpy(a: np.ndarray, dtype: str | None = None, device=None):
    """A JAX array of ``a`` (``dtype`` a name of DTYPES or an integer dtype) on ``device``.

    Integer arrays become int32 unless x64 is on; values outside int32 then raise instead of wrapping.
    """
    a = np.asarray(a)
    dev = _device(device)
    if dtype in _NAMES:
        if dtype not in DTYPES:
            raise bad("dtype", dtype, f"needs jax_enable_x64; supported now: {DTYPES}", RopeInputError)
        out = jnp.asarray(a, dtype=_NAMES[dtype])
    elif a.dtype.kind in "iu" or (dtype is not None and np.dtype(dtype).kind in "iu"):
        if not x64() and a.size and (a.min() < -(2**31) or a.max() >= 2**31):
            raise bad(
                "positions",
                f"[{a.min()}, {a.max()}]",
                "must lie in [-2**31, 2**31) with JAX's 32-bit types; enable jax_enable_x64 for int64 positions",
                RopeInputError,
            )
        out = jnp.asarray(a, dtype=jnp.int64 if x64() else jnp.int32)
    else:
        out = jnp.asarray(a)
    return jax.device_put(out, dev) if dev is not None else out


def is_array(obj) -> bool:
    return isinstance(obj, jax.Array)


def device_of(a) -> str:
    """``"cpu"``, ``"gpu:0"``, ...: the first device holding ``a``."""
    dev = sorted(a.devices(), key=lambda d: d.id)[0]
    return f"{dev.platform}:{dev.id}" if dev.platform != "cpu" else "cpu"


def meta(a) -> tuple[tuple, str, bool, bool]:
    """``(shape, dtype name, is floating, is integer)`` of a JAX (possibly traced) or NumPy array."""
    if not isinstance(a, (jax.Array, np.ndarray, np.generic)) and not hasattr(a, "aval"):
        a = np.asarray(a)
    dt = np.dtype(a.dtype)
    return tuple(a.shape), dt.name, jnp.issubdtype(dt, jnp.floating), dt.kind in "iu"
