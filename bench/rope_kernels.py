"""RoPE kernels side by side on one GPU: copy floor, HF eager, torch.compile(HF), Liger, ours.

    python bench/rope_kernels.py            # needs CUDA; Liger is optional (pip install liger-kernel)

Prints, per bf16 shape (B, Hq, Hk, S, D): the time of each method (triton.testing.do_bench's
median, repeated ``--repeats`` times round-robin over the methods: median and min-max of the
repeats), percent of the copy floor (time of copying q and k / time of the method: same bytes
moved), forward and forward+backward; ``--profile`` adds torch.profiler's host and CUDA time per op
of our forward+backward; then the max |cos|/|sin| error against float64 truth at large positions for a
float32 cos/sin table (HF, vLLM, flash-attn, Liger all consume one) and for ours.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys

import numpy as np
import torch

import rrope_core as rr
import rrope_torch as rt

SHAPES = [(1, 32, 32, 4096, 128), (1, 32, 8, 32768, 128), (4, 32, 32, 8192, 128), (64, 32, 8, 1, 128)]
CFG = rr.RopeConfig(head_dim=128, base=10000.0, scaling=rr.YaRN(8.0, 4096), resonance=True)


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]  # noqa: E203
    return torch.cat((-x2, x1), dim=-1)


def hf_apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1):
    """transformers' Llama ``apply_rotary_pos_emb`` (the eager reference everyone compares to)."""
    cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
    return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)


def hf_cos_sin(pos, dtype):
    """HF's float32 table: ``cos(m * inv_freq)`` computed in float32, times the attention factor."""
    inv = torch.tensor(rr.inv_freq(CFG), dtype=torch.float32, device=pos.device)
    freqs = pos.float()[..., None] * inv
    emb = torch.cat((freqs, freqs), dim=-1)
    a = rr.attention_factor(CFG)
    return (emb.cos() * a).to(dtype), (emb.sin() * a).to(dtype)


def bench(fn, quantiles=(0.5,)):
    from triton.testing import do_bench

    return do_bench(fn, warmup=25, rep=200, quantiles=list(quantiles))


def run_shape(shape, liger, repeats=3, profile=False):
    b, hq, hk, s, d = shape
    dev, dt = "cuda", torch.bfloat16
    q = torch.randn(b, hq, s, d, device=dev, dtype=dt)
    k = torch.randn(b, hk, s, d, device=dev, dtype=dt)
    if s == 1:  # decode: one new token per sequence at its own KV-cache position
        pos = torch.randint(0, 4096, (b, 1), device=dev)
    else:
        pos = torch.arange(s, device=dev)[None].expand(b, s)
    cos, sin = hf_cos_sin(pos, dt)
    ours_pos = pos[:, None, :]
    compiled = torch.compile(hf_apply_rotary_pos_emb)
    methods = {
        "copy (floor)": lambda: (q.clone(), k.clone()),
        "HF eager": lambda: hf_apply_rotary_pos_emb(q, k, cos, sin),
        "torch.compile(HF)": lambda: compiled(q, k, cos, sin),
        "ours (triton)": lambda: rt.apply_rotary_qk(q, k, ours_pos, CFG, impl="triton"),
    }
    if liger is not None:
        methods["Liger"] = lambda: liger(q, k, cos, sin)
    rows = {name: [[], []] for name in methods}
    for _ in range(repeats):  # round-robin over methods: drift during the run hits every method
        for name, fn in methods.items():
            rows[name][0].append(bench(fn))
    # forward + backward
    qg, kg = q.detach().requires_grad_(True), k.detach().requires_grad_(True)
    gq, gk = torch.randn_like(q), torch.randn_like(k)

    def fb(f):
        def run():  # autograd.grad: no accumulation into .grad (that would add traffic to every method)
            oq, ok = f(qg, kg)
            torch.autograd.grad((oq, ok), (qg, kg), (gq, gk))

        return run

    fwd_bwd = {
        "copy (floor)": lambda: (q.clone(), k.clone(), gq.clone(), gk.clone()),
        "HF eager": fb(lambda a, c: hf_apply_rotary_pos_emb(a, c, cos, sin)),
        "torch.compile(HF)": fb(lambda a, c: compiled(a, c, cos, sin)),
        "ours (triton)": fb(lambda a, c: rt.apply_rotary_qk(a, c, ours_pos, CFG, impl="triton")),
    }
    if liger is not None:
        fwd_bwd["Liger"] = fb(lambda a, c: liger(a, c, cos, sin))
    for _ in range(repeats):
        for name, fn in fwd_bwd.items():
            rows[name][1].append(bench(fn))
    if profile:
        _profile(shape, fwd_bwd["ours (triton)"])
    nbytes = 2 * (q.numel() + k.numel()) * q.element_size()
    return rows, nbytes


