"""MLX backend specifics (rrope_mlx): the fast/exact paths, mx.fast.rope's semantics, gradients.

The contract itself is checked by the conformance suite (``RROPE_BACKEND=mlx pytest conformance``).
Every tolerance here is derived from eps (conformance/tolerance.py), never tuned; each assertion
states its bound in a comment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core", reason="rrope_mlx needs MLX (pip install 'resonance-rope[mlx]')")

import rrope_core as rr  # noqa: E402
from rrope_conformance.harness import assert_centred_phases  # noqa: E402
from rrope_conformance.tolerance import EPS, phase_budget, rotation_tolerance  # noqa: E402
from rrope_core import rotation as ref  # noqa: E402

B = pytest.importorskip("rrope_mlx", reason="rrope_mlx is not importable (PYTHONPATH=backends or pip install -e .)")
from rrope_mlx import fast  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EPS32 = EPS["float32"]
GPU = mx.default_device().type == mx.DeviceType.gpu
CFG = rr.RopeConfig(head_dim=16)  # theta_max = 1 (pair 0)
#: per-batch offsets and length for forced fast-path runs; on Metal m*theta must stay within [-pi, pi]
FAST_OFFSETS, FAST_T = (np.array([0, 0, 0]), 4) if GPU else (np.array([0, 3, 900]), 6)
YARN = rr.RopeConfig(head_dim=16, rotary_dim=12, scaling=rr.YaRN(4.0, 64), layout="interleaved")  # a != 1


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _run(fn, cfg, x64, pos, dtype, path="auto", seq_len=None):
    xb = B.from_numpy(x64, dtype)
    exact = np.asarray(B.to_numpy(xb), np.float64)
    out = getattr(B, fn)(xb, B.from_numpy(pos, "int64"), cfg, seq_len, path=path)
    return out, np.asarray(B.to_numpy(out), np.float64), exact


def _fast_extra(cfg, x, pos, seq_len=None, gpu=GPU):
    """mx.fast.rope's extra phase error moves a feature by <= a*s*1.5*eps32*m*theta_max (fast.py)."""
    first, second = rr.pair_slices(cfg)
    s = np.abs(x[..., first]) + np.abs(x[..., second])
    m = np.broadcast_to(np.asarray(pos, np.float64), x.shape[:-1])[..., None]
    k = rr.inv_freq(cfg, seq_len)
    err = fast.FAST_PHASE_ERR_EPS32 * EPS32 * m * k.max()
    if gpu:  # Metal's fast cos/sin, documented for |m*theta| <= pi only (FAST_OFFSETS keeps to that)
        err = err + fast.METAL_FAST_TRIG_ABS_ERR
    pair = rr.attention_factor(cfg, seq_len) * s * err
    tol = np.zeros(x.shape)
    tol[..., first] = pair
    tol[..., second] = pair
    return tol


def _cpu_extra(cfg, x, pos):
    return _fast_extra(cfg, x, pos, gpu=False)


# --- mx.fast.rope semantics (what fast.py relies on) -------------------------------------------


def _cpu_rope(*args, **kwargs):
    """mx.fast.rope on the CPU stream: semantics are device-independent; Metal accuracy is tested below."""
    with mx.stream(mx.cpu):
        return np.asarray(mx.fast.rope(*args, **kwargs), np.float64)


@pytest.mark.parametrize("layout", rr.LAYOUTS)
def test_fast_rope_freqs_are_inverse_theta_along_axis_minus_2(layout):
    """freqs = 1/theta (periods over 2*pi), rotating axis -2 at offset + arange(T); theta instead fails."""
    cfg = rr.RopeConfig(head_dim=8, base=100.0, layout=layout)
    theta = rr.inv_freq(cfg)
    x = _x((2, 3, 5, 8)).astype(np.float32).astype(np.float64)
    off = 7
    pos = off + np.arange(5)
    want = ref.apply_rotary(x, pos, cfg)
    for freqs, ok in ((1.0 / theta, True), (theta, False), (2 * np.pi / theta, False)):
        got = _cpu_rope(
            mx.array(x, dtype=mx.float32),
            8,
            traditional=layout == "interleaved",
            base=None,
            scale=1.0,
            offset=off,
            freqs=mx.array(freqs.astype(np.float32)),
        )
        err = np.abs(got - want)
        # bound: conformance tolerance in float32 plus the fast path's phase error 1.5*eps32*m*theta
        tol = rotation_tolerance(cfg, x, want, pos, None, "float32", 1.0) + _cpu_extra(cfg, x, pos)
        assert bool(np.all(err <= tol)) is ok, f"freqs={freqs}: max err {err.max()}"


