"""Frequencies, resonance rounding, critical dimension: hand-checked values and properties."""

import math

import numpy as np
from hypothesis import given

import rrope_core as rr
from rrope_conformance.strategies import configs


def test_default_inv_freq_matches_roformer():
    cfg = rr.RopeConfig(head_dim=8, base=10000.0)
    np.testing.assert_array_equal(rr.inv_freq(cfg), [1.0, 0.1, 0.01, 0.001])
    np.testing.assert_allclose(rr.wavelengths(cfg), 2 * math.pi * np.array([1, 10, 100, 1000]), rtol=1e-15)


def test_resonance_rounds_each_wavelength_to_nearest_integer():
    cfg = rr.RopeConfig(head_dim=8, base=10000.0, resonance=True)
    # 2*pi*[1, 10, 100, 1000] = 6.28, 62.83, 628.3, 6283.2
    np.testing.assert_array_equal(rr.wavelengths(cfg), [6.0, 63.0, 628.0, 6283.0])
    np.testing.assert_array_equal(rr.integer_wavelengths(cfg), [6, 63, 628, 6283])
    np.testing.assert_allclose(rr.inv_freq(cfg), 2 * math.pi / np.array([6, 63, 628, 6283]), rtol=1e-16)


def test_critical_dim_counts_features_with_wavelength_up_to_train_len():
    cfg = rr.RopeConfig(head_dim=8, base=10000.0, resonance=True)  # wavelengths 6, 63, 628, 6283
    assert rr.critical_dim(cfg, 5) == 0
    assert rr.critical_dim(cfg, 63) == 4
    assert rr.critical_dim(cfg, 627) == 4
    assert rr.critical_dim(cfg, 628) == 6
    assert rr.critical_dim(cfg, 10**6) == 8


def test_critical_dim_agrees_with_liu_et_al_closed_form():
    # d_extra = 2 * ceil((d/2) * log_base(L / (2*pi))) (Liu et al. 2023) for plain RoPE, when
    # (d/2)*log_base(L/2pi) is not an integer.
    for d, base, train_len in [(128, 10000.0, 4096), (64, 10000.0, 512), (128, 500000.0, 8192)]:
        cfg = rr.RopeConfig(head_dim=d, base=base)
        closed = 2 * math.ceil((d / 2) * math.log(train_len / (2 * math.pi), base))
        assert rr.critical_dim(cfg, train_len) == closed


def test_scaling_hand_values():
    # Linear: theta / factor.
    np.testing.assert_allclose(
        rr.inv_freq(rr.RopeConfig(head_dim=4, base=100.0, scaling=rr.Linear(4.0))), [0.25, 0.025]
    )
    # NTK: base' = base * factor^(d/(d-2)); d=4: 100 * 4^2 = 1600 -> theta_1 = 1/40.
    np.testing.assert_allclose(rr.inv_freq(rr.RopeConfig(head_dim=4, base=100.0, scaling=rr.NTK(4.0))), [1.0, 1 / 40])
    # Dynamic NTK at seq_len 2*L0 with factor 2: base' = base * (2*2 - 1)^2 = 900 -> theta_1 = 1/30.
    dyn = rr.RopeConfig(head_dim=4, base=100.0, scaling=rr.DynamicNTK(2.0, 64))
    np.testing.assert_allclose(rr.inv_freq(dyn, seq_len=128), [1.0, 1 / 30])
    np.testing.assert_allclose(rr.inv_freq(dyn, seq_len=32), [1.0, 0.1])  # below L0: unscaled
    np.testing.assert_allclose(rr.inv_freq(dyn), [1.0, 0.1])
    # LongRoPE switches factors above the original length.
    lr = rr.RopeConfig(head_dim=4, base=100.0, scaling=rr.LongRoPE([1.0, 2.0], [4.0, 8.0], 64))
    np.testing.assert_allclose(rr.inv_freq(lr, seq_len=64), [1.0, 0.05])
    np.testing.assert_allclose(rr.inv_freq(lr, seq_len=65), [0.25, 0.0125])


def test_yarn_ramp_and_attention_factor():
    # d=128, base 1e4, L0=4096: c(32) = 128 ln(4096/(64 pi)) / (2 ln 1e4) = 20.94 -> low 20;
    # c(1) = 128 ln(4096/(2 pi)) / (2 ln 1e4) = 45.03 -> high 46.
    cfg = rr.RopeConfig(head_dim=128, scaling=rr.YaRN(16.0, 4096))
    assert cfg.scaling.correction_range(10000.0, 128) == (20, 46)
    theta = rr.inv_freq(rr.RopeConfig(head_dim=128))
    got = rr.inv_freq(cfg)
    np.testing.assert_allclose(got[:21], theta[:21], rtol=1e-15)  # extrapolated (ramp 0)
    np.testing.assert_allclose(got[46:], theta[46:] / 16, rtol=1e-15)  # interpolated (ramp 1)
    ramp = (33 - 20) / 26
    np.testing.assert_allclose(got[33], theta[33] / 16 * ramp + theta[33] * (1 - ramp), rtol=1e-15)
    assert math.isclose(rr.attention_factor(cfg), 0.1 * math.log(16) + 1, rel_tol=1e-15)
    ds = rr.RopeConfig(head_dim=64, scaling=rr.YaRN(40.0, 4096, mscale=1.0, mscale_all_dim=0.707))
    expected = (0.1 * math.log(40) + 1) / (0.1 * 0.707 * math.log(40) + 1)
    assert math.isclose(rr.attention_factor(ds), expected, rel_tol=1e-15)
    assert rr.attention_factor(rr.RopeConfig(scaling=rr.YaRN(16.0, 4096, attention_factor=1.5))) == 1.5


def test_llama3_bands():
    cfg = rr.RopeConfig(head_dim=128, base=500000.0, scaling=rr.Llama3(8.0, 8192, 1.0, 4.0))
    theta = rr.inv_freq(rr.RopeConfig(head_dim=128, base=500000.0))
    lam = 2 * math.pi / theta
    got = rr.inv_freq(cfg)
    high = lam < 8192 / 4
    low = lam > 8192 / 1
    np.testing.assert_array_equal(got[high], theta[high])
    np.testing.assert_allclose(got[low], theta[low] / 8, rtol=1e-15)
    mid = ~high & ~low
    s = (8192 / lam[mid] - 1) / 3
    np.testing.assert_allclose(got[mid], (1 - s) * theta[mid] / 8 + s * theta[mid], rtol=1e-15)


@given(configs())
def test_resonance_wavelengths_are_nearest_integers_of_the_scaled_ones(cfg):
    raw = 2 * np.pi / rr.scaled_inv_freq(cfg)
    res = rr.wavelengths(cfg.with_resonance(True))
    assert np.all(res == np.rint(raw)), f"wavelengths({cfg!r})"
    assert np.all(np.abs(res - raw) <= 0.5), f"wavelengths({cfg!r})"
    assert rr.inv_freq(cfg).shape == (cfg.rotary_dim // 2,)
    assert rr.inv_freq(cfg).dtype == np.float64
