"""The rotation, its inverse and their autograd: backward IS the inverse rotation.

``y = a * R(phi) x`` per pair (RoFormer eq. 13), so ``dL/dx = a * R(-phi) dL/dy``: the same
kernel with ``sin`` negated, never a derivative of the trig. Features past ``rotary_dim`` pass
through. Math in the compute dtype (float64 for float64 inputs, else float32).
"""

from __future__ import annotations

import torch

import rrope_core as rr
from rrope_core.checked import check_range, positions_checked
from rrope_core.errors import RopeInputError, bad
from rrope_core.inputs import check_call
from rrope_core.rotation import resolve_seq_len

from . import dtensor
from .fused import IMPLS, call_key, default_impl, fast_call, fused_rotary, kernel_plan, remember
from .phases import phases

__all__ = ["rotate", "apply_rotary", "inverse_rotary", "apply_rotary_", "apply_rotary_qk", "cos_sin", "prepare"]


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, scale: float, rotary_dim: int, half: bool):
    """``scale * R(phi) x`` on the first ``rotary_dim`` features (``half`` or interleaved pairs); a new tensor."""
    rd = rotary_dim
    if half:
        x1, x2 = x[..., : rd // 2], x[..., rd // 2 : rd]
    else:
        x1, x2 = x[..., 0:rd:2], x[..., 1:rd:2]
    x1, x2 = x1.to(cos.dtype), x2.to(cos.dtype)
    y1 = x1 * cos - x2 * sin
    y2 = x2 * cos + x1 * sin
    if scale != 1.0:
        y1, y2 = y1 * scale, y2 * scale
    rot = torch.cat([y1, y2], -1) if half else torch.stack([y1, y2], -1).flatten(-2)
    rot = rot.to(x.dtype)
    if rd == x.shape[-1]:
        return rot
    return torch.cat([rot, x[..., rd:].expand(rot.shape[:-1] + (x.shape[-1] - rd,))], -1)


# Only tensors and plain numbers cross the autograd.Function boundary (torch.compile graphs them).
class _Rotary(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, cos, sin, scale, rotary_dim, half):
        ctx.save_for_backward(cos, sin)
        ctx.args = (scale, rotary_dim, half)
        return rotate(x, cos, sin, scale, rotary_dim, half)

    @staticmethod
    def backward(ctx, grad):
        cos, sin = ctx.saved_tensors
        return rotate(grad, cos, -sin, *ctx.args), None, None, None, None, None


class _RotaryInplace(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, cos, sin, scale, rotary_dim, half):
        ctx.save_for_backward(cos, sin)
        ctx.args = (scale, rotary_dim, half)
        x[..., :rotary_dim].copy_(rotate(x[..., :rotary_dim], cos, sin, scale, rotary_dim, half))
        ctx.mark_dirty(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        cos, sin = ctx.saved_tensors
        return rotate(grad, cos, -sin, *ctx.args), None, None, None, None, None


def _as_positions(positions, device) -> torch.Tensor:
    if isinstance(positions, torch.Tensor):
        return positions
    return torch.as_tensor(positions, device=device)


def _is_integer(dtype: torch.dtype) -> bool:
    return not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _seq_len(cfg, seq_len, pos: torch.Tensor) -> int | None:
    """``resolve_seq_len`` with ``max(positions)``, read from the device only when it is needed
    (dynamic NTK / LongRoPE without ``seq_len``: pass ``seq_len`` to avoid it, and under torch.compile)."""
    max_position = int(pos.max()) if seq_len is None and cfg.seq_len_dependent and pos.numel() else None
    return resolve_seq_len(cfg, seq_len, max_position)


def prepare(x, positions, cfg, seq_len, name: str = "x"):
    """Validate metadata (no device sync), resolve ``seq_len``; return ``(positions, seq_len)``."""
    if not isinstance(x, torch.Tensor):
        raise bad(name, type(x).__name__, "must be a torch.Tensor", RopeInputError)
    pos = _as_positions(positions, x.device)
    check_call(
        cfg,
        tuple(x.shape),
        _dtype_name(x.dtype),
        x.dtype.is_floating_point,
        tuple(pos.shape),
        _dtype_name(pos.dtype),
        _is_integer(pos.dtype),
        name,
    )
    if pos.device != x.device:
        raise bad("positions.device", str(pos.device), f"must be {name}'s device {x.device}", RopeInputError)
    return pos, _seq_len(cfg, seq_len, pos)


def _cos_sin_for(x: torch.Tensor, pos: torch.Tensor, cfg, seq_len):
    phi, a = phases(pos, cfg, seq_len, compute_dtype(x.dtype))
    return torch.cos(phi), torch.sin(phi), a


def _plan(x, pos, impl):
    """The kernel's ``(token_axis, pos2d)`` when it should run, else None (eager)."""
    impl = default_impl() if impl is None else impl
    if impl not in IMPLS:
        raise bad("impl", impl, f"must be one of {IMPLS}", RopeInputError)
    if impl == "eager":
        return None
    plan = kernel_plan(x, pos)
    if isinstance(plan, str):
        if impl == "triton":
            raise bad("impl", impl, f"cannot run here: {plan}", RopeInputError)
        return None
    return plan


def _checking() -> bool:
    """Checked positions mode, outside torch.compile tracing (no values there; Dynamo cannot trace
    the mode's ContextVar either)."""
    return not torch.compiler.is_compiling() and positions_checked()


def check_values(positions) -> None:
    """Checked positions mode (``rrope_core.checked``): read min/max (a device sync) and validate."""
    pos = positions if isinstance(positions, torch.Tensor) else torch.as_tensor(positions)
    if pos.numel() and _is_integer(pos.dtype):
        check_range(int(pos.min()), int(pos.max()))


def _rotary_dtensor(x, positions, cfg, seq_len, impl, inverse: bool, inplace: bool):
    """A DTensor ``x``: rotate the local shard at its global positions (see ``dtensor``)."""
    name = "y" if inverse else "x"
    if inplace:
        raise bad(name, "DTensor", "cannot be rotated in place (apply_rotary_): use apply_rotary", RopeInputError)
    local_pos = dtensor.local_positions(x, positions, name)
    glob = positions.to_local() if dtensor.is_dtensor(positions) else torch.as_tensor(positions)
    seq_len = _seq_len(cfg, seq_len, glob)  # from the global positions: the same on every rank
    return dtensor.like(_rotary(x.to_local(), local_pos, cfg, seq_len, impl, inverse, False), x)


def _rotary(x, positions, cfg, seq_len, impl, inverse: bool, inplace: bool):
    if dtensor.is_dtensor(x):
        return _rotary_dtensor(x, positions, cfg, seq_len, impl, inverse, inplace)
    if _checking():
        check_values(positions)
    key = call_key(x, None, positions, cfg, seq_len, impl, inplace, inverse)
    fast = fast_call(key, x, None, positions, cfg, inverse, inplace)
    if fast is not None:
        return fast
    name = "y" if inverse else "x"
    pos, seq_len = prepare(x, positions, cfg, seq_len, name)
    plan = _plan(x, pos, impl)
    if plan is not None:
        out = fused_rotary(x, None, plan[1], cfg, seq_len, plan[0], inverse=inverse, inplace=inplace)
        remember(key, plan[0], plan[1], seq_len)
        return out
    cos, sin, a = _cos_sin_for(x, pos, cfg, seq_len)
    if inverse:
        sin, a = -sin, 1.0 / a
    if not inplace:
        if torch.compiler.is_compiling():
            # Traced ops: AOTAutograd derives the same transpose rotation (cos/sin do not need
            # grad), avoiding custom-Function tracing, which returned zero grads on torch 2.11.
            return rotate(x, cos, sin, a, cfg.rotary_dim, cfg.layout == "half")
        return _Rotary.apply(x, cos, sin, a, cfg.rotary_dim, cfg.layout == "half")
    return _RotaryInplace.apply(x, cos, sin, a, cfg.rotary_dim, cfg.layout == "half")


def apply_rotary(x, positions, cfg: rr.RopeConfig, seq_len: int | None = None, *, impl: str | None = None):
    """Rotate ``x`` (``(..., head_dim)``) at integer ``positions`` broadcastable to ``x.shape[:-1]``.

    ``impl``: ``"auto"`` (default, from ``RROPE_TORCH_IMPL``) runs the fused Triton kernel on CUDA
    when it applies and the eager path otherwise; ``"triton"`` insists; ``"eager"`` never uses it.
    """
    return _rotary(x, positions, cfg, seq_len, impl, inverse=False, inplace=False)


def inverse_rotary(y, positions, cfg: rr.RopeConfig, seq_len: int | None = None, *, impl: str | None = None):
    """Exact inverse of ``apply_rotary``: rotate by ``-phi`` and divide by the attention factor."""
    return _rotary(y, positions, cfg, seq_len, impl, inverse=True, inplace=False)


def apply_rotary_(x, positions, cfg: rr.RopeConfig, seq_len: int | None = None, *, impl: str | None = None):
    """In-place ``apply_rotary``: writes into ``x`` (a view of a packed qkv works) and returns it."""
    return _rotary(x, positions, cfg, seq_len, impl, inverse=False, inplace=True)


def apply_rotary_qk(
    q, k, positions, cfg: rr.RopeConfig, seq_len: int | None = None, *, inplace: bool = False, impl: str | None = None
):
    """Rotate q and k (head counts may differ) at the same positions: one kernel launch on CUDA."""
    if dtensor.is_dtensor(q) or dtensor.is_dtensor(k):
        return (
            _rotary(q, positions, cfg, seq_len, impl, inverse=False, inplace=inplace),
            _rotary(k, positions, cfg, seq_len, impl, inverse=False, inplace=inplace),
        )
    if _checking():
        check_values(positions)
    key = call_key(q, k, positions, cfg, seq_len, impl, inplace, False)
    fast = fast_call(key, q, k, positions, cfg, False, inplace)
    if fast is not None:
        return fast
    pos, seq_len = prepare(q, positions, cfg, seq_len, "q")
    prepare(k, pos, cfg, seq_len, "k")
    pq, pk = _plan(q, pos, impl), _plan(k, pos, impl)
    if pq is not None and pk is not None and pq[0] == pk[0] and q.dtype == k.dtype:
        out = fused_rotary(q, k, pq[1], cfg, seq_len, pq[0], inplace=inplace)
        remember(key, pq[0], pq[1], seq_len)
        return out
    rotate_one = apply_rotary_ if inplace else apply_rotary
    return rotate_one(q, pos, cfg, seq_len, impl=impl), rotate_one(k, pos, cfg, seq_len, impl=impl)


def cos_sin(cfg: rr.RopeConfig, positions, seq_len: int | None = None, dtype: torch.dtype = torch.float32):
    """``(cos, sin)`` of shape ``positions.shape + (rotary_dim//2,)``, without the attention factor."""
    pos = _as_positions(positions, None)
    rr.inputs.check_cfg(cfg)
    rr.inputs.check_positions_dtype(_dtype_name(pos.dtype), _is_integer(pos.dtype))
    if _checking():
        check_values(pos)
    phi, _ = phases(pos, cfg, _seq_len(cfg, seq_len, pos), compute_dtype(dtype))
    return torch.cos(phi).to(dtype), torch.sin(phi).to(dtype)