def test_fast_rope_array_offset_is_per_batch_row():
    """An int array offset of x.shape[0] entries shifts each batch row: positions (B,1,T) for (B,H,T,D)."""
    x = _x((3, 2, 4, 16)).astype(np.float32).astype(np.float64)
    offs = np.array([0, 5, 40])
    pos = offs[:, None, None] + np.arange(4)
    got = _cpu_rope(
        mx.array(x, dtype=mx.float32),
        16,
        traditional=False,
        base=None,
        scale=1.0,
        offset=mx.array(offs.astype(np.int32)),
        freqs=mx.array((1 / rr.inv_freq(CFG)).astype(np.float32)),
    )
    want = ref.apply_rotary(x, pos, CFG)
    tol = rotation_tolerance(CFG, x, want, pos, None, "float32", 1.0) + _cpu_extra(CFG, x, pos)
    assert np.all(np.abs(got - want) <= tol)


# --- path selection ------------------------------------------------------------------------------


def _path(dtype, pos, x_shape=None, cfg=CFG):
    t = np.shape(pos)[-1]
    x = B.from_numpy(np.zeros(x_shape or (1, 2, t, cfg.head_dim)), dtype)
    return B.path_for(x, B.from_numpy(np.asarray(pos), "int64"), cfg)


@pytest.mark.skipif(GPU, reason="CPU gate (the GPU adds the Metal fast-trig bound)")
def test_path_for_follows_the_documented_gate_on_cpu():
    # gate: max_position * theta_max * eps32 <= eps_d / 4, theta_max = 1 here
    assert _path("bfloat16", np.arange(8)) == "fast"
    assert _path("bfloat16", 2**14 - 7 + np.arange(8)) == "fast"  # max 2**14: 2**14 * 2**-23 == 2**-7 / 4
    assert _path("bfloat16", 2**14 - 6 + np.arange(8)) == "exact"
    assert _path("float16", 2**11 - 7 + np.arange(8)) == "fast"
    assert _path("float16", 2**11 - 6 + np.arange(8)) == "exact"
    assert _path("float32", np.arange(1)) == "fast"  # position 0 only: 1 * eps32 > eps32 / 4
    assert _path("float32", np.arange(2)) == "exact"
    assert _path("float64", np.arange(2)) == "exact"
    assert _path("bfloat16", np.array([[[0, 1, 2]], [[9, 10, 11]]]), (2, 4, 3, 16)) == "fast"  # per-batch
    assert _path("bfloat16", np.array([[0, 1, 2], [9, 10, 11]]), (2, 3, 16)) == "fast"  # (B,T,D)
    assert _path("bfloat16", np.arange(3), (3, 16)) == "fast"  # (T,D)


@pytest.mark.parametrize(
    "pos, x_shape",
    [
        (np.array([0, 2, 1]), None),  # not an arange
        (np.arange(3)[:, None], (1, 3, 2, 16)),  # (B,T,H,D): the sequence is not axis -2
        (np.array([[[0, 1, 2]], [[4, 6, 8]]]), (2, 1, 3, 16)),  # one row not an arange
        (-1 + np.arange(3), None),  # negative offset
        (2**25 + np.arange(3), None),  # past FAST_MAX_POSITION
    ],
)
def test_path_for_is_exact_when_positions_are_not_a_nonnegative_arange(pos, x_shape):
    assert _path("bfloat16", pos, x_shape) == "exact"


def test_gate_on_gpu_needs_the_metal_fast_trig_bound():
    # 2**-13 <= eps_d/8 holds for bfloat16 and float16 (equality), never for float32; domain |m*theta| <= pi
    assert fast.accurate_enough("bfloat16", 3, 1.0, gpu=True)
    assert fast.accurate_enough("float16", 3, 1.0, gpu=True)
    assert not fast.accurate_enough("bfloat16", 4, 1.0, gpu=True)
    assert not fast.accurate_enough("float32", 0, 1.0, gpu=True)
    assert fast.accurate_enough("bfloat16", 2**14, 1.0, gpu=False)


