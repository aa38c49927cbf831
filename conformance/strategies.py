"""Hypothesis strategies for RoPE configs, shapes, positions and dtypes (one place, labelled draws)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

import rrope_core as rr

__all__ = ["scalings", "configs", "layouts_and_shapes", "positions_for", "dtypes", "rotation_cases", "SCALING_KINDS"]

SCALING_KINDS = ("none", "linear", "ntk", "dynamic", "yarn", "llama3", "longrope")

_factor = st.floats(1.0, 64.0, allow_nan=False)
_orig = st.sampled_from([16, 64, 256, 2048, 4096, 8192, 32768, 131072])


@st.composite
def scalings(draw, kind: str, rotary_dim: int):
    """A scaling of the given kind valid for ``rotary_dim``."""
    if kind == "none":
        return None
    if kind == "linear":
        return rr.Linear(draw(_factor, label="factor"))
    if kind == "ntk":
        return rr.NTK(draw(_factor, label="factor"))
    if kind == "dynamic":
        return rr.DynamicNTK(draw(st.floats(1.0, 16.0), label="factor"), draw(_orig, label="original"))
    if kind == "yarn":
        beta_slow = draw(st.floats(0.25, 4.0), label="beta_slow")
        mscale = draw(st.sampled_from([None, 0.707, 1.0]), label="mscale")
        return rr.YaRN(
            draw(_factor, label="factor"),
            draw(_orig, label="original"),
            beta_fast=draw(st.floats(beta_slow, 64.0), label="beta_fast"),
            beta_slow=beta_slow,
            attention_factor=draw(st.none() | st.floats(0.5, 2.0), label="attention_factor"),
            mscale=mscale,
            mscale_all_dim=draw(st.sampled_from([None, 0.707, 1.0]), label="mscale_all_dim") if mscale else None,
            truncate=draw(st.booleans(), label="truncate"),
        )
    if kind == "llama3":
        low = draw(st.floats(0.5, 2.0), label="low_freq_factor")
        return rr.Llama3(
            draw(st.floats(1.0, 32.0), label="factor"),
            draw(_orig, label="original"),
            low_freq_factor=low,
            high_freq_factor=low + draw(st.floats(0.5, 8.0), label="high_minus_low"),
        )
    if kind == "longrope":
        n = rotary_dim // 2
        factors = st.lists(st.floats(1.0, 64.0), min_size=n, max_size=n)
        return rr.LongRoPE(
            draw(factors, label="short_factor"),
            draw(factors, label="long_factor"),
            draw(_orig, label="original"),
            attention_factor=draw(st.none() | st.floats(0.5, 2.0), label="attention_factor"),
            factor=draw(st.none() | st.floats(1.0, 64.0), label="longrope_factor"),
        )
    raise ValueError(f"kind={kind!r} is not one of {SCALING_KINDS}")


@st.composite
def configs(draw, kinds=SCALING_KINDS, resonance=None, layouts=rr.LAYOUTS, max_head_dim: int = 256):
    """A valid ``rrope_core.RopeConfig``: every scaling, resonance on/off, both layouts, partial dims."""
    kind = draw(st.sampled_from(kinds), label="scaling_kind")
    min_dim = 4 if kind in ("ntk", "dynamic") else 2
    head_dim = 2 * draw(st.integers(min_dim // 2, max_head_dim // 2), label="head_dim/2")
    rotary_dim = 2 * draw(st.integers(min_dim // 2, head_dim // 2), label="rotary_dim/2")
    base = draw(st.sampled_from([10000.0, 500000.0, 1e6]) | st.floats(2.0, 1e7), label="base")
    return rr.RopeConfig(
        head_dim=head_dim,
        base=base,
        rotary_dim=rotary_dim,
        scaling=draw(scalings(kind, rotary_dim), label="scaling"),
        resonance=draw(st.booleans(), label="resonance") if resonance is None else resonance,
        layout=draw(st.sampled_from(layouts), label="layout"),
    )


@st.composite
def layouts_and_shapes(draw, head_dim: int, max_batch: int = 3, max_heads: int = 4, max_seq: int = 16):
    """``(x_shape, arrangement)``: ``(B,H,T,D)`` or ``(B,T,H,D)``; the positions' shape follows."""
    b = draw(st.integers(1, max_batch), label="batch")
    h = draw(st.integers(1, max_heads), label="heads")
    t = draw(st.integers(1, max_seq), label="seq")
    arrangement = draw(st.sampled_from(["BHTD", "BTHD"]), label="arrangement")
    shape = (b, h, t, head_dim) if arrangement == "BHTD" else (b, t, h, head_dim)
    return shape, arrangement


@st.composite
def positions_for(draw, shape: tuple, arrangement: str, cfg: rr.RopeConfig, max_position: int = 2**31 - 1):
    """Integer positions broadcastable to ``shape[:-1]``: a shared ``arange`` + offset, or per-batch offsets."""
    b, t = shape[0], shape[2] if arrangement == "BHTD" else shape[1]
    top = max_position - t
    offsets = st.integers(0, top) if top > 0 else st.just(0)
    small_or_large = st.one_of(
        st.integers(0, 64), offsets, st.sampled_from([2**20, 2**24, top]).filter(lambda v: v >= 0)
    )
    if draw(st.booleans(), label="per_batch_offsets"):
        off = np.array([draw(small_or_large, label=f"offset[{i}]") for i in range(b)], dtype=np.int64)
        pos = off[:, None] + np.arange(t, dtype=np.int64)[None, :]  # (B, T)
        return pos[:, None, :] if arrangement == "BHTD" else pos[:, :, None]
    pos = draw(small_or_large, label="offset") + np.arange(t, dtype=np.int64)
    return pos if arrangement == "BHTD" else pos[:, None]


def dtypes(backend):
    """Every dtype the backend declares."""
    return st.sampled_from(list(backend.DTYPES))


@st.composite
def rotation_cases(draw, backend, cfgs=None, max_position: int = 2**31 - 1):
    """``(cfg, x64, positions, dtype, seq_len)``: x values in float64, positions int64 (NumPy)."""
    cfg = draw(cfgs if cfgs is not None else configs(), label="cfg")
    shape, arrangement = draw(layouts_and_shapes(cfg.head_dim), label="shape")
    positions = draw(positions_for(shape, arrangement, cfg, max_position), label="positions")
    dtype = draw(dtypes(backend), label="dtype")
    seed = draw(st.integers(0, 2**32 - 1), label="x_seed")
    x = np.random.default_rng(seed).standard_normal(shape)
    seq_len = draw(st.none() | st.integers(1, 2**20), label="seq_len") if cfg.seq_len_dependent else None
    return cfg, x, positions, dtype, seq_len
