"""Property 6: d/dx sum(w * apply_rotary(x)) == a**2 * inverse_rotary(w) (the transpose of a*R)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rrope_core as rr

from .harness import assert_within, describe, to_backend
from .strategies import rotation_cases
from .tolerance import rotation_tolerance


@given(data=st.data())
def test_gradient_is_scaled_inverse_rotation(B, device, data):
    if not hasattr(B, "grad_apply_rotary"):
        pytest.skip(f"backend {B.name!r} declares no autodiff (no grad_apply_rotary)")
    cfg, x, pos, dtype, seq_len = data.draw(rotation_cases(B), label="case")
    w = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="w_seed")).standard_normal(x.shape)
    xb, _ = to_backend(B, x, dtype, device)
    wb, w_exact = to_backend(B, w, dtype, device)
    pb = B.from_numpy(pos, dtype="int64", device=device)
    got = np.asarray(B.to_numpy(B.grad_apply_rotary(xb, pb, cfg, wb, seq_len)), np.float64)
    eff = rr.rotation.resolve_seq_len(cfg, seq_len, int(np.max(pos)))
    a = rr.attention_factor(cfg, eff)
    want = a * a * rr.rotation.inverse_rotary(w_exact, pos, cfg, seq_len)
    # The gradient is the rotation by -phi scaled by a: the same bound as apply_rotary on w.
    tol = rotation_tolerance(cfg, w_exact, want, pos, eff, dtype, a)
    tol[..., cfg.rotary_dim :] = 0
    want[..., cfg.rotary_dim :] = w_exact[..., cfg.rotary_dim :]
    assert_within(got, want, tol, describe(f"{B.name}.grad_apply_rotary", cfg, x.shape, pos, dtype, seq_len))
