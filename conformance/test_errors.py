"""Property 8: invalid inputs raise the reference's errors (same class, message naming the argument).

Backends check metadata only (dtype, shape, device): reading position *values* would force a
device sync. Negative positions therefore rotate backwards on backends instead of raising.
"""

import numpy as np
import pytest

import rrope_core as rr

from .harness import to_backend

CFG = rr.RopeConfig(head_dim=8, rotary_dim=6)


def _float_dtype(B):
    return "float32" if "float32" in B.DTYPES else B.DTYPES[0]


CASES = {
    "float positions": (
        "positions.dtype",
        lambda B, d: (
            B.from_numpy(np.zeros((2, 3, 8)), _float_dtype(B), d),
            B.from_numpy(np.arange(3.0), _float_dtype(B), d),
        ),
    ),
    "positions not broadcastable": (
        "positions.shape",
        lambda B, d: (B.from_numpy(np.zeros((2, 3, 8)), _float_dtype(B), d), B.from_numpy(np.arange(4), "int64", d)),
    ),
    "positions grow x": (
        "positions.shape",
        lambda B, d: (
            B.from_numpy(np.zeros((3, 8)), _float_dtype(B), d),
            B.from_numpy(np.zeros((2, 3), np.int64), "int64", d),
        ),
    ),
    "wrong head_dim": (
        "x.shape",
        lambda B, d: (B.from_numpy(np.zeros((2, 3, 6)), _float_dtype(B), d), B.from_numpy(np.arange(3), "int64", d)),
    ),
    "integer x": (
        "x.dtype",
        lambda B, d: (B.from_numpy(np.zeros((2, 3, 8), np.int64), "int64", d), B.from_numpy(np.arange(3), "int64", d)),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_invalid_input_raises_reference_error(B, device, case):
    field, make = CASES[case]
    x, pos = make(B, device)
    with pytest.raises(rr.RopeInputError) as info:
        B.apply_rotary(x, pos, CFG)
    assert str(info.value).startswith(field + "="), f"{B.name}.apply_rotary with {case}: {info.value}"
    with pytest.raises(rr.RopeInputError) as info:
        B.inverse_rotary(x, pos, CFG)
    # The inverse names its input y, as the reference does (rrope_core.rotation.inverse_rotary).
    y_field = "y" + field[1:] if field.startswith("x.") else field
    assert str(info.value).startswith(y_field + "="), f"{B.name}.inverse_rotary with {case}: {info.value}"


def test_invalid_cfg_and_seq_len(B, device):
    x, _ = to_backend(B, np.zeros((3, 8)), _float_dtype(B), device)
    pos = B.from_numpy(np.arange(3), "int64", device)
    with pytest.raises(rr.RopeInputError, match="^cfg="):
        B.apply_rotary(x, pos, "not a config")
    with pytest.raises(rr.RopeInputError, match="^seq_len="):
        B.apply_rotary(x, pos, CFG, seq_len=-1)
    with pytest.raises(rr.RopeInputError, match="^cfg="):
        B.RotaryEmbedding({"head_dim": 8})


def test_mixed_frameworks_raise_type_error(B, device):
    x, _ = to_backend(B, np.zeros((3, 8)), _float_dtype(B), device)
    if rr.framework_of(x) in (None, "numpy"):  # judged by the port's arrays, never by its name
        pytest.skip(
            f"the port's arrays are {type(x).__module__}.{type(x).__qualname__} (framework "
            f"{rr.framework_of(x)!r}): there is no second framework to mix with NumPy"
        )
    with pytest.raises(TypeError, match="two frameworks") as info:
        rr.apply_rotary(x, np.arange(3), CFG)
    assert "numpy" in str(info.value) and rr.framework_of(x) in str(info.value)


def test_cos_sin_refuses_float_positions_with_the_reference_message(B, device):
    """cos_sin checks the positions' dtype as apply_rotary does, with the reference's words."""
    dtype = _float_dtype(B)
    with pytest.raises(rr.RopeInputError) as want:
        rr.rotation.cos_sin(CFG, np.arange(3.0).astype(dtype))
    with pytest.raises(rr.RopeInputError) as got:
        B.cos_sin(CFG, B.from_numpy(np.arange(3.0), dtype, device))
    assert str(got.value) == str(want.value)
