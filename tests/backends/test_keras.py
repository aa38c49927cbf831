"""rrope_keras beyond the conformance suite, on whichever Keras backend ``KERAS_BACKEND`` selects:
exact phases at huge positions, the layer's two call forms, serialization, compute_output_shape,
the custom gradient, traced calls, bad inputs, import hygiene.

Every tolerance is derived in the comment next to it (conformance/tolerance.py gives the contract's
bound against the float64 reference; phases.py states the tighter phase bound checked here).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras", reason="rrope_keras needs keras>=3 (pip install 'resonance-rope[keras]')")
B = pytest.importorskip("rrope_keras", reason="rrope_keras is not installed (pip install .)")

from keras import ops  # noqa: E402

import rrope_core as rr  # noqa: E402
from rrope_conformance.harness import assert_within  # noqa: E402
from rrope_conformance.tolerance import EPS, rotation_tolerance  # noqa: E402
from rrope_core.phases import phases as reference_phases  # noqa: E402
from rrope_keras.phases import constants, phases  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BACKEND = keras.backend.backend()

RESONANCE = rr.RopeConfig(head_dim=16, scaling=rr.YaRN(4.0, 64), resonance=True)
CFGS = {
    "resonance-yarn-half": RESONANCE,
    "resonance-interleaved-partial": rr.RopeConfig(head_dim=12, rotary_dim=8, resonance=True, layout="interleaved"),
    "llama3-interleaved": rr.RopeConfig(head_dim=16, base=5e5, scaling=rr.Llama3(8.0, 256), layout="interleaved"),
    "plain-partial": rr.RopeConfig(head_dim=12, rotary_dim=8, base=1e6),
    "ntk-odd-base": rr.RopeConfig(head_dim=16, base=123457.25, scaling=rr.NTK(3.0)),
}
#: Dynamic NTK at a huge seq_len: its lowest frequencies have periods beyond int32 (the fixed-point path).
BIG_PERIOD = (rr.RopeConfig(head_dim=16, scaling=rr.DynamicNTK(16.0, 64), resonance=True), 2**50)
#: Position extremes of int32 and the ones the issue names; negatives rotate backwards.
HUGE = np.array([0, 1, 2, 12345, 10**9, 2**24 + 1, 2**30 + 7, 2**31 - 2, 2**31 - 1], np.int64)
NEGATIVE = [-(2**31), -(2**31) + 1, -(10**9), -1]

#: Phase bound of phases.py in the compute dtype c: 1.5*pi*eps_c for the three float roundings plus
#: ~pi*eps32/128 (float32) or ~pi*eps64/256 (float64) of fixed point, stated there as 1.51*pi*eps_c.
PHASE_BOUND = {c: 1.51 * np.pi * EPS[c] for c in ("float32", "float64")}
#: The reference's own phase error: <= 2 ulp(pi) in float64 (rrope_core/phases.py).
REF_PHASE = 2 * np.spacing(np.pi)


def _np64(t) -> np.ndarray:
    return np.asarray(B.to_numpy(t), np.float64)


def _nearest(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """``got`` moved by whole turns next to ``want`` (an angle near +-pi may land on either side)."""
    return want + ((got - want + np.pi) % (2 * np.pi) - np.pi)


def _computes() -> list[str]:
    return ["float32"] + (["float64"] if "float64" in B.DTYPES else [])


def _pos(values) -> object:
    return B.from_numpy(np.asarray(values, np.int64), "int64")


# --- exact phases at huge positions -------------------------------------------------------------


@pytest.mark.parametrize("compute", _computes())
@pytest.mark.parametrize("name", list(CFGS) + ["big-period"])
def test_phases_within_the_stated_bound_at_every_int32_extreme(name, compute):
    """phases() vs the float64 reference at int32's extremes, negatives as -phi(|m|): within
    PHASE_BOUND[c] + the reference's 2 ulp(pi), compared modulo 2*pi (an angle of +-pi is either)."""
    cfg, seq_len = BIG_PERIOD if name == "big-period" else (CFGS[name], None)
    if name == "big-period":
        assert (rr.integer_wavelengths(cfg, seq_len) > 2**31 - 1).any(), "the case must reach the fixed-point path"
    pos = np.concatenate([HUGE, 987654321 + np.arange(5)])
    got = _np64(phases(_pos(pos), constants(cfg, seq_len), compute))
    want = reference_phases(cfg, pos, seq_len)
    bound = np.full(want.shape, PHASE_BOUND[compute] + REF_PHASE)
    assert_within(_nearest(got, want), want, bound, f"phases({name}, {compute}) at {pos}")
    neg = np.array(NEGATIVE, np.int64)
    got = _np64(phases(_pos(neg), constants(cfg, seq_len), compute))
    want = -reference_phases(cfg, -neg, seq_len)  # the reference takes m >= 0 (|-2**31| = 2**31 fits int64)
    bound = np.full(want.shape, PHASE_BOUND[compute] + REF_PHASE)
    assert_within(_nearest(got, want), want, bound, f"phases({name}, {compute}) at {neg}")


