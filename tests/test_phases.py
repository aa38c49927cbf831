"""Exact phases against rational-arithmetic truth (tests/_truth.py), at positions up to int64."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rrope_core as rr
from rrope_conformance.strategies import configs

from ._truth import phase_float_theta, phase_integer_period

# Bounds from rrope_core/phases.py: resonance <= 1.5 ulp(pi), other configs <= 2 ulp(pi).
ULP_PI = float(np.spacing(np.pi))


def _angle_error(a, b):
    d = np.mod(np.abs(np.asarray(a) - np.asarray(b)), 2 * np.pi)
    return np.minimum(d, 2 * np.pi - d)  # angles near +-pi are the same point


@given(configs(resonance=True, max_head_dim=32), st.lists(st.integers(0, 2**63 - 1), min_size=1, max_size=6))
def test_resonance_phase_is_exact_at_any_int64_position(cfg, ms):
    periods = rr.integer_wavelengths(cfg)
    got = rr.phases(cfg, np.array(ms, dtype=np.int64))
    truth = np.array([[phase_integer_period(m, int(L)) for L in periods] for m in ms])
    err = _angle_error(got, truth).max()
    assert err <= 1.5 * ULP_PI, f"phases({cfg!r}, {ms}) error {err:.3g}"


@given(configs(resonance=False, max_head_dim=32), st.lists(st.integers(0, 2**53 - 1), min_size=1, max_size=6))
def test_float_phase_is_exactly_reduced_below_2_53(cfg, ms):
    theta = rr.inv_freq(cfg)
    got = rr.phases(cfg, np.array(ms, dtype=np.int64))
    truth = np.array([[phase_float_theta(m, float(t)) for t in theta] for m in ms])
    err = _angle_error(got, truth).max()
    assert err <= 2 * ULP_PI, f"phases({cfg!r}, {ms}) error {err:.3g}"
    assert np.all(np.abs(got) <= np.pi), f"phases({cfg!r}, {ms}) not centred: {got}"


def test_resonance_cos_sin_periodic_per_pair():
    cfg = rr.RopeConfig(head_dim=64, scaling=rr.YaRN(8.0, 2048), resonance=True)
    periods = rr.integer_wavelengths(cfg)
    m = np.array([0, 1, 17, 4095, 2**31 - 1, 2**40 + 3])
    c0, s0 = rr.cos_sin(cfg, m)
    for i, L in enumerate(periods):
        c1, s1 = rr.cos_sin(cfg, m + L)
        # Bit-identical: m and m + L have the same residue, so the same float operations run.
        np.testing.assert_array_equal(c1[:, i], c0[:, i])
        np.testing.assert_array_equal(s1[:, i], s0[:, i])


def test_float32_tables_are_what_we_avoid():
    # Sanity of the truth itself: the naive float64 product m*theta loses ~m*eps at 2**50.
    cfg = rr.RopeConfig(head_dim=4)
    m = 2**50 + 12345
    naive = np.mod(np.float64(m) * rr.inv_freq(cfg)[0] + np.pi, 2 * np.pi) - np.pi
    exact = rr.phases(cfg, np.array([m]))[0, 0]
    assert abs(exact - phase_float_theta(m, rr.inv_freq(cfg)[0])) <= 2 * ULP_PI
    assert _angle_error(naive, exact) > 1e-3


@pytest.mark.parametrize("m", [0, 1, 2**31 - 1, 2**52 + 1])
def test_cos_sin_shape_dtype(m):
    cfg = rr.RopeConfig(head_dim=16, rotary_dim=8)
    c, s = rr.cos_sin(cfg, np.full((2, 3), m))
    assert c.shape == s.shape == (2, 3, 4) and c.dtype == np.float64
    np.testing.assert_allclose(c**2 + s**2, 1.0, atol=4e-16)


@given(st.lists(st.integers(0, 2**53 - 1), min_size=1, max_size=8), st.floats(1e-9, 4 * np.pi))
def test_reduce_phase_bound_over_the_whole_theta_range(ms, theta):
    """LongRoPE factors < 1 give theta up to ~4*pi: the bound must hold there too."""
    from rrope_core.phases import reduce_phase

    got = reduce_phase(np.array(ms, dtype=np.float64), np.full(len(ms), theta))
    truth = np.array([phase_float_theta(m, theta) for m in ms])
    assert _angle_error(got, truth).max() <= 2 * ULP_PI and np.all(np.abs(got) <= np.pi)


def test_centred_phases_check_accepts_the_reference_and_refuses_other_centrings():
    """rrope_conformance.harness.assert_centred_phases (the backends' centring tests use it): the
    reference's own angles pass; residues centred to [-L/2, L/2) (m = L/2 -> -pi), angles shifted by
    a whole turn (the same cos/sin) and an error just over the bound each fail it."""
    from rrope_conformance.harness import assert_centred_phases

    pos = np.array([-12345, -3, 0, 2, 777, 10**6 + 3])
    eps = float(np.finfo(np.float64).eps)
    bound = lambda cfg, p: 4 * eps  # noqa: E731
    assert_centred_phases(rr.phases, pos, bound, eps)

    def low_centred(cfg, p):  # pi -> -pi: the half turn on the other side
        a = rr.phases(cfg, p)
        return np.where(a >= np.pi, a - 2 * np.pi, a)

    def turned(cfg, p):  # a whole turn added to negative angles
        a = rr.phases(cfg, p)
        return np.where(a < 0, a + 2 * np.pi, a)

    def off(cfg, p):
        return rr.phases(cfg, p) + 5 * eps

    for wrong in (low_centred, turned, off):
        with pytest.raises(AssertionError):
            assert_centred_phases(wrong, pos, bound, eps)
