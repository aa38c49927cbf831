"""The rotation as one Pallas (Triton) kernel on CUDA GPUs: phases computed in registers.

Why: under XLA the exact phases are computed once into float32 ``cos``/``sin`` buffers of shape
``(..., S, rotary_dim/2)`` that the rotation fusion then reads broadcast over heads (16.8 MB at
S = 32768; by our reading of the HLO, not profiled, once per head: docs/benchmarks.md, "JAX"). This kernel does what
``rrope_torch``'s Triton kernel does: one program per ``(batch, block of BLOCK_S positions)``
computes its block's phases once (``rrope_jax.phases``' formulas, on the per-pair constants passed
as inputs), then loops over the heads, so q and k are read and written once and no table touches
memory.

Same math as the XLA path, term for term (``phases.resonance_angles`` / ``phases.turns``, then
``y1 = a*(x1 cos - x2 sin)``, ``y2 = a*(x2 cos + x1 sin)`` in float32); only the order in which
XLA and Triton evaluate cos/sin and the products may differ, by float32 rounding.

Opt-in (``RROPE_JAX_IMPL=auto`` or ``pallas``; default ``xla``). Checked against the reference
on an H100 (tests/backends/test_jax.py and the conformance suite with ``RROPE_JAX_IMPL=pallas``),
on the CPU in Pallas' interpreter (the same kernel function) and its CUDA lowering by
``jax.export``. Not the default, for two reasons: under GSPMD (``jit`` over sharded arrays) a
Pallas call is not partitioned, so XLA gathers its operands (use ``shard_map``: the kernel runs
per shard); and jax 0.11 deprecates Pallas' Triton backend (a DeprecationWarning says it will be
removed). It runs where ``plan`` says it can: x of rank 4 ``(B, H, S, D)`` in float32, float16
or bfloat16, ``layout="half"``, ``rotary_dim == head_dim``, ``head_dim/2`` a power of two, S a
multiple of ``BLOCK_S``, positions the same for every head (shape ``(S,)``, ``(1, S)`` or
``(B|1, 1, S)``), and every resonance period within int32 (x64 off). Elsewhere the XLA path runs.
"""

from __future__ import annotations

import os
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import rrope_core as rr
from rrope_core.errors import RopeInputError, bad

from .phases import Constants, constants, resonance_angles, turns

__all__ = ["AUTO_MIN_POSITIONS", "IMPLS", "default_impl", "plan", "rotate"]

IMPLS = ("xla", "auto", "pallas")
# ``auto``: the kernel when lowering for CUDA and x has at least this many positions (B * S, so at
# least AUTO_MIN_POSITIONS / BLOCK_S programs), else XLA. Set from bench/jax_rope.py --crossover
# (docs/benchmarks.md, "JAX"): below it XLA's fusion is as fast or faster.
AUTO_MIN_POSITIONS = 16384
# Launch parameters: the best of BLOCK_S in (16, 32, 64, 128) x NUM_WARPS in (1, 2, 4, 8) on an
# H100 at the three prefill shapes of bench/jax_rope.py (docs/benchmarks.md, "JAX").
BLOCK_S = 16  # positions per program; its (16, D/2) float32 cos and sin stay in registers
NUM_WARPS = 8


def default_impl() -> str:
    """``RROPE_JAX_IMPL`` (xla | auto | pallas; default xla), read when a call is traced: a
    function already traced keeps the path it was traced with (JAX caches traces by function).
    ``xla``: never the kernel; ``auto``: the kernel on CUDA where ``plan`` allows it and B * S >=
    ``AUTO_MIN_POSITIONS``, else XLA; ``pallas``: the kernel wherever ``plan`` allows it (Pallas'
    interpreter off CUDA)."""
    impl = os.environ.get("RROPE_JAX_IMPL", "xla")
    if impl not in IMPLS:
        raise bad("RROPE_JAX_IMPL", impl, f"must be one of {IMPLS}", RopeInputError)
    return impl


def _pallas():
    try:
        from jax.experimental import pallas as pl
        from jax.experimental.pallas import triton as plt
    except ImportError:  # pragma: no cover - depends on the jax build
        return None
    return pl, plt


def _rows(positions, b: int, s: int):
    """Positions as one row per batch, ``(B, S)``, if they broadcast to ``(B, H, S)`` constant along
    heads (shape ``(S,)``, ``(1, S)`` or ``(B|1, 1, S)``); else None."""
    shape = tuple(positions.shape)
    if shape in ((s,), (1, s)):
        return jnp.broadcast_to(positions.reshape(1, s), (b, s))
    if len(shape) == 3 and shape[1:] == (1, s) and shape[0] in (1, b):
        return jnp.broadcast_to(positions[:, 0, :], (b, s))
    return None


def plan(x, positions, cfg: rr.RopeConfig, k: Constants):
    """``(B, S)`` positions if the kernel can rotate ``x``, else the reason (a string) it cannot."""
    if _pallas() is None:
        return "jax.experimental.pallas is not importable"
    if x.ndim != 4:
        return f"x has rank {x.ndim}, the kernel takes (B, H, S, D)"
    if x.dtype not in (jnp.float32, jnp.float16, jnp.bfloat16):
        return f"x.dtype {x.dtype} (the kernel computes in float32)"
    if cfg.layout != "half" or cfg.rotary_dim != cfg.head_dim:
        return "the kernel rotates layout='half' with rotary_dim == head_dim"
    half = cfg.head_dim // 2
    if half & (half - 1):
        return f"head_dim/2 = {half} is not a power of two (Triton blocks)"
    b, _, s, _ = x.shape
    if s % BLOCK_S:
        return f"seq_len {s} is not a multiple of {BLOCK_S}"
    if k.bits != 32 or (k.periods is not None and int(k.periods.max()) > np.iinfo(np.int32).max):
        return "x64, or a resonance period beyond int32"
    rows = _rows(positions, b, s)
    return "positions vary along heads (or do not broadcast as one row per batch)" if rows is None else rows


