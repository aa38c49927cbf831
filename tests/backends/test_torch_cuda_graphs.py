"""rrope_torch inside CUDA graphs (what serving stacks capture for decode): capture a step that
rotates q and k (the Triton kernel's direct-launch fast path included), update the positions and
inputs in place, replay, and compare with an eager call; and torch.compile(mode="reduce-overhead").

Needs CUDA (skips otherwise). Tolerance: both sides use the same exact phases; the outputs are
bfloat16, so each element may differ by the rounding of two float32 evaluations to bfloat16:
2 * eps_bf16 * a * max|x| (a: the attention factor)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="rrope_torch needs torch")
if not torch.cuda.is_available():
    pytest.skip("CUDA graphs need a CUDA device", allow_module_level=True)

import rrope_core as rr  # noqa: E402
import rrope_torch as rt  # noqa: E402

CFG = rr.RopeConfig(head_dim=128, base=500000.0, scaling=rr.YaRN(8.0, 4096), resonance=True)
EPS_BF16 = 2.0**-7
IMPLS = ["eager"] + (["triton"] if rt.triton_available() else [])


def _tol(x):
    return 2 * EPS_BF16 * rr.attention_factor(CFG) * float(x.abs().max())


def _decode_inputs(b=4, hq=8, hk=2):
    q = torch.randn(b, hq, 1, 128, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(b, hk, 1, 128, device="cuda", dtype=torch.bfloat16)
    pos = torch.zeros(b, 1, 1, dtype=torch.int64, device="cuda")  # per-sequence KV-cache offsets
    return q, k, pos


@pytest.mark.parametrize("impl", IMPLS)
def test_graph_replay_with_positions_updated_in_place(impl):
    q, k, pos = _decode_inputs()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the capture stream: fills the fast path's caches
        for _ in range(3):
            rt.apply_rotary_qk(q, k, pos, CFG, impl=impl)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out_q, out_k = rt.apply_rotary_qk(q, k, pos, CFG, impl=impl)
    for step in range(5):
        pos.copy_(torch.tensor([10, 4096, 70000, 2**31 - 1], device="cuda").view(4, 1, 1) - step)
        q.copy_(torch.randn_like(q))
        k.copy_(torch.randn_like(k))
        graph.replay()
        want_q, want_k = rt.apply_rotary(q, pos, CFG, impl="eager"), rt.apply_rotary(k, pos, CFG, impl="eager")
        assert (out_q.float() - want_q.float()).abs().max() <= _tol(q), f"step {step}: q differs after replay"
        assert (out_k.float() - want_k.float()).abs().max() <= _tol(k), f"step {step}: k differs after replay"


def test_torch_compile_reduce_overhead():
    q, k, pos = _decode_inputs()
    step = torch.compile(lambda q_, k_, p_: rt.apply_rotary_qk(q_, k_, p_, CFG), mode="reduce-overhead")
    for i in range(4):
        p = (pos + 1000 * i + 7).contiguous()
        out_q, out_k = step(q, k, p)
        want_q, want_k = rt.apply_rotary(q, p, CFG, impl="eager"), rt.apply_rotary(k, p, CFG, impl="eager")
        assert (out_q.float() - want_q.float()).abs().max() <= _tol(q)
        assert (out_k.float() - want_k.float()).abs().max() <= _tol(k)
