"""Property 1: the backend equals the reference within the dtype-derived tolerance (tolerance.py)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rrope_core as rr

from .harness import assert_within, describe, positions_to_backend, rotate_and_check, to_backend
from .strategies import configs, rotation_cases
from .tolerance import EPS, phase_budget


@given(data=st.data())
def test_apply_rotary_equals_reference(B, device, data):
    cfg, x, pos, dtype, seq_len = data.draw(rotation_cases(B), label="case")
    out, want, tol, msg, _ = rotate_and_check(B, "apply_rotary", cfg, x, pos, dtype, seq_len, device)
    assert_within(out, want, tol, msg)


@given(data=st.data())
def test_inverse_rotary_equals_reference(B, device, data):
    cfg, x, pos, dtype, seq_len = data.draw(rotation_cases(B), label="case")
    out, want, tol, msg, _ = rotate_and_check(B, "inverse_rotary", cfg, x, pos, dtype, seq_len, device)
    assert_within(out, want, tol, msg)


@given(data=st.data())
def test_cos_sin_equals_reference(B, device, data):
    cfg = data.draw(configs(), label="cfg")
    pos = np.array(data.draw(st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=8), label="positions"))
    seq_len = data.draw(st.none() | st.integers(1, 2**20), label="seq_len") if cfg.seq_len_dependent else None
    cos, sin = B.cos_sin(cfg, positions_to_backend(B, pos, device), seq_len)
    dtype = str(B.to_numpy(cos).dtype)
    want_c, want_s = rr.rotation.cos_sin(cfg, pos, seq_len)
    eff = rr.rotation.resolve_seq_len(cfg, seq_len, int(pos.max()))
    tol = phase_budget(cfg, pos, eff, dtype) + 2 * EPS[dtype]
    msg = describe(f"{B.name}.cos_sin", cfg, positions=pos, seq_len=seq_len, returned_dtype=dtype)
    assert_within(np.asarray(B.to_numpy(cos), np.float64), want_c, tol, msg + " [cos]")
    assert_within(np.asarray(B.to_numpy(sin), np.float64), want_s, tol, msg + " [sin]")


@given(cfg=configs(), seq_len=st.none() | st.integers(1, 2**20))
def test_inv_freq_equals_reference(B, device, cfg, seq_len):
    got = np.asarray(B.to_numpy(B.inv_freq(cfg, seq_len, device=device)), np.float64)
    want = rr.inv_freq(cfg, seq_len)
    rtol = EPS[str(B.to_numpy(B.inv_freq(cfg, seq_len, device=device)).dtype)]
    np.testing.assert_allclose(got, want, rtol=rtol, err_msg=describe(f"{B.name}.inv_freq", cfg, seq_len=seq_len))


@pytest.mark.parametrize("fn", ["cos_sin", "apply_rotary"])
def test_seq_len_defaults_to_max_position_plus_one(B, device, fn):
    """For a config that depends on seq_len (dynamic NTK), ``seq_len=None`` means
    ``max(positions) + 1``, as ``rrope_core.rotation.resolve_seq_len`` says: the same arrays as
    passing it. The ci-size draws of the properties above seldom reach this case."""
    cfg = rr.RopeConfig(head_dim=16, scaling=rr.DynamicNTK(4.0, 64))
    pos = positions_to_backend(B, 900 + np.arange(8), device)
    if fn == "cos_sin":
        got, want = B.cos_sin(cfg, pos), B.cos_sin(cfg, pos, 908)
    else:
        dtype = "float32" if "float32" in B.DTYPES else B.DTYPES[0]
        x, _ = to_backend(B, np.random.default_rng(0).standard_normal((2, 8, 16)), dtype, device)
        got, want = (B.apply_rotary(x, pos, cfg),), (B.apply_rotary(x, pos, cfg, 908),)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(np.asarray(B.to_numpy(g)), np.asarray(B.to_numpy(w)))


def test_inv_freq_follows_seq_len_for_a_dynamic_config(B, device):
    """``inv_freq(cfg, seq_len)`` of a config that depends on seq_len (dynamic NTK) changes with it,
    as the reference's does (the draws above seldom pair such a config with a long seq_len)."""
    cfg = rr.RopeConfig(head_dim=16, scaling=rr.DynamicNTK(4.0, 64))
    assert not np.allclose(rr.inv_freq(cfg, 1024), rr.inv_freq(cfg, None))  # the case can fail
    for seq_len in (None, 64, 1024):
        got = np.asarray(B.to_numpy(B.inv_freq(cfg, seq_len, device=device)))
        np.testing.assert_allclose(got.astype(np.float64), rr.inv_freq(cfg, seq_len), rtol=EPS[str(got.dtype)])
