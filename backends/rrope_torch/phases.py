"""Exact rotary phases on the device (the reference's rrope_core/phases.py, in torch ops).

Integer wavelengths: ``r = m mod L`` in int64 (exact at any position), centred to
``(-L/2, L/2]``, angle ``r * (2*pi/L)`` in the compute dtype: error <= 2*pi*eps_c.
Other wavelengths: ``fmod(m * theta, 2*pi)`` in float64 (``fmod`` is exact; the product and
the float64 ``2*pi`` cost <= 0.7*eps64*|m*theta|), centred to ``[-pi, pi]``, then cast.
"""

from __future__ import annotations

import math

import torch

import rrope_core as rr

from .constants import device_constants

__all__ = ["phases"]


def phases(positions: torch.Tensor, cfg: rr.RopeConfig, seq_len: int | None, compute: torch.dtype):
    """Angles of shape ``positions.shape + (rotary_dim//2,)`` in ``compute`` dtype, plus the attention factor."""
    periods, theta, step, a = device_constants(cfg, seq_len, positions.device, compute)
    m = positions.to(torch.int64).unsqueeze(-1)
    if periods is not None:
        r = torch.remainder(m, periods)
        r = torch.where(r > periods // 2, r - periods, r)
        return r.to(compute) * step, a
    ang = torch.fmod(m.to(torch.float64) * theta, 2 * math.pi)
    ang = torch.where(ang > math.pi, ang - 2 * math.pi, ang)
    ang = torch.where(ang < -math.pi, ang + 2 * math.pi, ang)
    return ang.to(compute), a
