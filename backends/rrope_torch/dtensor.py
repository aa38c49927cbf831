"""DTensor inputs (``torch.distributed.tensor``): each rank rotates its local shard, no communication.

The rotation is element-wise along every axis but the last (pairs of features), and linear, so a
DTensor ``x`` with placements ``Replicate``, ``Partial`` or ``Shard(d)`` for any ``d`` except the
feature axis rotates shard by shard: ``R(phi) x_local`` at the positions of the local elements.
``positions`` hold *global* positions: a plain tensor broadcastable to ``x``'s global
``shape[:-1]`` (e.g. ``(S,)`` for ``(B, H, S, D)``), or a replicated DTensor. The local positions
are the same slice of the broadcast positions as ``x``'s local shard is of ``x`` (computed on each
rank with ``distribute_tensor(..., src_data_rank=None)``, which splits without communicating). The
output has ``x``'s placements, shape and stride; autograd flows through ``to_local``/``from_local``.
``seq_len`` for dynamic NTK / LongRoPE comes from the global positions, the same on every rank.
"""

from __future__ import annotations

import torch

from rrope_core.errors import RopeInputError, bad

__all__ = ["is_dtensor", "local_positions", "like"]


def is_dtensor(t) -> bool:
    """True for a ``torch.distributed.tensor.DTensor`` (checked without importing it)."""
    return type(t).__name__ == "DTensor" and type(t).__module__.startswith("torch.distributed.tensor")


def local_positions(x, positions, name: str) -> torch.Tensor:
    """The positions of ``x``'s local elements (validated first: errors name the global shapes)."""
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    if is_dtensor(positions):
        if not all(isinstance(p, Replicate) for p in positions.placements):
            raise bad(
                "positions.placements",
                tuple(positions.placements),
                "must be Replicate() on every mesh dimension (or pass a plain tensor of global positions)",
                RopeInputError,
            )
        positions = positions.to_local()
    pos = torch.as_tensor(positions, device=x.to_local().device)
    lead = tuple(x.shape[:-1])
    try:
        full = pos.expand(lead)
    except RuntimeError:
        raise bad(
            "positions.shape", tuple(pos.shape), f"must broadcast to {name}.shape[:-1]={lead}", RopeInputError
        ) from None
    for p in x.placements:
        if isinstance(p, Shard) and p.dim % x.ndim == x.ndim - 1:
            raise bad(
                f"{name}.placements",
                tuple(x.placements),
                "must not shard the feature (last) axis: rotation pairs features",
                RopeInputError,
            )
    shard_like = [p if isinstance(p, Shard) else Replicate() for p in x.placements]  # Partial: positions are whole
    return distribute_tensor(full, x.device_mesh, shard_like, src_data_rank=None).to_local()


def like(out: torch.Tensor, x):
    """``out`` (the rotated local shard) as a DTensor with ``x``'s mesh, placements, shape and stride."""
    from torch.distributed.tensor import DTensor

    return DTensor.from_local(out, x.device_mesh, x.placements, shape=x.shape, stride=x.stride())
