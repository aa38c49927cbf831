"""Tests that kill mutants mutmut found surviving in the core's math (docs/mutation.md).

Each test names, in a comment, the mutant(s) it kills (``mutmut show <name>`` prints the change).
"""

from __future__ import annotations

import importlib
import json
import math
import warnings
from fractions import Fraction

import numpy as np
import pytest

import rrope_core as rr
from rrope_core import limits
from rrope_core.scaling import NTK, DynamicNTK, Linear, Llama3, LongRoPE, YaRN, default_inv_freq

from ._truth import TWO_PI

# rrope_core.phases is shadowed by the function rr.phases: import the module by name.
phases_mod = importlib.import_module("rrope_core.phases")

ULP_PI = float(np.spacing(np.pi))


# --- phases -------------------------------------------------------------------------------------


def test_phase_table_over_physical_memory_is_refused(monkeypatch):
    """4 pairs x 8 B = 32 B per position: 31 positions fit in 1000 B, 32 (1024 B) do not."""
    # kills rrope_core.phases.x_phases__mutmut_13 (bytes counted as size * n / 8)
    monkeypatch.setattr(limits, "physical_memory", lambda: 1000)
    cfg = rr.RopeConfig(head_dim=8)
    assert rr.phases(cfg, np.arange(31)).shape == (31, 4)
    with pytest.raises(rr.RopeInputError, match=r"^positions.shape=\(32,\) is invalid: .* 1024 bytes, "):
        rr.phases(cfg, np.arange(32))


@pytest.mark.parametrize("m", [3, 7, 19])
def test_reduce_phase_recentring_step_keeps_the_low_part_sign(m):
    """``m * pi`` (float64 pi, odd m) lands next to +-pi, where ``k = rint(p/C1)`` is off by one and
    the re-centring step ``j = +-1`` runs. For these small m every step but the final addition is
    exact or rounds a term below 2**-49 (ulp <= 2**-101), so the error is <= 0.5 ulp(pi) + 2**-100."""
    # kills rrope_core.phases.x_reduce_phase__mutmut_31 ((t + j*C2) instead of (t - j*C2): 1.0-1.5 ulp off)
    theta = float(np.pi)
    got = float(phases_mod.reduce_phase(np.array([float(m)]), np.array([theta]))[0])
    exact = m * Fraction(theta)
    exact -= TWO_PI * round(exact / TWO_PI)  # the residue in [-pi, pi]
    err = min(abs(Fraction(got) - exact - s * TWO_PI) for s in (-1, 0, 1))  # +-pi are one angle
    assert err <= Fraction(ULP_PI) / 2 + Fraction(2) ** -100, (m, got, float(err) / ULP_PI)