def test_path_argument_is_checked():
    """The refusal of path='fast' says what the fast path needs (kills fast.x_plan__mutmut_93, _105:
    the reason dropped or upper-cased); grad_apply_rotary names w's shape and x's (kills
    rotation.x_grad_apply_rotary__mutmut_31, _33, and the ones named below)."""
    x = B.from_numpy(np.zeros((1, 1, 3, 16)), "float32")
    with pytest.raises(rr.RopeInputError, match=r"^path='fast' is invalid: needs positions offset \+ arange\(T\)"):
        B.apply_rotary(x, B.from_numpy(np.array([0, 2, 1]), "int64"), CFG, path="fast")
    with pytest.raises(
        rr.RopeInputError, match=r"^w\.shape=\(1, 1, 3, 8\) is invalid: must equal x\.shape=\(1, 1, 3, 16\)"
    ):
        B.grad_apply_rotary(x, B.from_numpy(np.arange(3), "int64"), CFG, B.from_numpy(np.ones((1, 1, 3, 8)), "float32"))
    # the value and the rule named (kills fast.x_plan__mutmut_3, _4)
    with pytest.raises(
        rr.RopeInputError, match=r"^path='quick' is invalid: must be one of \('auto', 'fast', 'exact'\)$"
    ):
        B.apply_rotary(x, B.from_numpy(np.arange(3), "int64"), CFG, path="quick")
    # grad_apply_rotary: x's errors under x's name, path passed on, a NumPy w taken (kills
    # rotation.x_grad_apply_rotary__mutmut_7, _12, _51, _16); inv_freq checks its device (_2).
    p = B.from_numpy(np.arange(3), "int64")
    with pytest.raises(rr.RopeInputError, match=r"^x\.dtype='int64'"):
        B.grad_apply_rotary(B.from_numpy(np.zeros((1, 1, 3, 16), np.int64)), p, CFG, x)
    with pytest.raises(rr.RopeInputError, match=r"^path='fast' is invalid"):
        B.grad_apply_rotary(x, B.from_numpy(np.array([0, 2, 1]), "int64"), CFG, x, path="fast")
    w = np.random.default_rng(1).standard_normal((1, 1, 3, 16)).astype(np.float32)
    np.testing.assert_array_equal(
        B.to_numpy(B.grad_apply_rotary(x, p, CFG, w)), B.to_numpy(B.grad_apply_rotary(x, p, CFG, B.from_numpy(w)))
    )
    with pytest.raises(rr.RopeInputError, match=r"^device='quantum' is invalid"):
        B.inv_freq(CFG, device="quantum")
    with pytest.raises(rr.RopeInputError, match=r"^x\.dtype='int64'"):  # fast.x_path_for__mutmut_5, _10, _11
        fast.path_for(B.from_numpy(np.zeros((1, 1, 3, 16), np.int64)), p, CFG)


# --- fast path == exact path ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
@pytest.mark.parametrize("cfg", [CFG, YARN, rr.RopeConfig(head_dim=16, resonance=True)], ids=["plain", "yarn", "res"])
@pytest.mark.parametrize("fn", ["apply_rotary", "inverse_rotary"])
def test_fast_path_equals_exact_path(dtype, cfg, fn):
    pos = FAST_OFFSETS[:, None, None] + np.arange(FAST_T)  # (B,1,T)
    x = _x((3, 2, FAST_T, 16), seed=1)
    out_f, f, exact = _run(fn, cfg, x, pos, dtype, path="fast")
    out_e, e, _ = _run(fn, cfg, x, pos, dtype, path="exact")
    assert out_f.dtype == out_e.dtype == getattr(mx, dtype)
    want = getattr(ref, fn)(exact, pos, cfg)
    a = rr.attention_factor(cfg)
    scale = a if fn == "apply_rotary" else 1 / a
    tol = rotation_tolerance(cfg, exact, want, pos, None, dtype, scale)
    # each path is within tol of the reference (the fast one plus its phase error): so they differ by <= the sum
    extra = _fast_extra(cfg, exact, pos) * (scale / a)
    assert np.all(np.abs(e - want) <= tol)
    assert np.all(np.abs(f - want) <= tol + extra)
    assert np.all(np.abs(f - e) <= 2 * tol + extra)
    np.testing.assert_array_equal(f[..., cfg.rotary_dim :], exact[..., cfg.rotary_dim :])


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_auto_path_meets_the_conformance_tolerance_at_the_gate_edge(dtype):
    top = 2**14 if dtype == "bfloat16" else 2**11  # the largest max position the gate admits (theta_max = 1)
    pos = top - 15 + np.arange(16)
    x = _x((2, 3, 16, 16), seed=2)
    assert B.path_for(B.from_numpy(x, dtype), B.from_numpy(pos, "int64"), CFG) == ("exact" if GPU else "fast")
    _, out, exact = _run("apply_rotary", CFG, x, pos, dtype)
    want = ref.apply_rotary(exact, pos, CFG)
    assert np.all(np.abs(out - want) <= rotation_tolerance(CFG, exact, want, pos, None, dtype, 1.0))


