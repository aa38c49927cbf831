"""Moving arrays in and out of the backend under test, and failure messages that read on their own."""

from __future__ import annotations

import numpy as np

import rrope_core as rr
from rrope_core import rotation as ref

from .tolerance import rotation_tolerance


def describe(call: str, cfg, x_shape=None, positions=None, dtype=None, seq_len=None, **extra) -> str:
    """``call(cfg=..., x.shape=..., positions=..., dtype=..., seq_len=...)`` for assertion messages."""
    parts = [f"cfg={cfg!r}"]
    if x_shape is not None:
        parts.append(f"x.shape={tuple(x_shape)}")
    if positions is not None:
        p = np.asarray(positions)
        parts.append(f"positions.shape={p.shape} min={p.min() if p.size else None} max={p.max() if p.size else None}")
    if dtype is not None:
        parts.append(f"dtype={dtype}")
    parts.append(f"seq_len={seq_len}")
    parts += [f"{k}={v}" for k, v in extra.items()]
    return f"{call}({', '.join(parts)})"


def to_backend(B, x64: np.ndarray, dtype: str, device):
    """``(native, exact)``: the array in the backend and, as float64, the values it really holds."""
    xb = B.from_numpy(x64, dtype=dtype, device=device)
    return xb, np.asarray(B.to_numpy(xb), dtype=np.float64)


def positions_to_backend(B, positions: np.ndarray, device):
    return B.from_numpy(np.asarray(positions, dtype=np.int64), dtype="int64", device=device)


def rotate_and_check(B, fn: str, cfg, x64, positions, dtype, seq_len, device, scale: float | None = None):
    """Run ``B.<fn>`` and the reference on the same values; return (out, ref, tol, message)."""
    xb, exact = to_backend(B, x64, dtype, device)
    pb = positions_to_backend(B, positions, device)
    out = np.asarray(B.to_numpy(getattr(B, fn)(xb, pb, cfg, seq_len)), dtype=np.float64)
    want = getattr(ref, fn)(exact, positions, cfg, seq_len)
    eff_seq = ref.resolve_seq_len(cfg, seq_len, int(np.max(positions)) if np.size(positions) else None)
    a = rr.attention_factor(cfg, eff_seq)
    scale = (a if fn == "apply_rotary" else 1 / a) if scale is None else scale
    tol = rotation_tolerance(cfg, exact, want, positions, eff_seq, dtype, scale)
    msg = describe(f"{B.name}.{fn}", cfg, x64.shape, positions, dtype, seq_len)
    return out, want, tol, msg, exact


def assert_within(out, want, tol, msg):
    err = np.abs(out - want)
    bad = ~(err <= tol)
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, err - tol, -np.inf)), err.shape)
        raise AssertionError(
            f"{msg}: {int(bad.sum())} of {err.size} values off; worst at {tuple(int(v) for v in i)}: "
            f"got {out[i]!r}, reference {want[i]!r}, |diff| {err[i]:.3g} > tolerance {tol[i]:.3g}"
        )


def assert_centred_phases(angles, positions, bound, eps: float, configs=None, half_turn: bool = True):
    """A port's phase function gives the reference's angles, centred as ``rrope_core.phases`` centres them.

    ``angles(cfg, positions) -> array`` (rows: positions, columns: frequency pairs) is the port's
    phase function in its own dtype; cos/sin of the result cannot show where residues are centred,
    so this checks the angles themselves. With ``half_turn``, for a resonance config's first even
    integer wavelength ``L``: ``m = L/2`` gives +pi within 4*eps (the reference's residues lie in
    ``(-L/2, L/2]``), ``L/2 + 1`` a negative and ``3L/8`` a positive angle. Then, for each config
    (default: ``head_dim=16`` with and without resonance) and ``positions``: every angle lies in
    ``[-pi(1 + eps), pi(1 + eps)]`` and within ``bound(cfg, positions)`` (a scalar or an array that
    broadcasts) of ``rrope_core.phases``. ``eps``: the machine epsilon of the port's compute dtype.
    """
    res = rr.RopeConfig(head_dim=16, resonance=True)
    if half_turn:
        L = rr.integer_wavelengths(res)
        even = int(L[L % 2 == 0][0])
        i = int(np.flatnonzero(L == even)[0])
        half = np.asarray(angles(res, np.array([even // 2, even // 2 + 1, 3 * even // 8])), dtype=np.float64)[:, i]
        assert abs(half[0] - np.pi) <= 4 * eps and half[0] > 0, f"m = L/2 = {even // 2}: angle {half[0]!r}, want +pi"
        assert half[1] < 0 and half[2] > 0, f"m = L/2 + 1, 3L/8 (L = {even}): angles {half[1:]!r}, want - and +"
    positions = np.asarray(positions)
    for cfg in configs if configs is not None else (res, rr.RopeConfig(head_dim=16)):
        a = np.asarray(angles(cfg, positions), dtype=np.float64)
        assert np.all(np.abs(a) <= np.pi * (1 + eps)), describe(
            "angles", cfg, positions=positions, max_abs=np.abs(a).max()
        )
        want = rr.phases(cfg, positions)
        tol = np.broadcast_to(np.asarray(bound(cfg, positions), dtype=np.float64), want.shape)
        assert_within(a, want, tol, describe("angles", cfg, positions=positions))
