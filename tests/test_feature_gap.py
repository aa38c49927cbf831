"""The paper's theorem, as it shows in feature_gap."""

import tracemalloc

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import rrope_core as rr
from rrope_conformance.strategies import configs


@given(
    configs(kinds=("none", "linear", "ntk", "yarn", "llama3"), max_head_dim=64),
    st.integers(8, 300),
    st.integers(1, 600),
)
def test_theorem_zero_gap_for_precritical_pairs_with_resonance(cfg, train_len, extra):
    res, plain = cfg.with_resonance(True), cfg.with_resonance(False)
    test_len = train_len + extra
    gap = rr.feature_gap(res, train_len, test_len)
    pre = rr.wavelengths(res) <= train_len
    assert np.all(gap[pre] == 0.0), f"feature_gap({res!r}, {train_len}, {test_len}) = {gap[pre]}"
    # Without resonance a pre-critical pair has a non-integer wavelength: OOD angles fall between
    # the ones seen in training. Positive wherever an OOD angle was never seen.
    gap_plain = rr.feature_gap(plain, train_len, test_len)
    lam = rr.wavelengths(plain)
    assert gap_plain.shape == (cfg.rotary_dim // 2,)
    assert np.all(gap_plain >= 0) and np.all(gap_plain <= np.pi)
    pre_plain = lam <= train_len
    assert np.all(gap_plain[pre_plain] > 0), f"feature_gap({plain!r}, {train_len}, {test_len}) = {gap_plain}"


def test_gap_example_from_the_paper_setting():
    # Llama-like head, train 64 test 256 (PosGen's lengths).
    cfg = rr.RopeConfig(head_dim=64)
    plain = rr.feature_gap(cfg, 64, 256)
    res = rr.feature_gap(cfg.with_resonance(True), 64, 256)
    n_pre = rr.critical_dim(cfg.with_resonance(True), 64) // 2
    assert n_pre > 0
    assert np.all(res[:n_pre] == 0) and np.all(plain[:n_pre] > 0)


def test_gap_brute_force_small():
    cfg = rr.RopeConfig(head_dim=6, base=50.0)
    gap = rr.feature_gap(cfg, 10, 25)
    phi = rr.phases(cfg, np.arange(25))
    for i in range(3):
        want = max(min(rr.circular_distance(phi[m, i], phi[n, i]) for n in range(10)) for m in range(10, 25))
        assert gap[i] == want


def brute_force_gap(cfg, train_len, test_len, seq_len=None):
    """Every OOD angle against its sorted neighbours among the seen ones (the definition, O(T) per pair)."""
    seen = np.sort(rr.phases(cfg, np.arange(train_len), seq_len), axis=0)
    ood = rr.phases(cfg, np.arange(train_len, test_len), seq_len)
    gap = []
    for i in range(cfg.n_pairs):
        idx = np.searchsorted(seen[:, i], ood[:, i])
        left, right = seen[(idx - 1) % train_len, i], seen[idx % train_len, i]
        gap.append(np.minimum(rr.circular_distance(ood[:, i], left), rr.circular_distance(ood[:, i], right)).max())
    return np.array(gap)


@settings(max_examples=150, deadline=None)
@given(
    configs(max_head_dim=32),
    st.integers(1, 3000),
    st.one_of(st.integers(1, 50), st.integers(1, 20000)),
    st.sampled_from([None, 100, 100000]),
)
def test_gap_equals_the_brute_force_bit_for_bit(cfg, train_len, extra, seq_len):
    """The three-gap search visits a few OOD positions per pair; it must find the brute force's value."""
    test_len = train_len + extra
    np.testing.assert_array_equal(
        rr.feature_gap(cfg, train_len, test_len, seq_len), brute_force_gap(cfg, train_len, test_len, seq_len)
    )


def test_gap_memory_does_not_grow_with_test_len_times_pairs():
    """128 pairs, L = 2**15, T = 2**22: one seen-angle table alone would be 32 MiB, one OOD chunk 64 MiB."""
    cfg = rr.RopeConfig(head_dim=256, base=500000.0)
    tracemalloc.start()
    try:
        gap = rr.feature_gap(cfg, 1 << 15, 1 << 22)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert gap.shape == (128,) and np.all(gap > 0)
    assert peak < 16 * 2**20, peak
