"""Per-config constants on the device: everything here comes from rrope_core (float64 NumPy).

Eager calls reuse tensors cached per (config, seq_len, device, kind); under ``torch.compile`` the
host values are folded into the graph as constants (``assume_constant_result``), so tracing
never leaves the graph. The host function is keyed by ``cfg.fingerprint`` (a string), never by
the config object, which some torch versions cannot pass through dynamo.
"""

from __future__ import annotations

import functools
import json
import math

import torch

import rrope_core as rr

__all__ = ["host_constants", "device_constants"]


@functools.lru_cache(maxsize=512)
def _host(fingerprint: str, seq_len: int | None) -> tuple:
    """``(periods or None, theta64, step64, attention_factor)`` as Python numbers."""
    cfg = rr.RopeConfig.from_dict(json.loads(fingerprint))
    a = float(rr.attention_factor(cfg, seq_len))
    if cfg.resonance:
        periods = tuple(int(v) for v in rr.integer_wavelengths(cfg, seq_len))
        step = tuple(2 * math.pi / v for v in periods)  # 2*pi/L_i in float64
        return periods, None, step, a
    return None, tuple(float(v) for v in rr.inv_freq(cfg, seq_len)), None, a


@torch.compiler.assume_constant_result
def host_constants(fingerprint: str, seq_len: int | None) -> tuple:
    return _host(fingerprint, seq_len)


_DEVICE_CACHE: dict = {}


def device_constants(cfg: rr.RopeConfig, seq_len: int | None, device: torch.device, compute: torch.dtype):
    """``(periods int64 | None, theta float64 | None, step compute | None, a)`` on ``device``."""
    periods, theta, step, a = host_constants(cfg.fingerprint, seq_len)
    if torch.compiler.is_compiling():
        return _tensors(periods, theta, step, device, compute) + (a,)
    key = (cfg.fingerprint, seq_len, device, compute)
    hit = _DEVICE_CACHE.get(key)
    if hit is None:
        if len(_DEVICE_CACHE) > 1024:
            _DEVICE_CACHE.clear()
        hit = _DEVICE_CACHE[key] = _tensors(periods, theta, step, device, compute)
    return hit + (a,)


def _tensors(periods, theta, step, device, compute):
    if periods is not None:
        return (
            torch.tensor(periods, dtype=torch.int64, device=device),
            None,
            torch.tensor(step, dtype=torch.float64, device=device).to(compute),
        )
    return None, torch.tensor(theta, dtype=torch.float64, device=device), None
