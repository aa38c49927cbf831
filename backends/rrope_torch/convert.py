"""Moving tensors to and from NumPy, and naming dtypes/devices (the contract's helpers)."""

from __future__ import annotations

import numpy as np
import torch

from rrope_core.errors import RopeInputError, bad

__all__ = ["to_numpy", "from_numpy", "is_array", "device_of", "DTYPES"]

DTYPES = ("float64", "float32", "float16", "bfloat16")
_DTYPE = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
}


def to_numpy(a: torch.Tensor) -> np.ndarray:
    """A NumPy copy (bfloat16, which NumPy lacks, comes back as float32: exact)."""
    a = a.detach()
    if a.dtype == torch.bfloat16:
        a = a.float()
    return a.cpu().numpy().copy()


def from_numpy(a, dtype: str | None = None, device=None) -> torch.Tensor:
    """A tensor on ``device`` (default CPU) with dtype name ``dtype`` (default: NumPy's)."""
    if dtype is not None and dtype not in _DTYPE:
        raise bad("dtype", dtype, f"must be one of {sorted(_DTYPE)}", RopeInputError)
    t = torch.from_numpy(np.array(a))
    return t.to(device=device, dtype=_DTYPE[dtype] if dtype else t.dtype)


def is_array(obj) -> bool:
    return isinstance(obj, torch.Tensor)


def device_of(a: torch.Tensor) -> str:
    return str(a.device)
