"""Every invalid config or input raises the documented error, naming the field and the value."""

import math

import numpy as np
import pytest

import rrope_core as rr

BAD_CONFIGS = [
    # (kwargs or factory, field named in the message)
    (lambda: rr.RopeConfig(head_dim=0), "head_dim"),
    (lambda: rr.RopeConfig(head_dim=-4), "head_dim"),
    (lambda: rr.RopeConfig(head_dim=63), "head_dim"),
    (lambda: rr.RopeConfig(head_dim=64.0), "head_dim"),
    (lambda: rr.RopeConfig(head_dim=True), "head_dim"),
    (lambda: rr.RopeConfig(head_dim=64, rotary_dim=33), "rotary_dim"),
    (lambda: rr.RopeConfig(head_dim=64, rotary_dim=0), "rotary_dim"),
    (lambda: rr.RopeConfig(head_dim=64, rotary_dim=128), "rotary_dim"),
    (lambda: rr.RopeConfig(base=1.0), "base"),
    (lambda: rr.RopeConfig(base=0.5), "base"),
    (lambda: rr.RopeConfig(base=math.nan), "base"),
    (lambda: rr.RopeConfig(base=math.inf), "base"),
    (lambda: rr.RopeConfig(base="10000"), "base"),
    (lambda: rr.RopeConfig(layout="neox"), "layout"),
    (lambda: rr.RopeConfig(resonance="yes"), "resonance"),
    (lambda: rr.RopeConfig(scaling="yarn"), "scaling"),
    (lambda: rr.Linear(0.5), "Linear.factor"),
    (lambda: rr.Linear(math.nan), "Linear.factor"),
    (lambda: rr.NTK(math.inf), "NTK.factor"),
    (lambda: rr.NTK(0.9), "NTK.factor"),
    (lambda: rr.RopeConfig(head_dim=2, scaling=rr.NTK(2.0)), "rotary_dim"),
    (lambda: rr.DynamicNTK(2.0, 0), "DynamicNTK.original_max_position"),
    (lambda: rr.DynamicNTK(0.5, 2048), "DynamicNTK.factor"),
    (lambda: rr.YaRN(0.5, 4096), "YaRN.factor"),
    (lambda: rr.YaRN(4.0, 4096.5), "YaRN.original_max_position"),
    (lambda: rr.YaRN(4.0, 4096, beta_fast=math.nan), "YaRN.beta_fast"),
    (lambda: rr.YaRN(4.0, 4096, beta_slow=0.0), "YaRN.beta_slow"),
    (lambda: rr.YaRN(4.0, 4096, attention_factor=-1.0), "YaRN.attention_factor"),
    (lambda: rr.YaRN(4.0, 4096, mscale=math.nan), "YaRN.mscale"),
    (lambda: rr.YaRN(4.0, 4096, truncate="no"), "YaRN.truncate"),
    (lambda: rr.Llama3(8.0, 8192, low_freq_factor=4.0, high_freq_factor=1.0), "Llama3.high_freq_factor"),
    (lambda: rr.Llama3(math.nan, 8192), "Llama3.factor"),
    (lambda: rr.LongRoPE([1.0] * 4, [1.0] * 3, 4096), "LongRoPE.long_factor"),
    (lambda: rr.LongRoPE([1.0, math.nan], [1.0, 1.0], 4096), "LongRoPE.short_factor[1]"),
    (lambda: rr.LongRoPE([1.0, -2.0], [1.0, 1.0], 4096), "LongRoPE.short_factor[1]"),
    (lambda: rr.LongRoPE([], [], 4096), "LongRoPE.short_factor"),
    (lambda: rr.RopeConfig(head_dim=16, scaling=rr.LongRoPE([1.0] * 4, [1.0] * 4, 4096)), "LongRoPE.short_factor"),
    (lambda: rr.RopeConfig(head_dim=8, scaling=rr.LongRoPE([0.01] * 4, [1.0] * 4, 64), resonance=True), "resonance"),
    # wavelength exactly 0.5 would round (half to even) to period 0
    (
        lambda: rr.RopeConfig(
            head_dim=4, scaling=rr.LongRoPE([1 / (4 * math.pi), 1.0], [1.0, 1.0], 64), resonance=True
        ),
        "resonance",
    ),
    (lambda: rr.LongRoPE([1.0], [1.0], 1, factor=2.0), "LongRoPE.original_max_position"),
]


@pytest.mark.parametrize("make, field", BAD_CONFIGS, ids=[f for _, f in BAD_CONFIGS])
def test_invalid_config_raises_naming_field(make, field):
    with pytest.raises(rr.RopeConfigError) as info:
        make()
    msg = str(info.value)
    assert msg.startswith(field + "="), msg
    assert "must" in msg, msg


