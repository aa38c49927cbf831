"""Checked positions mode (``rrope_core.checked``): with it on, every backend refuses negative
positions with the reference's error, in apply_rotary, inverse_rotary and cos_sin; valid positions
give exactly the unchecked result. The reference refuses them in either mode."""

from __future__ import annotations

import numpy as np
import pytest

import rrope_core as rr
from rrope_core.errors import RopeInputError

from .harness import positions_to_backend, to_backend

CFGS = {
    "resonance": rr.RopeConfig(head_dim=8, scaling=rr.YaRN(4.0, 16), resonance=True),
    "plain": rr.RopeConfig(head_dim=8),
}


def _dtype(B):
    return "float32" if "float32" in B.DTYPES else B.DTYPES[0]


@pytest.fixture(params=list(CFGS))
def cfg(request):
    return CFGS[request.param]


@pytest.mark.parametrize("fn", ["apply_rotary", "inverse_rotary"])
def test_negative_positions_refused_when_checked(B, device, cfg, fn):
    x, _ = to_backend(B, np.ones((2, 3, 8)), _dtype(B), device)
    pos = positions_to_backend(B, np.array([4, -1, 7]), device)
    with rr.checked_positions(), pytest.raises(RopeInputError, match=r"positions.*<min -1>.*>= 0"):
        getattr(B, fn)(x, pos, cfg)


def test_cos_sin_refuses_negative_positions_when_checked(B, device, cfg):
    pos = positions_to_backend(B, np.array([0, -3]), device)
    with rr.checked_positions(), pytest.raises(RopeInputError, match=r"positions.*<min -3>"):
        B.cos_sin(cfg, pos)


def test_checked_mode_changes_no_valid_result(B, device, cfg):
    x, _ = to_backend(B, np.random.default_rng(0).standard_normal((2, 3, 8)), _dtype(B), device)
    pos = positions_to_backend(B, np.array([0, 5, 2**20]), device)
    plain = np.asarray(B.to_numpy(B.apply_rotary(x, pos, cfg)))
    with rr.checked_positions():
        checked = np.asarray(B.to_numpy(B.apply_rotary(x, pos, cfg)))
    np.testing.assert_array_equal(checked, plain)  # the same computation: bit for bit


def test_checked_mode_is_scoped_to_the_block(B, device, cfg):
    before = rr.positions_checked()  # RROPE_CHECK_POSITIONS may have turned it on for the session
    with rr.checked_positions():
        assert rr.positions_checked()
        with rr.checked_positions(False):
            assert not rr.positions_checked()
        assert rr.positions_checked()
    assert rr.positions_checked() == before
