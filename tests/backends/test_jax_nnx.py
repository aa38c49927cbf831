"""rrope_jax.nnx: the Flax NNX module inside a small attention block, under nnx.jit."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax", reason="rrope_jax needs jax")
pytest.importorskip("flax.nnx", reason="rrope_jax.nnx needs flax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

import rrope_core as rr  # noqa: E402
import rrope_jax as rj  # noqa: E402
from rrope_jax.nnx import RotaryEmbedding  # noqa: E402

CFG = rr.RopeConfig(head_dim=16, scaling=rr.YaRN(4.0, 64), resonance=True)


class Block(nnx.Module):
    """q/k projections, then the rotary module, then causal attention scores."""

    def __init__(self, rngs: nnx.Rngs):
        self.q = nnx.Linear(32, 2 * 16, rngs=rngs)
        self.k = nnx.Linear(32, 1 * 16, rngs=rngs)
        self.rope = RotaryEmbedding(CFG)

    def __call__(self, x, positions):
        b, t, _ = x.shape
        q = self.q(x).reshape(b, t, 2, 16)
        k = self.k(x).reshape(b, t, 1, 16)
        q, k = self.rope(q, k, positions[:, None])  # (T, 1) positions for (B, T, H, D)
        return jnp.einsum("bthd,bshd->bhts", q, jnp.repeat(k, 2, axis=2))


def test_module_has_no_state_and_matches_apply_rotary():
    rope = RotaryEmbedding(CFG)
    _, state = nnx.split(rope)
    assert jax.tree_util.tree_leaves(state) == []
    q = jnp.asarray(np.random.default_rng(0).standard_normal((2, 5, 3, 16)), jnp.float32)
    k = q[:, :, :1]
    positions = jnp.arange(5)[:, None] + 10**6
    qr, kr = nnx.jit(lambda m, a, b, p: m(a, b, p))(rope, q, k, positions)
    # the same float32 program, compiled inside another jit: XLA may contract a multiply-add
    # differently, so each element may differ by the rotation's own rounding (3 eps32 * a * max|x|)
    tol = 3 * np.finfo(np.float32).eps * rr.attention_factor(CFG) * float(jnp.abs(q).max())
    np.testing.assert_allclose(np.asarray(qr), np.asarray(rj.apply_rotary(q, positions, CFG)), rtol=0, atol=tol)
    np.testing.assert_allclose(np.asarray(kr), np.asarray(rj.apply_rotary(k, positions, CFG)), rtol=0, atol=tol)


def test_block_under_nnx_jit_and_grad():
    block = Block(nnx.Rngs(0))
    x = jnp.asarray(np.random.default_rng(1).standard_normal((2, 7, 32)), jnp.float32)
    positions = jnp.arange(7) + 100
    eager = block(x, positions)
    jitted = nnx.jit(lambda m, a, p: m(a, p))(block, x, positions)
    # eager and jitted differ only by float32 rounding (Higham's gamma_n: n * eps32 relative to the
    # sum of |terms|): each projection a 32-term dot, the score a D=16-term dot, the rotation a few
    # eps32 (8 here); the score's |terms| sum to at most D * a**2 * max|q| * max|k|; two runs: twice
    q, k = np.abs(np.asarray(block.q(x))).max(), np.abs(np.asarray(block.k(x))).max()
    atol = 2 * (32 + 16 + 8) * np.finfo(np.float32).eps * 16 * rr.attention_factor(CFG) ** 2 * q * k
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=0, atol=atol)
    grads = nnx.grad(lambda m: m(x, positions).sum())(block)
    assert set(grads.keys()) == {"q", "k"}  # the rotary module adds no parameters


def test_relative_positions_only_scores_shift_invariant():
    """Scores depend on m - n only: shifting every position by 2**30 changes them by rounding only.

    Bound: each rotated element is off by at most ``delta * a * max|x|`` with
    ``delta = (2*pi + 4) * eps32`` (phase within 2*pi*eps32 rad, as test_jax.py; the rotation's two
    products and one sum, a few eps32), so a score (a sum of D products) is off by at most
    ``(2*D*a**2*delta + D*eps32) * max|q| * max|k|``; two scores differ by at most twice that.
    """
    block = Block(nnx.Rngs(0))
    x = jnp.asarray(np.random.default_rng(2).standard_normal((1, 6, 32)), jnp.float32)
    a = np.asarray(block(x, jnp.arange(6)))
    b = np.asarray(block(x, jnp.arange(6) + 2**30))
    q = np.asarray(block.q(x)).reshape(1, 6, 2, 16)
    k = np.asarray(block.k(x)).reshape(1, 6, 1, 16)
    eps, d, att = float(np.finfo(np.float32).eps), 16, rr.attention_factor(CFG)
    delta = (2 * np.pi + 4) * eps
    bound = 2 * (2 * d * att**2 * delta + d * eps) * np.abs(q).max() * np.abs(k).max()
    assert np.abs(a - b).max() <= bound
