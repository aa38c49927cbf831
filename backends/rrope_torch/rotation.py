"""The rotation, its inverse and their autograd: backward IS the inverse rotation.

``y = a * R(phi) x`` per pair (RoFormer eq. 13), so ``dL/dx = a * R(-phi) dL/dy``: the same
kernel with ``sin`` negated, never a derivative of the trig. Features past ``rotary_dim`` pass
through. Math in the compute dtype (float64 for float64 inputs, else float32).
"""

from __future__ import annotations

import torch

import rrope_core as rr
from rrope_core.errors import RopeInputError, bad
from rrope_core.inputs import check_call
from rrope_core.rotation import resolve_seq_len

from .phases import phases

__all__ = ["rotate", "apply_rotary", "inverse_rotary", "apply_rotary_", "cos_sin", "prepare"]


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, scale: float, cfg: rr.RopeConfig) -> torch.Tensor:
    """``scale * R(phi) x`` on the first ``rotary_dim`` features of ``x`` in ``cfg.layout``; a new tensor."""
    rd = cfg.rotary_dim
    if cfg.layout == "half":
        x1, x2 = x[..., : rd // 2], x[..., rd // 2 : rd]
    else:
        x1, x2 = x[..., 0:rd:2], x[..., 1:rd:2]
    x1, x2 = x1.to(cos.dtype), x2.to(cos.dtype)
    y1 = x1 * cos - x2 * sin
    y2 = x2 * cos + x1 * sin
    if scale != 1.0:
        y1, y2 = y1 * scale, y2 * scale
    rot = torch.cat([y1, y2], -1) if cfg.layout == "half" else torch.stack([y1, y2], -1).flatten(-2)
    rot = rot.to(x.dtype)
    if rd == x.shape[-1]:
        return rot
    return torch.cat([rot, x[..., rd:].expand(rot.shape[:-1] + (x.shape[-1] - rd,))], -1)


class _Rotary(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, cos, sin, scale, cfg):
        ctx.save_for_backward(cos, sin)
        ctx.scale, ctx.cfg = scale, cfg
        return rotate(x, cos, sin, scale, cfg)

    @staticmethod
    def backward(ctx, grad):
        cos, sin = ctx.saved_tensors
        return rotate(grad, cos, -sin, ctx.scale, ctx.cfg), None, None, None, None


class _RotaryInplace(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, cos, sin, scale, cfg):
        ctx.save_for_backward(cos, sin)
        ctx.scale, ctx.cfg = scale, cfg
        rd = cfg.rotary_dim
        x[..., :rd].copy_(rotate(x[..., :rd], cos, sin, scale, cfg))
        ctx.mark_dirty(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        cos, sin = ctx.saved_tensors
        return rotate(grad, cos, -sin, ctx.scale, ctx.cfg), None, None, None, None


def _as_positions(positions, device) -> torch.Tensor:
    if isinstance(positions, torch.Tensor):
        return positions
    return torch.as_tensor(positions, device=device)


def prepare(x, positions, cfg, seq_len, name: str = "x"):
    """Validate metadata (no device sync), resolve ``seq_len``; return ``(positions, seq_len)``."""
    if not isinstance(x, torch.Tensor):
        raise bad(name, type(x).__name__, "must be a torch.Tensor", RopeInputError)
    pos = _as_positions(positions, x.device)
    integer = not (pos.dtype.is_floating_point or pos.dtype.is_complex or pos.dtype == torch.bool)
    check_call(
        cfg,
        tuple(x.shape),
        str(x.dtype).removeprefix("torch."),
        x.dtype.is_floating_point,
        tuple(pos.shape),
        str(pos.dtype).removeprefix("torch."),
        integer,
        name,
    )
    if pos.device != x.device:
        raise bad("positions.device", str(pos.device), f"must be {name}'s device {x.device}", RopeInputError)
    max_position = None
    if seq_len is None and cfg.seq_len_dependent and pos.numel():
        max_position = int(pos.max())  # one host read: pass seq_len to avoid it (and under torch.compile)
    return pos, resolve_seq_len(cfg, seq_len, max_position)


def _cos_sin_for(x: torch.Tensor, pos: torch.Tensor, cfg, seq_len):
    phi, a = phases(pos, cfg, seq_len, compute_dtype(x.dtype))
    return torch.cos(phi), torch.sin(phi), a


def apply_rotary(x, positions, cfg: rr.RopeConfig, seq_len: int | None = None) -> torch.Tensor:
    """Rotate ``x`` (``(..., head_dim)``) at integer ``positions`` broadcastable to ``x.shape[:-1]``."""
    pos, seq_len = prepare(x, positions, cfg, seq_len)
    cos, sin, a = _cos_sin_for(x, pos, cfg, seq_len)
    return _Rotary.apply(x, cos, sin, a, cfg)


def inverse_rotary(y, positions, cfg: rr.RopeConfig, seq_len: int | None = None) -> torch.Tensor:
    """Exact inverse of :func:`apply_rotary`: rotate by ``-phi`` and divide by the attention factor."""
    pos, seq_len = prepare(y, positions, cfg, seq_len, "y")
    cos, sin, a = _cos_sin_for(y, pos, cfg, seq_len)
    return _Rotary.apply(y, cos, -sin, 1.0 / a, cfg)


def apply_rotary_(x, positions, cfg: rr.RopeConfig, seq_len: int | None = None) -> torch.Tensor:
    """In-place :func:`apply_rotary`: writes into ``x`` (a view of a packed qkv works) and returns it."""
    pos, seq_len = prepare(x, positions, cfg, seq_len)
    if tuple(torch.broadcast_shapes(pos.shape, x.shape[:-1])) != tuple(x.shape[:-1]):
        raise bad(
            "positions.shape", tuple(pos.shape), f"must broadcast to x.shape[:-1]={tuple(x.shape[:-1])}", RopeInputError
        )
    cos, sin, a = _cos_sin_for(x, pos, cfg, seq_len)
    return _RotaryInplace.apply(x, cos, sin, a, cfg)


def cos_sin(cfg: rr.RopeConfig, positions, seq_len: int | None = None, dtype: torch.dtype = torch.float32):
    """``(cos, sin)`` of shape ``positions.shape + (rotary_dim//2,)``, without the attention factor."""
    pos = _as_positions(positions, None)
    rr.inputs.check_cfg(cfg)
    integer = not (pos.dtype.is_floating_point or pos.dtype.is_complex or pos.dtype == torch.bool)
    rr.inputs.check_positions_dtype(str(pos.dtype).removeprefix("torch."), integer)
    max_position = int(pos.max()) if seq_len is None and cfg.seq_len_dependent and pos.numel() else None
    phi, _ = phases(pos, cfg, resolve_seq_len(cfg, seq_len, max_position), compute_dtype(dtype))
    return torch.cos(phi).to(dtype), torch.sin(phi).to(dtype)
