"""rrope_torch from many threads at once (a threaded server): the backend's caches (constants per
config and device, the CUDA fast path's launch recipes, Triton's compiled kernels) are shared
state; concurrent calls, with another thread clearing the caches meanwhile, give exactly the
single-threaded results."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

torch = pytest.importorskip("torch", reason="rrope_torch needs torch")

import rrope_core as rr  # noqa: E402
import rrope_torch as rt  # noqa: E402
from rrope_torch import constants, fused  # noqa: E402

CFGS = [
    rr.RopeConfig(head_dim=16, scaling=rr.YaRN(4.0, 64), resonance=True),
    rr.RopeConfig(head_dim=16, scaling=rr.YaRN(4.0, 64)),
    rr.RopeConfig(head_dim=32, base=500000.0, scaling=rr.Llama3(8.0, 8192)),
    rr.RopeConfig(head_dim=16, scaling=rr.DynamicNTK(2.0, 32), resonance=True),
    rr.RopeConfig(head_dim=32, rotary_dim=16, layout="interleaved"),
]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _calls(device):
    g = torch.Generator().manual_seed(0)
    calls = []
    for i, cfg in enumerate(CFGS):
        for s in (1, 7, 64):
            x = torch.randn(2, 3, s, cfg.head_dim, generator=g).to(device)
            pos = (torch.arange(s) + 1000 * i).to(device)
            calls.append((x, pos, cfg))
    return calls


def _run(call):
    x, pos, cfg = call
    seq_len = None if not cfg.seq_len_dependent else int(pos.max()) + 1
    return rt.apply_rotary(x, pos, cfg, seq_len), rt.inverse_rotary(x, pos, cfg, seq_len)


@pytest.mark.parametrize("device", DEVICES)
def test_concurrent_calls_equal_serial_calls(device):
    calls = _calls(device)
    serial = [_run(c) for c in calls]
    stop = threading.Event()

    def churn():  # evictions at any moment: the caches' clear() paths
        while not stop.is_set():
            constants._DEVICE_CACHE.clear()
            fused._RECIPES.clear()

    clearer = threading.Thread(target=churn, daemon=True)
    clearer.start()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(_run, calls * 10))
    finally:
        stop.set()
        clearer.join()
    for i, (fwd, inv) in enumerate(results):
        want_fwd, want_inv = serial[i % len(calls)]
        assert torch.equal(fwd, want_fwd), f"call {i % len(calls)} forward differs under threads"
        assert torch.equal(inv, want_inv), f"call {i % len(calls)} inverse differs under threads"
