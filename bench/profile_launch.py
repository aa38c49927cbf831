"""Host time of one RoPE call (microseconds), where the GPU work is negligible: what bounds small
shapes and decode. Needs CUDA.

    PYTHONPATH=.:backends python bench/profile_launch.py             # the table
    PYTHONPATH=.:backends python bench/profile_launch.py --cprofile  # and where ours spends it

Rows: ours as shipped (repeat calls skip validation and Triton's Python launcher), ours with the
fast path off (every call validated and launched through ``_rope_kernel[grid]``), and the peers of
bench/rope_kernels.py. Each figure is wall time over many back-to-back calls on a tiny tensor, so
the GPU never limits it.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import torch

import rrope_core as rr
import rrope_torch as rt
from rrope_torch import fused, triton_kernel

CFG = rr.RopeConfig(head_dim=128, scaling=rr.YaRN(8.0, 4096), resonance=True)


def host_us(fn, n=2000) -> float:
    for _ in range(50):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / n * 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cprofile", action="store_true", help="also print cProfile of ours (fast path)")
    args = parser.parse_args(argv)
    q = torch.randn(1, 4, 8, 128, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(1, 4, 8, 128, device="cuda", dtype=torch.bfloat16)
    pos = torch.arange(8, device="cuda")
    rows = {"ours (as shipped)": host_us(lambda: rt.apply_rotary_qk(q, k, pos, CFG))}

    def slow():
        fused._RECIPES.clear()
        rt.apply_rotary_qk(q, k, pos, CFG)

    triton_kernel.DIRECT_LAUNCH = False
    rows["ours, no fast path (validate + Triton launcher every call)"] = host_us(slow)
    triton_kernel.DIRECT_LAUNCH = True
    rows["ours, q.requires_grad (through the autograd.Function)"] = host_us(
        lambda: rt.apply_rotary_qk(q.requires_grad_(True), k, pos, CFG)
    )
    q.requires_grad_(False)
    import bench.rope_kernels as peers  # noqa: PLC0415 - same directory, CUDA-only module

    cos, sin = peers.hf_cos_sin(pos[None], torch.bfloat16)
    compiled = torch.compile(peers.hf_apply_rotary_pos_emb)
    rows["HF eager"] = host_us(lambda: peers.hf_apply_rotary_pos_emb(q, k, cos, sin))
    rows["torch.compile(HF)"] = host_us(lambda: compiled(q, k, cos, sin))
    try:
        from liger_kernel.transformers.rope import liger_rotary_pos_emb as liger

        rows["Liger"] = host_us(lambda: liger(q, k, cos, sin))
    except ImportError:
        pass
    rows["empty CUDA op (q.add_(0))"] = host_us(lambda: q.add_(0))
    print(f"# {torch.cuda.get_device_name()}  torch {torch.__version__}")
    print("| call (q, k: (1,4,8,128) bf16) | host us per call |")
    print("|---|---|")
    for name, us in rows.items():
        print(f"| {name} | {us:.1f} |")
    if args.cprofile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(2000):
            rt.apply_rotary_qk(q, k, pos, CFG)
        torch.cuda.synchronize()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
