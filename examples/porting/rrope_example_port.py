"""A minimal out-of-tree backend: a "device" that computes in float32 only (docs/porting.md).

It shows the whole contract. Phases come from the host (``rrope_core.phases``: exact integer
reduction for resonance configs, float64 reduction otherwise), the device does float32 trig and
the rotation. Run the conformance suite against it:

    PYTHONPATH=examples/porting RROPE_BACKEND=rrope_example_port pytest conformance
"""

from __future__ import annotations

import numpy as np

import rrope_core as rr
from rrope_core.checked import check_range, positions_checked
from rrope_core.errors import RopeInputError, bad
from rrope_core.inputs import check_cfg, check_positions_dtype, check_positions_shape, check_x_shape

name = "example_port"
DTYPES = ("float32", "float16")  # what this device supports


class DeviceArray:
    """Stands in for a device buffer: the port's own array type."""

    def __init__(self, data: np.ndarray):
        self.data = data

    shape = property(lambda self: self.data.shape)


def is_array(obj) -> bool:
    return isinstance(obj, DeviceArray)


def device_of(a) -> str:
    return "example:0"


def from_numpy(a, dtype=None, device=None) -> DeviceArray:
    return DeviceArray(np.array(a, dtype=dtype))


def to_numpy(a: DeviceArray) -> np.ndarray:
    return a.data.copy()


def inv_freq(cfg, seq_len=None, *, device=None) -> DeviceArray:
    return DeviceArray(rr.inv_freq(cfg, seq_len).astype(np.float32))


def _check(x: DeviceArray, positions: DeviceArray, cfg, name: str):
    check_cfg(cfg)
    if x.data.dtype.kind != "f":
        raise bad(f"{name}.dtype", str(x.data.dtype), "must be a floating dtype", RopeInputError)
    check_positions_dtype(str(positions.data.dtype), positions.data.dtype.kind in "iu")
    check_x_shape(x.shape, cfg, name)
    check_positions_shape(positions.shape, x.shape, name)


def _cos_sin32(cfg, pos: np.ndarray, seq_len):
    if positions_checked() and pos.size:  # checked positions mode: read the values (a device sync)
        check_range(int(pos.min()), int(pos.max()))
    seq_len = rr.rotation.resolve_seq_len(cfg, seq_len, int(pos.max()) if pos.size else None)
    phi = rr.phases(cfg, pos.astype(np.int64), seq_len).astype(np.float32)  # host: exact reduction
    return np.cos(phi), np.sin(phi), np.float32(rr.attention_factor(cfg, seq_len))  # device: float32


def cos_sin(cfg, positions: DeviceArray, seq_len=None):
    check_cfg(cfg)
    check_positions_dtype(str(positions.data.dtype), positions.data.dtype.kind in "iu")
    c, s, _ = _cos_sin32(cfg, positions.data, seq_len)
    return DeviceArray(c), DeviceArray(s)


def _rotate(x: DeviceArray, positions: DeviceArray, cfg, seq_len, inverse: bool) -> DeviceArray:
    _check(x, positions, cfg, "y" if inverse else "x")
    c, s, a = _cos_sin32(cfg, positions.data, seq_len)
    scale = np.float32(1) / a if inverse else a
    s = -s if inverse else s
    first, second = rr.pair_slices(cfg)
    out = x.data.astype(np.float32)
    x1, x2 = out[..., first].copy(), out[..., second].copy()
    out[..., first] = scale * (x1 * c - x2 * s)
    out[..., second] = scale * (x2 * c + x1 * s)
    out[..., cfg.rotary_dim :] = x.data[..., cfg.rotary_dim :]
    return DeviceArray(out.astype(x.data.dtype))


def apply_rotary(x, positions, cfg, seq_len=None):
    return _rotate(x, positions, cfg, seq_len, inverse=False)


def inverse_rotary(y, positions, cfg, seq_len=None):
    return _rotate(y, positions, cfg, seq_len, inverse=True)


class RotaryEmbedding:
    def __init__(self, cfg):
        if not isinstance(cfg, rr.RopeConfig):
            raise bad("cfg", cfg, "must be a rrope_core.RopeConfig", RopeInputError)
        self.cfg = cfg

    def __call__(self, q, k, positions, seq_len=None):
        return apply_rotary(q, positions, self.cfg, seq_len), apply_rotary(k, positions, self.cfg, seq_len)
