"""rrope_jax beside a float32-table JAX RoPE and a copy of the same bytes, on one device.

    python bench/jax_rope.py                 # the shapes of bench/rope_kernels.py, bf16
    python bench/jax_rope.py --repeats 7     # more repeats: the spread column widens or not
    python bench/jax_rope.py --shapes 1 --hlo results/jax-hlo   # also: what XLA compiled, per method
    python bench/jax_rope.py --shapes 0,1,2 --sweep --repeats 3  # the Pallas kernel's launch parameters

Per shape (B, Hq, Hk, S, D), layout (B, H, S, D): the median time of the jitted forward of q and
k, and of forward+backward (``jax.vjp`` with random cotangents), for

* ``copy (floor)``: ``-q, -k`` (each byte read and written once; forward+backward: also the two
  cotangents), the bytes every method must move at least;
* ``f32 table``: the table every JAX codebase computes, ``cos/sin(float32(m) * inv_freq)``, made
  outside the timed call, then ``q*cos + rotate_half(q)*sin`` (as transformers' Flax models do);
* ``rrope_jax``: exact phases from the positions inside the jitted call, then the rotation
  (``apply_rotary`` on q and on k); ``rrope_jax qk``: ``apply_rotary_qk`` (phases computed once
  into float32 cos/sin buffers that the rotation fusion reads); ``rrope_jax qk, pallas kernel``:
  the opt-in kernel (``RROPE_JAX_IMPL=pallas``, ``rrope_jax.pallas_kernel``: phases in registers,
  one pass over q and one over k; at the decode shape it does not apply and XLA runs);
  ``rrope_jax qk, phases apart``: the same math with the phases behind
  ``jax.lax.optimization_barrier`` (materialized once, then read, as the table is: does XLA
  recompute fused phases per head?); ``probe: phases apart, bf16 tables``: the same with the
  buffer stored in bf16, read back into float32 math (not a shipped path: bf16 cos/sin err by
  up to 2**-9; it measures what the float32 buffer's bytes cost).

Each figure is the median over ``--repeats`` timed loops (after a warm-up), with the min-max of
those loops beside it; "% floor" is floor time / method time (same bytes moved); "TB/s fwd" is
the bytes of q and k read and written once over the forward time. ``--hlo DIR`` writes each
forward's optimized HLO (``jit(f).lower(q, k).compile().as_text()``) to DIR and prints, per method,
the instructions of its entry computation by opcode: how many kernels (fusions, custom calls) XLA
launches, to tell a separate phase kernel from phases fused into the rotation. Then the max
|cos|, |sin| error of the float32 table and of rrope_jax against rrope_core's float64 phases at
large positions.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import rrope_core as rr
import rrope_jax as rj
from rrope_core.commands.options import _positive_int
from rrope_jax.rotation import _compiled_qk, _rotation

SHAPES = [(1, 32, 32, 4096, 128), (1, 32, 8, 32768, 128), (4, 32, 32, 8192, 128), (64, 32, 8, 1, 128)]
CFG = rr.RopeConfig(head_dim=128, base=10000.0, scaling=rr.YaRN(8.0, 4096), resonance=True)


def rotate_half(x):
    h = x.shape[-1] // 2
    return jnp.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def f32_table(pos, dtype):
    """``cos/sin(float32(m) * inv_freq)`` times the attention factor, as ``(..., S, D)`` tables."""
    freqs = pos.astype(jnp.float32)[..., None] * jnp.asarray(rr.inv_freq(CFG), jnp.float32)
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    a = rr.attention_factor(CFG)
    return (jnp.cos(emb) * a).astype(dtype), (jnp.sin(emb) * a).astype(dtype)


def table_rope(q, k, cos, sin):
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def timed(fn, args, repeats: int, budget_s: float = 0.2):
    """(median ms, min ms, max ms) over ``repeats`` loops of a jitted ``fn`` (each ~``budget_s``)."""
    jax.block_until_ready(fn(*args))  # compile
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    iters = max(3, int(budget_s / max(time.perf_counter() - t0, 1e-6)))
    loops = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iters):
            out = fn(*args)
        jax.block_until_ready(out)
        loops.append(1e3 * (time.perf_counter() - t0) / iters)
    return statistics.median(loops), min(loops), max(loops)


def vjp_of(f):
    """A jitted forward+backward of ``f(q, k) -> (q', k')`` with cotangents ``(gq, gk)``."""

    def run(q, k, gq, gk):
        out, pull = jax.vjp(f, q, k)
        return out, pull((gq, gk))

    return jax.jit(run)


def run_shape(shape, repeats, want_hlo=False):
    b, hq, hk, s, d = shape
    key = jax.random.PRNGKey(0)
    kq, kk, kgq, kgk, kp = jax.random.split(key, 5)
    dt = jnp.bfloat16
    q = jax.random.normal(kq, (b, hq, s, d), dt)
    k = jax.random.normal(kk, (b, hk, s, d), dt)
    gq, gk = jax.random.normal(kgq, q.shape, dt), jax.random.normal(kgk, k.shape, dt)
    if s == 1:  # decode: one new token per sequence at its own KV-cache position
        pos = jax.random.randint(kp, (b, 1, 1), 0, 4096)
    else:
        pos = jnp.broadcast_to(jnp.arange(s), (b, 1, s))
    cos, sin = f32_table(pos, dt)  # (b, 1, s, d): broadcasts over heads

    def ours(a, c):
        return rj.apply_rotary(a, pos, CFG), rj.apply_rotary(c, pos, CFG)

    def ours_qk(a, c):
        return rj.apply_rotary_qk(a, c, pos, CFG)

    def ours_pallas(a, c):  # the opt-in kernel, whatever RROPE_JAX_IMPL says
        return _compiled_qk(a, c, pos, CFG, None, "pallas")

    def ours_apart(a, c):  # apply_rotary_qk's math, the phases computed once into a buffer, then read
        cs, sn = jax.lax.optimization_barrier(rj.cos_sin(CFG, pos))
        scale = float(rr.attention_factor(CFG))
        return _rotation(a, cs, sn, scale, CFG), _rotation(c, cs, sn, scale, CFG)

    def apart_16(a, c):  # a probe, not a shipped path: the same, its tables stored in bf16 (half the bytes)
        cs, sn = jax.lax.optimization_barrier(tuple(t.astype(dt) for t in rj.cos_sin(CFG, pos)))
        scale = float(rr.attention_factor(CFG))
        cs, sn = cs.astype(jnp.float32), sn.astype(jnp.float32)
        return _rotation(a, cs, sn, scale, CFG), _rotation(c, cs, sn, scale, CFG)

    def table(a, c):
        return table_rope(a, c, cos, sin)

    fwd = {
        "copy (floor)": jax.jit(lambda a, c: (-a, -c)),
        "f32 table": jax.jit(table),
        "rrope_jax": jax.jit(ours),
        "rrope_jax qk": jax.jit(ours_qk),
        "rrope_jax qk, pallas kernel": jax.jit(ours_pallas),
        "rrope_jax qk, phases apart": jax.jit(ours_apart),
        "probe: phases apart, bf16 tables": jax.jit(apart_16),
    }
    bwd = {
        "copy (floor)": jax.jit(lambda a, c, ga, gc: (-a, -c, -ga, -gc)),
        "f32 table": vjp_of(table),
        "rrope_jax": vjp_of(ours),
        "rrope_jax qk": vjp_of(ours_qk),
        "rrope_jax qk, pallas kernel": vjp_of(ours_pallas),
        "rrope_jax qk, phases apart": vjp_of(ours_apart),
        "probe: phases apart, bf16 tables": vjp_of(apart_16),
    }
    rows = {n: [timed(fwd[n], (q, k), repeats), timed(bwd[n], (q, k, gq, gk), repeats)] for n in fwd}
    hlo = {n: f.lower(q, k).compile().as_text() for n, f in fwd.items()} if want_hlo else {}
    return rows, 2 * (q.size + k.size) * q.dtype.itemsize, hlo  # forward: q and k read and written once


def entry_opcodes(hlo: str) -> dict[str, int]:
    """Instructions of an optimized HLO module's ENTRY computation, counted by opcode."""
    lines = hlo.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("ENTRY "))
    counts: dict[str, int] = {}
    for line in lines[start + 1 :]:
        if line.startswith("}"):
            break
        match = re.search(r"=\s*\S+(?:\[[^\]]*\])?(?:\{[^}]*\})?\s+([\w-]+)\(", line) or re.search(
            r"\s([\w-]+)\(", line
        )
        if match:
            counts[match.group(1)] = counts.get(match.group(1), 0) + 1
    return counts


