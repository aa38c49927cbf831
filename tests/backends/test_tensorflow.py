"""TensorFlow backend beyond the conformance suite: XLA vs eager, the custom gradient, Keras
serialization, low-precision dtypes, exact phases at huge positions, import hygiene.

Every tolerance is derived from dtype eps in the comment next to it (conformance/tolerance.py
gives the contract's bound against the float64 reference; it is reused where it applies).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip(
    "tensorflow", reason="the TensorFlow backend needs tensorflow (pip install 'resonance-rope[tensorflow]')"
)

B = pytest.importorskip(
    "rrope_tensorflow", reason="rrope_tensorflow is not installed (pip install . or PYTHONPATH=backends)"
)

import keras  # noqa: E402  (TensorFlow's own Keras 3)

import rrope_core as rr  # noqa: E402
from rrope_conformance.harness import assert_centred_phases, assert_within  # noqa: E402
from rrope_conformance.tolerance import EPS, compute_eps, rotation_tolerance  # noqa: E402
from rrope_core import rotation as ref  # noqa: E402
from rrope_tensorflow.phases import phases  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

#: Smallest positive subnormal of each dtype: the absolute rounding step near zero.
TINY = {"float64": 5e-324, "float32": 2.0**-149, "float16": 2.0**-24, "bfloat16": 2.0**-133}

CFGS = {
    "resonance-yarn-half": rr.RopeConfig(head_dim=16, scaling=rr.YaRN(8.0, 64), resonance=True),
    "resonance-interleaved-partial": rr.RopeConfig(head_dim=12, rotary_dim=8, resonance=True, layout="interleaved"),
    "llama3-interleaved": rr.RopeConfig(head_dim=16, base=5e5, scaling=rr.Llama3(8.0, 256), layout="interleaved"),
    "dynamic-ntk-partial": rr.RopeConfig(head_dim=12, rotary_dim=8, scaling=rr.DynamicNTK(4.0, 64), resonance=True),
}


def _np64(t) -> np.ndarray:
    return np.asarray(B.to_numpy(t), np.float64)


def _case(cfg: rr.RopeConfig, dtype: str, seed: int = 0):
    """x, w of shape (B=2, H=3, T=5, D), per-batch positions (B,1,T) at offsets 7 and 2**40, in the backend."""
    rng = np.random.default_rng(seed)
    shape = (2, 3, 5, cfg.head_dim)
    pos = (np.array([7, 2**40], np.int64)[:, None] + np.arange(5))[:, None, :]
    x = B.from_numpy(rng.standard_normal(shape), dtype)
    w = B.from_numpy(rng.standard_normal(shape), dtype)
    return x, w, B.from_numpy(pos, "int64"), pos


def _pair_abs_sum(cfg: rr.RopeConfig, x: np.ndarray) -> np.ndarray:
    """``|x1| + |x2|`` of each pair, on both of its features (zero past rotary_dim)."""
    first, second = rr.pair_slices(cfg)
    s = np.abs(x[..., first]) + np.abs(x[..., second])
    out = np.zeros_like(x)
    out[..., first] = s
    out[..., second] = s
    return out


def _same_math_bound(cfg: rr.RopeConfig, x: np.ndarray, y: np.ndarray, scale: float, dtype: str) -> np.ndarray:
    """Bound on |eager - XLA| for one rotation of ``x`` (the same phase in both, checked bitwise).

    * cos/sin: each implementation is within 2 ulp of the true value of that phase (tolerance.py's
      assumption), ulp <= eps_c for |v| <= 1, so they differ by <= 4 eps_c; times scale*(|x1|+|x2|).
    * the rotation: 2 products, 1 sum, 1 scale, each rounded to <= eps_c/2 of a value
      <= scale*(|x1|+|x2|): <= 2 eps_c per side, 4 eps_c for both. Total D = 8 eps_c scale (|x1|+|x2|).
    * the final cast to ``dtype``: |rd(u) - rd(v)| <= |u - v| + ulp_d(max(|u|,|v|)) <= D + eps_d (|y| + D) + tiny_d.
    Pass-through features must be bitwise equal (bound 0).
    """
    ec, ed = compute_eps(dtype), EPS[dtype]
    d = 8 * ec * scale * _pair_abs_sum(cfg, x)
    bound = d + ed * (np.abs(y) + d) + TINY[dtype]
    bound[..., cfg.rotary_dim :] = 0
    return bound


# --- XLA (tf.function(jit_compile=True)) equals eager -------------------------------------------


@pytest.mark.parametrize("dtype", B.DTYPES)
@pytest.mark.parametrize("name", list(CFGS))
def test_xla_equals_eager(name, dtype):
    cfg = CFGS[name]
    seq_len = 4096 if cfg.seq_len_dependent else None  # inside tf.function it must be given
    x, w, p, pos = _case(cfg, dtype)
    c = tf.float64 if dtype == "float64" else tf.float32

    def everything(x, p, w):
        return (
            B.apply_rotary(x, p, cfg, seq_len),
            B.inverse_rotary(x, p, cfg, seq_len),
            B.grad_apply_rotary(x, p, cfg, w, seq_len),
            *B.cos_sin(cfg, p, seq_len),
            phases(cfg, p, seq_len, c),
        )

    eager = [_np64(t) for t in everything(x, p, w)]
    jit = [_np64(t) for t in tf.function(everything, jit_compile=True)(x, p, w)]
    msg = f"XLA vs eager, cfg={cfg!r}, dtype={dtype}"

    # The phase is integer mod / casts / one product (float64 product + fmod otherwise): exact IEEE
    # operations that XLA does not reorder, so it must agree bitwise.
    np.testing.assert_array_equal(jit[5], eager[5], err_msg=msg + " [phases]")
    # cos/sin of the same float32 phase: each within 2 ulp (<= 2*eps32) of the truth, so they differ by <= 4*eps32.
    for i, what in ((3, "cos"), (4, "sin")):
        assert_within(jit[i], eager[i], np.full(eager[i].shape, 4 * EPS["float32"]), msg + f" [{what}]")

    xv, wv = _np64(x), _np64(w)
    a = rr.attention_factor(cfg, seq_len)
    bounds = (
        _same_math_bound(cfg, xv, eager[0], a, dtype),  # apply: a*R(phi) x
        _same_math_bound(cfg, xv, eager[1], 1 / a, dtype),  # inverse: R(-phi) x / a
        _same_math_bound(cfg, wv, eager[2], a, dtype),  # gradient: a*R(-phi) w
    )
    for i, what in enumerate(("apply_rotary", "inverse_rotary", "grad_apply_rotary")):
        assert_within(jit[i], eager[i], bounds[i], msg + f" [{what}]")
        np.testing.assert_array_equal(
            jit[i][..., cfg.rotary_dim :], eager[i][..., cfg.rotary_dim :], err_msg=msg + f" [{what} pass-through]"
        )


def test_symbolic_batch_dimension_inside_tf_function_equals_eager():
    """Unknown (None) dimensions are checked by broadcasting their static stand-ins; results are unchanged."""
    cfg = CFGS["resonance-yarn-half"]
    x, _, p, _ = _case(cfg, "float32")
    spec = (tf.TensorSpec((None, 3, None, 16), tf.float32), tf.TensorSpec((None, 1, None), tf.int64))
    f = tf.function(lambda x, p: B.apply_rotary(x, p, cfg), input_signature=spec, autograph=False)
    # Same graph ops as eager, no XLA: the same kernels, so bitwise.
    np.testing.assert_array_equal(_np64(f(x, p)), _np64(B.apply_rotary(x, p, cfg)))


def test_seq_len_must_be_given_inside_tf_function_for_dynamic_configs():
    cfg = CFGS["dynamic-ntk-partial"]
    x, _, p, pos = _case(cfg, "float32")
    with pytest.raises(rr.RopeInputError, match=r"^seq_len=None is invalid: must be given .* inside tf.function"):
        tf.function(lambda x, p: B.apply_rotary(x, p, cfg), autograph=False)(x, p)
    with pytest.raises(rr.RopeInputError, match=r"^seq_len=None"):
        tf.function(lambda p: B.cos_sin(cfg, p), autograph=False)(p)
    # Eagerly it is max(positions) + 1, as in the reference.
    eager = B.apply_rotary(x, p, cfg)
    np.testing.assert_array_equal(_np64(eager), _np64(B.apply_rotary(x, p, cfg, int(pos.max()) + 1)))


# --- gradients ----------------------------------------------------------------------------------


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "xla"])
@pytest.mark.parametrize("dtype", B.DTYPES)
@pytest.mark.parametrize("name", list(CFGS))
def test_gradient_tape_equals_scaled_inverse_rotation(name, dtype, jit):
    """d/dx sum(w * a R(phi) x) = a R(-phi) w = a**2 * inverse_rotary(w); pass-through gets w unchanged."""
    cfg = CFGS[name]
    seq_len = 4096 if cfg.seq_len_dependent else None
    x, w, p, pos = _case(cfg, dtype, seed=1)

    def grad(x, p, w):
        return B.grad_apply_rotary(x, p, cfg, w, seq_len)

    got_t = tf.function(grad, jit_compile=True)(x, p, w) if jit else grad(x, p, w)
    assert got_t.dtype == x.dtype
    got, wv = _np64(got_t), _np64(w)
    a = rr.attention_factor(cfg, seq_len)
    want = a * a * ref.inverse_rotary(wv, pos, cfg, seq_len)
    want[..., cfg.rotary_dim :] = wv[..., cfg.rotary_dim :]
    # The gradient is a rotation of w scaled by a: the contract's bound for apply_rotary on w.
    tol = rotation_tolerance(cfg, wv, want, pos, seq_len, dtype, a)
    tol[..., cfg.rotary_dim :] = 0
    assert_within(got, want, tol, f"grad_apply_rotary(cfg={cfg!r}, dtype={dtype}, jit={jit})")


def test_gradient_is_the_registered_inverse_rotation():
    """The backward pass is the rotation by -phi (tf.custom_gradient), not autodiff of the forward ops:
    the graph reuses the forward's one Cos and one Sin and has no gradient ops of slicing/concat."""
    cfg = CFGS["resonance-interleaved-partial"]
    x, w, p, _ = _case(cfg, "float32")
    graph = (
        tf.function(lambda x, p, w: B.grad_apply_rotary(x, p, cfg, w), autograph=False)
        .get_concrete_function(x, p, w)
        .graph
    )
    ops = [op.type for op in graph.get_operations()]
    assert "IdentityN" in ops, ops  # tf.custom_gradient's marker
    assert ops.count("Cos") == 1 and ops.count("Sin") == 1, ops
    assert "StridedSliceGrad" not in ops and "ConcatOffset" not in ops, ops