@pytest.mark.parametrize("period", [2, 4, 10, 1000])
def test_resonance_phase_half_period_is_plus_pi(period):
    """The residue is centred to ``(-L/2, L/2]`` (phases.py): ``m = L/2`` gives ``+pi``, not ``-pi``."""
    # kills rrope_core.phases.x_resonance_phase__mutmut_13 (r >= L//2 maps L/2 to -pi)
    got = phases_mod.resonance_phase(np.array([[period // 2]]), np.array([period]))
    assert got[0, 0] == phases_mod._TWO_PI_HI / 2 > 0


# --- frequencies --------------------------------------------------------------------------------

LONG = 4096  # 64x the original length below: dynamic NTK rescales every pair but the first


def _dynamic(resonance: bool) -> rr.RopeConfig:
    return rr.RopeConfig(head_dim=16, scaling=DynamicNTK(factor=4.0, original_max_position=64), resonance=resonance)


@pytest.mark.parametrize("resonance", [False, True])
def test_frequencies_follow_seq_len(resonance):
    """inv_freq, wavelengths and integer_wavelengths use ``seq_len`` (dynamic NTK at 64x length)."""
    # kills rrope_core.frequencies.x_inv_freq__mutmut_4, _6; x_wavelengths__mutmut_3, _5, _8, _10;
    # x_integer_wavelengths__mutmut_20, _22 (seq_len dropped or replaced by None)
    cfg = _dynamic(resonance)
    theta = cfg.scaling.inv_freq(cfg.base, cfg.rotary_dim, LONG)
    assert not np.array_equal(theta, rr.inv_freq(cfg))  # the test can tell the lengths apart
    if resonance:
        periods = np.rint(2 * np.pi / theta)
        np.testing.assert_array_equal(rr.integer_wavelengths(cfg, LONG), periods)
        np.testing.assert_array_equal(rr.wavelengths(cfg, LONG), periods)
        np.testing.assert_array_equal(rr.inv_freq(cfg, LONG), 2 * np.pi / periods)
    else:
        np.testing.assert_array_equal(rr.inv_freq(cfg, LONG), theta)
        np.testing.assert_array_equal(rr.wavelengths(cfg, LONG), 2 * np.pi / theta)


@pytest.mark.parametrize("resonance", [False, True])
def test_critical_dim_follows_seq_len(resonance):
    """At 64x length the wavelengths <= 100 are 2 pairs (6.3, 44), at the original length 3."""
    # kills rrope_core.frequencies.x_critical_dim__mutmut_15, _17 (seq_len dropped)
    cfg = _dynamic(resonance)
    assert rr.critical_dim(cfg, 100) == 6
    assert rr.critical_dim(cfg, 100, LONG) == 4


def test_critical_dim_bad_train_len_is_an_input_error():
    # kills rrope_core.frequencies.x_critical_dim__mutmut_7 (RopeConfigError, positive_int's default)
    with pytest.raises(rr.RopeInputError, match=r"^train_len=0 is invalid: must be a positive integer$"):
        rr.critical_dim(rr.RopeConfig(head_dim=8), 0)


def test_attention_factor_checks_seq_len():
    # kills rrope_core.frequencies.x_attention_factor__mutmut_1 (check_seq_len(None))
    with pytest.raises(rr.RopeInputError, match=r"^seq_len=0 is invalid: must be a positive integer$"):
        rr.attention_factor(rr.RopeConfig(head_dim=8), 0)


def test_integer_wavelengths_of_a_non_resonance_config_names_field_value_and_rule():
    """The message names the field, the value received and what is allowed (errors.py)."""
    # kills rrope_core.frequencies.x_integer_wavelengths__mutmut_3, _4, _7, _8, _12, _13, _14, _15
    # (value or message changed or dropped)
    with pytest.raises(rr.RopeConfigError) as info:
        rr.integer_wavelengths(rr.RopeConfig(head_dim=8))
    assert (
        str(info.value) == "cfg.resonance=False is invalid: integer wavelengths exist only for resonance=True configs"
    )


# --- rotation -----------------------------------------------------------------------------------

rotation_mod = importlib.import_module("rrope_core.rotation")
EPS64 = float(np.finfo(np.float64).eps)


@pytest.mark.parametrize(
    ("lead", "row", "budget"),
    [((4,), 2, 8), ((3, 5), 4, 8), ((3, 5), 4, 12), ((3, 5), 2, 12), ((2, 3, 7), 3, 20), ((5,), 10, 4), ((2, 6), 5, 3)],
)
def test_blocks_cover_every_row_once_within_the_budget(lead, row, budget):
    """``_blocks`` tiles the leading axes exactly, each block <= budget elements (or one row when a
    row alone exceeds it), and a whole array that fits is one block."""
    # kills rrope_core.rotation.x__blocks__mutmut_7, _8, _12, _16 .. _38 (wrong axis, step, range, slice)
    ids = np.arange(int(np.prod(lead))).reshape(lead)
    seen = np.concatenate([np.ravel(ids[idx]) for idx in rotation_mod._blocks(lead, row, budget)])
    np.testing.assert_array_equal(np.sort(seen), np.ravel(ids))  # every row exactly once
    for idx in rotation_mod._blocks(lead, row, budget):
        assert ids[idx].size * row <= max(budget, row), (lead, row, budget, idx)
    if ids.size * row <= budget:
        assert list(rotation_mod._blocks(lead, row, budget)) == [()]


def test_rotated_copy_over_physical_memory_is_refused(monkeypatch):
    """``x`` (3 x 8 float32 = 96 B) plus cos and sin (2 x 3 x 4 x 8 B = 192 B): 288 B fit, 287 do not."""
    # kills rrope_core.rotation.x__prepare__mutmut_31 (3 tables) and _36 (x.size / itemsize)
    cfg, x, p = rr.RopeConfig(head_dim=8), np.ones((3, 8), np.float32), np.arange(3)
    monkeypatch.setattr(limits, "physical_memory", lambda: 288)
    assert rr.apply_rotary(x, p, cfg).shape == (3, 8)
    monkeypatch.setattr(limits, "physical_memory", lambda: 287)
    with pytest.raises(rr.RopeInputError, match=r"^x.shape=\(3, 8\) is invalid: .* 288 bytes, "):
        rr.apply_rotary(x, p, cfg)


def test_dtype_errors_name_the_dtype():
    """Messages name the field, the value received and what is allowed (errors.py)."""
    # kills rrope_core.rotation.x__prepare__mutmut_6, _20 (x's dtype) and _9, _24 (positions' dtype)
    cfg = rr.RopeConfig(head_dim=8)
    with pytest.raises(rr.RopeInputError, match=r"^x.dtype='int32' is invalid: must be a floating dtype"):
        rr.apply_rotary(np.zeros((2, 8), np.int32), np.arange(2), cfg)
    with pytest.raises(rr.RopeInputError, match=r"^y.dtype='int32' is invalid: must be a floating dtype"):
        rr.inverse_rotary(np.zeros((2, 8), np.int32), np.arange(2), cfg)
    with pytest.raises(rr.RopeInputError, match=r"^positions.dtype='float32' is invalid: must be an integer dtype$"):
        rr.apply_rotary(np.zeros((2, 8)), np.arange(2, dtype=np.float32), cfg)


def test_cos_sin_follows_seq_len_and_defaults_to_max_position_plus_one():
    """Dynamic NTK: ``seq_len`` given is used; absent, it is ``max(positions) + 1``."""
    # kills rrope_core.rotation.x_cos_sin__mutmut_29, _32, _34 (seq_len dropped) and _35 (max_position None)
    cfg, pos = _dynamic(False), np.array([0, 5, 99])
    cos, sin = rr.cos_sin(cfg, pos, LONG)  # LONG > max(pos) + 1 = 100
    phi = rr.phases(cfg, pos, LONG)
    np.testing.assert_array_equal(cos, np.cos(phi))
    np.testing.assert_array_equal(sin, np.sin(phi))
    assert not np.array_equal(phi, rr.phases(cfg, pos, 100))  # the length changes the table
    far = np.array([0, 5, LONG - 1])
    np.testing.assert_array_equal(rr.cos_sin(cfg, far)[0], np.cos(rr.phases(cfg, far, LONG)))  # max(pos) + 1


def test_inverse_rotary_uses_seq_len():
    """Rotate and un-rotate at an explicit ``seq_len`` longer than the positions imply.

    Each rotation is a two-term sum of products with float64 cos/sin (each <= 1 ulp off): per
    element <= 4 eps * max|x| per rotation, 8 eps * max|x| for the round trip (attention factor 1)."""
    # kills rrope_core.rotation.x_inverse_rotary__mutmut_5 (seq_len None: un-rotates at max(pos) + 1 = 8)
    cfg = _dynamic(False)
    x = np.random.default_rng(0).standard_normal((8, 16))
    pos = np.arange(8)
    back = rr.inverse_rotary(rr.apply_rotary(x, pos, cfg, LONG), pos, cfg, LONG)
    assert np.abs(back - x).max() <= 8 * EPS64 * np.abs(x).max()


# --- scaling ------------------------------------------------------------------------------------


def test_methods_without_an_attention_factor_have_one():
    # kills rrope_core.scaling.xǁScalingǁattention_factor__mutmut_1 (the base class returns 2.0)
    for scaling in (Linear(2.0), NTK(2.0), DynamicNTK(2.0, 64), Llama3(8.0, 8192)):
        assert rr.attention_factor(rr.RopeConfig(head_dim=8, scaling=scaling)) == 1.0


def test_yarn_attention_factor():
    """``0.1 ln s + 1`` (1 for s <= 1); DeepSeek's ratio when mscale and mscale_all_dim are set."""
    # kills rrope_core.scaling.x__yarn_mscale__mutmut_4 (2.0 at s <= 1), _6 (1.0 up to s = 2) and
    # xǁYaRNǁattention_factor__mutmut_7 (mscale dropped from the numerator)
    assert YaRN(1.0, 64).attention_factor() == 1.0
    assert YaRN(1.5, 64).attention_factor() == 0.1 * math.log(1.5) + 1.0
    ln = math.log(4.0)
    assert YaRN(4.0, 64, mscale=2.0, mscale_all_dim=1.0).attention_factor() == (0.2 * ln + 1.0) / (0.1 * ln + 1.0)


def test_longrope_attention_factor():
    """``sqrt(1 + ln(factor)/ln(L0))`` for factor > 1, else 1 (factor defaults to 1).

    factor 8, L0 4096: ln 8 / ln 4096 = 1/4 up to 3 roundings, sqrt halves the relative error: the
    result is within 2 eps of sqrt(1.25) (each rounding <= eps/2 relative)."""
    # kills rrope_core.scaling.xǁLongRoPEǁattention_factor__mutmut_4, _5, _8, _9, _11, _12, _13
    short = (1.0, 1.0)
    got = LongRoPE(short, short, 4096, factor=8.0).attention_factor()
    assert abs(got - math.sqrt(1.25)) <= 2 * EPS64 * math.sqrt(1.25), got
    assert LongRoPE(short, short, 4096).attention_factor() == 1.0
    assert LongRoPE(short, short, 4096, factor=0.5).attention_factor() == 1.0
    assert LongRoPE(short, short, 4096, factor=1.5).attention_factor() > 1.0
    assert LongRoPE(short, short, 4096, attention_factor=2.0).attention_factor() == 2.0


def _llama3_by_the_docstring(s: Llama3, base: float, dim: int) -> np.ndarray:
    """Llama3's formula, one pair at a time in plain Python, from its docstring."""
    out = []
    for i in range(dim // 2):
        theta = base ** (-(2 * i) / dim)
        lam = 2 * math.pi / theta
        if lam < s.original_max_position / s.high_freq_factor:
            out.append(theta)
        elif lam > s.original_max_position / s.low_freq_factor:
            out.append(theta / s.factor)
        else:
            r = (s.original_max_position / lam - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor)
            out.append((1 - r) * theta / s.factor + r * theta)
    return np.array(out)


def test_llama3_bands_with_low_freq_factor_not_one():
    """low 2, high 8 (not Llama 3.1's 1 and 4): the bands' edges are L0/low and L0/high.

    Both sides evaluate the same operations per pair in float64 except ``base**(-2i/d)``
    (np.power vs float ** float, each <= 1 ulp): relative error <= 4 eps per pair."""
    # kills rrope_core.scaling.xǁLlama3ǁinv_freq__mutmut_19 (wavelen > L0 * low)
    s = Llama3(8.0, 8192, low_freq_factor=2.0, high_freq_factor=8.0)
    want = _llama3_by_the_docstring(s, 500000.0, 128)
    got = s.inv_freq(500000.0, 128)
    np.testing.assert_allclose(got, want, rtol=4 * EPS64, atol=0)
    lam = 2 * np.pi / default_inv_freq(500000.0, 128)
    assert np.any((lam > 8192 / 2) & (lam < 8192 * 2))  # pairs the mutant would leave unscaled


def test_llama3_at_the_low_band_edge_is_divided_by_factor():
    """Pair 0 has wavelength 2*pi; L0 = 1 and low = 1/(2*pi) put it exactly on the edge
    ``L0/low``, where the smooth band gives ``theta/factor`` (its weight is exactly 0)."""
    # kills rrope_core.scaling.xǁLlama3ǁinv_freq__mutmut_18 (>= at the edge: theta/factor**2) and
    # _39 (>= in `medium`: theta)
    low = 1 / (2 * math.pi)
    assert 1 / low == 2 * math.pi  # the edge is hit exactly in float64
    s = Llama3(8.0, 1, low_freq_factor=low, high_freq_factor=1.0)
    assert s.inv_freq(10000.0, 8)[0] == 1.0 / 8.0


def test_yarn_correction_range_is_clamped_to_the_pairs():
    """``max(low, 0), min(high, d-1)``: L0 = 64 gives c(32) < 0; base 10, L0 = 10**6 gives c(1) > 7."""
    # kills rrope_core.scaling.xǁYaRNǁcorrection_range__mutmut_21 (max(low, 1)), _26 (d+1), _27 (d-2)
    assert YaRN(4.0, 64).correction_range(10000.0, 8) == (0, 2)
    assert YaRN(4.0, 10**6).correction_range(10.0, 8)[1] == 7


def test_yarn_zero_width_ramp():
    """``low == high``: transformers' guard ``high += 0.001`` makes the ramp a step at ``low``."""
    # kills rrope_core.scaling.xǁYaRNǁinv_freq__mutmut_13 (high -= 0.001), _14 (+= 1.001) via (0, 0)
    # and _12 (high = 0.001) via (7, 7)
    theta8 = default_inv_freq(10000.0, 8)
    yarn = YaRN(4.0, 6)
    assert yarn.correction_range(10000.0, 8) == (0, 0)
    np.testing.assert_array_equal(yarn.inv_freq(10000.0, 8), theta8 * np.array([1.0, 0.25, 0.25, 0.25]))
    yarn = YaRN(4.0, 14070)
    assert yarn.correction_range(10.0, 8) == (7, 7)
    np.testing.assert_array_equal(yarn.inv_freq(10.0, 8), default_inv_freq(10.0, 8))


def test_hf_params():
    """The keys of a transformers ``rope_parameters`` block, as ``RopeConfig.to_hf`` writes them."""
    # kills rrope_core.scaling.xǁLinearǁhf_params__mutmut_1, _2; xǁDynamicNTKǁhf_params__mutmut_1, _2;
    # xǁYaRNǁhf_params__mutmut_10, _11, _19 .. _22; xǁLongRoPEǁhf_params__mutmut_8 .. _20
    assert Linear(2.0).hf_params() == {"factor": 2.0}
    assert DynamicNTK(2.0, 64).hf_params() == {"factor": 2.0}
    assert YaRN(4.0, 64, attention_factor=1.5, truncate=False).hf_params() == {
        "factor": 4.0,
        "original_max_position_embeddings": 64,
        "beta_fast": 32.0,
        "beta_slow": 1.0,
        "attention_factor": 1.5,
        "truncate": False,
    }
    short = [1.0, 2.0]
    base = {"short_factor": short, "long_factor": short, "original_max_position_embeddings": 64}
    assert LongRoPE(short, short, 64).hf_params() == {**base, "factor": 1.0}
    assert LongRoPE(short, short, 64, attention_factor=1.5, factor=4.0).hf_params() == {
        **base,
        "attention_factor": 1.5,
        "factor": 4.0,
    }


def test_scaling_parameters_are_stored():
    """Given values are kept, under their own field; YaRN's defaults are transformers' (32, 1, True)."""
    # kills rrope_core.scaling.xǁYaRNǁ__init____mutmut_1 (beta_fast default 33), _44, _45, _65, _66,
    # _153, _154 (stored under another name); xǁLongRoPEǁ__init____mutmut_49, _53, _54, _56
    yarn = YaRN(4.0, 64)
    assert (yarn.beta_fast, yarn.beta_slow, yarn.truncate) == (32.0, 1.0, True)
    yarn = YaRN(4.0, 64, beta_fast=16.0, beta_slow=2.0, truncate=False)
    assert (yarn.beta_fast, yarn.beta_slow, yarn.truncate) == (16.0, 2.0, False)
    assert LongRoPE((1.0,), (1.0,), 64, attention_factor=1.5).attention_factor_ == 1.5


def test_longrope_small_original_length_is_refused_only_with_a_default_factor_above_one():
    # kills rrope_core.scaling.xǁLongRoPEǁ__init____mutmut_93 (factor None read as 2), _94 (>= 1),
    # _96 (L0 <= 2), _97 (L0 < 3)
    LongRoPE((1.0,), (1.0,), 1)
    LongRoPE((1.0,), (1.0,), 1, factor=1.0)
    LongRoPE((1.0,), (1.0,), 2, factor=2.0)
    with pytest.raises(rr.RopeConfigError):
        LongRoPE((1.0,), (1.0,), 1, factor=2.0)


def test_yarn_warns_only_when_beta_fast_is_below_beta_slow():
    # kills rrope_core.scaling.xǁYaRNǁ__init____mutmut_80 (<=), _81, _82, _84 .. _88 (message, category)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        YaRN(4.0, 64, beta_fast=2.0, beta_slow=2.0)
    msg = (
        "YaRN.beta_fast=1.0 < beta_slow=2.0: beta_fast should be the larger "
        "(rotations per original context of the pairs left unscaled)"
    )
    with pytest.warns(rr.RopeWarning) as record:
        YaRN(4.0, 64, beta_fast=1.0, beta_slow=2.0)
    assert [str(w.message) for w in record] == [msg]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Llama3(0.5, 8192), "Llama3.factor=0.5 is invalid: must be >= 1"),
        (lambda: Llama3(8.0, 0), "Llama3.original_max_position=0 is invalid: must be a positive integer"),
        (lambda: Llama3(8.0, 8192, low_freq_factor=0.0), "Llama3.low_freq_factor=0.0 is invalid: must be > 0"),
        (lambda: Llama3(8.0, 8192, high_freq_factor=0.0), "Llama3.high_freq_factor=0.0 is invalid: must be > 0"),
        (lambda: Llama3(8.0, 8192, 2.0, 2.0), "Llama3.high_freq_factor=2.0 is invalid: must be > low_freq_factor=2.0"),
        (
            lambda: LongRoPE((1.0,), (np.nan,), 8),
            "LongRoPE.long_factor[0]=nan is invalid: must be a finite real number",
        ),
        (
            lambda: LongRoPE((1.0,), (1.0,), 0),
            "LongRoPE.original_max_position=0 is invalid: must be a positive integer",
        ),
        (
            lambda: LongRoPE((1.0,), (1.0,), 8, attention_factor=0.0),
            "LongRoPE.attention_factor=0.0 is invalid: must be > 0",
        ),
        (lambda: LongRoPE((1.0,), (1.0,), 8, factor=0.0), "LongRoPE.factor=0.0 is invalid: must be > 0"),
        (
            lambda: LongRoPE((1.0,), (1.0,), 1, factor=2.0),
            "LongRoPE.original_max_position=1 is invalid: must be >= 2 when factor > 1 "
            "(the default attention factor divides by its log)",
        ),
        (
            lambda: LongRoPE((1.0,), (1.0, 1.0), 8),
            "LongRoPE.long_factor='<2 values>' is invalid: must have as many values as short_factor (1)",
        ),
        (
            lambda: rr.RopeConfig(head_dim=8, scaling=LongRoPE((1.0,) * 3, (1.0,) * 3, 64)),
            "LongRoPE.short_factor='<3 values>' is invalid: must have rotary_dim//2 = 4 values",
        ),
        (lambda: YaRN(4.0, 64, attention_factor=0.0), "YaRN.attention_factor=0.0 is invalid: must be > 0"),
        (lambda: YaRN(4.0, 64, mscale=-1.0), "YaRN.mscale=-1.0 is invalid: must be >= 0"),
        (lambda: YaRN(4.0, 64, mscale_all_dim=-1.0), "YaRN.mscale_all_dim=-1.0 is invalid: must be >= 0"),
        (lambda: YaRN(4.0, 64, beta_fast=0.0), "YaRN.beta_fast=0.0 is invalid: must be > 0"),
        (
            lambda: rr.RopeConfig(head_dim=2, scaling=NTK(2.0)),
            "rotary_dim=2 is invalid: must be >= 4 for NTK (its base is scaled by factor^(d/(d-2)))",
        ),
        (
            lambda: rr.RopeConfig(head_dim=2, scaling=DynamicNTK(2.0, 64)),
            "rotary_dim=2 is invalid: must be >= 4 for DynamicNTK (its base is scaled by factor^(d/(d-2)))",
        ),
        (
            lambda: NTK(2.0).scaled_base(10000.0, 2),
            "rotary_dim=2 is invalid: must be >= 4 for NTK (its base is scaled by factor^(d/(d-2)))",
        ),
        (
            lambda: DynamicNTK(2.0, 64).inv_freq(10000.0, 2),
            "rotary_dim=2 is invalid: must be >= 4 for DynamicNTK (its base is scaled by factor^(d/(d-2)))",
        ),
    ],
)
def test_scaling_errors_name_field_value_and_rule(make, message):
    """Messages name the field, the value received and what is allowed (errors.py)."""
    # kills the message, bound and strictness mutants of rrope_core.scaling: xǁLlama3ǁ__post_init__
    # _12, _15, _28, _32 .. _34, _43, _45, _46, _49 .. _53, _55, _64, _66, _67, _70 .. _74, _76, _78,
    # _80; xǁLongRoPEǁ__init__ _25, _29 .. _31, _40, _44 .. _46, _55, _57, _58, _62 .. _65, _67, _76,
    # _78, _79, _83 .. _86, _88, _99, _107, _111; xǁLongRoPEǁcheck_dim _5, _13, _14; xǁYaRNǁ__init__
    # _48, _49, _52, _53, _58, _101, _105, _110, _121, _137, _139, _143 .. _145; x__ntk_exponent _4;
    # xǁNTKǁcheck_dim _2, _5, _6; xǁDynamicNTKǁcheck_dim _2, _5 .. _7; xǁNTKǁscaled_base _4, _7, _8;
    # xǁDynamicNTKǁinv_freq _20, _23 .. _25
    with pytest.raises(rr.RopeConfigError) as info:
        make()
    assert str(info.value) == message


# --- config -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"scaling": "linear"},
            "scaling='linear' is invalid: must be None or one of Linear, NTK, DynamicNTK, YaRN, Llama3, LongRoPE",
        ),
        ({"layout": "bad"}, "layout='bad' is invalid: must be one of ('half', 'interleaved')"),
        ({"head_dim": 7}, "head_dim=7 is invalid: must be even (features are rotated in pairs)"),
        ({"head_dim": 8, "rotary_dim": 3}, "rotary_dim=3 is invalid: must be even (features are rotated in pairs)"),
        (
            {"head_dim": 4, "scaling": LongRoPE((1.0, 1.0), (0.05, 1.0), 64), "resonance": True},
            "resonance=True is invalid: must be False when a wavelength is <= 0.5 (it would round to period 0); "
            "the shortest is 0.314159",
        ),
    ],
)
def test_config_errors_name_field_value_and_rule(kwargs, message):
    """Messages name the field, the value received and what is allowed (errors.py)."""
    # kills rrope_core.config.xǁRopeConfigǁ__post_init____mutmut_21, _28, _43, _50, _101, _108, _109,
    # _127 (value or message); the last case also xǁRopeConfigǁ_check_roundable__mutmut_2, _3, _11, _13
    # (LongRoPE's long factors, used past L0, not checked) and _19, _26 (value in the message)
    with pytest.raises(rr.RopeConfigError) as info:
        rr.RopeConfig(**kwargs)
    assert str(info.value) == message


