"""rrope_torch: the PyTorch backend of resonance-rope (CPU and CUDA, autograd, torch.compile).

All frequency math comes from ``rrope_core``; this package computes exact phases on the
tensor's device (integer ``m mod L`` for resonance configs, float64 reduction otherwise), does
the trig in float32 at least, and rotates. The backward of the rotation is the inverse rotation.
"""

from __future__ import annotations

import torch

import rrope_core as rr

from .convert import DTYPES, device_of, from_numpy, is_array, to_numpy
from .fused import kernel_plan, triton_available
from .module import RotaryEmbedding
from .rotation import apply_rotary, apply_rotary_, apply_rotary_qk, cos_sin, inverse_rotary

__all__ = [
    "name",
    "DTYPES",
    "inv_freq",
    "cos_sin",
    "apply_rotary",
    "apply_rotary_",
    "apply_rotary_qk",
    "kernel_plan",
    "triton_available",
    "inverse_rotary",
    "RotaryEmbedding",
    "to_numpy",
    "from_numpy",
    "is_array",
    "device_of",
    "grad_apply_rotary",
]

name = "torch"


def inv_freq(cfg: rr.RopeConfig, seq_len: int | None = None, *, device=None) -> torch.Tensor:
    """``rrope_core.inv_freq`` as a float64 tensor on ``device``."""
    return torch.tensor(rr.inv_freq(cfg, seq_len), dtype=torch.float64, device=device)


def grad_apply_rotary(x, positions, cfg: rr.RopeConfig, w, seq_len: int | None = None) -> torch.Tensor:
    """``d/dx sum(w * apply_rotary(x))`` through autograd (for the conformance suite)."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad((apply_rotary(x, positions, cfg, seq_len) * w).sum(), x)
    return grad