def write_hlo(out_dir: str, shape, texts: dict[str, str]) -> None:
    """Each method's HLO to ``out_dir``; print its entry computation's opcodes."""
    os.makedirs(out_dir, exist_ok=True)
    tag = "x".join(map(str, shape))
    print(f"\n# optimized HLO at {shape}, forward: entry-computation instructions by opcode")
    for name, text in texts.items():
        path = os.path.join(out_dir, f"{tag}-{re.sub(r'[^A-Za-z0-9]+', '_', name).strip('_')}.hlo.txt")
        with open(path, "w") as f:
            f.write(text)
        ops = ", ".join(f"{op} {n}" for op, n in sorted(entry_opcodes(text).items()))
        print(f"- {name}: {ops} ({path})")


def _floor_and_xla(shape, repeats):
    """bf16 q, k of ``shape``, positions ``arange(S)`` per batch, and the median ms of the copy
    floor and of the XLA path's forward of q and k (the baselines of ``sweep`` and ``crossover``)."""
    b, hq, hk, s, d = shape
    q = jax.random.normal(jax.random.PRNGKey(0), (b, hq, s, d), jnp.bfloat16)
    k = jax.random.normal(jax.random.PRNGKey(1), (b, hk, s, d), jnp.bfloat16)
    pos = jnp.broadcast_to(jnp.arange(s), (b, 1, s))
    floor = timed(jax.jit(lambda a, c: (-a, -c)), (q, k), repeats)[0]
    xla = timed(jax.jit(lambda a, c: _compiled_qk(a, c, pos, CFG, None, "xla")), (q, k), repeats)[0]
    return q, k, pos, floor, xla