def _kernel(pos_ref, c1_ref, c2_ref, x_ref, o_ref, *, heads, half, resonance, scale, sign):
    m = pos_ref[...][:, None]  # (BLOCK, 1) int32
    if resonance:  # c1: periods (int32), c2: fl32(2*pi/L)
        phi = resonance_angles(m, c1_ref[...][None, :], c2_ref[...][None, :], jnp.float32)
    else:  # c1, c2: the fixed-point words of frac(theta/2pi) (uint32)
        t = turns(m, c1_ref[...][None, :], c2_ref[...][None, :], 32)
        phi = t.astype(jnp.float32) * jnp.float32(2 * np.pi * 2.0**-32)
    cos = jnp.cos(phi) * jnp.float32(scale)
    sin = jnp.sin(phi) * jnp.float32(sign * scale)

    def head(h, carry):
        x1 = x_ref[h, :, _ds(0, half)].astype(jnp.float32)
        x2 = x_ref[h, :, _ds(half, half)].astype(jnp.float32)
        o_ref[h, :, _ds(0, half)] = (x1 * cos - x2 * sin).astype(o_ref.dtype)
        o_ref[h, :, _ds(half, half)] = (x2 * cos + x1 * sin).astype(o_ref.dtype)
        return carry

    lax.fori_loop(0, heads, head, 0)


def _ds(start, size):
    """``pl.ds``: a static slice of a ref."""
    return _pallas()[0].ds(start, size)


def _call(x, rows, c1, c2, *, resonance: bool, scale: float, sign: float, interpret: bool):
    pl, plt = _pallas()
    b, h, s, d = x.shape
    block = BLOCK_S
    kernel = partial(_kernel, heads=h, half=d // 2, resonance=resonance, scale=scale, sign=sign)
    return pl.pallas_call(
        kernel,
        out_shape=jax.ShapeDtypeStruct(x.shape, x.dtype),
        grid=(b, s // block),
        in_specs=[
            pl.BlockSpec((None, block), lambda i, j: (i, j)),
            pl.BlockSpec((d // 2,), lambda i, j: (0,)),
            pl.BlockSpec((d // 2,), lambda i, j: (0,)),
            pl.BlockSpec((None, h, block, d), lambda i, j: (i, 0, j, 0)),
        ],
        out_specs=pl.BlockSpec((None, h, block, d), lambda i, j: (i, 0, j, 0)),
        compiler_params=plt.CompilerParams(num_warps=NUM_WARPS, num_stages=1),
        interpret=interpret,
        name="rrope_rotation",
    )(rows, c1, c2, x)


def _words(k: Constants):
    if k.periods is not None:
        return True, jnp.asarray(k.periods, jnp.int32), jnp.asarray(k.step, jnp.float32)
    return False, jnp.asarray(k.f_hi), jnp.asarray(k.f_lo)


def _launch(x, rows, cfg, seq_len, sign, sin_sign, interpret):
    """The kernel at the scale of the rotation ``sign`` names (``a``; ``1/a`` for the inverse),
    sin multiplied by ``sin_sign``."""
    k = constants(cfg, seq_len, 32)
    resonance, c1, c2 = _words(k)
    scale = float(k.attention) if sign > 0 else 1.0 / float(k.attention)
    return _call(x, rows, c1, c2, resonance=resonance, scale=scale, sign=sin_sign, interpret=interpret)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _rotation(x, rows, cfg, seq_len, sign, interpret):
    return _launch(x, rows, cfg, seq_len, sign, sign, interpret)


def _fwd(x, rows, cfg, seq_len, sign, interpret):
    return _rotation(x, rows, cfg, seq_len, sign, interpret), rows


def _bwd(cfg, seq_len, sign, interpret, rows, g):
    # the transpose of s*R(phi) is s*R(-phi): the same kernel, sin negated, the same scale s
    return _launch(g, rows, cfg, seq_len, sign, -sign, interpret), None


_rotation.defvjp(_fwd, _bwd)


def rotate(x, rows, cfg: rr.RopeConfig, seq_len: int | None, inverse: bool = False, interpret: bool = False):
    """``x`` rotated by the kernel at ``rows`` (``(B, S)`` int32 positions, as ``plan`` returns them):
    ``a*R(phi) x``, or for ``inverse`` ``R(-phi) x / a``. Differentiable (custom VJP: the transpose
    rotation). Call ``plan`` first: ``rotate`` checks only that ``rows`` fits ``x``."""
    want = (x.shape[0], x.shape[2]) if x.ndim == 4 else None
    if want is None or tuple(rows.shape) != want or rows.dtype != jnp.int32:
        raise bad(
            "rows",
            f"<shape {tuple(rows.shape)}, dtype {rows.dtype}>",
            f"must be int32 of shape (B, S) = {want}",
            RopeInputError,
        )
    return _rotation(x, rows, cfg, seq_len, -1.0 if inverse else 1.0, interpret)