def test_resonance_accepts_a_shortest_wavelength_that_rounds_to_one():
    """``rint(shortest) >= 1`` is the rule: wavelength 1 (theta = 2*pi) is period 1."""
    # kills rrope_core.config.xǁRopeConfigǁ_check_roundable__mutmut_8 (2/pi), _16 (> 1), _17 (>= 2)
    w = 1 / (2 * math.pi)  # a LongRoPE factor that turns theta_0 = 1 into 2*pi
    cfg = rr.RopeConfig(head_dim=4, scaling=LongRoPE((w, 1.0), (w, 1.0), 64), resonance=True)
    assert rr.integer_wavelengths(cfg)[0] == 1


def test_config_fields_are_plain_python_and_the_fingerprint_is_sorted_json():
    """head_dim and base are normalised to int and float; ``fingerprint`` is ``to_dict`` as JSON with
    sorted keys (stable across key order), and tells configs apart."""
    # kills rrope_core.config.xǁRopeConfigǁ__post_init____mutmut_67, _68 (head_dim left np.int64),
    # _83, _84 (base left int), _138, _142 .. _145, _147, _148 (fingerprint)
    cfg = rr.RopeConfig(head_dim=np.int64(8), base=10000)
    assert type(cfg.head_dim) is int and type(cfg.base) is float
    assert cfg.fingerprint == json.dumps(cfg.to_dict(), sort_keys=True)
    assert list(json.loads(cfg.fingerprint)) == sorted(cfg.to_dict())
    assert cfg.fingerprint != rr.RopeConfig(head_dim=8, base=500000.0).fingerprint