def sweep(shape, repeats):
    """The opt-in kernel's forward (q and k) as % of the copy floor for each launch parameter pair
    (``pallas_kernel.BLOCK_S`` x ``NUM_WARPS``), beside the XLA path: how the defaults were chosen."""
    from rrope_jax import pallas_kernel as pk

    s = shape[3]
    q, k, pos, floor, xla = _floor_and_xla(shape, repeats)
    print(f"| {shape} | xla path | {100 * floor / xla:.0f}% |")
    saved = pk.BLOCK_S, pk.NUM_WARPS
    try:
        for block in (16, 32, 64, 128):
            for warps in (1, 2, 4, 8):
                if s % block:
                    continue
                pk.BLOCK_S, pk.NUM_WARPS = block, warps
                jax.clear_caches()  # the launch parameters are read when tracing
                f = jax.jit(lambda a, c: _compiled_qk(a, c, pos, CFG, None, "pallas"))
                print(
                    f"| {shape} | BLOCK_S {block}, NUM_WARPS {warps} | {100 * floor / timed(f, (q, k), repeats)[0]:.0f}% |"
                )
    finally:
        pk.BLOCK_S, pk.NUM_WARPS = saved
        jax.clear_caches()


CROSSOVER = [
    (b, hq, hk, s, 128)
    for (hq, hk) in ((32, 8), (32, 32))
    for b, s in ((1, 2048), (1, 4096), (1, 8192), (1, 16384), (2, 4096), (4, 4096))
]


def crossover(shapes, repeats):
    """Forward of q and k, XLA path against the kernel, as % of the copy floor, over B*S: where the
    kernel starts to win (it has B*S/BLOCK_S programs; at (1, 32, 32, 4096) 256 of them)."""
    print("| shape (B,Hq,Hk,S,D) | B*S | xla % floor | pallas % floor | xla time / pallas time |")
    print("|---|---|---|---|---|")
    for shape in shapes:
        q, k, pos, floor, xla = _floor_and_xla(shape, repeats)
        ker = timed(jax.jit(lambda a, c, p=pos: _compiled_qk(a, c, p, CFG, None, "pallas")), (q, k), repeats)[0]
        print(
            f"| {shape} | {shape[0] * shape[3]} | {100 * floor / xla:.0f}% | {100 * floor / ker:.0f}% | {xla / ker:.2f} |"
        )