# --- Keras layer --------------------------------------------------------------------------------


# Keras' save reads the Dense kernel with np.array(variable); TF's Variable.__array__ predates NumPy 2's copy=.
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_keras_model_save_load_round_trip(tmp_path):
    cfg = rr.RopeConfig(head_dim=8, rotary_dim=6, scaling=rr.YaRN(4.0, 64, beta_fast=2.0), resonance=True)
    hq, hk, t = 4, 2, 5
    q = keras.Input(shape=(hq, t, 8), name="q")
    k = keras.Input(shape=(hk, t, 8), name="k")
    p = keras.Input(shape=(1, t), dtype="int64", name="positions")  # per-batch offsets: (B, 1, T)
    q_rot, k_rot = B.RotaryEmbedding(cfg, name="rope")(q, k, p)
    model = keras.Model([q, k, p], [keras.layers.Dense(3, name="proj")(q_rot), k_rot])
    rng = np.random.default_rng(0)
    inputs = [
        rng.standard_normal((2, hq, t, 8)).astype(np.float32),
        rng.standard_normal((2, hk, t, 8)).astype(np.float32),
        (np.array([[0], [2**33]]) + np.arange(t))[:, None, :],
    ]
    before = [B.to_numpy(o) for o in model(inputs)]
    path = tmp_path / "rope_model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    after = [B.to_numpy(o) for o in loaded(inputs)]
    layer = loaded.get_layer("rope")
    assert isinstance(layer, B.RotaryEmbedding) and layer.cfg == cfg
    for i, (b, a) in enumerate(zip(before, after, strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"output {i} changed by save/load")  # same graph, same weights
    # The layer output is apply_rotary itself.
    np.testing.assert_array_equal(after[1], B.to_numpy(B.apply_rotary(tf.constant(inputs[1]), inputs[2], cfg)))


def test_keras_layer_config_round_trip_and_invalid_cfg():
    cfg = rr.RopeConfig(head_dim=8, scaling=rr.LongRoPE([1.0] * 4, [2.0] * 4, 64), layout="interleaved")
    layer = B.RotaryEmbedding(cfg, name="r")
    clone = B.RotaryEmbedding.from_config(layer.get_config())
    assert clone.cfg == cfg and clone.name == "r"
    with pytest.raises(rr.RopeInputError, match="^cfg="):
        B.RotaryEmbedding(cfg.to_dict())


# --- dtypes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_dtypes_are_preserved(dtype):
    cfg = CFGS["resonance-interleaved-partial"]
    x, w, p, _ = _case(cfg, dtype)
    want = tf.as_dtype(dtype)
    assert B.apply_rotary(x, p, cfg).dtype == want
    assert B.inverse_rotary(x, p, cfg).dtype == want
    assert B.grad_apply_rotary(x, p, cfg, w).dtype == want
    assert tf.function(lambda x, p: B.apply_rotary(x, p, cfg), jit_compile=True, autograph=False)(x, p).dtype == want
    q_rot, k_rot = B.RotaryEmbedding(cfg)(x, x[:, :1], p)  # autocast off: not cast to float32
    assert q_rot.dtype == want and k_rot.dtype == want
    # Pass-through features are the input's own bits.
    y = B.apply_rotary(x, p, cfg)
    np.testing.assert_array_equal(B.to_numpy(y)[..., cfg.rotary_dim :], B.to_numpy(x)[..., cfg.rotary_dim :])
    assert B.to_numpy(x).dtype == (np.float32 if dtype == "bfloat16" else np.float16)  # bfloat16 reads as float32


# --- exact phases at huge positions -------------------------------------------------------------


@pytest.mark.parametrize("position", [2**31 - 1, 2**40])
@pytest.mark.parametrize(
    "cfg",
    [
        rr.RopeConfig(head_dim=128, resonance=True),
        rr.RopeConfig(head_dim=128, scaling=rr.YaRN(16.0, 4096), resonance=True, layout="interleaved"),
    ],
    ids=["resonance", "resonance-yarn"],
)
def test_exact_phase_at_huge_positions(cfg, position):
    """float32 cos/sin at m = 2**31-1 and 2**40 vs the float64 reference.

    r = m mod L is exact in int64; the angle c(r)*c(2*pi/L) has two casts and one product, each
    <= eps32/2 relative, with |angle| <= pi: phase error <= 1.5*pi*eps32 <= 2*pi*eps32. |d cos| <= |d phi|,
    and the float32 cos/sin is within 2 ulp <= eps32 of the truth (|v| <= 1, ulp <= eps32/2), plus its
    rounding: bound 2*pi*eps32 + 2*eps32 (the reference itself is within ~1e-15, below one eps32).
    """
    pos = np.array([position, position + 1, position + 12345], np.int64)
    cos, sin = B.cos_sin(cfg, B.from_numpy(pos, "int64"))
    want_c, want_s = rr.cos_sin(cfg, pos)
    bound = np.full(want_c.shape, 2 * np.pi * EPS["float32"] + 2 * EPS["float32"])
    assert_within(_np64(cos), want_c, bound, f"cos_sin({cfg!r}) at {pos}")
    assert_within(_np64(sin), want_s, bound, f"cos_sin({cfg!r}) at {pos} [sin]")
    # The bound has teeth: the usual float32 m*theta misses it by orders of magnitude at these positions.
    naive = np.cos(np.float32(position) * rr.inv_freq(cfg).astype(np.float32))
    assert np.max(np.abs(naive - want_c[0])) > 1000 * bound[0, 0]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_exact_rotation_at_2_pow_40_without_resonance(dtype):
    """Non-resonance phases are reduced in float64: the contract's bound 2*pi*eps_c + 2*eps64*|m*theta| holds."""
    cfg = rr.RopeConfig(head_dim=64, base=5e5, scaling=rr.Llama3(8.0, 8192))
    pos = 2**40 + np.arange(4)
    x64 = np.random.default_rng(3).standard_normal((2, 4, 64))
    x = B.from_numpy(x64, dtype)
    out = _np64(B.apply_rotary(x, B.from_numpy(pos, "int64"), cfg))
    want = ref.apply_rotary(_np64(x), pos, cfg)
    assert_within(out, want, rotation_tolerance(cfg, _np64(x), want, pos, None, dtype, 1.0), f"{dtype} at 2**40")


# --- inputs, devices, errors --------------------------------------------------------------------


def test_layouts_of_positions_and_int32():
    """(T,) for (B,H,T,D), (T,1) for (B,T,H,D), int32 positions: all rotate like the reference (float64: bound
    from tolerance.py)."""
    cfg = CFGS["llama3-interleaved"]
    rng = np.random.default_rng(4)
    for shape, pos in (((2, 3, 5, 16), np.arange(5)), ((2, 5, 3, 16), np.arange(5)[:, None])):
        x64 = rng.standard_normal(shape)
        for pdt in ("int64", "int32"):
            out = _np64(B.apply_rotary(B.from_numpy(x64, "float64"), B.from_numpy(pos, pdt), cfg))
            want = ref.apply_rotary(x64, pos, cfg)
            assert_within(out, want, rotation_tolerance(cfg, x64, want, pos, None, "float64", 1.0), f"{shape} {pdt}")


def test_device_is_kept_and_inputs_untouched():
    cfg = CFGS["resonance-yarn-half"]
    x64 = np.random.default_rng(5).standard_normal((3, 16))
    x = B.from_numpy(x64, "float32", device="/CPU:0")
    p = B.from_numpy(np.arange(3), "int64", device="/CPU:0")
    y = B.apply_rotary(x, p, cfg)
    assert B.device_of(y) == B.device_of(x) and B.device_of(x).endswith("CPU:0")
    assert B.device_of(B.inv_freq(cfg, device="/CPU:0")).endswith("CPU:0")
    np.testing.assert_array_equal(B.to_numpy(x), x64.astype(np.float32))
    assert B.is_array(y) and B.is_array(tf.Variable(x)) and not B.is_array(x64)
    with pytest.raises(rr.RopeInputError, match="^dtype="):
        B.from_numpy(x64, "complex64")


@pytest.mark.parametrize(
    "x_shape, x_dtype, pos_shape, pos_dtype",
    [
        ((2, 3, 8), "float32", (3,), "float32"),
        ((2, 3, 8), "float32", (4,), "int64"),
        ((3, 8), "float32", (2, 3), "int64"),
        ((2, 3, 6), "float32", (3,), "int64"),
        ((2, 3, 8), "int64", (3,), "int64"),
    ],
)
def test_errors_have_the_reference_message(x_shape, x_dtype, pos_shape, pos_dtype):
    cfg = rr.RopeConfig(head_dim=8, rotary_dim=6)
    x, pos = np.zeros(x_shape, x_dtype), np.zeros(pos_shape, pos_dtype)
    for fn in ("apply_rotary", "inverse_rotary"):
        with pytest.raises(rr.RopeInputError) as want:
            getattr(ref, fn)(x, pos, cfg)
        with pytest.raises(rr.RopeInputError) as got:
            getattr(B, fn)(B.from_numpy(x), B.from_numpy(pos), cfg)
        assert str(got.value) == str(want.value)


# --- import hygiene -----------------------------------------------------------------------------


def test_importing_the_backend_imports_no_other_framework():
    code = (
        "import sys, rrope_tensorflow; bad = {'torch', 'mlx', 'jax'} & {m.split('.')[0] for m in sys.modules}; "
        "assert not bad, bad"
    )
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}  # Keras' default backend (tensorflow)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "backends"), str(REPO), env.get("PYTHONPATH", "")])
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO)


