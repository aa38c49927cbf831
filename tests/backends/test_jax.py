"""rrope_jax beyond the conformance suite: jit with traced positions, vmap, the custom VJP, the
32-bit position limit, dispatch. Tolerances as conformance/tolerance.py (float32 phases within
2*pi*eps32 of the reference at any position below 2**31)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="rrope_jax needs jax")
pytest.importorskip("rrope_jax", reason="rrope_jax is not installed")

import jax.numpy as jnp  # noqa: E402

import rrope_core as rr  # noqa: E402
import rrope_jax as rj  # noqa: E402
from rrope_conformance.harness import assert_centred_phases  # noqa: E402
from rrope_conformance.tolerance import rotation_tolerance  # noqa: E402
from rrope_jax import pallas_kernel as pk  # noqa: E402

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


# Mutation testing (nox -s "mutation_backend(backend='jax')"): each test below names the surviving
# mutants of rrope_jax.rotation it kills.


def test_inv_freq_is_float32_without_a_dtype_warning():
    """Kills x_inv_freq__mutmut_11 (float64 always requested: JAX warns and gives float32); the
    rotation warns nothing either."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = rj.inv_freq(CFG)
        # Kills rrope_jax.phases x_phases__mutmut_4 (positions cast to int64 without x64: JAX warns
        # while tracing). An earlier test's cached program would skip the trace, and the warning with
        # it (mutmut's run survived so): clear JAX's caches, so this call traces.
        jax.clear_caches()
        for cfg in (CFG, PLAIN):
            rj.apply_rotary(jnp.asarray(_x()), jnp.arange(5), cfg).block_until_ready()
    if rj.MAX_POSITION <= 2**31:
        assert f.dtype == jnp.float32
    # rr.inv_freq is float64; one rounding to float32: relative error <= eps32/2.
    want = rr.inv_freq(CFG)
    assert np.all(np.abs(np.asarray(f, np.float64) - want) <= 0.5 * np.finfo(np.float32).eps * want)


def test_inv_freq_and_phases_with_x64_in_a_child_process():
    """Kills x_inv_freq__mutmut_10 (float32 even with jax_enable_x64) and x_grad_apply_rotary__mutmut_30.
    x64 is read at import, so it
    runs in a child with JAX_ENABLE_X64=1: float64 frequencies, int64 positions past 2**31. The
    same call here (x64 off) gives float32; it also lets mutmut see that this test reaches inv_freq
    (its stats come from this process, not the child)."""
    import os
    import subprocess
    import sys

    if rj.MAX_POSITION > 2**31:
        pytest.skip("jax_enable_x64 is on here already")
    assert rj.inv_freq(rr.RopeConfig(head_dim=16)).dtype == jnp.float32

    script = (
        "import numpy as np, jax.numpy as jnp, rrope_core as rr, rrope_jax as rj\n"
        "cfg = rr.RopeConfig(head_dim=16)\n"
        "f = rj.inv_freq(cfg)\n"
        "assert f.dtype == jnp.float64 and np.array_equal(np.asarray(f), rr.inv_freq(cfg)), f.dtype\n"
        "x = np.random.default_rng(0).standard_normal((3, 16))\n"
        "p = np.arange(3) + 2**40\n"
        "out = np.asarray(rj.apply_rotary(jnp.asarray(x), jnp.asarray(p), cfg))\n"
        "assert out.dtype == np.float64\n"
        # Derived bound per feature: |x1| + |x2| <= 2 max|x| times (phase error of ours, <= 1.5*pi*eps64
        # (rrope_jax.phases' docstring, 64-bit words), plus the reference's phase rounding, <= pi/2*eps64,
        # plus the rotation's roundings, two products, a sum and the scale: 4*eps64). Measured: 4*eps64.
        "tol = 2 * np.abs(x).max() * (1.5 * np.pi + np.pi / 2 + 4) * np.finfo(np.float64).eps\n"
        "assert np.abs(out - rr.apply_rotary(x, p, cfg)).max() <= tol\n"
        # The gradient of sum(w * apply_rotary(x)) is the transposed rotation of w, i.e. (attention
        # factor 1 here) rr.inverse_rotary(w): the same bound, in float64 (kills
        # x_grad_apply_rotary__mutmut_30, the loss summed in float32 even for float64 inputs).
        "g = np.asarray(rj.grad_apply_rotary(jnp.asarray(x), jnp.asarray(p), cfg, jnp.asarray(x)))\n"
        "assert g.dtype == np.float64 and np.abs(g - rr.inverse_rotary(x, p, cfg)).max() <= tol\n"
        # A resonance period past int32 (base 8.5e9: L ~ 3.06e9) is an ordinary int64 residue with
        # x64, at positions past L: the same bound (resonance phases: <= 1.5*pi*eps64, three
        # roundings). Kills x_phases__mutmut_8 (int32's maximum as the limit even with x64).
        "res = rr.RopeConfig(head_dim=16, base=8.5e9, resonance=True)\n"
        "out = np.asarray(rj.apply_rotary(jnp.asarray(x), jnp.asarray(p), res))\n"
        "assert np.abs(out - rr.apply_rotary(x, p, res)).max() <= tol\n"
        "print('x64 ok')\n"
    )
    env = {**os.environ, "JAX_ENABLE_X64": "1", "JAX_PLATFORMS": "cpu"}
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "x64 ok" in res.stdout, res.stdout[-2000:] + res.stderr[-3000:]


