"""What ``rrope inspect`` reports (and ``rrope plot`` draws): per-pair frequencies and feature gaps.

Everything is computed by the core (``scaled_inv_freq``, ``wavelengths``, ``feature_gap``,
``critical_dim``, ``attention_factor``); this module only collects it into the JSON
schema ``rrope.inspect/1`` documented in docs/cli.md. Memory of a float32 cos/sin cache at the
test length ``T``: HF-style table ``T * rotary_dim * 2 tables * 4 B``; Resonance periodic table
``sum_i L~_i * 2 * 4 B`` (``L~_i`` the integer wavelengths; RESEARCH.md section 4); on-the-fly kernels 0.
"""

from __future__ import annotations

import math

import numpy as np

from ..analysis import feature_gap
from ..config import RopeConfig
from ..errors import RopeError
from ..frequencies import attention_factor, critical_dim, scaled_inv_freq, wavelengths

__all__ = ["SCHEMA", "inspect_report", "describe"]

SCHEMA = "rrope.inspect/1"
FLOAT32_BYTES = 4


def describe(cfg: RopeConfig) -> str:
    """One line naming every field of ``cfg`` (long LongRoPE factor lists abbreviated)."""
    d = cfg.to_dict()
    scaling = d.pop("scaling")
    text = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in d.items())
    if scaling is None:
        return f"{text} scaling=none"
    kind = scaling.pop("type")
    params = []
    for k, v in scaling.items():
        if v is None:
            continue
        if isinstance(v, list):
            v = f"<{len(v)} values>"
        elif isinstance(v, float):
            v = f"{v:g}"
        params.append(f"{k}={v}")
    return f"{text} scaling={kind}({', '.join(params)})"


def inspect_report(cfg: RopeConfig, train_len: int, test_len: int, source: str = "flags") -> dict:
    """The ``rrope.inspect/1`` dict for ``cfg`` between ``train_len`` and ``test_len``.

    Frequencies are taken at ``seq_len = test_len`` when they depend on it (dynamic NTK, LongRoPE),
    else at ``None``. Both feature gaps are given: resonance off and on (``None`` when rounding is
    impossible, i.e. a wavelength <= 0.5; ``notes`` says why).
    """
    seq_len = test_len if cfg.seq_len_dependent else None
    notes = []
    plain = cfg.with_resonance(False)
    try:
        resonant = cfg if cfg.resonance else cfg.with_resonance(True)
    except RopeError as exc:
        resonant = None
        notes.append(f"resonance is impossible for this config: {exc}")
    if seq_len is not None:
        notes.append(f"frequencies depend on the sequence length; shown at seq_len=test_len={test_len}")

    theta = scaled_inv_freq(cfg, seq_len)
    raw = 2.0 * math.pi / theta
    rounded = np.rint(raw)
    effective = wavelengths(cfg, seq_len)
    gap_off = feature_gap(plain, train_len, test_len, seq_len)
    gap_on = None if resonant is None else feature_gap(resonant, train_len, test_len, seq_len)

    pairs = [
        {
            "index": i,
            "theta": float(theta[i]),
            "wavelength": float(raw[i]),
            "rounded_wavelength": int(rounded[i]),
            "rounding_change": float(rounded[i] - raw[i]),
            "critical": "pre" if effective[i] <= train_len else "post",
            "feature_gap_without_resonance": float(gap_off[i]),
            "feature_gap_with_resonance": None if gap_on is None else float(gap_on[i]),
        }
        for i in range(cfg.n_pairs)
    ]
    periods = None if resonant is None else wavelengths(resonant, seq_len).astype(np.int64)
    table_entry = 2 * FLOAT32_BYTES  # cos and sin, float32
    return {
        "schema": SCHEMA,
        "source": source,
        "config": cfg.to_dict(),
        "train_len": train_len,
        "test_len": test_len,
        "seq_len": seq_len,
        "pairs": pairs,
        "critical_dim": critical_dim(cfg, train_len, seq_len),
        "critical_dim_without_resonance": critical_dim(plain, train_len, seq_len),
        "critical_dim_with_resonance": None if resonant is None else critical_dim(resonant, train_len, seq_len),
        "attention_factor": attention_factor(cfg, seq_len),
        "memory_bytes": {
            "hf_table": test_len * cfg.rotary_dim * table_entry,
            "periodic_table": None if periods is None else int(periods.sum()) * table_entry,
            "periodic_table_capped": None
            if periods is None
            else int(np.minimum(periods, test_len).sum()) * table_entry,
            "on_the_fly": 0,
        },
        "notes": notes,
    }