# --- dtypes, pass-through, gradients -------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("path", ["fast", "exact"])
def test_half_precision_dtypes_are_preserved_and_pass_through_is_bit_exact(dtype, path):
    x = B.from_numpy(_x((2, 2, 4, 16)), dtype)
    pos = B.from_numpy(np.arange(4), "int64")
    for fn in (B.apply_rotary, B.inverse_rotary):
        y = fn(x, pos, YARN, path=path)
        assert y.dtype == x.dtype
        np.testing.assert_array_equal(B.to_numpy(y)[..., 12:], B.to_numpy(x)[..., 12:])
    q, k = B.RotaryEmbedding(YARN)(x, x[:, :1], pos)
    assert q.dtype == k.dtype == x.dtype and k.shape == (2, 1, 4, 16)


@pytest.mark.parametrize("path", ["fast", "exact"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_mx_grad_is_the_scaled_inverse_rotation(path, dtype):
    x, w = _x((2, 3, FAST_T, 16), 3), _x((2, 3, FAST_T, 16), 4)
    pos = FAST_OFFSETS[-1] + np.arange(FAST_T)
    xb, wb = B.from_numpy(x, dtype), B.from_numpy(w, dtype)
    got = np.asarray(B.to_numpy(B.grad_apply_rotary(xb, B.from_numpy(pos, "int64"), YARN, wb, path=path)), np.float64)
    w_exact = np.asarray(B.to_numpy(wb), np.float64)
    a = rr.attention_factor(YARN)
    want = a * a * ref.inverse_rotary(w_exact, pos, YARN)
    want[..., 12:] = w_exact[..., 12:]
    # the gradient rotates w by -phi, scaled by a: apply_rotary's bound on w (+ the fast phase error)
    tol = rotation_tolerance(YARN, w_exact, want, pos, None, dtype, a)
    tol[..., 12:] = 0
    if path == "fast":
        tol = tol + _fast_extra(YARN, w_exact, pos)
    assert np.all(np.abs(got - want) <= tol)
    direct = mx.grad(lambda v: (B.apply_rotary(v, B.from_numpy(pos, "int64"), YARN, path=path) * wb).sum())(xb)
    assert direct.dtype == xb.dtype


# --- exact phases far out ------------------------------------------------------------------------


@pytest.mark.parametrize("resonance", [False, True])
def test_exact_phases_at_2_31_and_2_40_match_the_reference(resonance):
    cfg = rr.RopeConfig(head_dim=128, base=500000.0, resonance=resonance, scaling=rr.YaRN(8.0, 8192))
    pos = np.array([2**31 - 1, 2**31, 2**40, 2**40 + 12345, 2**52 + 1])
    c, s = (np.asarray(B.to_numpy(t), np.float64) for t in B.cos_sin(cfg, B.from_numpy(pos, "int64")))
    wc, ws = rr.cos_sin(cfg, pos)
    # phase budget (2*pi*eps32 [+ 2*eps64*|m*theta|]) plus 2 eps32 for float32 cos/sin
    tol = phase_budget(cfg, pos, None, "float32") + 2 * EPS32
    assert np.all(np.abs(c - wc) <= tol) and np.all(np.abs(s - ws) <= tol)
    naive = np.cos(np.float32(pos[:, None]) * rr.inv_freq(cfg).astype(np.float32))  # a float32 phase fails
    assert np.any(np.abs(naive - wc) > tol)
    x = _x((5, 128), 5)
    _, out, exact = _run("apply_rotary", cfg, x, pos, "float32")
    want = ref.apply_rotary(exact, pos, cfg)
    a = rr.attention_factor(cfg)
    assert np.all(np.abs(out - want) <= rotation_tolerance(cfg, exact, want, pos, None, "float32", a))


@pytest.mark.skipif("float64" not in B.DTYPES, reason="float64 needs MLX's CPU device")
def test_float64_is_float64_accurate():
    """The contract's float64 tolerance. The second config's slowest pair (theta ~ 2e-10) at 2**52
    has a budget of ~4e-10 rad for the phase: a float32 ``f_lo`` (phases.x__turns__mutmut_113; its
    error is |m| * 2**-72 turns, ~3e-6 rad there) does not fit, though it fits at theta >= 2**-20."""
    for cfg, pos in (
        (rr.RopeConfig(head_dim=64, base=1e6), np.array([0, 3, 2**31 - 1, 2**45 + 7])),
        (rr.RopeConfig(head_dim=64, base=1e10), np.array([5, 2**40 + 1, 2**50 + 3, 2**52 + 1])),
    ):
        x = _x((4, 64), 6)
        _, out, exact = _run("apply_rotary", cfg, x, pos, "float64")
        want = ref.apply_rotary(exact, pos, cfg)
        assert np.all(np.abs(out - want) <= rotation_tolerance(cfg, exact, want, pos, None, "float64", 1.0)), cfg


def test_dynamic_seq_len_defaults_to_max_position_plus_one():
    cfg = rr.RopeConfig(head_dim=16, scaling=rr.DynamicNTK(4.0, 64))
    x, pos = B.from_numpy(_x((1, 2, 8, 16)), "float32"), B.from_numpy(900 + np.arange(8), "int64")
    np.testing.assert_array_equal(
        B.to_numpy(B.apply_rotary(x, pos, cfg)), B.to_numpy(B.apply_rotary(x, pos, cfg, seq_len=908))
    )


# --- contract, errors, module, import hygiene ----------------------------------------------------


def test_contract_names_and_float64_only_where_mlx_has_it():
    assert rr.contract.check_backend(B) is B and B.name == "mlx"
    assert set(rr.contract.REQUIRED) <= set(B.__all__)
    assert ("float64" in B.DTYPES) == (mx.default_device().type == mx.DeviceType.cpu)
    assert B.device_of(B.from_numpy(np.zeros(2), "float32")) == str(mx.default_device())


@pytest.mark.parametrize(
    "x, pos",
    [
        (np.zeros((2, 3, 8), np.float32), np.arange(3.0, dtype=np.float32)),
        (np.zeros((2, 3, 8), np.float32), np.arange(4)),
        (np.zeros((2, 3, 6), np.float32), np.arange(3)),
        (np.zeros((2, 3, 8), np.int64), np.arange(3)),
    ],
)
def test_errors_have_the_reference_messages(x, pos):
    cfg = rr.RopeConfig(head_dim=8)
    with pytest.raises(rr.RopeInputError) as want:
        ref.apply_rotary(x, pos, cfg)
    with pytest.raises(rr.RopeInputError) as got:
        B.apply_rotary(B.from_numpy(x), B.from_numpy(pos), cfg)
    assert str(got.value) == str(want.value)


def test_rotary_embedding_module_round_trips_and_has_no_parameters():
    emb = B.RotaryEmbedding(YARN, path="exact")
    again = B.RotaryEmbedding.from_config(emb.get_config())
    assert again.cfg == YARN and again.path == "exact" and emb.parameters() == {}


def _python(code: str, **env) -> subprocess.CompletedProcess:
    paths = [str(ROOT), str(ROOT / "backends"), os.environ.get("PYTHONPATH", "")]
    full = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), **env}
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=120)


