"""Property 7: shapes, dtypes and devices preserved; inputs never modified; RotaryEmbedding and dispatch."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rrope_core as rr

from .harness import describe, positions_to_backend, to_backend
from .strategies import configs, rotation_cases


@given(data=st.data())
def test_shape_dtype_device_preserved_and_inputs_untouched(B, device, data):
    cfg, x, pos, dtype, seq_len = data.draw(rotation_cases(B), label="case")
    xb, exact = to_backend(B, x, dtype, device)
    pb = positions_to_backend(B, pos, device)
    for fn in ("apply_rotary", "inverse_rotary"):
        out = getattr(B, fn)(xb, pb, cfg, seq_len)
        msg = describe(f"{B.name}.{fn}", cfg, x.shape, pos, dtype, seq_len)
        assert B.is_array(out), f"{msg}: returned {type(out)!r}"
        assert out is not xb, f"{msg}: returned its input"
        assert tuple(out.shape) == x.shape, f"{msg}: shape {tuple(out.shape)}"
        assert str(B.to_numpy(out).dtype) == str(B.to_numpy(xb).dtype), f"{msg}: dtype changed"
        assert B.device_of(out) == B.device_of(xb), f"{msg}: device {B.device_of(out)} != {B.device_of(xb)}"
        np.testing.assert_array_equal(np.asarray(B.to_numpy(xb), np.float64), exact, err_msg=f"{msg}: x modified")
        np.testing.assert_array_equal(B.to_numpy(pb), pos, err_msg=f"{msg}: positions modified")


@given(data=st.data())
def test_rotary_embedding_rotates_q_and_k_with_different_head_counts(B, device, data):
    cfg = data.draw(configs(), label="cfg")
    hq, hk = data.draw(st.integers(1, 4), label="hq"), data.draw(st.integers(1, 4), label="hk")
    t = data.draw(st.integers(1, 8), label="seq")
    dtype = "float32" if "float32" in B.DTYPES else B.DTYPES[0]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    q, _ = to_backend(B, rng.standard_normal((2, hq, t, cfg.head_dim)), dtype, device)
    k, _ = to_backend(B, rng.standard_normal((2, hk, t, cfg.head_dim)), dtype, device)
    pos = positions_to_backend(B, data.draw(st.integers(0, 2**20), label="offset") + np.arange(t), device)
    rq, rk = B.RotaryEmbedding(cfg)(q, k, pos)
    msg = describe(f"{B.name}.RotaryEmbedding", cfg, dtype=dtype, hq=hq, hk=hk, t=t)
    np.testing.assert_array_equal(B.to_numpy(rq), B.to_numpy(B.apply_rotary(q, pos, cfg)), err_msg=msg + " [q]")
    np.testing.assert_array_equal(B.to_numpy(rk), B.to_numpy(B.apply_rotary(k, pos, cfg)), err_msg=msg + " [k]")


def test_generic_entry_points_dispatch_to_this_backend(B, device):
    cfg = rr.RopeConfig(head_dim=8, scaling=rr.YaRN(4.0, 64), resonance=True)
    dtype = "float32" if "float32" in B.DTYPES else B.DTYPES[0]
    xb, _ = to_backend(B, np.random.default_rng(0).standard_normal((3, 8)), dtype, device)
    pb = positions_to_backend(B, np.arange(3), device)
    framework = rr.framework_of(xb)
    if framework is None:
        pytest.skip(f"{type(xb).__module__}.{type(xb).__qualname__} is no framework's array: dispatch cannot know it")
    try:
        registered = rr.backend(framework)
    except rr.BackendNotFoundError as exc:
        pytest.skip(f"{framework} arrays dispatch to the built-in {framework!r} backend, not installed here: {exc}")
    if registered is not B:  # e.g. a port whose arrays are NumPy arrays: dispatch runs the reference on them
        pytest.skip(
            f"{framework} arrays dispatch to the built-in {framework!r} backend ({registered.__name__}), not this port"
        )
    out = rr.apply_rotary(xb, pb, cfg)
    assert type(out) is type(B.apply_rotary(xb, pb, cfg))
    np.testing.assert_array_equal(B.to_numpy(out), B.to_numpy(B.apply_rotary(xb, pb, cfg)))
    assert type(rr.cos_sin(cfg, pb)[0]) is type(B.cos_sin(cfg, pb)[0])
