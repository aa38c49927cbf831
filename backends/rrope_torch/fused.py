"""The Triton path: when it applies, and its autograd (backward = the same kernel, inverse rotation).

Only tensors and plain numbers cross the autograd.Function boundary (torch.compile must be able
to put every argument into a graph).
"""

from __future__ import annotations

import os

import torch

from rrope_core.errors import RopeInputError, bad

from .constants import device_constants

__all__ = [
    "IMPLS",
    "default_impl",
    "kernel_plan",
    "fused_rotary",
    "triton_available",
    "call_key",
    "remember",
    "fast_call",
]

IMPLS = ("auto", "triton", "eager")
_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

try:  # Triton ships with CUDA builds of torch; CPU builds run the eager path.
    from .triton_kernel import rope_launch

    _TRITON_ERROR = None
except ImportError as exc:  # pragma: no cover - depends on the install
    rope_launch, _TRITON_ERROR = None, exc


def triton_available() -> bool:
    return rope_launch is not None


def default_impl() -> str:
    """``RROPE_TORCH_IMPL`` (auto | triton | eager), read at each call so tests can switch it."""
    impl = os.environ.get("RROPE_TORCH_IMPL", "auto")
    if impl not in IMPLS:
        raise bad("RROPE_TORCH_IMPL", impl, f"must be one of {IMPLS}", RopeInputError)
    return impl


def _varies(t: torch.Tensor, axis: int) -> bool:
    return t.shape[axis] > 1 and t.stride(axis) != 0


def kernel_plan(x: torch.Tensor, pos: torch.Tensor):
    """``(token_axis, pos2d)`` if the kernel can rotate ``x`` at ``pos``, else the reason it cannot."""
    if rope_launch is None:
        return f"triton is not importable ({_TRITON_ERROR})"
    if not x.is_cuda:
        return "x is not on a CUDA device"
    if x.ndim != 4 or x.stride(-1) != 1:
        return "x must be 4-D (B,H,S,D) or (B,S,H,D) with unit stride on its last axis"
    if x.dtype not in _KERNEL_DTYPES:
        return f"x.dtype={x.dtype} (the kernel takes float32/float16/bfloat16)"
    pb = pos.expand(x.shape[:-1])
    if not _varies(pb, 1):
        return 2, pb[:, 0, :]
    if not _varies(pb, 2):
        return 1, pb[:, :, 0]
    return "positions vary along both middle axes (per-head positions)"


class _Fused(torch.autograd.Function):
    """``scale * R(sign*phi)`` on q (and k); backward: same scale, opposite sign (the transpose)."""

    @staticmethod
    def forward(ctx, q, k, pos2d, freq, step, rotary_dim, half, resonance, scale, sign, token_axis, inplace):
        out_q = q if inplace else torch.empty_like(q)
        out_k = None if k is None else (k if inplace else torch.empty_like(k))
        args = dict(rotary_dim=rotary_dim, half=half, resonance=resonance, scale=scale, token_axis=token_axis)
        rope_launch(q, k, out_q, out_k, pos2d, freq, step, sin_sign=sign, **args)
        if inplace:
            ctx.mark_dirty(*(t for t in (q, k) if t is not None))
        ctx.save_for_backward(pos2d, freq, step)
        ctx.args, ctx.sign = args, sign
        return (out_q, out_k) if k is not None else out_q

    @staticmethod
    def backward(ctx, gq, gk=None):
        pos2d, freq, step = ctx.saved_tensors
        gq = gq if gq.stride(-1) == 1 else gq.contiguous()
        gk = None if gk is None else (gk if gk.stride(-1) == 1 else gk.contiguous())
        dq = torch.empty_like(gq)
        dk = None if gk is None else torch.empty_like(gk)
        rope_launch(gq, gk, dq, dk, pos2d, freq, step, sin_sign=-ctx.sign, **ctx.args)
        return (dq, dk) + (None,) * 10


def _needs_grad(q, k) -> bool:
    return torch.is_grad_enabled() and (q.requires_grad or (k is not None and k.requires_grad))


def fused_rotary(q, k, pos2d, cfg, seq_len, token_axis, inverse=False, inplace=False, pos_strides=None):
    """Rotate ``q`` (and ``k``) with one kernel launch: ``a*R(phi)``, or ``R(-phi)/a`` if ``inverse``.

    ``pos2d`` is ``(B, S)``, or any tensor read with ``pos_strides`` (batch, token). Without autograd
    (no input needs a gradient, or grad mode is off) the kernel is launched directly; otherwise
    through ``_Fused``, whose backward is the inverse rotation.
    """
    periods, theta, step, a = device_constants(cfg, seq_len, q.device, torch.float32)
    freq = periods if periods is not None else theta
    scale, sign = (1.0 / a, -1.0) if inverse else (a, 1.0)
    if torch.compiler.is_compiling() or _needs_grad(q, k):
        if pos_strides is not None:
            pos2d = pos2d.as_strided((q.shape[0], q.shape[token_axis]), pos_strides)
        return _Fused.apply(q, k, pos2d, freq, step, cfg.rotary_dim, cfg.layout == "half", cfg.resonance, scale,
                            sign, token_axis, inplace)  # fmt: skip
    out_q = q if inplace else torch.empty_like(q)
    out_k = None if k is None else (k if inplace else torch.empty_like(k))
    rope_launch(q, k, out_q, out_k, pos2d, freq, step, rotary_dim=cfg.rotary_dim, half=cfg.layout == "half",
                resonance=cfg.resonance, scale=scale, sin_sign=sign, token_axis=token_axis,
                pos_strides=pos_strides)  # fmt: skip
    return (out_q, out_k) if k is not None else out_q


# Calls the kernel already ran, by metadata: validation and planning depend on metadata only, so a
# repeat call (same config, shapes, strides, dtypes, devices, impl) goes straight to the launch.
_RECIPES: dict = {}


def call_key(q, k, positions, cfg, seq_len, impl, inplace: bool, inverse: bool):
    """The metadata key of a call, or None where the fast path never applies (CPU, tensor subclasses,
    non-tensor positions, tracing, or a seq_len to be read from the positions' values)."""
    plain = type(q) is torch.Tensor and (k is None or type(k) is torch.Tensor) and type(positions) is torch.Tensor
    fingerprint = getattr(cfg, "fingerprint", None)
    if not plain or not q.is_cuda or fingerprint is None or torch.compiler.is_compiling():
        return None
    if seq_len is None and cfg.seq_len_dependent:
        return None
    return (
        fingerprint, seq_len, impl if impl is not None else os.environ.get("RROPE_TORCH_IMPL", "auto"),
        inplace, inverse, q.shape, q.stride(), q.dtype, q.device,
        None if k is None else (k.shape, k.stride(), k.dtype, k.device),
        positions.shape, positions.stride(), positions.dtype, positions.device,
    )  # fmt: skip


def remember(key, token_axis: int, pos2d: torch.Tensor, seq_len) -> None:
    """Record that the call with ``key`` passed validation and ran the kernel on ``pos2d``."""
    if key is None:
        return
    if len(_RECIPES) > 4096:
        _RECIPES.clear()
    _RECIPES[key] = (token_axis, pos2d.stride(), seq_len)


def fast_call(key, q, k, positions, cfg, inverse: bool, inplace: bool):
    """The result of a call seen before (see ``remember``), or None."""
    recipe = None if key is None else _RECIPES.get(key)
    if recipe is None:
        return None
    token_axis, pos_strides, seq_len = recipe
    return fused_rotary(q, k, positions, cfg, seq_len, token_axis, inverse, inplace, pos_strides)
