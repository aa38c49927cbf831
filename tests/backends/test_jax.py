"""rrope_jax beyond the conformance suite: jit with traced positions, vmap, the custom VJP, the
32-bit position limit, dispatch. Tolerances as conformance/tolerance.py (float32 phases within
2*pi*eps32 of the reference at any position below 2**31)."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="rrope_jax needs jax")
pytest.importorskip("rrope_jax", reason="rrope_jax is not installed")

import jax.numpy as jnp  # noqa: E402

import rrope_core as rr  # noqa: E402
import rrope_jax as rj  # noqa: E402
from rrope_conformance.tolerance import rotation_tolerance  # noqa: E402

CFG = rr.RopeConfig(head_dim=16, scaling=rr.YaRN(4.0, 64), resonance=True)
PLAIN = rr.RopeConfig(head_dim=16, scaling=rr.YaRN(4.0, 64))


def _x(shape=(2, 3, 5, 16), seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("cfg", [CFG, PLAIN], ids=["resonance", "plain"])
def test_jit_with_traced_positions_matches_reference(cfg):
    x = _x()
    positions = np.arange(2**31 - 5, 2**31)  # the last int32 positions
    out = jax.jit(lambda x_, p_: rj.apply_rotary(x_, p_, cfg))(jnp.asarray(x), jnp.asarray(positions, jnp.int32))
    ref = rr.apply_rotary(x.astype(np.float64), positions, cfg)
    tol = rotation_tolerance(cfg, x.astype(np.float64), ref, positions, None, "float32", rr.attention_factor(cfg))
    assert np.all(np.abs(np.asarray(out, np.float64) - ref) <= tol)


def test_vmap_over_batch_equals_the_batched_call():
    x, positions = jnp.asarray(_x()), jnp.arange(5) + 1000
    batched = rj.apply_rotary(x, positions, CFG)
    mapped = jax.vmap(lambda xb: rj.apply_rotary(xb, positions, CFG))(x)
    assert jnp.array_equal(batched, mapped)


def test_gradient_is_the_transposed_rotation():
    x, w, positions = jnp.asarray(_x()), jnp.asarray(_x(seed=1)), jnp.arange(5) + 10**6
    grad = rj.grad_apply_rotary(x, positions, CFG, w)
    a = rr.attention_factor(CFG)
    want = a**2 * rj.inverse_rotary(w, positions, CFG)
    # Both are one float32 rotation of w (by -phi, times a): equal to float32 rounding of |w| sums.
    assert float(jnp.abs(grad - want).max()) <= 8 * np.finfo(np.float32).eps * float(jnp.abs(w).max()) * a


def test_seq_len_dependent_configs_need_seq_len_under_jit():
    cfg = rr.RopeConfig(head_dim=8, scaling=rr.DynamicNTK(2.0, 64))
    fn = jax.jit(lambda p_: rj.cos_sin(cfg, p_))
    with pytest.raises(rr.RopeInputError, match="seq_len"):
        fn(jnp.arange(4))
    cos, _ = jax.jit(lambda p_: rj.cos_sin(cfg, p_, 128))(jnp.arange(4))
    assert np.allclose(np.asarray(cos), rr.cos_sin(cfg, np.arange(4), 128)[0], atol=1e-6)


@pytest.mark.skipif(rj.MAX_POSITION > 2**31, reason="jax_enable_x64 is on: int64 positions")
def test_positions_beyond_int32_raise_naming_the_limit():
    with pytest.raises(rr.RopeInputError, match=r"2\*\*31.*jax_enable_x64"):
        rj.from_numpy(np.array([2**31]), dtype="int64")
    with pytest.raises(rr.RopeInputError, match="float64"):
        rj.from_numpy(np.zeros(2), dtype="float64")


def test_dispatch_on_jax_arrays_and_bad_dtypes():
    x = jnp.asarray(_x((1, 16)))
    assert rr.framework_of(x) == "jax"
    out = rr.apply_rotary(x, jnp.arange(1), CFG)
    assert isinstance(out, jax.Array)
    with pytest.raises(rr.RopeInputError, match="positions"):
        rj.apply_rotary(x, jnp.zeros(1), CFG)  # float positions


def test_bfloat16_and_float16_keep_their_dtype():
    for dtype in (jnp.bfloat16, jnp.float16):
        out = rj.apply_rotary(jnp.asarray(_x((3, 16)), dtype), jnp.arange(3), CFG)
        assert out.dtype == dtype


def test_host_positions_beyond_int32_raise_without_checked_mode():
    """NumPy int64 positions are host values: checked for free, never wrapped to int32."""
    if rj.MAX_POSITION > 2**31:
        pytest.skip("jax_enable_x64 is on: int64 positions are native")
    with pytest.raises(rr.RopeInputError, match=r"positions.*max 2147483648.*MAX_POSITION"):
        rj.apply_rotary(_x((2, 16)), np.array([2**31, 1]), CFG)


def test_checked_positions_under_jit_raise_when_run():
    """Traced positions are checked by jax.debug.callback: the error comes with the result. The
    mode is read when the function is traced (a jitted function keeps what it was traced with)."""
    x = jnp.asarray(_x((3, 16)))
    with rr.checked_positions():
        f = jax.jit(lambda x_, p_: rj.apply_rotary(x_, p_, CFG))
        jax.block_until_ready(f(x, jnp.arange(3)))
        with pytest.raises(Exception, match=r"<min -1>.*must be >= 0"):
            jax.block_until_ready(f(x, jnp.arange(3) - 1))
    unchecked = jax.jit(lambda x_, p_: rj.apply_rotary(x_, p_, CFG))
    jax.block_until_ready(unchecked(x, jnp.arange(3) - 1))  # traced outside the mode: rotates backwards


@pytest.mark.parametrize("cfg", [CFG, PLAIN], ids=["resonance", "plain"])
def test_apply_rotary_qk_matches_the_reference_for_both(cfg):
    """One computation for q and k (different head counts): each within the float32 bound."""
    q, k = _x((2, 4, 5, 16)), _x((2, 2, 5, 16), seed=1)
    positions = np.arange(2**31 - 5, 2**31)
    oq, ok = rj.apply_rotary_qk(jnp.asarray(q), jnp.asarray(k), jnp.asarray(positions, jnp.int32), cfg)
    a = rr.attention_factor(cfg)
    for x, out in ((q, oq), (k, ok)):
        ref = rr.apply_rotary(x.astype(np.float64), positions, cfg)
        tol = rotation_tolerance(cfg, x.astype(np.float64), ref, positions, None, "float32", a)
        assert out.shape == x.shape and np.all(np.abs(np.asarray(out, np.float64) - ref) <= tol)
    with pytest.raises(rr.RopeInputError, match=r"k\.shape"):
        rj.apply_rotary_qk(jnp.asarray(q), jnp.asarray(k[..., :8]), positions, cfg)