# --- hf (transformers config blocks, without transformers) --------------------------------------

hf = importlib.import_module("rrope_core.hf")

ROUND_TRIP = [
    rr.RopeConfig(head_dim=8),
    rr.RopeConfig(head_dim=64, rotary_dim=32, base=500000.0, scaling=Llama3(8.0, 8192), resonance=True),
    rr.RopeConfig(head_dim=16, scaling=Linear(2.0), resonance=True),
    rr.RopeConfig(head_dim=16, scaling=DynamicNTK(2.0, 64)),
    rr.RopeConfig(
        head_dim=16,
        scaling=YaRN(4.0, 64, beta_fast=16.0, beta_slow=2.0, mscale=1.0, mscale_all_dim=0.5, truncate=False),
    ),
    rr.RopeConfig(head_dim=16, scaling=YaRN(4.0, 64, attention_factor=1.5)),
    rr.RopeConfig(head_dim=4, scaling=LongRoPE((1.0, 2.0), (3.0, 4.0), 64, attention_factor=1.2, factor=4.0)),
    rr.RopeConfig(head_dim=12, rotary_dim=8, base=1000.0),
    rr.RopeConfig(head_dim=8, resonance=True),  # rope_type "resonance" (base type default)
    rr.RopeConfig(head_dim=44, rotary_dim=30),  # int(44 * (30/44)) == 29: prf needs the ulp nudge
]


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("cfg", ROUND_TRIP, ids=[f"cfg{i}" for i in range(len(ROUND_TRIP))])
def test_hf_round_trip(cfg, version):
    """``from_hf(to_hf(cfg))`` is ``cfg`` for every scaling, resonance, partial rotary, v4 and v5."""
    # kills survivors of rrope_core.hf.x_config_to_hf, x_config_from_hf (the per-type readers),
    # x__partial_rotary_factor, x__rope_block and x__original_length that change what is read back
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a written block has no unknown keys
        assert rr.RopeConfig.from_hf(cfg.to_hf(version)) == cfg