def test_checked_mode_on_host_positions():
    """Checked positions mode on NumPy arrays and lists, host-side. Kills x_check_values__mutmut_11
    (a list is not converted), _12 (nothing converted: no check), _13 (empty positions read),
    _19, _21, _22 (the MAX_POSITION bound dropped: the error would be _positions' instead)."""
    cfg = rr.RopeConfig(head_dim=8)
    with rr.checked_positions():
        cos, _ = rj.cos_sin(cfg, [0, 1, 2])
        assert cos.shape == (3, 4)
        with pytest.raises(rr.RopeInputError, match=r"<min -1>.*must be >= 0"):
            rj.cos_sin(cfg, [-1, 2])
        with pytest.raises(rr.RopeInputError, match=r"<min -1>.*must be >= 0"):
            rj.cos_sin(cfg, np.array([-1, 2]))
        assert rj.cos_sin(cfg, np.zeros(0, np.int64))[0].shape == (0, 4)
        if rj.MAX_POSITION <= 2**31:
            with pytest.raises(rr.RopeInputError, match=r"<max 2147483648>.*must be < 2147483648 on this backend"):
                rj.cos_sin(cfg, np.array([0, 2**31]))


def test_cos_sin_float_positions_name_the_dtype():
    """Kills x_cos_sin__mutmut_4 (the dtype missing from the message)."""
    with pytest.raises(rr.RopeInputError, match=r"positions\.dtype='float32'.*integer"):
        rj.cos_sin(CFG, jnp.zeros(2))


def test_apply_rotary_qk_names_q_and_follows_seq_len():
    """Kills x_apply_rotary_qk__mutmut_5, _10, _11 (q's errors under another name) and _27, _34,
    _35 (seq_len dropped, or max(positions) + 1 not used, for dynamic NTK)."""
    cfg = rr.RopeConfig(head_dim=16, scaling=rr.DynamicNTK(2.0, 64))
    q, k = _x((2, 4, 5, 16)), _x((2, 2, 5, 16), seed=1)
    with pytest.raises(rr.RopeInputError, match=r"^q\.shape"):
        rj.apply_rotary_qk(jnp.asarray(q[..., :8]), jnp.asarray(k), np.arange(5), cfg)
    positions = np.arange(300, 305)  # past original_max 64: the frequencies depend on seq_len
    for seq_len in (None, 4096):
        oq, ok = rj.apply_rotary_qk(jnp.asarray(q), jnp.asarray(k), jnp.asarray(positions, jnp.int32), cfg, seq_len)
        eff = rr.rotation.resolve_seq_len(cfg, seq_len, int(positions.max()))
        a = rr.attention_factor(cfg, eff)
        for x, out in ((q, oq), (k, ok)):
            ref = rr.apply_rotary(x.astype(np.float64), positions, cfg, seq_len)
            tol = rotation_tolerance(cfg, x.astype(np.float64), ref, positions, eff, "float32", a)
            assert np.all(np.abs(np.asarray(out, np.float64) - ref) <= tol), seq_len


