"""Run by tests/backends/test_jax_sharding.py in a fresh process with 4 host CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=4`` must be set before JAX starts).

Prints one JSON object: per check, the worst ``|out - reference| - tolerance`` (<= 0 passes), the
collectives XLA compiled in, and the output's sharding spec. Not collected by pytest (no test_ prefix).
"""

from __future__ import annotations

import json
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import rrope_core as rr
import rrope_jax as rj
from rrope_conformance.tolerance import rotation_tolerance

N = 4
CFGS = {
    "resonance": rr.RopeConfig(head_dim=16, scaling=rr.YaRN(4.0, 64), resonance=True),
    "plain": rr.RopeConfig(head_dim=16, scaling=rr.YaRN(4.0, 64)),
}
COLLECTIVES = ("all-gather", "all-reduce", "all-to-all", "collective-permute", "reduce-scatter")
OFFSET = 2**31 - 4 * 64  # near the int32 limit: a wrong per-shard offset cannot hide


def shard_map(*args, **kwargs):
    fn = getattr(jax, "shard_map", None)
    if fn is None:  # JAX < 0.7
        from jax.experimental.shard_map import shard_map as fn
    return fn(*args, **kwargs)


def worst(out, want, tol):
    return float(np.max(np.abs(np.asarray(out, np.float64) - want) - tol))


def collectives(jitted, *args):
    text = jitted.lower(*args).compile().as_text()
    return sorted({c for c in COLLECTIVES if re.search(rf"\b{c}(-start)?\(", text)})


def check_jit_sharded(name, cfg, mesh):
    """(B, H, S, D) and positions (S,) sharded along S; the jitted call keeps that sharding."""
    s = 64
    x = np.random.default_rng(0).standard_normal((2, 3, s, 16)).astype(np.float32)
    positions = OFFSET + np.arange(s)
    xs = jax.device_put(jnp.asarray(x), NamedSharding(mesh, P(None, None, "seq", None)))
    ps = jax.device_put(jnp.asarray(positions, jnp.int32), NamedSharding(mesh, P("seq")))
    f = jax.jit(lambda a, p: rj.apply_rotary(a, p, cfg))
    out = f(xs, ps)
    want = rr.apply_rotary(x.astype(np.float64), positions, cfg)
    tol = rotation_tolerance(cfg, x.astype(np.float64), want, positions, None, "float32", rr.attention_factor(cfg))
    single = rj.apply_rotary(jnp.asarray(x), jnp.asarray(positions, jnp.int32), cfg)
    return {
        "worst": worst(out, want, tol),
        "single_device_worst": worst(single, want, tol),
        "spec": str(out.sharding.spec),
        "shards": len(out.addressable_shards),
        "collectives": collectives(f, xs, ps),
    }


def check_shard_map_context_parallel(name, cfg, mesh):
    """Each device holds one block of the sequence, (B, T_local, H, D), and makes its own positions
    from its index (``lax.axis_index``): traced positions inside shard_map."""
    t_local = 16
    x = np.random.default_rng(1).standard_normal((2, N * t_local, 3, 16)).astype(np.float32)

    def block(xb):
        start = OFFSET + jax.lax.axis_index("seq") * t_local
        pos = (start + jnp.arange(t_local, dtype=jnp.int32))[:, None]  # (T_local, 1) for (B, T, H, D)
        return rj.apply_rotary(xb, pos, cfg)

    spec = P(None, "seq", None, None)
    f = jax.jit(shard_map(block, mesh=mesh, in_specs=(spec,), out_specs=spec))
    xs = jax.device_put(jnp.asarray(x), NamedSharding(mesh, spec))
    out = f(xs)
    positions = (OFFSET + np.arange(N * t_local))[:, None]
    want = rr.apply_rotary(x.astype(np.float64), positions, cfg)
    tol = rotation_tolerance(cfg, x.astype(np.float64), want, positions, None, "float32", rr.attention_factor(cfg))
    return {"worst": worst(out, want, tol), "spec": str(out.sharding.spec), "collectives": collectives(f, xs)}


def check_grad_sharded(name, cfg, mesh):
    """d/dx sum(w * apply_rotary(x)) with x, w, positions sharded: ``a * R(-phi) w`` (the transpose)."""
    s = 64
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, s, 16)).astype(np.float32)
    w = rng.standard_normal(x.shape).astype(np.float32)
    positions = OFFSET + np.arange(s)
    sh = NamedSharding(mesh, P(None, None, "seq", None))
    xs, ws = jax.device_put(jnp.asarray(x), sh), jax.device_put(jnp.asarray(w), sh)
    ps = jax.device_put(jnp.asarray(positions, jnp.int32), NamedSharding(mesh, P("seq")))
    f = jax.jit(jax.grad(lambda a, b, p: (rj.apply_rotary(a, p, cfg) * b).sum()))
    g = f(xs, ws, ps)
    a = rr.attention_factor(cfg)
    want = a**2 * rr.inverse_rotary(w.astype(np.float64), positions, cfg)  # a * R(-phi) w
    tol = rotation_tolerance(cfg, w.astype(np.float64), want, positions, None, "float32", a)
    return {"worst": worst(g, want, tol), "spec": str(g.sharding.spec), "collectives": collectives(f, xs, ws, ps)}


def main() -> int:
    devices = jax.devices()
    if len(devices) < N:
        print(
            json.dumps({"error": f"{len(devices)} devices; set XLA_FLAGS=--xla_force_host_platform_device_count={N}"})
        )
        return 2
    mesh = jax.sharding.Mesh(np.array(devices[:N]), ("seq",))
    out = {}
    for check in (check_jit_sharded, check_shard_map_context_parallel, check_grad_sharded):
        for name, cfg in CFGS.items():
            out[f"{check.__name__}[{name}]"] = check(name, cfg, mesh)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