def test_config_to_hf_keys():
    """The exact keys written: v5 rope_parameters, v4 rope_theta + rope_scaling (null for default)."""
    # kills rrope_core.hf.x_config_to_hf key-name and value mutants
    cfg = ROUND_TRIP[1]
    params = {"factor": 8.0, "original_max_position_embeddings": 8192, "low_freq_factor": 1.0, "high_freq_factor": 4.0}
    assert cfg.to_hf(5) == {
        "head_dim": 64,
        "rope_parameters": {
            "rope_type": "resonance_llama3",
            "rope_theta": 500000.0,
            **params,
            "partial_rotary_factor": 0.5,
        },
    }
    assert cfg.to_hf(4) == {
        "head_dim": 64,
        "rope_theta": 500000.0,
        "rope_scaling": {"rope_type": "resonance_llama3", **params},
        "partial_rotary_factor": 0.5,
    }
    assert rr.RopeConfig(head_dim=8).to_hf(4) == {"head_dim": 8, "rope_theta": 10000.0, "rope_scaling": None}
    assert hf.config_to_hf(cfg) == cfg.to_hf(5)  # kills x_config_to_hf__mutmut_1 (default version 6)
    dyn = rr.RopeConfig(head_dim=8, scaling=DynamicNTK(2.0, 64)).to_hf(5)
    assert dyn == {
        "head_dim": 8,
        "max_position_embeddings": 64,
        "rope_parameters": {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0},
    }
    ntk = rr.RopeConfig(head_dim=8, scaling=NTK(2.0))
    assert ntk.to_hf(5) == {
        "head_dim": 8,
        "rope_parameters": {"rope_type": "default", "rope_theta": ntk.scaling.scaled_base(10000.0, 8)},
    }


def test_config_from_hf_reads_transformers_spellings():
    """v4 ``type``; head_dim from hidden_size / heads; DeepSeek's qk_rope_head_dim and rope_interleave;
    YaRN's factor from max_position_embeddings / original; a bare rope block."""
    # kills survivors of rrope_core.hf.x__head_dim, x_config_from_hf, x__rope_block, x__original_length
    yarn = rr.RopeConfig.from_hf(
        {
            "hidden_size": 64,
            "num_attention_heads": 4,
            "max_position_embeddings": 4096,
            "rope_scaling": {"type": "yarn", "original_max_position_embeddings": 1024},
        }
    )
    assert yarn == rr.RopeConfig(head_dim=16, scaling=YaRN(4.0, 1024))
    deepseek = rr.RopeConfig.from_hf(
        {"head_dim": 64, "qk_rope_head_dim": 16, "rope_interleave": True, "rope_theta": 50.0}
    )
    assert deepseek == rr.RopeConfig(head_dim=16, base=50.0, layout="interleaved")
    bare = rr.RopeConfig.from_hf({"head_dim": 8, "rope_type": "linear", "factor": 2.0, "rope_theta": 20.0})
    assert bare == rr.RopeConfig(head_dim=8, base=20.0, scaling=Linear(2.0))
    top = {"head_dim": 8, "original_max_position_embeddings": 32, "max_position_embeddings": 256}
    longrope = rr.RopeConfig.from_hf(
        {**top, "rope_scaling": {"type": "longrope", "short_factor": [1.0] * 4, "long_factor": [2.0] * 4}}
    )
    assert longrope.scaling == LongRoPE((1.0,) * 4, (2.0,) * 4, 32, factor=8.0)