def test_checked_positions_inside_tf_function_assert_when_run():
    """Inside tf.function positions are symbolic: checked mode adds a tf.debugging assertion (read
    when the function is traced), raising InvalidArgumentError with the reference's reason."""
    cfg = rr.RopeConfig(head_dim=8)
    x = tf.ones((3, 8))
    with rr.checked_positions():
        f = tf.function(lambda x_, p_: B.apply_rotary(x_, p_, cfg))
        f(x, tf.constant([0, 1, 2]))
        with pytest.raises(tf.errors.InvalidArgumentError, match="must be >= 0"):
            f(x, tf.constant([0, -1, 2]))


def test_cached_constants_are_read_only():
    """The per-config cache hands out its arrays: a caller's write must not corrupt later calls.
    Kills frequencies.x__frozen__mutmut_4 (writable arrays)."""
    from rrope_tensorflow.frequencies import constants

    k = constants(rr.RopeConfig(head_dim=16, resonance=True), None)
    for a in (k.inv_freq, k.periods, k.half_periods):
        with pytest.raises(ValueError, match="read-only"):
            a[0] = 0


def test_phases_are_centred_like_the_reference():
    """The re-centring, which cos/sin alone cannot see (as test_torch.py's and test_jax.py's twins).
    Kills phases.x_phases__mutmut_28 (``r >= L/2``: ``m = L/2`` would give -pi). Angles lie in
    [-pi, pi], ``m = L/2`` is +pi (the reference's ``(-L/2, L/2]``), and, in float64, they equal the
    reference's within the module's bound, 2*pi*eps64 + 2*eps64*|m*theta| (the second term for
    configs without resonance, whose ``m*theta`` is rounded in float64)."""
    import math

    eps64 = float(np.finfo(np.float64).eps)

    def bound(cfg, pos):
        mtheta = 0.0 if cfg.resonance else np.abs(pos[:, None] * rr.inv_freq(cfg))
        return 2 * math.pi * eps64 + 2 * eps64 * mtheta

    def angles(cfg, pos):
        return phases(cfg, tf.constant(pos, tf.int64), None, tf.float64).numpy()

    assert_centred_phases(angles, np.array([0, 2, 777, 12345, 10**6 + 3]), bound, eps64)
