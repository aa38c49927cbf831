"""apply_rotary / inverse_rotary: inverse, relative-position invariance, norms, layouts, shapes."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import rrope_core as rr
from rrope_conformance.strategies import configs

EPS64 = float(np.finfo(np.float64).eps)
positions = st.integers(0, 2**40)


def _x(seed, shape, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@given(configs(), st.integers(0, 2**32 - 1), positions)
def test_inverse_undoes_apply(cfg, seed, offset):
    x = _x(seed, (2, 3, 5, cfg.head_dim))
    pos = offset + np.arange(5)
    back = rr.inverse_rotary(rr.apply_rotary(x, pos, cfg), pos, cfg)
    a = rr.attention_factor(cfg, seq_len=int(pos.max()) + 1)
    # Each rotation rounds ~3 times per output (products, sum, scale); both directions together stay
    # under 16 eps * (a + 1/a) * max|x|.
    tol = 16 * EPS64 * (a + 1 / a) * np.abs(x).max()
    err = np.abs(back - x).max()
    assert err <= tol, f"inverse_rotary(apply_rotary(x, {offset}+arange(5), {cfg!r})) error {err:.3g} > {tol:.3g}"


@given(configs(), st.integers(0, 2**32 - 1), positions, positions, st.integers(0, 2**40))
def test_inner_product_depends_only_on_relative_position(cfg, seed, m, n, shift):
    if cfg.seq_len_dependent:  # frequencies change with seq_len: pin it so only positions move
        seq_len = max(m, n) + shift + 1
    else:
        seq_len = None
    q, k = _x(seed, (2, cfg.head_dim))

    def dot(pm, pn):
        return float(rr.apply_rotary(q, pm, cfg, seq_len) @ rr.apply_rotary(k, pn, cfg, seq_len))

    a = rr.attention_factor(cfg, seq_len)
    # Per output component: phase error <= 4 ulp(pi) plus ~4 roundings, summed over head_dim terms.
    tol = 16 * cfg.head_dim * EPS64 * max(a * a, 1.0) * np.abs(q).max() * np.abs(k).max() * 4
    d0, d1 = dot(m, n), dot(m + shift, n + shift)
    assert abs(d0 - d1) <= tol, f"<R({m})q, R({n})k> vs shift {shift} for {cfg!r}: {d0} != {d1}"


@given(configs(), st.integers(0, 2**32 - 1), positions)
def test_norm_scaled_by_attention_factor_and_passthrough_untouched(cfg, seed, offset):
    x = _x(seed, (4, cfg.head_dim))
    pos = offset + np.arange(4)
    y = rr.apply_rotary(x, pos, cfg)
    a = rr.attention_factor(cfg, int(pos.max()) + 1)
    rd = cfg.rotary_dim
    np.testing.assert_array_equal(y[:, rd:], x[:, rd:])
    got, want = np.linalg.norm(y[:, :rd], axis=-1), a * np.linalg.norm(x[:, :rd], axis=-1)
    np.testing.assert_allclose(got, want, rtol=8 * rd * EPS64, err_msg=f"norms for {cfg!r}")


@given(configs(layouts=("half",)), st.integers(0, 2**32 - 1), positions)
def test_layouts_are_a_permutation_of_each_other(cfg, seed, offset):
    rd = cfg.rotary_dim
    inter = rr.RopeConfig(cfg.head_dim, cfg.base, rd, cfg.scaling, cfg.resonance, "interleaved")
    perm = np.concatenate([np.arange(0, rd, 2), np.arange(1, rd, 2), np.arange(rd, cfg.head_dim)])
    x = _x(seed, (3, cfg.head_dim))
    pos = offset + np.arange(3)
    np.testing.assert_array_equal(rr.apply_rotary(x[:, perm], pos, cfg), rr.apply_rotary(x, pos, inter)[:, perm])


def test_layouts_differ_on_values():
    x = _x(0, (1, 8))
    half = rr.apply_rotary(x, [5], rr.RopeConfig(head_dim=8))
    inter = rr.apply_rotary(x, [5], rr.RopeConfig(head_dim=8, layout="interleaved"))
    assert np.abs(half - inter).max() > 0.1


def test_half_layout_by_hand():
    # head_dim 4: pairs (0,2) with theta 1 and (1,3) with theta 1/base.
    cfg = rr.RopeConfig(head_dim=4, base=100.0)
    x = np.array([1.0, 2.0, 3.0, 4.0])
    m = 3
    c0, s0, c1, s1 = np.cos(3.0), np.sin(3.0), np.cos(0.3), np.sin(0.3)
    want = [1 * c0 - 3 * s0, 2 * c1 - 4 * s1, 3 * c0 + 1 * s0, 4 * c1 + 2 * s1]
    np.testing.assert_allclose(rr.apply_rotary(x, m, cfg), want, rtol=1e-15, atol=1e-15)


def test_interleaved_layout_by_hand():
    cfg = rr.RopeConfig(head_dim=4, base=100.0, layout="interleaved")
    x = np.array([1.0, 2.0, 3.0, 4.0])
    c0, s0, c1, s1 = np.cos(3.0), np.sin(3.0), np.cos(0.3), np.sin(0.3)
    want = [1 * c0 - 2 * s0, 2 * c0 + 1 * s0, 3 * c1 - 4 * s1, 4 * c1 + 3 * s1]
    np.testing.assert_allclose(rr.apply_rotary(x, 3, cfg), want, rtol=1e-15, atol=1e-15)


def test_arrangements_and_per_batch_offsets():
    cfg = rr.RopeConfig(head_dim=16, scaling=rr.YaRN(4.0, 64), resonance=True)
    x = _x(1, (2, 3, 5, 16))  # (B, H, T, D)
    pos = np.arange(5)
    bhtd = rr.apply_rotary(x, pos, cfg)
    bthd = rr.apply_rotary(x.transpose(0, 2, 1, 3), pos[:, None], cfg)
    np.testing.assert_array_equal(bthd.transpose(0, 2, 1, 3), bhtd)
    offsets = np.array([7, 2**31 - 10])
    per_batch = rr.apply_rotary(x, (offsets[:, None] + pos)[:, None, :], cfg)
    for b in range(2):
        np.testing.assert_array_equal(per_batch[b], rr.apply_rotary(x[b], offsets[b] + pos, cfg))


@given(st.sampled_from([np.float16, np.float32, np.float64]))
def test_dtype_preserved_and_input_untouched(dtype):
    cfg = rr.RopeConfig(head_dim=8)
    x = _x(2, (3, 8), dtype)
    pos = np.arange(3)
    x0, pos0 = x.copy(), pos.copy()
    y = rr.apply_rotary(x, pos, cfg)
    z = rr.inverse_rotary(y, pos, cfg)
    assert y.dtype == z.dtype == dtype
    assert y is not x and not np.shares_memory(y, x)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(pos, pos0)


def test_seq_len_defaults_to_max_position_plus_one_for_dynamic():
    cfg = rr.RopeConfig(head_dim=8, scaling=rr.DynamicNTK(4.0, 16))
    x = _x(3, (40, 8))
    pos = np.arange(40)
    np.testing.assert_array_equal(rr.apply_rotary(x, pos, cfg), rr.apply_rotary(x, pos, cfg, seq_len=40))
    assert np.abs(rr.apply_rotary(x, pos, cfg) - rr.apply_rotary(x, pos, cfg, seq_len=16)).max() > 1e-3


def test_rotation_with_zero_length_sequence():
    cfg = rr.RopeConfig(head_dim=8)
    y = rr.apply_rotary(np.zeros((2, 0, 8), np.float32), np.zeros((0,), np.int64), cfg)
    assert y.shape == (2, 0, 8)
