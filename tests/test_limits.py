"""Sizes that cannot fit are refused before any work, naming the argument, the value and the limit."""

from __future__ import annotations

import json
import os
import time
import tracemalloc

import numpy as np
import pytest

import rrope_core as rr
import rrope_core.commands.inspect  # noqa: F401  (imported here, not inside the measured calls)
from rrope_core import limits
from rrope_core.cli import main

#: What a refusal may cost: it comes before any table is built (the old code took minutes or GiB).
MAX_SECONDS, MAX_BYTES = 1.0, 2**20


def refused(call, cls=rr.RopeError) -> str:
    """The message of ``cls`` raised by ``call()``, checked to come within MAX_SECONDS and MAX_BYTES."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(cls) as info:
            call()
        elapsed, peak = time.perf_counter() - start, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < MAX_SECONDS and peak < MAX_BYTES, (elapsed, peak, str(info.value))
    return str(info.value)


def huge_positions(n: int) -> np.ndarray:
    """``n`` int64 positions that take 8 bytes (a broadcast view)."""
    return np.broadcast_to(np.zeros(1, np.int64), (n,))


@pytest.mark.parametrize("head_dim", [limits.MAX_HEAD_DIM + 2, 10**9, 10**30])
def test_config_refuses_head_dim_above_the_limit(head_dim):
    msg = refused(lambda: rr.RopeConfig(head_dim=head_dim), rr.RopeConfigError)
    assert msg.startswith(f"head_dim={head_dim} is invalid: must be <= {limits.MAX_HEAD_DIM}"), msg


def test_config_accepts_head_dim_at_the_limit():
    cfg = rr.RopeConfig(head_dim=limits.MAX_HEAD_DIM, resonance=True)  # builds its 2**19 frequencies
    assert rr.inv_freq(cfg).shape == (limits.MAX_HEAD_DIM // 2,)


def test_cli_inspect_refuses_huge_head_dim(capsys):
    assert refused(lambda: main(["inspect", "--head-dim", "1000000000"]), SystemExit) == "2"  # argparse's exit
    err = capsys.readouterr().err
    assert f"head_dim=1000000000 is invalid: must be <= {limits.MAX_HEAD_DIM}" in err, err


def test_cli_inspect_refuses_huge_head_dim_from_a_config_file(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"hidden_size": 2**40, "num_attention_heads": 1}))
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"has an invalid rope config: head_dim={2**40} is invalid: must be <= {limits.MAX_HEAD_DIM}" in err, err


@pytest.mark.parametrize("mode", [[], ["--json"]])
def test_cli_report_of_the_widest_config_fits_the_table_budget(capsys, mode):
    """Peak bytes per pair of `rrope inspect` (report, rows or JSON text), from 4 and 256 pairs."""

    def peak(head_dim: int) -> int:
        tracemalloc.start()
        try:
            assert main(["inspect", "--head-dim", str(head_dim), "--train-len", "64", "--test-len", "256", *mode]) == 0
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            capsys.readouterr()

    peak(8)  # first-call allocations (argparse, imports) are not per pair
    per_pair = (peak(512) - peak(8)) / (256 - 4)
    assert per_pair * (limits.MAX_HEAD_DIM // 2) <= limits.TABLE_BUDGET, per_pair


def test_physical_memory_is_read_on_posix():
    if not hasattr(os, "sysconf"):
        pytest.skip("os.sysconf is POSIX only: elsewhere tables are not checked against the memory")
    ram = limits.physical_memory()
    assert isinstance(ram, int) and ram >= 2**27, ram  # at least 128 MiB: a machine that runs Python


def test_tables_beyond_physical_memory_are_refused(monkeypatch):
    monkeypatch.setattr(limits, "physical_memory", lambda: 2**40)  # the same limit on every machine
    cfg = rr.RopeConfig(head_dim=128)
    n = 2**40  # 64 pairs x 8 B x 2**40 = 512 TiB per table
    msg = refused(lambda: rr.rotation.cos_sin(cfg, huge_positions(n)), rr.RopeInputError)
    assert msg.startswith(f"positions.shape=({n},) is invalid: cos and sin") and "physical memory" in msg, msg
    msg = refused(lambda: rr.phases(cfg, huge_positions(n)), rr.RopeInputError)
    assert msg.startswith(f"positions.shape=({n},) is invalid: a float64 phase table"), msg
    x = np.broadcast_to(np.zeros(128, np.float32), (2**50, 128))  # 2**59 bytes to write
    msg = refused(lambda: rr.rotation.apply_rotary(x, np.zeros(1, np.int64), cfg), rr.RopeInputError)
    assert msg.startswith(f"x.shape={x.shape} is invalid: the rotated copy of x"), msg


def test_table_limit_is_the_physical_memory(monkeypatch):
    """4 pairs x 8 B x 2 tables = 64 B per position: 15 positions fit in 1000 B, 16 do not."""
    monkeypatch.setattr(limits, "physical_memory", lambda: 1000)
    cfg = rr.RopeConfig(head_dim=8)
    assert rr.rotation.cos_sin(cfg, np.arange(15))[0].shape == (15, 4)
    with pytest.raises(
        rr.RopeInputError, match=r"^positions.shape=\(16,\) is invalid: .* 1024 bytes, .*\(1000 bytes\)"
    ):
        rr.rotation.cos_sin(cfg, np.arange(16))


def test_feature_gap_refuses_positions_past_the_exact_range():
    plain = rr.RopeConfig(head_dim=8)
    msg = refused(lambda: rr.feature_gap(plain, 8, 2**53 + 1), rr.RopeInputError)
    assert msg.startswith(f"test_len={2**53 + 1} is invalid: must be <= 2**53"), msg
    resonant = rr.RopeConfig(head_dim=2, resonance=True)  # one pair, period 6 <= train_len: gap 0
    assert rr.feature_gap(resonant, 8, 2**53 + 1).tolist() == [0.0]
    msg = refused(lambda: rr.feature_gap(resonant, 8, 2**63), rr.RopeInputError)
    assert msg.startswith(f"test_len={2**63} is invalid: must be <= 2**63 - 1"), msg


def test_feature_gap_brute_force_table_is_bounded():
    """theta = 1e-13: the seen angles are 1e-13 rad apart, too close to order, so the gap is found by
    brute force over train_len angles; past TABLE_BUDGET / 8 it is refused before the table is built."""
    cfg = rr.RopeConfig(head_dim=2, scaling=rr.Linear(1e13))
    assert rr.feature_gap(cfg, 64, 256)[0] == pytest.approx((255 - 63) * 1e-13, rel=1e-6)  # m=255 to n=63
    too_long = limits.TABLE_BUDGET // 8 + 1
    msg = refused(lambda: rr.feature_gap(cfg, too_long, too_long + 1), rr.RopeInputError)
    assert msg.startswith(f"train_len={too_long} is invalid: must be <= {limits.TABLE_BUDGET // 8} for this config"), (
        msg
    )


def test_feature_gap_budget_edge_with_a_small_budget(monkeypatch):
    """With the budget patched to 100 float64 angles: 100 are allowed, 101 refused; a resonance config
    past the budget whose pairs need no brute force (pre-critical pairs have no plan) is computed,
    the same as with the real budget. Kills analysis.x__check_brute_force__mutmut_2 (``<`` at the
    edge) and _5 (a pair without a plan sent to the brute-force test)."""
    from rrope_core import analysis

    brute = rr.RopeConfig(head_dim=2, scaling=rr.Linear(1e13))
    resonant = rr.RopeConfig(head_dim=8, resonance=True)
    want = rr.feature_gap(resonant, 101, 300)
    monkeypatch.setattr(analysis, "TABLE_BUDGET", 100 * 8)
    assert rr.feature_gap(brute, 100, 101)[0] == pytest.approx(1e-13, rel=1e-6)  # m=100 to n=99
    msg = refused(lambda: rr.feature_gap(brute, 101, 102), rr.RopeInputError)
    assert msg.startswith("train_len=101 is invalid: must be <= 100 for this config"), msg
    np.testing.assert_array_equal(rr.feature_gap(resonant, 101, 300), want)