def _profile(shape, fn, calls=20):
    """torch.profiler over ``calls`` of ``fn``: host (CPU) against device (CUDA) time per op."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    print(f"# profile of ours (triton) forward+backward at {shape}, {calls} calls")
    print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=12))


def phase_errors():
    """max |cos - truth|, |sin - truth| over all pairs at each position (float64 truth = rrope_core)."""
    out = []
    first, second = rr.pair_slices(CFG)
    a = rr.attention_factor(CFG)
    for m in (2**20, 2**24, 2**31 - 1):
        pos = torch.tensor([m], device="cuda")
        c64, s64 = rr.cos_sin(CFG, np.array([m]))
        inv = torch.tensor(rr.inv_freq(CFG), dtype=torch.float32, device="cuda")
        f32 = pos.float()[:, None] * inv
        table = max(
            np.abs(f32.cos().double().cpu().numpy() - c64).max(), np.abs(f32.sin().double().cpu().numpy() - s64).max()
        )
        x = torch.zeros(1, 1, 1, 128, device="cuda")
        x[..., first] = 1.0
        y = rt.apply_rotary(x, pos, CFG, impl="triton")[0, 0].double().cpu().numpy() / a
        ours = max(np.abs(y[:, first] - c64).max(), np.abs(y[:, second] - s64).max())
        out.append((m, table, ours))
    return out


def sweep(shapes):
    """Forward time of our kernel over launch parameters (triton_kernel.OVERRIDES), best first."""
    for shape in shapes:
        _sweep_shape(shape)


def _sweep_shape(shape):
    import itertools

    from rrope_torch.triton_kernel import OVERRIDES

    b, hq, hk, s, d = shape
    q = torch.randn(b, hq, s, d, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(b, hk, s, d, device="cuda", dtype=torch.bfloat16)
    pos = torch.arange(s, device="cuda")
    floor = bench(lambda: (q.clone(), k.clone()))
    default = bench(lambda: rt.apply_rotary_qk(q, k, pos, CFG, impl="triton"))
    results = []
    for bs, warps, target in itertools.product((16, 32), (4, 8), (264, 528, 1056, 2112)):
        OVERRIDES.update(BLOCK_S=bs, WARPS=warps, TARGET=target)
        results.append((bench(lambda: rt.apply_rotary_qk(q, k, pos, CFG, impl="triton")), bs, warps, target))
    OVERRIDES.clear()
    results.sort()
    best = ", ".join(f"BS={bs} W={w} T={t}: {100 * floor / ms:.0f}%" for ms, bs, w, t in results[:5])
    print(f"# sweep {shape}: default {100 * floor / default:.0f}%; best {best}")


def _spread(times) -> str:
    return f"{statistics.median(times):.4f} ({min(times):.4f}-{max(times):.4f})"


def _pct(floor: float, times) -> str:
    return (
        f"{100 * floor / statistics.median(times):.0f}% ({100 * floor / max(times):.0f}-{100 * floor / min(times):.0f})"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="all", help="'all' or indices into the shape list, e.g. 0,3")
    parser.add_argument("--sweep", action="store_true", help="also sweep the kernel's launch parameters")
    parser.add_argument("--repeats", type=int, default=3, help="do_bench runs per figure (median, min-max shown)")
    parser.add_argument(
        "--profile", action="store_true", help="torch.profiler table (host vs CUDA time) of ours' forward+backward"
    )
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("bench/rope_kernels.py needs a CUDA device")
    try:
        from liger_kernel.transformers.rope import liger_rotary_pos_emb as liger
    except ImportError as exc:
        print(f"# Liger-Kernel not importable ({exc}); its column is skipped")
        liger = None
    shapes = SHAPES if args.shapes == "all" else [SHAPES[int(i)] for i in args.shapes.split(",")]
    if args.sweep:
        sweep(shapes)
    print(f"# {torch.cuda.get_device_name()}  torch {torch.__version__}  config {CFG!r}")
    print(f"# {args.repeats} repeats of do_bench per figure: median (min-max); % floor: median floor / median time,")
    print("# in brackets median floor / slowest and / fastest repeat")
    print("| shape (B,Hq,Hk,S,D) | method | fwd ms | fwd % floor | fwd+bwd ms | fwd+bwd % floor |")
    print("|---|---|---|---|---|---|")
    for shape in shapes:
        rows, nbytes = run_shape(shape, liger, args.repeats, args.profile)
        floor_f, floor_b = (statistics.median(t) for t in rows["copy (floor)"])
        for name, (f, fb_) in rows.items():
            fm = statistics.median(f)
            extra = f" ({nbytes / (fm * 1e-3) / 1e12:.2f} TB/s)" if name == "copy (floor)" else ""
            print(
                f"| {shape} | {name}{extra} | {_spread(f)} | {_pct(floor_f, f)} | {_spread(fb_)} | {_pct(floor_b, fb_)} |"
            )
        ours = statistics.median(rows["ours (triton)"][0])
        ratios = [
            f"{statistics.median(rows[n][0]) / ours:.2f}x vs {n}" for n in ("torch.compile(HF)", "Liger") if n in rows
        ]
        print(f"|  | speed-up (fwd) | {', '.join(ratios)} | | | |")
    print()
    print("| position | float32 table max error | ours max error |")
    print("|---|---|---|")
    for m, table, ours in phase_errors():
        print(f"| {m} (2**{math.log2(m):.2f}) | {table:.3g} | {ours:.3g} |")


if __name__ == "__main__":
    main()