@pytest.mark.parametrize("name", ["resonance-yarn-half", "llama3-interleaved"])
def test_cos_sin_at_huge_positions_and_the_bound_has_teeth(name):
    """float32 cos/sin at 2**31-1, 10**9, ... vs the float64 reference: |d cos| <= |d phi| <=
    PHASE_BOUND (+ REF_PHASE), plus the float32 cos/sin's own <= 2 ulp <= eps32 (|v| <= 1)."""
    cfg = CFGS[name]
    cos, sin = B.cos_sin(cfg, _pos(HUGE))
    want_c, want_s = rr.cos_sin(cfg, HUGE)
    bound = np.full(want_c.shape, PHASE_BOUND["float32"] + REF_PHASE + EPS["float32"])
    assert_within(_np64(cos), want_c, bound, f"cos_sin({name}) [cos]")
    assert_within(_np64(sin), want_s, bound, f"cos_sin({name}) [sin]")
    # A float32 m*theta misses the bound by orders of magnitude at m = 2**31-1.
    naive = np.cos(np.float32(HUGE[-1]) * rr.inv_freq(cfg).astype(np.float32))
    assert np.max(np.abs(naive - want_c[-1])) > 1000 * bound[0, 0]


@pytest.mark.parametrize("dtype", list(B.DTYPES))
@pytest.mark.parametrize("name", list(CFGS))
def test_apply_rotary_at_huge_positions_equals_the_float64_reference(name, dtype):
    """apply/inverse at 2**31-1, 10**9, ... vs rrope_core in float64 on the same input values.

    Per feature of pair (x1, x2), s = |x1|+|x2|, scale a: a*s*(PHASE_BOUND[c] + REF_PHASE + 8*eps_c + eps_d)
    + eps_d*|y_ref|: the phase error moves each output by <= s*|d phi|; 8*eps_c bounds cos/sin (2 ulp each)
    and the 2 products, 1 sum and the scale in c (conformance/tolerance.py); rounding to d is <= eps_d/2 *
    |y| (doubled for the slack of |y| vs |y_ref|). Pass-through features: bit for bit.
    """
    cfg = CFGS[name]
    c = "float64" if dtype == "float64" else "float32"
    x64 = np.random.default_rng(1).standard_normal((2, len(HUGE), 3, cfg.head_dim))
    xb = B.from_numpy(x64, dtype)
    x = _np64(xb)
    pos = HUGE[:, None]  # (T, 1) for (B, T, H, D)
    a = rr.attention_factor(cfg)
    first, second = rr.pair_slices(cfg)
    s = np.zeros_like(x)
    s[..., first] = s[..., second] = np.abs(x[..., first]) + np.abs(x[..., second])
    for fn, scale in (("apply_rotary", a), ("inverse_rotary", 1 / a)):
        got = _np64(getattr(B, fn)(xb, _pos(pos), cfg))
        want = getattr(rr.rotation, fn)(x, pos, cfg)
        tol = scale * s * (PHASE_BOUND[c] + REF_PHASE + 8 * EPS[c] + EPS[dtype]) + EPS[dtype] * np.abs(want)
        assert_within(got, want, tol, f"{fn}({name}, {dtype}) at int32 extremes")
        np.testing.assert_array_equal(got[..., cfg.rotary_dim :], x[..., cfg.rotary_dim :], err_msg="pass-through")
        assert keras.backend.standardize_dtype(getattr(B, fn)(xb, _pos(pos), cfg).dtype) == dtype