def test_float64_without_x64_is_refused_naming_the_argument():
    """Kills x__checked__mutmut_26 (the field dropped from the message, which also makes it a
    RopeConfigError) and x_grad_apply_rotary__mutmut_11 (x named "X")."""
    if rj.MAX_POSITION > 2**31:
        pytest.skip("jax_enable_x64 is on: float64 is allowed")
    x64, p = _x().astype(np.float64), np.arange(5)
    for call, name in (
        (lambda: rj.apply_rotary(x64, p, CFG), "x"),
        (lambda: rj.inverse_rotary(x64, p, CFG), "y"),
        (lambda: rj.grad_apply_rotary(x64, p, CFG, x64), "x"),
    ):
        with pytest.raises(rr.RopeInputError, match=rf"^{name}\.dtype='float64' is invalid: .*jax_enable_x64"):
            call()


def test_mulhi_and_turns_are_exact_integer_arithmetic():
    """rrope_jax.phases' docstring: ``mulhi(a, b)`` is the exact high word of ``a*b`` and the turn
    count ``T = |m|*F_hi + mulhi(|m|, F_lo) mod 2**w`` is ``floor(|m|*F / 2**w) mod 2**w``, negated
    for negative m, exactly. Checked against Python integers (no tolerance: the claim is exact).
    Kills x__mulhi__mutmut_13 (a half-word mask one short), whose error, a few units of 2**-32
    turns, no float32 result can show."""
    from rrope_jax.phases import _mulhi, _turns, constants

    w = 64 if rj.MAX_POSITION > 2**31 else 32
    udt, top = (np.uint64, 2**64) if w == 64 else (np.uint32, 2**32)
    rng = np.random.default_rng(0)
    edges = [0, 1, 2, 3, 2 ** (w // 2) - 1, 2 ** (w // 2), 2 ** (w // 2) + 1, top // 2, top - 2, top - 1]
    a = np.array(edges + [int(v) for v in rng.integers(0, top, 200, dtype=udt)], dtype=udt)
    b = np.array(edges[::-1] + [int(v) for v in rng.integers(0, top, 200, dtype=udt)], dtype=udt)
    got = np.asarray(_mulhi(jnp.asarray(a), jnp.asarray(b), w))
    assert [int(v) for v in got] == [(int(x) * int(y)) >> w for x, y in zip(a, b, strict=True)]

    k = constants(PLAIN, None, w)
    m = np.array([0, 1, 2, 7, 12345, 2**30 + 3, 2**31 - 1, -1, -2, -12345, -(2**31) + 1], dtype=np.int64)
    if w == 32:
        m = m.astype(np.int32)
    t = np.asarray(_turns(jnp.asarray(m)[:, None], k)).astype(object)
    for i, mi in enumerate(m.tolist()):
        for j in range(len(k.f_hi)):
            F = (int(k.f_hi[j]) << w) | int(k.f_lo[j])
            want = ((abs(mi) * F) >> w) % top
            want = (-want) % top if mi < 0 else want
            want = want - top if want >= top // 2 else want  # read as a signed integer
            assert int(t[i, j]) == want, (mi, j)


def test_phases_are_centred_like_the_reference():
    """The re-centring of rrope_jax.phases, which cos/sin alone cannot see. Kills x_phases__mutmut_38
    (resonance residues centred to (-2L/3, L/3]). Angles lie in [-pi, pi], ``m = L/2`` gives +pi (the
    reference's ``(-L/2, L/2]``), and they equal the reference's within 3*pi*eps32 (one float32
    rounding of |angle| <= pi, our phase error <= 1.5*pi*eps32 by the module's docstring, and the
    reference's own rounding), as in test_torch.py's twin of this test."""
    import math

    from rrope_jax.phases import constants, phases

    w = 64 if rj.MAX_POSITION > 2**31 else 32

    def angles(cfg, pos):
        ang = np.asarray(phases(jnp.asarray(pos), constants(cfg, None, w), jnp.float32))
        assert ang.dtype == np.float32, cfg
        return ang

    eps32 = float(np.finfo(np.float32).eps)
    pos = np.array([-(10**6) - 7, -12345, -3, -1, 0, 2, 777, 10**6 + 3])
    assert_centred_phases(angles, pos, lambda cfg, p: 3 * math.pi * eps32, eps32)


@pytest.mark.skipif(rj.MAX_POSITION > 2**31, reason="the branch is for periods past int32: with x64 none is")
def test_periods_past_int32_are_centred_like_the_reference():
    """A resonance period beyond int32 (base 8.5e9: L = 3064936127 for the last pair) takes the
    ``far`` branch: angle ``fl(m) * fl(2pi/L)``, re-centred past ``L // 2``. Around ``L // 2`` and at
    the int32 ends the angles lie in [-pi, pi] and within 3*pi*eps32 of the reference's (``m`` and
    ``2pi/L`` rounded once each, the product once; |angle| <= pi), as the other centring tests. Kills
    the mutants of that branch: re-centred on one side only (the code had that bug: angles down to
    -4.4 rad at negative positions), at ``L // 3`` or with ``+ 2pi``, and a float threshold."""
    import math

    from rrope_jax.phases import constants, phases

    cfg = rr.RopeConfig(head_dim=16, base=8.5e9, resonance=True)
    L = int(rr.integer_wavelengths(cfg)[-1])
    assert 2**31 <= L < 2**32  # periods past int32 whose half is an int32 position
    half = L // 2
    pos = np.array([-(2**31) + 1, -half - 1, -half, -12345, 0, 1, L // 3 + 5, half - 1, half, half + 1, 2**31 - 1])
    # the pair of L = 175891180 (> 2**24): L/2 + 1 and L/2 round to one float32, so only an integer
    # comparison re-centres L/2 + 1 (kills _37, ``r > period / 2``)
    L6 = int(rr.integer_wavelengths(cfg)[-2])
    pos = np.concatenate([pos, L6 // 2 + np.array([-1, 0, 1, 2])])

    def angles(c, p):
        return np.asarray(phases(jnp.asarray(p, jnp.int32), constants(c, None, 32), jnp.float32))

    eps32 = float(np.finfo(np.float32).eps)
    assert_centred_phases(angles, pos, lambda c, p: 3 * math.pi * eps32, eps32, configs=[cfg], half_turn=False)


# The Pallas kernel (rrope_jax.pallas_kernel, opt-in: RROPE_JAX_IMPL=pallas). On the CPU it runs in
# Pallas' interpreter (the same kernel function, its math with JAX ops); its CUDA lowering (Triton)
# is checked by jax.export without a GPU.

KERNEL_CFGS = {
    "resonance_yarn": rr.RopeConfig(head_dim=64, scaling=rr.YaRN(8.0, 4096), resonance=True),
    "plain": rr.RopeConfig(head_dim=64, base=500000.0, scaling=rr.Llama3(8.0, 8192)),
    "dynamic_ntk": rr.RopeConfig(head_dim=32, scaling=rr.DynamicNTK(2.0, 64)),
}


def _kernel_positions(b, s, negative=False):
    """Per-batch rows: the last int32 positions, and a spread from 7 (or, the reference refusing
    them, from -2**20: the kernel's negative branch, compared with the XLA path)."""
    top = np.arange(2**31 - s, 2**31)
    spread = 12345 * np.arange(s) + (-(2**20) if negative else 7)
    return np.stack([top, spread][:b])[:, None, :]  # (B, 1, S): the same for every head


@pytest.mark.parametrize("name", list(KERNEL_CFGS))
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_pallas_kernel_matches_the_reference(monkeypatch, name, dtype):
    """Forward, inverse and the gradients of both through the kernel, each within
    conformance/tolerance.py's bound of the float64 reference: the gradient of the forward is
    ``a * R(-phi) w``, that of the inverse ``R(phi) w / a``; the forward's value is also checked as
    the primal output of ``jax.vjp`` (the custom VJP's forward rule)."""
    from rrope_jax.pallas_kernel import plan
    from rrope_jax.phases import constants

    monkeypatch.setenv("RROPE_JAX_IMPL", "pallas")
    cfg = KERNEL_CFGS[name]
    seq_len = 4096 if cfg.seq_len_dependent else None
    x64_ = _x((2, 3, 32, cfg.head_dim)).astype(dtype).astype(np.float64)  # values exact in dtype
    w64 = _x((2, 3, 32, cfg.head_dim), seed=1).astype(dtype).astype(np.float64)
    positions = _kernel_positions(2, 32)
    x, w = jnp.asarray(x64_, dtype), jnp.asarray(w64, dtype)
    assert not isinstance(plan(x, jnp.asarray(positions), cfg, constants(cfg, seq_len, 32)), str)
    a = rr.attention_factor(cfg, seq_len)
    pos = jnp.asarray(positions, jnp.int32)
    checks = [
        (rj.apply_rotary(x, pos, cfg, seq_len), rr.apply_rotary(x64_, positions, cfg, seq_len), x64_, a),
        (rj.inverse_rotary(x, pos, cfg, seq_len), rr.inverse_rotary(x64_, positions, cfg, seq_len), x64_, 1 / a),
        (rj.grad_apply_rotary(x, pos, cfg, w, seq_len), a**2 * rr.inverse_rotary(w64, positions, cfg, seq_len), w64, a),
        (
            jax.grad(lambda y: (rj.inverse_rotary(y, pos, cfg, seq_len).astype(jnp.float32) * w).sum())(x),
            rr.apply_rotary(w64, positions, cfg, seq_len) / a**2,
            w64,
            1 / a,
        ),
        (
            jax.vjp(lambda y: rj.apply_rotary(y, pos, cfg, seq_len), x)[0],
            rr.apply_rotary(x64_, positions, cfg, seq_len),
            x64_,
            a,
        ),
    ]
    for out, ref, src, scale in checks:
        assert out.dtype == x.dtype
        tol = rotation_tolerance(cfg, src, ref, positions, seq_len, dtype, scale)
        assert np.all(np.abs(np.asarray(out.astype(jnp.float32), np.float64) - ref) <= tol), name


def test_pallas_kernel_qk_and_jit_match_the_xla_path(monkeypatch):
    """q and k of different head counts, under jit with traced positions: the kernel's result is the
    XLA path's up to float32 rounding of the same formulas (4 eps32 of the pair's |x1|+|x2|, times a)."""
    cfg = KERNEL_CFGS["resonance_yarn"]
    q, k = jnp.asarray(_x((2, 4, 48, 64))), jnp.asarray(_x((2, 2, 48, 64), seed=1))
    pos = jnp.asarray(_kernel_positions(2, 48, negative=True), jnp.int32)
    outs = {}
    for impl in ("pallas", "xla"):
        monkeypatch.setenv("RROPE_JAX_IMPL", impl)
        outs[impl] = jax.jit(lambda q_, k_, p_: rj.apply_rotary_qk(q_, k_, p_, cfg))(q, k, pos)
    # the same phase bits; cos, sin and the products rounded within 2 eps32 of |x1| + |x2| each way
    bound = (
        4
        * np.finfo(np.float32).eps
        * rr.attention_factor(cfg)
        * 2
        * max(float(jnp.abs(q).max()), float(jnp.abs(k).max()))
    )
    for got, want in zip(outs["pallas"], outs["xla"], strict=True):
        assert got.shape == want.shape and float(jnp.abs(got - want).max()) <= bound


def test_pallas_rotate_called_directly_is_the_forward_rotation():
    """``pallas_kernel.rotate`` with its defaults rotates forward (``inverse=False``)."""
    from rrope_jax.pallas_kernel import rotate

    cfg = KERNEL_CFGS["resonance_yarn"]
    x = jnp.asarray(_x((1, 2, 16, 64)))
    rows = jnp.asarray(_kernel_positions(1, 16)[:, 0, :], jnp.int32)
    want = rj.apply_rotary(x, rows[:, None, :], cfg)  # the XLA path (RROPE_JAX_IMPL unset)
    got = rotate(x, rows, cfg, None, interpret=True)
    for bad_rows in (rows[:, :8], rows.astype(jnp.float32)):  # refused before any work, naming rows
        with pytest.raises(
            rr.RopeInputError, match=r"rows='<shape .*>' is invalid: must be int32 of shape \(B, S\) = \(1, 16\)"
        ):
            rotate(x, bad_rows, cfg, None, interpret=True)
    bound = 4 * np.finfo(np.float32).eps * rr.attention_factor(cfg) * 2 * float(jnp.abs(x).max())
    assert float(jnp.abs(got - want).max()) <= bound


def test_pallas_plan_says_why_it_does_not_apply():
    """Shapes and configs outside the kernel go to XLA, each with its reason (S = 20: not a
    multiple of BLOCK_S = 16)."""
    from rrope_jax.pallas_kernel import plan
    from rrope_jax.phases import constants

    cfg = KERNEL_CFGS["resonance_yarn"]
    k = constants(cfg, None, 32)
    x = jnp.zeros((2, 3, 32, 64), jnp.float32)
    for shape in [(32,), (1, 32), (1, 1, 32), (2, 1, 32)]:  # the same for every head
        assert plan(x, jnp.zeros(shape, jnp.int32), cfg, k).shape == (2, 32), shape
    rows = plan(x, jnp.arange(64).reshape(2, 1, 32), cfg, k)
    assert np.array_equal(np.asarray(rows), np.arange(64).reshape(2, 32))  # one row per batch
    top = np.iinfo(np.int32).max  # a period of exactly 2**31 - 1 is an int32 residue; 2**31 is not
    assert not isinstance(plan(x, jnp.arange(32), cfg, dataclasses.replace(k, periods=np.array([6, top]))), str)
    assert plan(x[..., :2], jnp.arange(32), rr.RopeConfig(head_dim=2, resonance=True), k).shape == (2, 32)
    heads = "positions vary along heads (or do not broadcast as one row per batch)"
    reasons = {
        "rank": (plan(x[0], jnp.arange(32), cfg, k), "x has rank 3, the kernel takes (B, H, S, D)"),
        "dtype": (plan(x.astype(jnp.int32), jnp.arange(32), cfg, k), "x.dtype int32 (the kernel computes in float32)"),
        "heads 2-D": (plan(x, jnp.zeros((2, 32), jnp.int32), cfg, k), heads),  # (2, 32) broadcasts along heads
        "heads 3-D": (plan(x, jnp.zeros((2, 3, 32), jnp.int32), cfg, k), heads),
        "batch": (plan(x, jnp.zeros((3, 1, 32), jnp.int32), cfg, k), heads),
        "seq": (plan(x[:, :, :20], jnp.arange(20), cfg, k), "seq_len 20 is not a multiple of 16"),
        "layout": (
            plan(x, jnp.arange(32), rr.RopeConfig(head_dim=64, layout="interleaved"), k),
            "the kernel rotates layout='half' with rotary_dim == head_dim",
        ),
        "partial": (
            plan(x, jnp.arange(32), rr.RopeConfig(head_dim=64, rotary_dim=32), k),
            "the kernel rotates layout='half' with rotary_dim == head_dim",
        ),
        "pow2": (
            plan(jnp.zeros((2, 3, 32, 48)), jnp.arange(32), rr.RopeConfig(head_dim=48), k),
            "head_dim/2 = 24 is not a power of two (Triton blocks)",
        ),
        "x64": (plan(x, jnp.arange(32), cfg, constants(cfg, None, 64)), "x64, or a resonance period beyond int32"),
        "period": (
            plan(x, jnp.arange(32), cfg, dataclasses.replace(k, periods=np.array([6, top + 1]))),
            "x64, or a resonance period beyond int32",
        ),
    }
    for what, (reason, want) in reasons.items():
        assert reason == want, what


def test_pallas_impl_leaves_periods_past_int32_of_this_seq_len_to_xla(monkeypatch):
    """A dynamic NTK resonance config whose longest period fits int32 at the original length
    (1.02e9) but not at ``seq_len=4096`` (1.3e11): the kernel is planned with the call's seq_len,
    refuses, and XLA rotates (within the float32 bound of the reference)."""
    monkeypatch.setenv("RROPE_JAX_IMPL", "pallas")
    cfg = rr.RopeConfig(head_dim=64, base=3e8, scaling=rr.DynamicNTK(2.0, 64), resonance=True)
    assert rr.integer_wavelengths(cfg, None).max() < 2**31 < rr.integer_wavelengths(cfg, 4096).max()
    x64_ = _x((1, 2, 32, 64)).astype(np.float64)
    positions = _kernel_positions(1, 32)
    out = rj.apply_rotary(jnp.asarray(x64_, jnp.float32), jnp.asarray(positions, jnp.int32), cfg, 4096)
    ref = rr.apply_rotary(x64_, positions, cfg, 4096)
    tol = rotation_tolerance(cfg, x64_, ref, positions, 4096, "float32", rr.attention_factor(cfg, 4096))
    assert np.all(np.abs(np.asarray(out, np.float64) - ref) <= tol)


def test_grad_apply_rotary_refuses_a_w_of_another_shape():
    """``w`` must have x's shape; the error names both, as RopeInputError."""
    x = jnp.zeros((1, 4, 64))
    with pytest.raises(rr.RopeInputError) as err:
        rj.grad_apply_rotary(x, jnp.arange(4), KERNEL_CFGS["resonance_yarn"], jnp.zeros((1, 4, 32)))
    assert str(err.value) == "w.shape=(1, 4, 32) is invalid: must equal x.shape=(1, 4, 64)"


def test_host_positions_limit_is_the_int32_range_and_named():
    """NumPy positions in [-2**31, 2**31) are taken (int32 holds -2**31), others refused with the range."""
    cfg = rr.RopeConfig(head_dim=8)
    x = jnp.ones((1, 1, 8))
    assert rj.apply_rotary(x, np.array([-(2**31)]), cfg).shape == (1, 1, 8)
    with pytest.raises(rr.RopeInputError) as err:
        rj.apply_rotary(jnp.ones((1, 2, 8)), np.array([0, 2**31]), cfg)
    assert str(err.value) == (
        "positions='<min 0, max 2147483648>' is invalid: must lie in [-2147483648, 2147483648) (rrope_jax.MAX_POSITION)"
    )


def test_seq_len_of_a_dynamic_config_is_read_from_one_position():
    """Without seq_len, a dynamic config's frequencies follow max(positions) + 1, also for a single
    position (within the float32 bound of the reference, which does the same); under jit the refusal
    says why, in full."""
    cfg = rr.RopeConfig(head_dim=8, scaling=rr.DynamicNTK(2.0, 64))
    x64_ = _x((1, 1, 8)).astype(np.float64)
    positions = np.array([1000])
    out = rj.apply_rotary(jnp.asarray(x64_, jnp.float32), jnp.asarray(positions), cfg)
    ref = rr.apply_rotary(x64_, positions, cfg)
    assert rr.inv_freq(cfg, 1001)[-1] != rr.inv_freq(cfg, None)[-1]  # the position's seq_len matters
    tol = rotation_tolerance(cfg, x64_, ref, positions, 1001, "float32", rr.attention_factor(cfg, 1001))
    assert np.all(np.abs(np.asarray(out, np.float64) - ref) <= tol)
    with pytest.raises(rr.RopeInputError) as err:
        jax.jit(lambda p_: rj.cos_sin(cfg, p_))(jnp.arange(4))
    assert str(err.value) == (
        "seq_len=None is invalid: must be given under jax.jit for DynamicNTK (its frequencies depend on it)"
    )


def test_rotation_errors_name_the_dtypes_given():
    """The refusal of a non-float x or non-integer positions names the dtype it got."""
    cfg = KERNEL_CFGS["resonance_yarn"]
    with pytest.raises(rr.RopeInputError, match=r"x\.dtype='int32' is invalid"):
        rj.apply_rotary(jnp.zeros((1, 4, 64), jnp.int32), jnp.arange(4), cfg)
    with pytest.raises(rr.RopeInputError, match=r"positions\.dtype='float32' is invalid"):
        rj.apply_rotary(jnp.zeros((1, 4, 64)), jnp.arange(4.0), cfg)


def test_pallas_plan_without_pallas(monkeypatch):
    """A jax without Pallas: every call takes the XLA path, and plan says why."""
    from rrope_jax import pallas_kernel

    cfg = KERNEL_CFGS["resonance_yarn"]
    monkeypatch.setattr(pallas_kernel, "_pallas", lambda: None)
    k = pallas_kernel.constants(cfg, None, 32)
    x = jnp.zeros((2, 3, 32, 64), jnp.float32)
    assert pallas_kernel.plan(x, jnp.arange(32), cfg, k) == "jax.experimental.pallas is not importable"


def test_the_kernel_is_chosen_by_impl_and_size_and_lowers_to_triton_for_cuda(monkeypatch):
    """Under ``xla`` no kernel is lowered, for the CPU or CUDA; ``pallas`` lowers to one Triton
    kernel per rotation for CUDA (forward and backward: 2), checked by jax.export without a GPU (the
    Triton lowering rules run, so an op they do not support fails here), and to no Triton call for
    the CPU (the interpreter); ``auto`` as ``pallas`` for CUDA from B * S = AUTO_MIN_POSITIONS on,
    as ``xla`` below it and for the CPU. The default is ``xla``."""
    from jax import export

    cfg = KERNEL_CFGS["plain"]
    q = jax.ShapeDtypeStruct((1, 8, 64, 64), jnp.bfloat16)
    pos = jax.ShapeDtypeStruct((64,), jnp.int32)
    skip = [export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")]

    def fwd_bwd():  # a new function per trace: JAX caches traces by function, and the variable is read when tracing
        def f(q_, p_):
            out, pull = jax.vjp(lambda a: rj.apply_rotary(a, p_, cfg), q_)
            return out, pull(out)

        return jax.jit(f)

    def cuda_kernels():
        return (
            export.export(fwd_bwd(), platforms=["cuda"], disabled_checks=skip)(q, pos)
            .mlir_module()
            .count("__gpu$xla.gpu.triton")
        )

    k = jax.ShapeDtypeStruct((1, 2, 64, 64), jnp.bfloat16)

    def qk_kernels():  # apply_rotary_qk's forward: one kernel for q, one for k; a new function per trace
        f = jax.jit(lambda q_, k_, p_: rj.apply_rotary_qk(q_, k_, p_, cfg))
        return (
            export.export(f, platforms=["cuda"], disabled_checks=skip)(q, k, pos)
            .mlir_module()
            .count("__gpu$xla.gpu.triton")
        )

    def cpu_loops():  # Pallas' interpreter walks the grid (and the kernel's head loop) in while loops; XLA has none
        text = export.export(fwd_bwd(), platforms=["cpu"])(q, pos).mlir_module()
        assert "xla.gpu.triton" not in text
        return text.count("stablehlo.while")

    monkeypatch.delenv("RROPE_JAX_IMPL", raising=False)  # xla
    assert cuda_kernels() == 0 and qk_kernels() == 0 and cpu_loops() == 0
    monkeypatch.setenv("RROPE_JAX_IMPL", "pallas")
    assert cuda_kernels() == 2 and qk_kernels() == 2
    assert cpu_loops() > 0  # the interpreter, not XLA, off CUDA
    monkeypatch.setenv("RROPE_JAX_IMPL", "auto")
    assert cuda_kernels() == 0 and qk_kernels() == 0  # B * S = 64
    n = pk.AUTO_MIN_POSITIONS
    for b, s, want in ((1, n - pk.BLOCK_S, 0), (1, n, 2), (2, n // 2, 2), (2, n // 2 - pk.BLOCK_S, 0)):
        q = jax.ShapeDtypeStruct((b, 8, s, 64), jnp.bfloat16)
        k = jax.ShapeDtypeStruct((b, 2, s, 64), jnp.bfloat16)
        pos = jax.ShapeDtypeStruct((s,), jnp.int32)
        assert (cuda_kernels(), qk_kernels(), cpu_loops()) == (want, want, 0), (b, s)  # off CUDA: XLA
    monkeypatch.setenv("RROPE_JAX_IMPL", "triton")
    with pytest.raises(
        rr.RopeInputError,
        match=r"RROPE_JAX_IMPL='triton' is invalid: must be one of \('xla', 'auto', 'pallas'\)",
    ):
        rj.apply_rotary(jnp.zeros((1, 1, 16, 64)), jnp.arange(16), cfg)
