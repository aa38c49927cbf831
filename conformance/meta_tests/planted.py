"""A backend with one planted bug (chosen by ``RROPE_PLANTED_BUG``): the suite must catch each.

Built on the reference, so the only difference from a correct backend is the bug itself.
"""

from __future__ import annotations

import os

import numpy as np

import rrope_core as rr
from rrope_core import numpy_backend as _np
from rrope_core import rotation as _ref

from . import BUGS

BUG = os.environ.get("RROPE_PLANTED_BUG", "")
if BUG not in BUGS:
    raise ImportError(f"RROPE_PLANTED_BUG={BUG!r} is not one of {BUGS}")

name = f"planted:{BUG}"
DTYPES = _np.DTYPES
to_numpy, from_numpy, is_array, device_of, inv_freq = (
    _np.to_numpy,
    _np.from_numpy,
    _np.is_array,
    _np.device_of,
    _np.inv_freq,
)


def _phases(cfg, pos, seq_len):
    if BUG == "unrounded":
        cfg = cfg.with_resonance(False)
    if BUG == "off_by_one":
        pos = pos + 1
    if BUG == "float32_phase":
        return np.float32(pos[..., None]) * rr.inv_freq(cfg, seq_len).astype(np.float32)
    return rr.phases(cfg, pos, seq_len)


def cos_sin(cfg, positions, seq_len=None):
    pos = rr.inputs.as_positions(positions, cfg)
    phi = _phases(cfg, pos, _ref.resolve_seq_len(cfg, seq_len, int(pos.max()) if pos.size else None))
    return np.cos(phi).astype(np.float64), np.sin(phi).astype(np.float64)


def _rotate(x, positions, cfg, seq_len, inverse):
    x, _, _, a = _ref._prepare(x, positions, cfg, seq_len, "y" if inverse else "x")
    pos = np.asarray(positions, dtype=np.int64)
    eff = _ref.resolve_seq_len(cfg, seq_len, int(pos.max()) if pos.size else None)
    phi = _phases(cfg, pos, eff)
    if BUG == "layouts_swapped":
        cfg = rr.RopeConfig(
            cfg.head_dim,
            cfg.base,
            cfg.rotary_dim,
            cfg.scaling,
            cfg.resonance,
            "interleaved" if cfg.layout == "half" else "half",
        )
    if BUG == "no_attention_factor":
        a = 1.0
    sin = -np.sin(phi) if inverse else np.sin(phi)
    return _ref._rotate(x, np.cos(phi), sin, 1 / a if inverse else a, cfg)


def apply_rotary(x, positions, cfg, seq_len=None):
    return _rotate(x, positions, cfg, seq_len, inverse=False)


def inverse_rotary(y, positions, cfg, seq_len=None):
    return _rotate(y, positions, cfg, seq_len, inverse=True)


class RotaryEmbedding(_np.RotaryEmbedding):
    def forward(self, q, k, positions, seq_len=None):
        return apply_rotary(q, positions, self.cfg, seq_len), apply_rotary(k, positions, self.cfg, seq_len)

    __call__ = forward