def test_positions_beyond_int32_raise_naming_positions():
    with pytest.raises(rr.RopeInputError, match=r"^positions=.*2\*\*31"):
        B.from_numpy(np.array([0, 2**31]), "int64")
    with pytest.raises(rr.RopeInputError, match="^positions="):
        B.from_numpy(np.array([-(2**31) - 1]), "int64")
    x = B.from_numpy(np.zeros((2, 16)), "float32")
    with pytest.raises(rr.RopeInputError, match="^positions="):
        B.apply_rotary(x, np.array([1, 2**31]), RESONANCE)  # NumPy positions: checked before conversion
    with pytest.raises(rr.RopeInputError, match=_names("positions")):
        B.RotaryEmbedding(RESONANCE)(x, x, np.array([5, 2**32]))  # in a layer call Keras prefixes its own line


def test_int64_tensor_positions_are_range_checked():
    x = B.from_numpy(np.zeros((2, 16)), "float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # JAX without x64 warns while narrowing: the probe then skips
        wide = ops.convert_to_tensor(np.array([3, 2**31]), dtype="int64")
    if keras.backend.standardize_dtype(wide.dtype) != "int64":
        pytest.skip(f"no int64 tensors on Keras backend {BACKEND!r} (JAX without jax_enable_x64)")
    with pytest.raises(rr.RopeInputError, match="^positions="):
        B.apply_rotary(x, wide, RESONANCE)  # an int64 tensor: range-checked on the host
    y = B.apply_rotary(x, ops.convert_to_tensor(np.array([3, 4]), dtype="int64"), RESONANCE)
    np.testing.assert_array_equal(B.to_numpy(y), B.to_numpy(B.apply_rotary(x, _pos([3, 4]), RESONANCE)))


# --- the layer ----------------------------------------------------------------------------------


def _qkx(cfg, shape, seed=0, dtype="float32"):
    return B.from_numpy(np.random.default_rng(seed).standard_normal(shape), dtype)


@pytest.mark.parametrize("start", [0, 7, 2**31 - 5])
def test_single_tensor_call_equals_the_qk_call_with_arange_positions(start):
    cfg = CFGS["llama3-interleaved"]
    t = 5
    x = _qkx(cfg, (2, t, 3, cfg.head_dim))  # (batch, seq, heads, dim): sequence_axis=1
    layer = B.RotaryEmbedding(cfg)
    arange = (start + np.arange(t))[:, None]
    want_q, _ = layer(x, x, _pos(arange))
    got = layer(x) if start == 0 else layer(x, start_index=start)
    np.testing.assert_array_equal(B.to_numpy(got), B.to_numpy(want_q))
    np.testing.assert_array_equal(B.to_numpy(got), B.to_numpy(B.apply_rotary(x, _pos(arange), cfg)))
    # A tensor start_index, and explicit (seq,) and (batch, seq) positions, go the same way.
    tensor_start = layer(x, start_index=ops.convert_to_tensor(np.int32(start)))
    np.testing.assert_array_equal(B.to_numpy(tensor_start), B.to_numpy(got))
    np.testing.assert_array_equal(B.to_numpy(layer(x, positions=_pos(start + np.arange(t)))), B.to_numpy(got))
    per_batch = np.array([[start], [3]]) + np.arange(t)
    both = layer(x, positions=_pos(per_batch))
    np.testing.assert_array_equal(B.to_numpy(both), B.to_numpy(B.apply_rotary(x, _pos(per_batch[:, :, None]), cfg)))


def test_sequence_axis_two_for_batch_heads_seq_dim():
    cfg = RESONANCE
    x = _qkx(cfg, (2, 3, 4, cfg.head_dim))  # (batch, heads, seq, dim)
    layer = B.RotaryEmbedding(cfg, sequence_axis=2)
    want = B.apply_rotary(x, _pos(11 + np.arange(4)), cfg)
    np.testing.assert_array_equal(B.to_numpy(layer(x, start_index=11)), B.to_numpy(want))
    per_batch = np.array([[11], [40]]) + np.arange(4)
    got = layer(x, positions=_pos(per_batch))
    np.testing.assert_array_equal(B.to_numpy(got), B.to_numpy(B.apply_rotary(x, _pos(per_batch[:, None, :]), cfg)))
    np.testing.assert_array_equal(B.to_numpy(B.RotaryEmbedding(cfg, sequence_axis=-2)(x)), B.to_numpy(layer(x)))


def test_compute_output_shape_and_symbolic_dtypes():
    cfg = RESONANCE
    layer = B.RotaryEmbedding(cfg)
    assert layer.compute_output_shape((2, 5, 4, 16)) == (2, 5, 4, 16)
    assert layer.compute_output_shape((None, 5, 4, 16), (None, 5, 2, 16)) == ((None, 5, 4, 16), (None, 5, 2, 16))
    with pytest.raises(rr.RopeInputError, match=r"^x\.shape="):
        layer.compute_output_shape((2, 5, 4, 8))
    with pytest.raises(rr.RopeInputError, match=r"^k\.shape="):
        layer.compute_output_shape((2, 5, 4, 16), (2, 5, 4, 15))
    for dtype in B.DTYPES:  # autocast off: a functional model keeps each input's dtype
        q = keras.Input(shape=(5, 4, 16), dtype=dtype)
        k = keras.Input(shape=(5, 2, 16), dtype=dtype)
        p = keras.Input(shape=(5, 1), dtype="int32", batch_size=None)
        q_rot, k_rot = layer(q, k, p)
        assert q_rot.shape == (None, 5, 4, 16) and k_rot.shape == (None, 5, 2, 16)
        assert q_rot.dtype == dtype and k_rot.dtype == dtype and layer(q).dtype == dtype
    with pytest.raises(rr.RopeInputError, match=_names("x.shape")):
        layer(keras.Input(shape=(5, 4, 8)))
    with pytest.raises(rr.RopeInputError, match=_names("positions.dtype")):
        layer(keras.Input(shape=(5, 4, 16)), keras.Input(shape=(5, 4, 16)), keras.Input(shape=(5, 1)))


def test_get_config_round_trip_and_registered_name():
    cfg = rr.RopeConfig(head_dim=8, scaling=rr.LongRoPE([1.0] * 4, [2.0] * 4, 64), layout="interleaved")
    layer = B.RotaryEmbedding(cfg, sequence_axis=2, name="rope")
    clone = B.RotaryEmbedding.from_config(layer.get_config())
    assert clone.cfg == cfg and clone.sequence_axis == 2 and clone.name == "rope" and not clone.autocast
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(again) is B.RotaryEmbedding and again.cfg == cfg and again.get_config() == layer.get_config()
    assert keras.saving.get_registered_name(B.RotaryEmbedding) == "rrope>KerasRotaryEmbedding"
    with pytest.raises(rr.RopeInputError, match="^cfg="):
        B.RotaryEmbedding(cfg.to_dict())


# Keras' save reads variables with np.array(variable), which predates NumPy 2's copy= on some backends.
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_keras_model_save_load_round_trip(tmp_path):
    cfg = rr.RopeConfig(head_dim=8, rotary_dim=6, scaling=rr.YaRN(4.0, 64, beta_fast=2.0), resonance=True)
    t, hq, hk = 5, 4, 2
    q = keras.Input(shape=(t, hq, 8), name="q")
    k = keras.Input(shape=(t, hk, 8), name="k")
    p = keras.Input(shape=(t, 1), dtype="int32", name="positions")  # (B, T, 1) for (B, T, H, D)
    rope = B.RotaryEmbedding(cfg, name="rope")
    q_rot, k_rot = rope(q, k, p)
    x_rot = rope(q, start_index=2**31 - 1 - t)  # the one-tensor call, near the top of int32
    model = keras.Model([q, k, p], [keras.layers.Dense(3, name="proj")(q_rot), k_rot, x_rot])
    rng = np.random.default_rng(0)
    inputs = [
        rng.standard_normal((2, t, hq, 8)).astype(np.float32),
        rng.standard_normal((2, t, hk, 8)).astype(np.float32),
        (np.array([[0], [2**31 - 1 - t]]) + np.arange(t))[:, :, None].astype(np.int32),
    ]
    tensors = [ops.convert_to_tensor(a) for a in inputs]
    before = [B.to_numpy(o) for o in model(tensors)]
    path = tmp_path / "rope_model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    layer = loaded.get_layer("rope")
    assert type(layer) is B.RotaryEmbedding and layer.cfg == cfg
    after = [B.to_numpy(o) for o in loaded(tensors)]
    for i, (b, a) in enumerate(zip(before, after, strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"output {i} changed by save/load")  # same ops, same weights
    np.testing.assert_array_equal(after[1], B.to_numpy(B.apply_rotary(tensors[1], tensors[2], cfg)))
    # predict runs the backend's compiled step (jax.jit / tf.function): within the contract of the reference.
    predicted = loaded.predict(inputs, verbose=0)
    want = rr.apply_rotary(inputs[1].astype(np.float64), inputs[2].astype(np.int64), cfg)
    a = rr.attention_factor(cfg)
    tol = rotation_tolerance(cfg, inputs[1].astype(np.float64), want, inputs[2], None, "float32", a)
    assert_within(np.asarray(predicted[1], np.float64), want, tol, "loaded.predict k_rot")


def _names(field: str) -> str:
    """Regex for rrope_core's ``<field>=<value> is invalid`` inside a layer call's error, which Keras
    re-raises as the same class with a line of its own in front (and the argument values after)."""
    return rf"(?<![._]){re.escape(field)}=.* is invalid: "


def test_layer_bad_calls_raise_naming_the_argument():
    cfg = RESONANCE
    layer = B.RotaryEmbedding(cfg)
    x = _qkx(cfg, (2, 3, 4, 16))
    cases = [
        ("positions", lambda: layer(x, x)),  # k without positions
        ("start_index", lambda: layer(x, x, _pos(np.arange(3)[:, None]), start_index=4)),
        ("start_index", lambda: layer(x, start_index=2**31 - 2)),  # 3 positions from 2**31 - 2 leave int32
        ("start_index", lambda: layer(x, start_index=1.5)),
        ("positions.shape", lambda: layer(x, positions=_pos(np.zeros((2, 3, 1))))),
        ("positions.dtype", lambda: layer(x, positions=np.arange(3.0))),
        ("sequence_axis", lambda: B.RotaryEmbedding(cfg, sequence_axis=3)(x)),  # the feature axis
        ("sequence_axis", lambda: B.RotaryEmbedding(cfg, sequence_axis="1")),
        ("x.shape", lambda: layer(_qkx(cfg, (2, 3, 4, 8)))),
    ]
    for field, call in cases:
        with pytest.raises(rr.RopeInputError, match=_names(field)):
            call()


@pytest.mark.parametrize(
    "x_shape, x_dtype, pos_shape, pos_dtype",
    [
        ((2, 3, 8), "float32", (3,), "float32"),
        ((2, 3, 8), "float32", (4,), "int64"),
        ((3, 8), "float32", (2, 3), "int64"),
        ((2, 3, 6), "float32", (3,), "int64"),
        ((2, 3, 8), "int32", (3,), "int64"),
        ((2, 3, 8), "float32", (3,), "bool"),
    ],
)
def test_errors_have_the_reference_message(x_shape, x_dtype, pos_shape, pos_dtype):
    cfg = rr.RopeConfig(head_dim=8, rotary_dim=6)
    x, pos = np.zeros(x_shape, x_dtype), np.zeros(pos_shape, pos_dtype)
    for fn in ("apply_rotary", "inverse_rotary"):
        with pytest.raises(rr.RopeInputError) as want:
            getattr(rr.rotation, fn)(x, pos, cfg)
        with pytest.raises(rr.RopeInputError) as got:
            getattr(B, fn)(ops.convert_to_tensor(x), pos, cfg)
        assert str(got.value) == str(want.value)


def test_float64_where_unsupported_raises_naming_dtype():
    if "float64" in B.DTYPES:
        y = B.apply_rotary(B.from_numpy(np.ones((2, 16)), "float64"), _pos([0, 1]), RESONANCE)
        assert keras.backend.standardize_dtype(y.dtype) == "float64"
        return
    with pytest.raises(rr.RopeInputError, match="^dtype="):
        B.from_numpy(np.zeros(2), "float64")
    with pytest.raises(rr.RopeInputError, match=r"^x\.dtype="):
        B.apply_rotary(np.zeros((2, 16)), _pos([0, 1]), RESONANCE)  # NumPy float64 is not narrowed silently


# --- gradient, traced calls, inputs untouched ---------------------------------------------------


GRAD_CFGS = {  # attention factor != 1, so the order of the scaling shows in the last bits
    "yarn-resonance-interleaved-partial": rr.RopeConfig(
        head_dim=12, rotary_dim=8, scaling=rr.YaRN(8.0, 64), resonance=True, layout="interleaved"
    ),
    "yarn-half": rr.RopeConfig(head_dim=16, scaling=rr.YaRN(4.0, 64)),
}


@pytest.mark.parametrize("name", list(GRAD_CFGS))
def test_gradient_is_the_custom_transposed_rotation(name, monkeypatch):
    """The backward is the custom one (keras.ops.custom_gradient: its grad function runs), and the
    gradient is the transpose: ``a**2 * inverse_rotary(w)`` on the rotated features (``a*R(-phi) w``),
    ``w`` on the copied ones, within conformance/tolerance.py's float32 bound (scale a)."""
    from rrope_keras import rotation

    cfg = GRAD_CFGS[name]
    positions = np.array([3, 2**31 - 1, 10**9, 77])
    x, w = _qkx(cfg, (2, 4, cfg.head_dim)), _qkx(cfg, (2, 4, cfg.head_dim), seed=1)
    used = []
    real = ops.custom_gradient

    def spying(f):
        def forward(*args):
            out, grad = f(*args)

            def backward(*a, **k):
                used.append(True)
                return grad(*a, **k)

            return out, backward

        return real(forward)

    monkeypatch.setattr(ops, "custom_gradient", spying)
    rotation._jax_program.cache_clear()  # a traced program would keep the unspied decorator
    try:
        grad = B.to_numpy(B.grad_apply_rotary(x, _pos(positions), cfg, w))
    finally:
        rotation._jax_program.cache_clear()
    assert used, "the custom backward did not run: autodiff differentiated the forward ops"
    a, rd = rr.attention_factor(cfg), cfg.rotary_dim
    want = rr.inverse_rotary(_np64(w), positions, cfg)
    want[..., :rd] *= a**2
    tol = rotation_tolerance(cfg, _np64(w), want, positions, None, "float32", a)
    assert_within(grad.astype(np.float64), want, tol, f"keras grad_apply_rotary[{name}]")


def _traced(fn):
    """``fn`` compiled by the backend's tracer (positions become traced values)."""
    if BACKEND == "jax":
        import jax

        return jax.jit(fn)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, autograph=False)
    pytest.skip(f"no tracing compiler exercised for Keras backend {BACKEND!r}")


def test_traced_positions_int32_work_and_dynamic_configs_need_seq_len():
    cfg = CFGS["llama3-interleaved"]
    x = _qkx(cfg, (2, 4, cfg.head_dim))
    pos = _pos(2**31 - 4 + np.arange(4))
    got = _traced(lambda x_, p_: B.apply_rotary(x_, p_, cfg))(x, pos)
    want = rr.apply_rotary(_np64(x), 2**31 - 4 + np.arange(4), cfg)
    tol = rotation_tolerance(cfg, _np64(x), want, 2**31 - 4 + np.arange(4), None, "float32", rr.attention_factor(cfg))
    assert_within(_np64(got), want, tol, "traced apply_rotary")
    dyn = rr.RopeConfig(head_dim=8, scaling=rr.DynamicNTK(2.0, 64))
    with pytest.raises(rr.RopeInputError, match="^seq_len="):
        _traced(lambda p_: B.cos_sin(dyn, p_))(_pos(np.arange(4)))
    cos, _ = _traced(lambda p_: B.cos_sin(dyn, p_, 128))(_pos(np.arange(4)))
    # float32 cos within PHASE_BOUND + REF_PHASE + eps32 of the reference (see the cos_sin test).
    bound = PHASE_BOUND["float32"] + REF_PHASE + EPS["float32"]
    assert np.max(np.abs(_np64(cos) - rr.cos_sin(dyn, np.arange(4), 128)[0])) <= bound


def test_no_input_is_modified():
    cfg = CFGS["resonance-interleaved-partial"]
    x64 = np.random.default_rng(2).standard_normal((2, 5, 3, cfg.head_dim))
    w64 = np.random.default_rng(3).standard_normal(x64.shape)
    pos_np = (np.arange(5) + 2**30)[:, None]
    x, w, pos = B.from_numpy(x64, "float32"), B.from_numpy(w64, "float32"), _pos(pos_np)
    keep = [B.to_numpy(x).copy(), B.to_numpy(w).copy(), B.to_numpy(pos).copy(), x64.copy(), pos_np.copy()]
    layer = B.RotaryEmbedding(cfg)
    layer(x, w, pos)
    layer(x, start_index=9)
    layer(x, positions=pos_np[:, 0])
    B.grad_apply_rotary(x, pos, cfg, w)
    B.apply_rotary(x64.astype(np.float32), pos_np, cfg)
    B.inverse_rotary(x, pos, cfg)
    for before, now in zip(keep, [B.to_numpy(x), B.to_numpy(w), B.to_numpy(pos), x64, pos_np], strict=True):
        np.testing.assert_array_equal(now, before)


# --- dispatch, import hygiene, coexistence -------------------------------------------------------


def test_registered_in_dispatch():
    assert rr.backend("keras") is B
    assert rr.known_backends()["keras"] is True
    assert rr.framework_of(B.from_numpy(np.zeros(2), "float32")) == {"jax": "jax", "torch": "torch"}.get(
        BACKEND, "tensorflow"
    )


def test_importing_rrope_keras_imports_only_keras_and_its_backend():
    """Whatever ``import keras`` loads (its backend, and on some installs more) is allowed; rrope_keras adds no framework."""
    code = (
        "import sys\n"
        "fw = {'torch', 'tensorflow', 'jax', 'mlx', 'flax'}\n"
        "top = lambda: {m.split('.')[0] for m in sys.modules} & fw\n"
        "import keras; before = top()\n"
        "import rrope_keras; after = top()\n"
        "assert after == before, (before, after)\n"
        f"assert {BACKEND!r} in before, before\n"
    )
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO)


def test_both_keras_layers_import_together():
    """rrope_tensorflow's layer (rrope>RotaryEmbedding) and this one are registered under different names."""
    if BACKEND != "tensorflow":
        pytest.skip("rrope_tensorflow needs the TensorFlow backend of Keras")
    rt = pytest.importorskip("rrope_tensorflow")
    assert keras.saving.get_registered_name(rt.RotaryEmbedding) == "rrope>RotaryEmbedding"
    assert keras.saving.get_registered_object("rrope>KerasRotaryEmbedding") is B.RotaryEmbedding
    assert keras.saving.get_registered_object("rrope>RotaryEmbedding") is rt.RotaryEmbedding
    x = B.from_numpy(np.random.default_rng(0).standard_normal((3, 16)), "float32")
    pos = _pos(np.arange(3))
    np.testing.assert_array_equal(
        B.to_numpy(B.RotaryEmbedding(RESONANCE)(x, x, pos)[0]), B.to_numpy(rt.RotaryEmbedding(RESONANCE)(x, x, pos)[0])
    )