_L3 = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
_LR = {"short_factor": [1.0, 1.0], "long_factor": [1.0, 1.0], "original_max_position_embeddings": 64}


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ([1], "block='list' is invalid: must be a mapping (config.json contents) or a transformers config"),
        (
            {"head_dim": 8, "rope_scaling": {"type": "linear"}},
            "factor=None is invalid: is required for rope_type='linear'",
        ),
        (
            {
                "head_dim": 8,
                "rope_scaling": {"type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0},
            },
            "original_max_position_embeddings=None is invalid: is required for rope_type='llama3'",
        ),
        (
            {"head_dim": 8, "rope_scaling": {"type": "dynamic", "factor": 2.0}},
            "max_position_embeddings=None is invalid: is required for rope_type='dynamic'",
        ),
        (
            {"head_dim": 8, "rope_scaling": {"type": "yarn", "original_max_position_embeddings": 64}},
            "factor=None is invalid: is required for rope_type='yarn' (or max_position_embeddings)",
        ),
        (
            {"head_dim": 8, "partial_rotary_factor": 1.5},
            "partial_rotary_factor=1.5 is invalid: must be a number in (0, 1]",
        ),
        ({"rope_theta": 1.0}, "head_dim=None is invalid: is required (or hidden_size and num_attention_heads)"),
        ({"head_dim": 8.0}, "head_dim=8.0 is invalid: must be a positive integer"),
        ({"head_dim": 8, "rope_scaling": 3}, "rope_scaling=3 is invalid: must be a mapping or null"),
        (
            {"head_dim": 8, "partial_rotary_factor": 0.0},
            "partial_rotary_factor=0.0 is invalid: must be a number in (0, 1]",
        ),
        (
            {"head_dim": 8, "partial_rotary_factor": "1"},
            "partial_rotary_factor='1' is invalid: must be a number in (0, 1]",
        ),
        ({"num_attention_heads": 4}, "head_dim=None is invalid: is required (or hidden_size and num_attention_heads)"),
        (
            {"head_dim": 8, "max_position_embeddings": 64, "rope_scaling": {"type": "dynamic"}},
            "factor=None is invalid: is required for rope_type='dynamic'",
        ),
        (
            {"head_dim": 8, "rope_scaling": {"type": "llama3", **_L3, "factor": None}},
            "factor=None is invalid: is required for rope_type='llama3'",
        ),
        (
            {"head_dim": 8, "rope_scaling": {"type": "llama3", **_L3, "low_freq_factor": None}},
            "low_freq_factor=None is invalid: is required for rope_type='llama3'",
        ),
        (
            {"head_dim": 8, "rope_scaling": {"type": "llama3", **_L3, "high_freq_factor": None}},
            "high_freq_factor=None is invalid: is required for rope_type='llama3'",
        ),
        (
            {"head_dim": 8, "rope_scaling": {"type": "yarn", "factor": 2.0}},
            "original_max_position_embeddings=None is invalid: is required for rope_type='yarn'",
        ),
        (
            {"head_dim": 4, "rope_scaling": {"type": "longrope", **_LR, "short_factor": None}},
            "short_factor=None is invalid: is required for rope_type='longrope'",
        ),
        (
            {"head_dim": 4, "rope_scaling": {"type": "longrope", **_LR, "long_factor": None}},
            "long_factor=None is invalid: is required for rope_type='longrope'",
        ),
        (
            {"head_dim": 4, "rope_scaling": {"type": "longrope", **_LR, "original_max_position_embeddings": None}},
            "original_max_position_embeddings=None is invalid: is required for rope_type='longrope'",
        ),
        (
            {
                "head_dim": 8,
                "rope_parameters": {"full_attention": {"rope_type": "default"}, "sliding": {"rope_type": "default"}},
            },
            "rope_parameters=['full_attention', 'sliding'] is invalid: per-layer-type rope_parameters are not one "
            "config: pass one of the inner blocks (with head_dim)",
        ),
    ],
)
def test_config_from_hf_errors_name_field_value_and_rule(block, message):
    """Messages name the field, the value received and what is allowed (errors.py)."""
    # kills the message mutants of rrope_core.hf.x__as_mapping, x__head_dim, x__rope_block, x_config_from_hf
    # (among them x_config_from_hf__mutmut_83, _87, _165, _177, _253, _267, _275, _287, _313, _321,
    # x__head_dim__mutmut_20)
    with pytest.raises(rr.RopeConfigError) as info:
        rr.RopeConfig.from_hf(block)
    assert str(info.value) == message


def test_config_from_hf_warnings():
    """Unknown keys, and rope_scaling given next to a different rope_parameters (rope_scaling wins)."""
    # kills the warning mutants of rrope_core.hf.x_config_from_hf, x__rope_block and x_unknown_keys
    with pytest.warns(rr.RopeWarning) as record:
        cfg = rr.RopeConfig.from_hf({"head_dim": 8, "rope_scaling": {"type": "linear", "factor": 2.0, "beta_fsat": 1}})
    assert cfg.scaling == Linear(2.0)
    assert [str(w.message) for w in record] == [
        "rope block of rope_type='linear' has keys it does not read: ['beta_fsat'] "
        "(it reads ['factor', 'partial_rotary_factor', 'rope_theta', 'rope_type', 'type'])"
    ]
    with pytest.warns(rr.RopeWarning) as record:
        cfg = rr.RopeConfig.from_hf(
            {
                "head_dim": 8,
                "rope_scaling": {"type": "linear", "factor": 2.0},
                "rope_parameters": {"rope_type": "default"},
            }
        )
    assert cfg.scaling == Linear(2.0)
    assert [str(w.message) for w in record] == [
        "both rope_scaling={'type': 'linear', 'factor': 2.0} and rope_parameters={'rope_type': 'default'} are given: "
        "rope_scaling is used, as transformers does; delete the one you do not mean"
    ]


@pytest.mark.parametrize(
    ("cfg", "version", "message"),
    [
        (rr.RopeConfig(head_dim=8), 3, "version=3 is invalid: must be 4 (rope_scaling) or 5 (rope_parameters)"),
        (
            rr.RopeConfig(head_dim=8, layout="interleaved"),
            5,
            "cfg.layout='interleaved' is invalid: transformers configs describe the 'half' layout only",
        ),
    ],
)
def test_config_to_hf_errors_name_field_value_and_rule(cfg, version, message):
    # kills rrope_core.hf.x_config_to_hf__mutmut_6, _7, _13, _14, _19, _20, _26, _27 (value or message)
    with pytest.raises(rr.RopeConfigError) as info:
        cfg.to_hf(version)
    assert str(info.value) == message


def test_config_from_hf_reads_an_object_with_to_dict():
    """A transformers ``PretrainedConfig`` is read through its ``to_dict()``."""
    # kills rrope_core.hf.x__as_mapping__mutmut_2, _6 .. _9

    class Config:
        def to_dict(self):
            return {"head_dim": 8, "rope_theta": 20.0}

    assert rr.RopeConfig.from_hf(Config()) == rr.RopeConfig(head_dim=8, base=20.0)


def test_an_empty_rope_parameters_block_is_the_default_block():
    """``rope_parameters: {}`` is no scaling; rope_theta then comes from the top level."""
    # kills rrope_core.hf.x__rope_block__mutmut_29 (`params and A or B`), _30 (`params or ...`) and _37
    # (`nested or all(...)`): each makes {} look per-layer (all() of no values is True) and raise.
    # Expected by hand: no rope type -> "default", no scaling; base = the top-level rope_theta.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg = rr.RopeConfig.from_hf({"head_dim": 8, "rope_theta": 500000.0, "rope_parameters": {}})
    assert cfg == rr.RopeConfig(head_dim=8, base=500000.0)


@pytest.mark.parametrize("spelling", ["rope_type", "type"])
def test_the_rope_scaling_type_wins_over_a_top_level_rope_type(spelling):
    """A config with its own rope_scaling is not a bare rope block, even with a top-level rope_type."""
    # kills rrope_core.hf.x__rope_block__mutmut_69, _70 ("rope_type" key renamed) with spelling
    # "rope_type", and _72, _73 ("type" renamed) with "type": the mutants take the whole config as the
    # block, so the top-level "default" would win and the scaling would be lost.
    cfg = rr.RopeConfig.from_hf(
        {"head_dim": 8, "rope_type": "default", "rope_scaling": {spelling: "linear", "factor": 2.0}}
    )
    assert cfg == rr.RopeConfig(head_dim=8, scaling=Linear(2.0))


def test_dynamic_reads_its_original_length_from_the_rope_block_without_max_position_embeddings():
    """Dynamic NTK: max_position_embeddings first, else the rope block's original_max_position_embeddings."""
    # kills rrope_core.hf.x_config_from_hf__mutmut_145 (always max_position_embeddings, None here),
    # _147, _148, _149 (another key read from the rope block): all four raise "is required" instead.
    rope = {"type": "dynamic", "factor": 2.0, "original_max_position_embeddings": 32}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # original_max_position_embeddings is a CONFIG_KEY: no warning
        assert rr.RopeConfig.from_hf({"head_dim": 8, "rope_scaling": rope}).scaling == DynamicNTK(2.0, 32)
        both = {"head_dim": 8, "max_position_embeddings": 64, "rope_scaling": rope}
        assert rr.RopeConfig.from_hf(both).scaling == DynamicNTK(2.0, 64)  # max_position_embeddings wins