def test_importing_rrope_mlx_imports_neither_torch_nor_tensorflow():
    r = _python("import sys, rrope_mlx; print(sorted(m for m in ('torch', 'tensorflow') if m in sys.modules))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_device_switch_rejects_unknown_names():
    r = _python("import rrope_mlx", RROPE_MLX_DEVICE="tpu")
    assert r.returncode != 0 and "RROPE_MLX_DEVICE='tpu' is invalid" in r.stderr


# --- Metal only (a Mac): the documented fast-trig bound ------------------------------------------


@pytest.mark.skipif(not mx.is_available(mx.gpu), reason="needs an MLX GPU (Metal, Apple silicon)")
def test_metal_fast_trig_error_within_the_documented_bound():
    """On the GPU mx.fast.rope uses metal::fast::cos/sin; check METAL_FAST_TRIG_ABS_ERR on [-pi, pi]."""
    theta = np.linspace(0.0, 1.0, 64)[1:]  # m*theta in [0, pi] for m <= 3
    x = np.zeros((1, 1, 4, 2 * theta.size), np.float32)
    x[..., : theta.size] = 1.0  # pair (1, 0) -> (cos, sin)
    with mx.stream(mx.gpu):
        y = mx.fast.rope(
            mx.array(x), x.shape[-1], traditional=False, base=None, scale=1.0, offset=0,
            freqs=mx.array((1 / theta).astype(np.float32)),
        )  # fmt: skip
        y = np.asarray(y, np.float64)[0, 0]
    phi = np.arange(4)[:, None] * theta
    # bound: documented trig error + the float32 phase error (1.5*eps32*m*theta) + float32 rounding
    tol = fast.METAL_FAST_TRIG_ABS_ERR + fast.FAST_PHASE_ERR_EPS32 * EPS32 * phi + EPS32
    err_c, err_s = np.abs(y[:, : theta.size] - np.cos(phi)), np.abs(y[:, theta.size :] - np.sin(phi))
    msg = (
        f"Metal fast cos/sin on [0, pi]: max |err| cos {err_c.max():.3g}, sin {err_s.max():.3g}; bound {tol.max():.3g}"
    )
    assert np.all(err_c <= tol) and np.all(err_s <= tol), msg


@pytest.mark.skipif("float64" not in B.DTYPES, reason="float64 needs MLX's CPU device")
def test_float64_phases_are_centred_like_the_reference():
    """The float64 path's re-centring (``_turns_of``), which cos/sin alone cannot see, as
    test_torch.py's and test_jax.py's twins. Kills phases.x__turns_of__mutmut_30, _32, _33 (residues
    centred to another range), and, with the config without resonance, x__turns__mutmut_115 (``t +
    round(t)``: past 2**52, m*f_lo is several turns) and x_phases__mutmut_5 (float64 turns asked as
    float32). Angles lie in [-pi, pi], ``m = L/2`` is +pi (the reference's ``(-L/2, L/2]``), and
    they equal the reference's within 2*pi*eps64 with resonance (r/L and the product by 2*pi, each
    rounded once, |angle| <= pi), else within 6*pi*eps64 + eps64*|m*theta| (the module docstring's
    2*eps64 + eps64*|m*theta|/(2*pi) turns, times 2*pi; the product by 2*pi and the reference's
    own rounding, pi*eps64 each)."""
    import math

    from rrope_mlx.phases import constants, phases

    eps64 = float(np.finfo(np.float64).eps)

    def angles(cfg, pos):
        return B.to_numpy(phases(B.from_numpy(pos, "int64"), constants(cfg, None), mx.float64))

    def bound(cfg, pos):
        if cfg.resonance:
            return 2 * math.pi * eps64
        return 6 * math.pi * eps64 + eps64 * np.abs(pos[:, None].astype(np.float64) * rr.inv_freq(cfg))

    many = np.array([0, 2, 777, 12345, 10**6 + 3, 2**40 + 1, 2**52 + 12345, -(2**55) - 7])
    assert_centred_phases(angles, many, bound, eps64)


def test_gate_refuses_positions_from_fast_max_position_on():
    """mx.fast.rope is used only below FAST_MAX_POSITION (2**24), even where the phase budget would
    allow it: a Linear(65536) config in bfloat16 (reach 2**8 rad, inside the budget) takes the fast
    path up to position 2**24 - 1 and the exact one at 2**24. ``plan`` guards the limit itself, so
    the gate function, documented as the rule, is checked directly too: kills
    fast.x_accurate_enough__mutmut_1 (``and``), _6 (``<=``) and _7 (the refusal turned into a pass)."""
    cfg = rr.RopeConfig(head_dim=16, scaling=rr.Linear(65536.0))
    x = B.from_numpy(np.zeros((1, 1, 4, 16)), "bfloat16")
    assert fast.FAST_MAX_POSITION == 2**24
    assert fast.path_for(x, B.from_numpy(2**24 - 4 + np.arange(4), "int64"), cfg) == "fast"
    assert fast.path_for(x, B.from_numpy(2**24 - 3 + np.arange(4), "int64"), cfg) == "exact"
    assert fast.accurate_enough("bfloat16", 2**24 - 1, 2**-16, False)
    assert not fast.accurate_enough("bfloat16", 2**24, 2**-16, False)


def test_float32_phases_are_centred_like_the_reference():
    """The float32 path's centring, resonance (``_resonance``) and not (``_turns``' fixed point, whose
    residue must land in (-1/2, 1/2] turns): angles in [-pi, pi] and within the module's bound,
    (pi + 1)*eps32 + 1e-9 rad (its docstring; 1.5*pi*eps32 for resonance), of the reference's. Kills
    phases.x__turns__mutmut_69, _90, _91, _92, _95, _96, _97 (other shift or centring constants)."""
    import math

    from rrope_mlx.phases import constants, phases

    def angles(cfg, pos):
        return B.to_numpy(phases(B.from_numpy(pos, "int64"), constants(cfg, None)))

    def bound(cfg, pos):
        return 1.5 * math.pi * EPS32 if cfg.resonance else (math.pi + 1) * EPS32 + 1e-9

    pos = np.array([0, 3, 777, 12345, 10**6 + 3, 2**31 - 1, 2**40 + 1, 2**47 + 5])
    assert_centred_phases(angles, pos, bound, EPS32, half_turn=False)


def test_numpy_inputs_and_empty_positions():
    """NumPy x and positions are taken (converted once) and give the same arrays as MLX ones; cos_sin
    of a dynamic config on empty positions is empty, with or without seq_len. Kills
    rotation.x_checked__mutmut_40, _41, _42 and x__as_positions__mutmut_2, _3, _4 (the conversions;
    _1, converting MLX arrays too, is a round trip), and
    x_cos_sin__mutmut_11, _13 (the seq_len rule on empty positions)."""
    x = np.random.default_rng(0).standard_normal((2, 3, 16)).astype(np.float32)
    p = np.arange(3)
    want = B.to_numpy(B.apply_rotary(B.from_numpy(x), B.from_numpy(p, "int64"), CFG))
    np.testing.assert_array_equal(B.to_numpy(B.apply_rotary(x, p, CFG)), want)
    np.testing.assert_array_equal(
        B.to_numpy(B.cos_sin(CFG, p)[0]), B.to_numpy(B.cos_sin(CFG, B.from_numpy(p, "int64"))[0])
    )
    dynamic = rr.RopeConfig(head_dim=16, scaling=rr.DynamicNTK(4.0, 64))
    empty = B.from_numpy(np.zeros(0, np.int64), "int64")
    for seq_len in (None, 100):
        assert tuple(B.cos_sin(dynamic, empty, seq_len)[0].shape) == (0, 8)


# --- the path and seq_len a call asks for reach the fast path (mutation testing, docs/mutation.md) ---

#: LongRoPE: short factors (theta_max 1) up to seq_len 64, long ones (theta_max 0.25) past it
LONG = rr.RopeConfig(head_dim=32, scaling=rr.LongRoPE([1.0] * 16, [4.0] * 16, 64, factor=8.0))
#: bfloat16's gate (FAST_PHASE_SHARE 0.25): m*theta_max <= 2**14, so max position 20003 passes with
#: the long factors only
LONG_POS = 20000 + np.arange(4)


@pytest.mark.skipif(GPU, reason="Metal's gate also bounds m*theta by pi: positions past 2**14 never go fast there")
def test_gate_uses_the_frequencies_of_the_seq_len_asked():
    """path_for and plan judge the gate with the frequencies of the call's own seq_len. Kills
    fast.x_path_for__mutmut_15 (seq_len dropped: resolved from the positions, 20004, long factors)
    and fast.x_plan__mutmut_125 (the gate judged with seq_len=None's, the short factors)."""
    x, p = B.from_numpy(_x((1, 2, 4, 32)), "bfloat16"), B.from_numpy(LONG_POS, "int64")
    assert B.path_for(x, p, LONG, seq_len=512) == "fast"  # 20003 * 0.25 <= 2**14
    assert B.path_for(x, p, LONG, seq_len=64) == "exact"  # 20003 * 1 > 2**14


@pytest.mark.skipif(GPU, reason="Metal's gate also bounds m*theta by pi: positions past 2**14 never go fast there")
@pytest.mark.parametrize("path", ["auto", "fast"])
def test_fast_path_rotates_with_the_frequencies_of_the_seq_len_asked(path):
    """The fast path's rotation uses seq_len's frequencies (here LongRoPE's long factors, a 4x
    smaller theta than seq_len=None's short ones), within the conformance tolerance plus
    mx.fast.rope's phase error. Kills fast.x_rotate__mutmut_3 (constants(cfg, None)) and
    fast.x_plan__mutmut_107 (path='fast' planned without the resolved seq_len)."""
    x = _x((1, 2, 4, 32), seed=3)
    out, got, exact = _run("apply_rotary", LONG, x, LONG_POS, "bfloat16", path=path, seq_len=512)
    want = ref.apply_rotary(exact, LONG_POS, LONG, 512)
    a = rr.attention_factor(LONG, 512)
    tol = rotation_tolerance(LONG, exact, want, LONG_POS, 512, "bfloat16", a)
    assert np.all(np.abs(got - want) <= tol + _fast_extra(LONG, exact, LONG_POS, 512) * a)


@pytest.mark.skipif(GPU, reason="Metal's gate also bounds m*theta by pi: positions past 3 never go fast there")
def test_path_exact_is_the_exact_path_even_where_fast_would_pass():
    """path='exact' never plans the fast one: its output is bit for bit the exact path's (rotation._exact),
    on an arange that the gate admits and where the two paths' bits differ. Kills fast.x_plan__mutmut_13,
    _16, _17 (the layout computed for path='exact' too, so the gate could pick the fast path)."""
    from rrope_mlx.rotation import _exact

    pos = 900 + np.arange(6)  # bfloat16's gate admits m*theta_max <= 2**14 (float32's only <= 0.25)
    xb = B.from_numpy(_x((2, 3, 6, 16), seed=4), "bfloat16")
    pb = B.from_numpy(pos, "int64")
    fast_bits = B.to_numpy(B.apply_rotary(xb, pb, CFG, path="fast"))
    exact_bits = B.to_numpy(_exact(xb, pb, CFG, None, False))
    assert not np.array_equal(fast_bits, exact_bits)  # the check below can tell the paths apart
    np.testing.assert_array_equal(B.to_numpy(B.apply_rotary(xb, pb, CFG, path="exact")), exact_bits)


def test_path_fast_is_refused_from_fast_max_position_on():
    """path='fast' raises once a position reaches FAST_MAX_POSITION (2**24), as its message says;
    kills fast.x_plan__mutmut_85 (``>`` for ``>=``: 2**24 itself let through)."""
    x = B.from_numpy(np.zeros((1, 1, 4, 16)), "float32")
    B.apply_rotary(x, B.from_numpy(2**24 - 4 + np.arange(4), "int64"), CFG, path="fast")
    with pytest.raises(rr.RopeInputError, match=r"^path='fast' is invalid: .* max position < 16777216"):
        B.apply_rotary(x, B.from_numpy(2**24 - 3 + np.arange(4), "int64"), CFG, path="fast")


@pytest.mark.parametrize("path", ["auto", "exact"])
def test_one_vector_and_an_empty_sequence(path):
    """x of shape (D,) with one scalar position, and x with no positions along axis -2, rotate as the
    reference does, and path='fast' refuses the empty sequence with its documented error. Kills
    fast.x__layout__mutmut_5 (1-D x: an IndexError), _4 and x_plan__mutmut_28 (the empty sequence
    and 1-D x reach _offsets / x.shape[-2]: a NumPy ValueError, an IndexError)."""
    for shape, pos in (((16,), np.array(3)), ((2, 0, 16), np.zeros((0,), np.int64))):
        x = _x(shape, seed=5)
        _, got, exact = _run("apply_rotary", CFG, x, pos, "float32", path=path)
        want = ref.apply_rotary(exact, pos, CFG)
        assert got.shape == want.shape == shape
        assert np.all(np.abs(got - want) <= rotation_tolerance(CFG, exact, want, pos, None, "float32", 1.0))
    with pytest.raises(rr.RopeInputError, match=r"^path='fast' is invalid: needs positions offset \+ arange\(T\)"):
        B.apply_rotary(B.from_numpy(np.zeros((2, 0, 16)), "float32"), B.from_numpy(pos, "int64"), CFG, path="fast")


def test_float32_turns_are_the_exact_fixed_point_residue():
    """``_turns`` (float32) against ``frac(m*f)``, ``f = theta / 2pi`` in exact rationals (the module's
    2pi, ``_TWO_PI_EXACT``), centred to (-1/2, 1/2]: within the docstring's fixed-point bound
    2**-47 + |m|*2**-96 turns plus the float32 rounding of the result, 2**-24*(|t| + 2**-46). cos/sin
    of the angle hide errors up to the conformance budget; this checks the turns to the bit budget.
    Kills phases.x__turns__mutmut_47, _48, _75 (the S3 products dropped, subtracted, or shifted one
    bit too far: errors up to 2**-23 turns at positions whose low limbs are large)."""
    from fractions import Fraction

    from rrope_mlx.phases import _TWO_PI_EXACT, _turns, constants

    cfg = rr.RopeConfig(head_dim=16)
    k = constants(cfg, None)
    rng = np.random.default_rng(7)
    top = (2**24 - 1) * (1 + 2**24)  # both low limbs of m at their maximum
    pos = np.concatenate([rng.integers(-(2**62), 2**62, 200), top + (np.arange(-3, 4) << 48)])
    t = np.asarray(B.to_numpy(_turns(mx.expand_dims(mx.array(pos, dtype=mx.int64), -1), k, mx.float32)), np.float64)
    for j, th in enumerate(k.theta.tolist()):
        f = Fraction(th) / _TWO_PI_EXACT
        for i, m in enumerate(pos.tolist()):
            r = (m * f) % 1
            exact = float(r - 1 if r > Fraction(1, 2) else r)
            bound = 2**-47 + abs(m) * 2**-96 + 2**-24 * (abs(exact) + 2**-46)
            assert abs(t[i, j] - exact) <= bound, (m, th, t[i, j], exact)