def phase_errors():
    """max |cos - truth|, |sin - truth| over all pairs at one position (float64 truth: rrope_core)."""
    first, second = rr.pair_slices(CFG)
    a = rr.attention_factor(CFG)
    out = []
    for m in (2**20, 2**24, 2**31 - 1):
        c64, s64 = rr.cos_sin(CFG, np.array([m]))
        f = np.float32(m) * rr.inv_freq(CFG).astype(np.float32)
        tc, ts = np.asarray(jnp.cos(jnp.asarray(f))), np.asarray(jnp.sin(jnp.asarray(f)))
        table = max(np.abs(tc - c64).max(), np.abs(ts - s64).max())
        x = np.zeros((1, 128), np.float32)
        x[:, first] = 1.0
        y = np.asarray(rj.apply_rotary(jnp.asarray(x), jnp.asarray([m], jnp.int32), CFG), np.float64) / a
        ours = max(np.abs(y[:, first] - c64).max(), np.abs(y[:, second] - s64).max())
        out.append((m, table, ours))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="all", help="'all' or indices into the shape list, e.g. 0,3")
    parser.add_argument("--repeats", type=_positive_int, default=5, help="timed loops per figure (min-max shown)")
    parser.add_argument("--hlo", metavar="DIR", help="write each forward's optimized HLO here; print its kernels")
    parser.add_argument("--sweep", action="store_true", help="only the pallas kernel's launch parameters (GPU)")
    parser.add_argument(
        "--crossover", action="store_true", help="only XLA against the kernel over B*S (GPU): where the kernel wins"
    )
    args = parser.parse_args(argv)
    picks = None if args.shapes == "all" else args.shapes.split(",")
    if picks is not None and not all(i.isdigit() and int(i) < len(SHAPES) for i in picks):
        parser.error(
            f"argument --shapes: must be 'all' or indices 0-{len(SHAPES) - 1} joined by commas, got {args.shapes!r}"
        )
    shapes = SHAPES if picks is None else [SHAPES[int(i)] for i in picks]
    print(f"# {jax.devices()[0].device_kind}  jax {jax.__version__}  config {CFG!r}  repeats {args.repeats}")
    if args.crossover:
        crossover(CROSSOVER, args.repeats)
        return
    if args.sweep:
        print("| shape (B,Hq,Hk,S,D) | forward of q and k | % floor |\n|---|---|---|")
        for shape in shapes:
            sweep(shape, args.repeats)
        return
    print("| shape (B,Hq,Hk,S,D) | method | fwd ms (min-max) | fwd % floor | fwd+bwd ms (min-max) | fwd+bwd % floor |")
    print("|---|---|---|---|---|---|")
    hlo = {}
    for shape in shapes:
        rows, nbytes, hlo[shape] = run_shape(shape, args.repeats, args.hlo is not None)
        (ff, _, _), (fb, _, _) = rows["copy (floor)"]
        for name, ((f, f0, f1), (b_, b0, b1)) in rows.items():
            print(
                f"| {shape} | {name} ({nbytes / (f * 1e-3) / 1e12:.2f} TB/s fwd) | {f:.4f} ({f0:.4f}-{f1:.4f}) | {100 * ff / f:.0f}% "
                f"| {b_:.4f} ({b0:.4f}-{b1:.4f}) | {100 * fb / b_:.0f}% |"
            )
    for shape, texts in hlo.items() if args.hlo is not None else ():
        write_hlo(args.hlo, shape, texts)
    print()
    print("| position | float32 table max error | rrope_jax max error |")
    print("|---|---|---|")
    for m, table, ours in phase_errors():
        print(f"| {m} | {table:.3g} | {ours:.3g} |")


if __name__ == "__main__":
    main()