BAD_HF = [
    ({"head_dim": 64, "rope_parameters": {"rope_type": "ntk-by-parts", "rope_theta": 1e4}}, "rope_type"),
    ({"rope_parameters": {"rope_type": "default", "rope_theta": 1e4}}, "head_dim"),
    ({"head_dim": 64, "rope_parameters": {"rope_type": "linear", "rope_theta": 1e4}}, "factor"),
    ({"head_dim": 64, "rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4}}, "original_max_position_embeddings"),
    (
        {
            "head_dim": 64,
            "rope_parameters": {
                "rope_type": "llama3",
                "rope_theta": 1e4,
                "factor": 8.0,
                "original_max_position_embeddings": 8192,
            },
        },
        "low_freq_factor",
    ),
    (
        {
            "head_dim": 64,
            "rope_parameters": {"rope_type": "longrope", "rope_theta": 1e4, "original_max_position_embeddings": 4096},
        },
        "short_factor",
    ),
    (
        {"head_dim": 64, "rope_parameters": {"rope_type": "dynamic", "rope_theta": 1e4, "factor": 2.0}},
        "max_position_embeddings",
    ),
    ({"head_dim": 64, "rope_theta": 1e4, "partial_rotary_factor": 1.5}, "partial_rotary_factor"),
    ({"head_dim": 64, "rope_theta": math.nan}, "base"),
    ({"head_dim": 64, "rope_scaling": {"type": "linear", "factor": math.nan}}, "Linear.factor"),
    ({"head_dim": 64, "rope_scaling": "linear"}, "rope_scaling"),
    (
        {
            "head_dim": 64,
            "rope_parameters": {
                "full_attention": {"rope_type": "default"},
                "sliding_attention": {"rope_type": "default"},
            },
        },
        "rope_parameters",
    ),
    ([1, 2], "block"),
    ({"hidden_size": "4096", "num_attention_heads": 32}, "hidden_size"),
    (
        {"head_dim": 64, "max_position_embeddings": "4k", "rope_scaling": {"type": "yarn", "factor": 4.0}},
        "max_position_embeddings",
    ),
]


@pytest.mark.parametrize("block, field", BAD_HF, ids=[f for _, f in BAD_HF])
def test_invalid_hf_block_raises_naming_field(block, field):
    with pytest.raises(rr.RopeConfigError) as info:
        rr.RopeConfig.from_hf(block)
    assert str(info.value).startswith(field + "="), str(info.value)


def test_to_hf_rejects_what_transformers_cannot_express():
    with pytest.raises(rr.RopeConfigError, match="^cfg.layout="):
        rr.RopeConfig(layout="interleaved").to_hf()
    with pytest.raises(rr.RopeConfigError, match="^version="):
        rr.RopeConfig().to_hf(version=3)


CFG = rr.RopeConfig(head_dim=8)
X = np.zeros((2, 3, 8), dtype=np.float32)


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda: rr.apply_rotary(X, np.arange(3.0), CFG), "positions.dtype"),
        (lambda: rr.apply_rotary(X, np.array([0, -1, 2]), CFG), "positions"),
        (lambda: rr.apply_rotary(X, np.arange(4), CFG), "positions.shape"),
        (lambda: rr.apply_rotary(X, np.zeros((2, 2, 3), dtype=np.int64), CFG), "positions.shape"),
        (lambda: rr.apply_rotary(X, np.array([True, False, True]), CFG), "positions.dtype"),
        (lambda: rr.apply_rotary(np.zeros((2, 3, 6), np.float32), np.arange(3), CFG), "x.shape"),
        (lambda: rr.apply_rotary(np.zeros((2, 3, 8), np.int32), np.arange(3), CFG), "x.dtype"),
        (lambda: rr.inverse_rotary(np.zeros((2, 3, 6), np.float32), np.arange(3), CFG), "y.shape"),
        (lambda: rr.apply_rotary(X, np.arange(3), CFG, seq_len=0), "seq_len"),
        (lambda: rr.apply_rotary(X, np.arange(3), "cfg"), "cfg"),
        (lambda: rr.cos_sin(CFG, np.array([2**53])), "positions"),
        (lambda: rr.cos_sin(CFG, np.array([2**63], dtype=np.uint64)), "positions"),
        (lambda: rr.critical_dim(CFG, 0), "train_len"),
        (lambda: rr.feature_gap(CFG, 64, 64), "test_len"),
        (lambda: rr.integer_wavelengths(CFG), "cfg.resonance"),
    ],
)
def test_invalid_input_raises_naming_argument(call, field):
    with pytest.raises(rr.RopeError) as info:
        call()
    assert str(info.value).startswith(field + "="), str(info.value)


def test_error_family():
    assert issubclass(rr.RopeConfigError, rr.RopeError)
    assert issubclass(rr.RopeInputError, rr.RopeError)
    assert issubclass(rr.RopeError, ValueError)
    assert issubclass(rr.MixedFrameworkError, TypeError)
    assert issubclass(rr.BackendNotFoundError, ImportError)


def test_resonance_accepts_int64_positions_beyond_2_53():
    cfg = rr.RopeConfig(head_dim=8, resonance=True)
    cos, sin = rr.cos_sin(cfg, np.array([2**62]))
    assert np.all(np.isfinite(cos)) and np.all(np.abs(cos**2 + sin**2 - 1) < 4e-16)


def test_warnings_point_at_the_callers_line_on_every_path():
    """RopeWarning is attributed to the first frame outside rrope_core (errors.warn), whichever public
    function the user called: the reported file is this test file."""
    import warnings

    from rrope_core.errors import RopeWarning
    from rrope_core.hf import config_from_hf

    both = {"rope_scaling": {"rope_type": "linear", "factor": 2.0}, "rope_parameters": {"rope_type": "default"}}
    unknown = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64, "beta_fsat": 2.0}
    backwards = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64, "beta_fast": 1.0,
                 "beta_slow": 2.0}  # fmt: skip
    calls = [
        lambda: rr.RopeConfig.from_hf({**both, "head_dim": 8}),
        lambda: config_from_hf({**both, "head_dim": 8}),
        lambda: rr.RopeConfig.from_hf({"rope_scaling": unknown, "head_dim": 8}),
        lambda: config_from_hf({"rope_scaling": unknown, "head_dim": 8}),
        lambda: config_from_hf({"rope_scaling": backwards, "head_dim": 8}),
        lambda: rr.YaRN(4.0, 64, beta_fast=1.0, beta_slow=2.0),
    ]
    for call in calls:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
        (w,) = [w for w in caught if issubclass(w.category, RopeWarning)]
        assert w.filename == __file__, (w.filename, w.lineno, str(w.message))
