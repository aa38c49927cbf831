"""Properties 2-5: relative positions, norms, inverse, resonance periodicity (on the backend's own output)."""

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

import rrope_core as rr

from .harness import assert_within, describe, positions_to_backend, rotate_and_check, to_backend
from .strategies import configs, dtypes
from .tolerance import EPS, compute_eps, pair_sum, phase_budget, rotation_tolerance

_position = st.integers(0, 2**30)


@given(data=st.data())
def test_inner_product_depends_only_on_relative_position(B, device, data):
    """<R(m)q, R(n)k> == <R(m+s)q, R(n+s)k>; bound: both dot products' error from the per-feature tolerance."""
    cfg = data.draw(configs(), label="cfg")
    dtype = data.draw(dtypes(B), label="dtype")
    m, n, shift = (data.draw(_position, label=lbl) for lbl in ("m", "n", "shift"))
    seq_len = max(m, n) + shift + 1 if cfg.seq_len_dependent else None  # same frequencies at both
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    qk = rng.standard_normal((2, cfg.head_dim))

    def dot_and_bound(pm, pn):
        pos = np.array([pm, pn])
        out, want, tol, _, _ = rotate_and_check(B, "apply_rotary", cfg, qk, pos, dtype, seq_len, device)
        (q, k), (dq, dk) = out, tol
        return float(q @ k), float(np.abs(q) @ dk + np.abs(k) @ dq + dq @ dk)

    d0, b0 = dot_and_bound(m, n)
    d1, b1 = dot_and_bound(m + shift, n + shift)
    ref0 = float(np.prod(rr.rotation.apply_rotary(qk, np.array([m, n]), cfg, seq_len), axis=0).sum())
    ref1 = float(np.prod(rr.rotation.apply_rotary(qk, np.array([m + shift, n + shift]), cfg, seq_len), axis=0).sum())
    slack = 64 * cfg.head_dim * EPS["float64"] * (abs(ref0) + abs(ref1) + 1)  # the reference's own rounding
    msg = describe(f"{B.name}.apply_rotary", cfg, dtype=dtype, seq_len=seq_len, m=m, n=n, shift=shift)
    assert abs(d0 - d1) <= b0 + b1 + slack, f"{msg}: <R(m)q,R(n)k>={d0!r} but shifted {d1!r}"


@given(data=st.data())
def test_norm_preserved_up_to_attention_factor(B, device, data):
    cfg = data.draw(configs(), label="cfg")
    dtype = data.draw(dtypes(B), label="dtype")
    pos = data.draw(_position, label="offset") + np.arange(4)
    x = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed")).standard_normal((4, cfg.head_dim))
    out, want, tol, msg, exact = rotate_and_check(B, "apply_rotary", cfg, x, pos, dtype, None, device)
    rd = cfg.rotary_dim
    a = rr.attention_factor(cfg, int(pos.max()) + 1)
    got = np.linalg.norm(out[:, :rd], axis=-1)
    expected = a * np.linalg.norm(exact[:, :rd], axis=-1)
    bound = np.linalg.norm(tol[:, :rd], axis=-1) + 8 * rd * EPS["float64"] * expected
    assert np.all(np.abs(got - expected) <= bound), f"{msg}: norms {got} != a*|x| = {expected}"
    np.testing.assert_array_equal(out[:, rd:], exact[:, rd:], err_msg=f"{msg}: pass-through features changed")


@given(data=st.data())
def test_inverse_undoes_apply(B, device, data):
    cfg = data.draw(configs(), label="cfg")
    dtype = data.draw(dtypes(B), label="dtype")
    pos = data.draw(st.integers(0, 2**31 - 9), label="offset") + np.arange(8)
    x = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed")).standard_normal((8, cfg.head_dim))
    xb, exact = to_backend(B, x, dtype, device)
    pb = positions_to_backend(B, pos, device)
    yb = B.apply_rotary(xb, pb, cfg)
    y = np.asarray(B.to_numpy(yb), np.float64)
    back = np.asarray(B.to_numpy(B.inverse_rotary(yb, pb, cfg)), np.float64)
    a = rr.attention_factor(cfg, int(pos.max()) + 1)
    y_ref = rr.rotation.apply_rotary(exact, pos, cfg)
    tol_apply = rotation_tolerance(cfg, exact, y_ref, pos, int(pos.max()) + 1, dtype, a)
    inv_ref = rr.rotation.inverse_rotary(y, pos, cfg)  # exact inverse of what the backend returned
    tol_inv = rotation_tolerance(cfg, y, inv_ref, pos, int(pos.max()) + 1, dtype, 1 / a)
    assert_within(
        back,
        exact,
        tol_inv + pair_sum(tol_apply, cfg) / a,
        describe(f"{B.name}.inverse_rotary(apply_rotary(x))", cfg, x.shape, pos, dtype),
    )


@given(data=st.data())
def test_resonance_pair_repeats_after_its_wavelength(B, device, data):
    cfg = data.draw(configs(resonance=True), label="cfg")
    seq_len = 2**20 if cfg.seq_len_dependent else None  # pin dynamic frequencies for both positions
    periods = rr.integer_wavelengths(cfg, seq_len)
    # Positions p and p + L must both be below the backend's limit (MAX_POSITION, optional in the
    # contract: 2**31 for JAX's 32-bit types; unlimited int64 otherwise).
    limit = getattr(B, "MAX_POSITION", 2**63)
    pairs = [i for i, L in enumerate(periods) if L < limit // 2]  # p + L must stay below the limit
    assume(pairs)
    top = min(2**62, limit - 1 - int(periods[pairs].max()))
    pos = np.array(data.draw(st.lists(st.integers(0, top), min_size=1, max_size=4), label="positions"))
    c0, s0 = (B.to_numpy(t) for t in B.cos_sin(cfg, positions_to_backend(B, pos, device), seq_len))
    dtype = str(c0.dtype)
    c0, s0 = np.asarray(c0, np.float64), np.asarray(s0, np.float64)
    tol = 2 * (phase_budget(cfg, pos, seq_len, dtype) + 2 * compute_eps(dtype))
    for i in pairs:
        L = periods[i]
        c1, s1 = (
            np.asarray(B.to_numpy(t), np.float64)
            for t in B.cos_sin(cfg, positions_to_backend(B, pos + L, device), seq_len)
        )
        msg = describe(f"{B.name}.cos_sin", cfg, positions=pos, pair=i, wavelength=int(L))
        assert_within(c1[:, i], c0[:, i], tol[:, i], msg + " at p+L vs p [cos]")
        assert_within(s1[:, i], s0[:, i], tol[:, i], msg + " at p+L vs p [sin]")