def test_a_bare_rope_block_with_config_keys_does_not_warn():
    """A bare rope block (the whole config) carries head_dim etc.: those are not unknown rope keys."""
    # kills rrope_core.hf.x_config_from_hf__mutmut_35 (`ignore=CONFIG_KEYS` dropped: it would warn
    # about head_dim, hidden_size, max_position_embeddings and num_attention_heads)
    block = {
        "head_dim": 8,
        "hidden_size": 32,
        "num_attention_heads": 4,
        "max_position_embeddings": 64,
        "rope_type": "linear",
        "factor": 2.0,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rr.RopeConfig.from_hf(block) == rr.RopeConfig(head_dim=8, scaling=Linear(2.0))


def test_resonance_unknown_keys_warning_names_what_the_default_type_reads():
    """rope_type "resonance" is the default type: its warning lists the common keys only."""
    # kills rrope_core.hf.x__base_type__mutmut_1, _3, _4, _6, _7 ("resonance" no longer mapped to
    # "default"): the warning's ROPE_KEYS[_base_type("resonance")] then raises KeyError.
    with pytest.warns(rr.RopeWarning) as record:
        cfg = rr.RopeConfig.from_hf({"head_dim": 8, "rope_scaling": {"rope_type": "resonance", "factor": 2.0}})
    assert cfg == rr.RopeConfig(head_dim=8, resonance=True)
    assert [str(w.message) for w in record] == [
        "rope block of rope_type='resonance' has keys it does not read: ['factor'] "
        "(it reads ['partial_rotary_factor', 'rope_theta', 'rope_type', 'type'])"
    ]


def test_unknown_keys_of_a_type_it_does_not_know_are_all_but_the_common_keys():
    """``unknown_keys`` (public, used by the torch backend) reads only the common keys for a type
    outside ROPE_KEYS, rather than failing."""
    # kills rrope_core.hf.x_unknown_keys__mutmut_7, _9 (ROPE_KEYS.get(t, None) / .get(t): set(None)
    # raises TypeError). Expected by hand: {rope_type, rope_theta, factor, beta} - common - ignore.
    rope = {"rope_type": "bogus", "rope_theta": 1.0, "factor": 2.0, "beta": 1.0}
    assert hf.unknown_keys("bogus", rope) == ["beta", "factor"]
    assert hf.unknown_keys("bogus", rope, ignore=("beta",)) == ["factor"]


@pytest.mark.parametrize(
    ("block", "message"),
    [
        # x__head_dim__mutmut_29, _33, _34: the field named for a bad num_attention_heads
        (
            {"hidden_size": 64, "num_attention_heads": -4},
            "num_attention_heads=-4 is invalid: must be a positive integer",
        ),
        # x_config_from_hf__mutmut_102 (`bool and not int`: no check): "8" * 1.0 raises TypeError
        ({"head_dim": "8"}, "head_dim='8' is invalid: must be a positive integer"),
        # x__rope_block__mutmut_31, _32: a block with a rope_type key is one block, not per-layer
        (
            {"head_dim": 8, "rope_parameters": {"rope_type": {"rope_type": "default"}}},
            f"rope_type={{'rope_type': 'default'}} is invalid: must be one of {hf.HF_ROPE_TYPES}",
        ),
        # x__rope_block__mutmut_34, _35: a block with a rope_theta key is one block, not per-layer
        (
            {"head_dim": 8, "rope_parameters": {"rope_theta": {"full_attention": 1.0}}},
            "base={'full_attention': 1.0} is invalid: must be a finite real number",
        ),
    ],
)
def test_config_from_hf_errors_of_heads_head_dim_and_one_block(block, message):
    """More messages that name the field, the value received and what is allowed (errors.py)."""
    with pytest.raises(rr.RopeConfigError) as info:
        rr.RopeConfig.from_hf(block)
    assert str(info.value) == message


# --- analysis (feature gap) ---------------------------------------------------------------------

analysis = importlib.import_module("rrope_core.analysis")


def test_circular_distance_of_angles_more_than_a_turn_apart():
    # kills rrope_core.analysis.x_circular_distance__mutmut_9 (mod 3*pi: |0 - 7| = 7 < 3*pi is not
    # reduced, and min(7, 2*pi - 7) is negative). Expected by hand: 7 - 2*pi, exact in float64
    # (Sterbenz: 2*pi/2 <= 7 <= 2*(2*pi)), and below pi, so it is the distance.
    d = analysis.circular_distance(np.array([0.0, 7.0]), np.array([7.0, 0.0]))
    assert d.tolist() == [7.0 - 2 * np.pi] * 2


@pytest.mark.parametrize(
    ("L", "a", "turns_a", "b", "turns_b"),
    [(2, 1, 0, 1, 1), (3, 1, 0, 2, 1), (8, 7, 1, 6, 1), (26, 19, 3, 25, 4), (45, 44, 7, 25, 4), (200, 44, 7, 157, 25)],
)
def test_neighbours_of_zero_are_the_one_sided_best_approximations_of_two_pi(L, a, turns_a, b, turns_b):
    """theta = 1 rad: the angle of n is n mod 2*pi. The n in [1, L) just after 0 (a) and just before
    it (b) are the one-sided best approximations n/k of 2*pi: convergents 6/1, 19/3, 25/4, 44/7 and
    the intermediate fractions 7/1, 13/2, 69/11, 113/18, 157/25 (2*pi = [6; 3, 1, 1, 7, ...])."""
    # kills rrope_core.analysis.x__move__* mutants that stop Euclid's algorithm at another n or arc
    # (listed in docs/mutation.md); feature_gap hides them: a wrong plan falls back to the brute force.
    got_a, got_b, arc_a, arc_b = analysis._neighbours_of_zero(analysis._rope_phi(1.0), L)
    assert (got_a, got_b) == (a, b)
    # arcs: a - turns_a*2*pi and turns_b*2*pi - b, from reduce_phase (<= 2 ulp(pi) = 8.9e-16), then
    # mod 2*pi and 2*pi(float64) - angle (float64 2*pi off by < 2.5e-16, each rounding < 4.5e-16)
    assert abs(arc_a - float(a - turns_a * TWO_PI)) <= 2e-15
    assert abs(arc_b - float(turns_b * TWO_PI - b)) <= 2e-15


def _gap_by_the_definition(cfg, train_len, test_len):
    """max over OOD m of min over every seen n of the circular distance (no sorting, no search)."""
    phi = rr.phases(cfg, np.arange(test_len))
    seen, ood = phi[:train_len], phi[train_len:]
    return np.array([max(rr.circular_distance(o, seen[:, i]).min() for o in ood[:, i]) for i in range(cfg.n_pairs)])


@pytest.mark.parametrize(("train_len", "test_len"), [(3, 5), (65537, 65538)])
def test_gap_of_a_pair_whose_seen_angles_are_too_close_is_the_brute_force(train_len, test_len):
    """base 1e30, head_dim 4: pair 1 turns 1e-15 rad a position, below _MIN_ARC, so _brute_gap serves it."""
    # kills rrope_core.analysis.x__brute_gap__mutmut_53 (left neighbour at idx - 2: for L = 3, T = 5
    # the OOD angles 3e-15 and 4e-15 are nearest the seen 2e-15, giving 1e-15 and 2e-15, gap 2e-15;
    # the mutant measures from 1e-15: gap 3e-15) and _16 (the seen table's second chunk, L > 2**16,
    # filled from position 0: a shape error)
    cfg = rr.RopeConfig(head_dim=4, base=1e30)
    assert rr.inv_freq(cfg)[1] == 1e-15
    gap = rr.feature_gap(cfg, train_len, test_len)
    np.testing.assert_array_equal(gap, _gap_by_the_definition(cfg, train_len, test_len))
    want = (test_len - train_len) * 1e-15  # the last OOD angle's distance to (L - 1)*1e-15
    # rounding only: two angles m*theta <= test_len*theta, each within eps64/2 of that, and their
    # difference's own rounding: <= 2*eps64*test_len*theta, far below the mutant's 1e-15 step
    assert abs(gap[1] - want) <= 2 * np.finfo(np.float64).eps * test_len * 1e-15


def test_gap_when_an_arc_kind_has_exactly_one_search_step_of_starts():
    """head_dim 2 (theta = 1 rad), L = 66246, T = L + 1: the neighbours of 0 are a = 710 (710 - 113*2*pi
    = 6.0e-5) and b = 65653, so the first arc kind has L - a = 65536 = block * _CHUNK starts (block =
    T - L = 1): the k search is exactly one step."""
    # kills rrope_core.analysis.x__pair_gap__mutmut_65 (range stop k2 + 2: one more, empty, step whose
    # max() raises)
    cfg = rr.RopeConfig(head_dim=2)
    L = 66246
    a, b, _, _ = analysis._neighbours_of_zero(analysis._rope_phi(1.0), L)
    assert (a, b, L - a) == (710, 65653, analysis._CHUNK)
    np.testing.assert_array_equal(rr.feature_gap(cfg, L, L + 1), _gap_by_the_definition(cfg, L, L + 1))


def test_neighbours_of_zero_when_the_rounded_ratio_overshoots():
    """theta = float64(2*pi/11), L = 12: b walks to 10 (arc 2*pi - 10*theta, ~theta), then arc_a = theta
    exceeds it by 3e-16, so a tries 1 + 1*10 = 11, whose angle 11*theta is 2*pi within rounding: it
    lands on the far side of 0 (turn 6.283185307179586 >= arc_a), the overshoot. j drops to 0 and the
    plan is (1, 10, 0.0, arc_b): arc 0 marks a seen angle within rounding of 0 (brute force)."""
    # kills rrope_core.analysis.x__move__mutmut_24 (j += 1: tries position 21 >= L) and _26 (returns
    # arc 1.0 instead of 0.0); _23 (j = 1) loops for ever here (a timeout)
    theta = 2 * np.pi / 11
    a, b, arc_a, arc_b = analysis._neighbours_of_zero(analysis._rope_phi(theta), 12)
    assert (a, b, arc_a) == (1, 10, 0.0)
    assert abs(arc_b - float(TWO_PI - 10 * Fraction(theta))) <= 2e-15  # as the bound above


@pytest.mark.parametrize(("train_len", "test_len"), [(7, 8), (10, 11)])
def test_gap_of_theta_one_for_short_lengths(train_len, test_len):
    """theta = 1 rad. L = 7, T = 8: the OOD angle 7 - 2*pi = 0.717 lies between the seen 0 and 1, nearer
    1: gap 1 - (7 - 2*pi) = 2*pi - 6. L = 10, T = 11: 10 - 2*pi = 3.717 lies between the seen 3 and
    4, nearer 4: gap 4 - (10 - 2*pi) = 2*pi - 6 again; bit for bit as the definition measures it."""
    # kills rrope_core.analysis.x__pair_gap__mutmut_11 (first arc kind's starts from 1: misses the arc
    # after 0, gap 0.0 for L = 7) and _12 (starts up to L + a: an arc that is not one, for L = 10 the
    # gap 0.2831853071795867 instead of 0.28318530717958623)
    cfg = rr.RopeConfig(head_dim=2)
    gap = rr.feature_gap(cfg, train_len, test_len)
    np.testing.assert_array_equal(gap, _gap_by_the_definition(cfg, train_len, test_len))
    assert abs(gap[0] - float(TWO_PI - 6)) <= 4e-15  # two phases of <= 2 ulp(pi) error, and the subtraction


def test_feature_gap_refuses_bad_lengths_naming_them():
    """analysis.feature_gap's input errors name the argument, the value and the rule, as
    RopeInputError. Kills x_feature_gap__mutmut_2, _4, _7, _8, _9 (train_len), _11, _13, _16, _17,
    _18 (test_len), _21, _22, _25, _26, _27 (test_len <= train_len), and _31: test_len = 2**63 - 1,
    the last length whose positions are all int64, is allowed (a config whose every period fits in
    train_len answers at once: head_dim 2, one pair, theta = 1, period round(2*pi) = 6)."""
    cfg = rr.RopeConfig(head_dim=8, resonance=True)
    cases = [
        ((0, 10), r"^train_len=0 is invalid: must be a positive integer"),
        ((2.5, 10), r"^train_len=2\.5 is invalid: must be a positive integer"),
        ((10, 0), r"^test_len=0 is invalid: must be a positive integer"),
        ((10, True), r"^test_len=True is invalid: must be a positive integer"),
        ((10, 10), r"^test_len=10 is invalid: must be > train_len=10$"),
    ]
    for (train_len, test_len), message in cases:
        with pytest.raises(rr.RopeInputError, match=message):
            rr.feature_gap(cfg, train_len, test_len)
    tiny = rr.RopeConfig(head_dim=2, resonance=True)
    assert rr.integer_wavelengths(tiny).tolist() == [6]
    assert rr.feature_gap(tiny, 10, 2**63 - 1).tolist() == [0.0]  # 2**63: tests/test_limits.py


def test_feature_gap_follows_seq_len_and_the_float_exact_edge(monkeypatch):
    """feature_gap of a dynamic config without resonance uses the frequencies at ``seq_len`` (kills
    x_feature_gap__mutmut_71, _73: seq_len dropped); non-resonance lengths up to MAX_FLOAT_EXACT are
    allowed, one more refused, shown with the limit patched to 300 (kills _46, ``>=``)."""
    from rrope_core import analysis

    cfg = rr.RopeConfig(head_dim=16, scaling=rr.DynamicNTK(4.0, 64))
    at_1024, plain = rr.feature_gap(cfg, 64, 256, seq_len=1024), rr.feature_gap(cfg, 64, 256)
    assert not np.allclose(at_1024, plain)
    np.testing.assert_array_equal(at_1024, rr.feature_gap(cfg, 64, 256, seq_len=1024))
    monkeypatch.setattr(analysis, "MAX_FLOAT_EXACT", 300)
    assert rr.feature_gap(cfg, 64, 300).shape == (8,)
    with pytest.raises(rr.RopeInputError, match=r"^test_len=301 is invalid: must be <= 2\*\*53"):
        rr.feature_gap(cfg, 64, 301)
