"""cos/sin, the rotation, its inverse and its gradient on JAX arrays (formulas: rrope_core.rotation).

``y1 = a*(x1*cos(phi) - x2*sin(phi))``, ``y2 = a*(x2*cos(phi) + x1*sin(phi))`` (RoFormer eq. 13),
inverse with ``-phi`` and ``1/a``. The rotation is a ``jax.custom_vjp``: its transpose is
``a * R(-phi)``, i.e. ``a**2 * inverse_rotary``, so the backward costs one more rotation and
saves only cos/sin. Computed in float32 (float64 for float64 ``x``), returned in ``x``'s dtype;
features past ``rotary_dim`` are copied bit for bit.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

import rrope_core as rr
from rrope_core.checked import check_range, positions_checked
from rrope_core.errors import RopeInputError, bad
from rrope_core.inputs import check_call, check_cfg, check_positions_dtype
from rrope_core.rotation import resolve_seq_len

from .convert import DTYPES, meta, position_limit, x64
from .pallas_kernel import AUTO_MIN_POSITIONS, default_impl, plan, rotate
from .phases import constants, phases

__all__ = ["inv_freq", "cos_sin", "apply_rotary", "apply_rotary_qk", "inverse_rotary", "grad_apply_rotary"]

MAX_POSITION = position_limit()


def inv_freq(cfg: rr.RopeConfig, seq_len: int | None = None, *, device=None) -> jax.Array:
    """``rrope_core.inv_freq`` as a float32 JAX array (float64 with x64)."""
    check_cfg(cfg)
    return jnp.asarray(rr.inv_freq(cfg, seq_len), dtype=jnp.float64 if x64() else jnp.float32)


def _bits() -> int:
    return 64 if x64() else 32


def _seq_len(cfg, seq_len, positions):
    """``seq_len``, or for dynamic NTK / LongRoPE ``max(positions) + 1`` (reads one value: not under jit)."""
    if not cfg.seq_len_dependent or seq_len is not None or positions.size == 0:
        return resolve_seq_len(cfg, seq_len, None)
    if isinstance(positions, jax.core.Tracer):
        raise bad(
            "seq_len",
            None,
            f"must be given under jax.jit for {type(cfg.scaling).__name__} (its frequencies depend on it)",
            RopeInputError,
        )
    return resolve_seq_len(cfg, None, int(jnp.max(positions)))


def _positions(positions):
    """JAX positions as they are; host (NumPy, list) positions checked against ``MAX_POSITION``
    (reading host values costs no device sync; int64 beyond int32 would wrap silently), then moved."""
    if positions_checked():
        check_values(positions)
    if isinstance(positions, jax.Array):
        return positions
    p = np.asarray(positions)
    if p.size and p.dtype.kind in "iu" and (int(p.max()) >= MAX_POSITION or int(p.min()) < -MAX_POSITION):
        lo, hi = int(p.min()), int(p.max())
        raise bad(
            "positions",
            f"<min {lo}, max {hi}>",
            f"must lie in [-{MAX_POSITION}, {MAX_POSITION}) (rrope_jax.MAX_POSITION)",
            RopeInputError,
        )
    return jnp.asarray(p)


def _raise_unless_in_range(lo, hi):
    check_range(int(lo), int(hi), MAX_POSITION)


def check_values(positions) -> None:
    """Checked positions mode (``rrope_core.checked``): concrete positions are read and validated
    (NumPy ones before any conversion to int32); traced ones through ``jax.debug.callback``."""
    if isinstance(positions, jax.core.Tracer):
        if positions.size:
            jax.debug.callback(_raise_unless_in_range, jnp.min(positions), jnp.max(positions))
        return
    p = positions if isinstance(positions, jax.Array) else np.asarray(positions)
    if p.size and p.dtype.kind in "iu":
        check_range(int(p.min()), int(p.max()), MAX_POSITION)


def cos_sin(cfg: rr.RopeConfig, positions, seq_len: int | None = None):
    """``(cos, sin)`` of the exact phases, float32, shape ``positions.shape + (rotary_dim//2,)``."""
    check_cfg(cfg)
    _, pd, _, pi = meta(positions)
    check_positions_dtype(pd, pi)
    positions = _positions(positions)
    return _cos_sin(positions, cfg, _seq_len(cfg, seq_len, positions))


@partial(jax.jit, static_argnums=(1, 2))
def _cos_sin(positions, cfg, seq_len):
    phi = phases(positions, constants(cfg, seq_len, _bits()), jnp.float32)
    return jnp.cos(phi), jnp.sin(phi)


def _rotate(x, cos, sin, scale: float, cfg: rr.RopeConfig):
    c = cos.dtype
    rd = cfg.rotary_dim
    first, second = rr.pair_slices(cfg)
    xr = x[..., :rd].astype(c)
    x1, x2 = xr[..., first], xr[..., second]
    y1, y2 = x1 * cos - x2 * sin, x2 * cos + x1 * sin
    if scale != 1.0:
        y1, y2 = y1 * scale, y2 * scale
    if cfg.layout == "half":
        rot = jnp.concatenate([y1, y2], axis=-1)
    else:
        rot = jnp.stack([y1, y2], axis=-1).reshape(*x.shape[:-1], rd)
    rot = rot.astype(x.dtype)
    return rot if rd == cfg.head_dim else jnp.concatenate([rot, x[..., rd:]], axis=-1)


@partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _rotation(x, cos, sin, scale, cfg):
    return _rotate(x, cos, sin, scale, cfg)


def _rotation_fwd(x, cos, sin, scale, cfg):
    return _rotate(x, cos, sin, scale, cfg), (cos, sin)


def _rotation_bwd(scale, cfg, saved, g):
    cos, sin = saved
    return _rotate(g, cos, -sin, scale, cfg), jnp.zeros_like(cos), jnp.zeros_like(sin)


_rotation.defvjp(_rotation_fwd, _rotation_bwd)


def _checked(x, positions, cfg, name):
    xs, xd, xf, _ = meta(x)
    ps, pd, _, pi = meta(positions)
    check_call(cfg, xs, xd, xf, ps, pd, pi, name)
    if xd not in DTYPES:
        raise bad(f"{name}.dtype", xd, f"must be one of {DTYPES} (float64 needs jax_enable_x64)", RopeInputError)
    return (x if isinstance(x, jax.Array) else jnp.asarray(x)), _positions(positions)


def _run(x, positions, cfg, seq_len, inverse: bool):
    x, positions = _checked(x, positions, cfg, "y" if inverse else "x")
    return _compiled(x, positions, cfg, _seq_len(cfg, seq_len, positions), inverse, default_impl())


def _kernel_rows(x, positions, cfg, seq_len, impl: str):
    """int32 ``(B, S)`` positions if the kernel will be tried for ``x`` under ``impl``, else None:
    under ``pallas`` wherever ``plan`` allows, under ``auto`` also only from B * S >=
    ``AUTO_MIN_POSITIONS`` (x of rank 4, as ``plan`` requires)."""
    big = impl == "auto" and x.ndim == 4 and x.shape[0] * x.shape[2] >= AUTO_MIN_POSITIONS
    rows = plan(x, positions, cfg, constants(cfg, seq_len, _bits())) if impl == "pallas" or big else None
    return None if rows is None or isinstance(rows, str) else rows.astype(jnp.int32)


def _choose(kernel, xla, impl: str):
    """``kernel(interpret=False)`` when lowering for CUDA; elsewhere, under ``pallas``,
    ``kernel(interpret=True)`` (Pallas' interpreter runs the same kernel function with JAX ops: a
    CPU check of its math), under ``auto`` ``xla()``."""
    other = (lambda: kernel(True)) if impl == "pallas" else xla
    return jax.lax.platform_dependent(cuda=lambda: kernel(False), default=other)


@partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _compiled(x, positions, cfg, seq_len, inverse: bool, impl: str = "xla"):
    """Phases and rotation as one XLA computation per (config, seq_len, shapes, dtypes), or the
    Pallas kernel (``impl`` "pallas" or "auto", where ``_kernel_rows`` allows it)."""
    xla = partial(_xla, x, positions, cfg, seq_len, inverse)
    rows = _kernel_rows(x, positions, cfg, seq_len, impl)
    if rows is None:
        return xla()
    return _choose(lambda interpret: rotate(x, rows, cfg, seq_len, inverse, interpret), xla, impl)


def _xla(x, positions, cfg, seq_len, inverse: bool):
    k = constants(cfg, seq_len, _bits())
    compute = jnp.float64 if x.dtype == jnp.float64 else jnp.float32
    phi = phases(positions, k, compute)
    cos, sin = jnp.cos(phi), jnp.sin(phi)
    scale = k.attention
    if inverse:
        sin, scale = -sin, 1.0 / scale
    return _rotation(x, cos, sin, float(scale), cfg)


def apply_rotary(x, positions, cfg: rr.RopeConfig, seq_len: int | None = None) -> jax.Array:
    """Rotate ``x`` (``(..., head_dim)``) at integer ``positions`` broadcastable to ``x.shape[:-1]``.

    Under ``jax.jit`` positions may be traced; dynamic NTK / LongRoPE then need ``seq_len``.
    """
    return _run(x, positions, cfg, seq_len, inverse=False)


def apply_rotary_qk(q, k, positions, cfg: rr.RopeConfig, seq_len: int | None = None) -> tuple[jax.Array, jax.Array]:
    """``(apply_rotary(q), apply_rotary(k))`` at the same positions (head counts may differ), as one
    XLA computation that computes the phases once."""
    q, pos = _checked(q, positions, cfg, "q")
    k, _ = _checked(k, positions, cfg, "k")
    return _compiled_qk(q, k, pos, cfg, _seq_len(cfg, seq_len, pos), default_impl())


@partial(jax.jit, static_argnums=(3, 4, 5))
def _compiled_qk(q, k, positions, cfg, seq_len, impl: str = "xla"):
    """q and k through XLA (phases once), or the kernel (one launch each) where ``_kernel_rows`` allows it."""
    xla = partial(_xla_qk, q, k, positions, cfg, seq_len)
    rq, rk = _kernel_rows(q, positions, cfg, seq_len, impl), _kernel_rows(k, positions, cfg, seq_len, impl)
    if rq is None or rk is None:
        return xla()

    def kernel(interpret):
        return rotate(q, rq, cfg, seq_len, False, interpret), rotate(k, rk, cfg, seq_len, False, interpret)

    return _choose(kernel, xla, impl)


def _xla_qk(q, k, positions, cfg, seq_len):
    consts = constants(cfg, seq_len, _bits())
    compute = jnp.float64 if jnp.float64 in (q.dtype, k.dtype) else jnp.float32
    phi = phases(positions, consts, compute)
    cos, sin = jnp.cos(phi), jnp.sin(phi)
    scale = float(consts.attention)
    return _rotation(q, cos, sin, scale, cfg), _rotation(k, cos, sin, scale, cfg)


def inverse_rotary(y, positions, cfg: rr.RopeConfig, seq_len: int | None = None) -> jax.Array:
    """The inverse of ``apply_rotary``: rotate by ``-phi`` and divide by the attention factor."""
    return _run(y, positions, cfg, seq_len, inverse=True)


def grad_apply_rotary(x, positions, cfg: rr.RopeConfig, w, seq_len: int | None = None) -> jax.Array:
    """``d/dx sum(w * apply_rotary(x))`` by ``jax.grad`` (through the custom VJP)."""
    x, positions = _checked(x, positions, cfg, "x")
    w = jnp.asarray(w)
    if tuple(w.shape) != tuple(x.shape):
        raise bad("w.shape", tuple(w.shape), f"must equal x.shape={tuple(x.shape)}", RopeInputError)
    c = jnp.float64 if x.dtype == jnp.float64 else jnp.float32

    def loss(x_):
        return (apply_rotary(x_, positions, cfg, seq_len).astype(c) * w.astype(c)).sum()

    return jax.grad(loss)(x)
