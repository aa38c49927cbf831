"""rrope_mlx.mlx_lm: the resonance rope types inside mlx-lm (tiny random llama, nothing downloaded)."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core", reason="the mlx-lm integration needs mlx")
pytest.importorskip("mlx_lm", reason="the mlx-lm integration needs mlx-lm")
pytest.importorskip("rrope_mlx", reason="rrope_mlx is not installed")

import mlx.nn as nn  # noqa: E402
from mlx.utils import tree_flatten  # noqa: E402
from mlx_lm.models import llama, rope_utils  # noqa: E402  (imported BEFORE register(): rebound by it)
from mlx_lm.models.cache import make_prompt_cache  # noqa: E402

import rrope_core as rr  # noqa: E402
import rrope_mlx  # noqa: E402
import rrope_mlx.mlx_lm as rml  # noqa: E402

ORIGINAL = rope_utils.initialize_rope
HEAD_DIM = 16
SHORT = [1.0] * (HEAD_DIM // 2)
LONG = [float(i + 1) for i in range(HEAD_DIM // 2)]
YARN = {"rope_type": "resonance_yarn", "factor": 4.0, "original_max_position_embeddings": 64}

# scaling_config -> the independently built reference config (head_dim 16, base 1e4, max_position_embeddings 256)
CASES = {
    "resonance": ({"rope_type": "resonance"}, None),
    "resonance_linear": ({"type": "resonance_linear", "factor": 2.0}, rr.Linear(2.0)),
    "resonance_dynamic": ({"rope_type": "resonance_dynamic", "factor": 2.0}, rr.DynamicNTK(2.0, 256)),
    "resonance_yarn": (YARN, rr.YaRN(4.0, 64)),
    "resonance_llama3": (
        {
            "rope_type": "resonance_llama3",
            "factor": 8.0,
            "original_max_position_embeddings": 64,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
        },
        rr.Llama3(8.0, 64, 1.0, 4.0),
    ),
    "resonance_longrope": (
        {
            "rope_type": "resonance_longrope",
            "short_factor": SHORT,
            "long_factor": LONG,
            "original_max_position_embeddings": 64,
            "factor": 4.0,
        },
        rr.LongRoPE(SHORT, LONG, 64, factor=4.0),
    ),
}


def reference(rope_type: str, **kw) -> rr.RopeConfig:
    return rr.RopeConfig(head_dim=HEAD_DIM, base=10000.0, scaling=CASES[rope_type][1], resonance=True, **kw)


@pytest.fixture(autouse=True, scope="module")
def registered():
    rml.register()
    yield
    rml.unregister()


def tiny_llama(rope_scaling: dict = YARN, seed: int = 0) -> llama.Model:
    mx.random.seed(seed)
    args = llama.ModelArgs.from_dict(
        {
            "model_type": "llama",
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "intermediate_size": 128,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "rms_norm_eps": 1e-5,
            "vocab_size": 64,
            "max_position_embeddings": 256,
            "rope_theta": 10000.0,
            "rope_scaling": rope_scaling,
            "tie_word_embeddings": False,
        }
    )
    model = llama.Model(args)
    mx.eval(model.parameters())
    return model


def test_register_rebinds_modules_imported_before_and_after():
    assert rml.is_registered()
    assert rope_utils.initialize_rope is rml.initialize_rope
    assert llama.initialize_rope is rml.initialize_rope  # imported before register()
    qwen3 = importlib.import_module("mlx_lm.models.qwen3")
    assert qwen3.initialize_rope is rml.initialize_rope
    rml.register()  # idempotent
    assert llama.initialize_rope is rml.initialize_rope and rml._original is ORIGINAL


@pytest.mark.parametrize("rope_type", list(CASES))
def test_every_type_builds_the_reference_config(rope_type):
    rope = rope_utils.initialize_rope(HEAD_DIM, 10000.0, False, CASES[rope_type][0], 256)
    assert isinstance(rope, rml.ResonanceRoPE)
    assert rope.cfg == reference(rope_type)
    x = mx.random.normal((1, 2, 300, HEAD_DIM))
    for t, offset in ((10, 0), (300, 0), (300, 7), (300, 1000)):  # seq_len 10..1300: short/long, dynamic growth
        positions = mx.arange(offset, offset + t)
        want = rrope_mlx.apply_rotary(x[:, :, :t], positions, reference(rope_type))
        assert mx.array_equal(rope(x[:, :, :t], offset=offset), want)


def test_type_key_takes_precedence_like_mlx_lm():
    rope = rope_utils.initialize_rope(
        HEAD_DIM, 10000.0, False, {**YARN, "type": "resonance_yarn", "rope_type": "yarn"}, 256
    )
    assert rope.cfg == reference("resonance_yarn")


def test_other_types_still_go_to_mlx_lm():
    assert isinstance(rope_utils.initialize_rope(HEAD_DIM, 10000.0, False, None, 256), nn.RoPE)
    yarn = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}
    assert isinstance(rope_utils.initialize_rope(HEAD_DIM, 10000.0, False, yarn, 256), rope_utils.YarnRoPE)
    with pytest.raises(ValueError, match="Unsupported RoPE type"):
        rope_utils.initialize_rope(HEAD_DIM, 10000.0, False, {"rope_type": "nonsense"}, 256)


def test_traditional_partial_and_batched_offsets():
    """traditional=True is the interleaved layout; dims < head_dim rotates the first dims features;
    an (B,) offset array gives positions (B, 1, T)."""
    rope = rope_utils.initialize_rope(8, 500.0, True, YARN, 256)
    cfg = rr.RopeConfig(
        head_dim=HEAD_DIM, rotary_dim=8, base=500.0, scaling=rr.YaRN(4.0, 64), resonance=True, layout="interleaved"
    )
    x = mx.random.normal((2, 3, 20, HEAD_DIM))
    assert mx.array_equal(rope(x, offset=5), rrope_mlx.apply_rotary(x, mx.arange(5, 25), cfg))
    offsets = mx.array([3, 90])
    positions = offsets.reshape(2, 1, 1) + mx.arange(20)
    assert mx.array_equal(rope(x, offset=offsets), rrope_mlx.apply_rotary(x, positions, cfg))
    assert mx.array_equal(rope(x, offset=mx.array(5)), rope(x, offset=5))
    y = rope(x, offset=5)
    assert mx.allclose(rope(y, offset=5, inverse=True), x, atol=1e-5)


def test_tiny_llama_uses_resonance_rope_and_runs():
    model = tiny_llama()
    for layer in model.model.layers:
        rope = layer.self_attn.rope
        assert isinstance(rope, rml.ResonanceRoPE) and rope.cfg == reference("resonance_yarn")
    assert not [k for k, _ in tree_flatten(model.parameters()) if "rope" in k]  # nothing to load or save
    # The model's own rope rotates its (B, H, T, D) queries exactly like rrope_mlx.apply_rotary:
    attn = model.model.layers[0].self_attn
    q = mx.random.normal((1, attn.n_heads, 70, HEAD_DIM))
    assert mx.array_equal(
        attn.rope(q, offset=30), rrope_mlx.apply_rotary(q, mx.arange(30, 100), reference("resonance_yarn"))
    )
    tokens = (mx.arange(80) * 7 % 64)[None]
    logits = model(tokens)
    assert logits.shape == (1, 80, 64) and bool(mx.all(mx.isfinite(logits)))


def test_config_keys_from_to_hf_v4():
    """docs/integrations.md's tip: mlx-lm's llama reads rope_scaling + rope_theta, which to_hf(version=4) writes."""
    keys = reference("resonance_yarn").to_hf(version=4)
    model = tiny_llama(keys["rope_scaling"])
    assert model.model.layers[0].self_attn.rope.cfg == reference("resonance_yarn")
    assert keys["rope_theta"] == 10000.0 and keys["head_dim"] == HEAD_DIM


def test_tiny_llama_cached_decoding_matches_full_forward():
    """Prefill 60 tokens, then decode one at a time past original_max_position_embeddings=64 with a KV cache
    (rope offsets 60..78); logits equal the full forward's (up to float32 reassociation in the attention)."""
    model = tiny_llama()
    tokens = (mx.arange(80) * 7 % 64)[None]
    full = model(tokens)
    cache = make_prompt_cache(model)
    steps = [model(tokens[:, :60], cache=cache)[:, -1]]
    for t in range(60, 79):
        steps.append(model(tokens[:, t : t + 1], cache=cache)[:, -1])
    cached = mx.stack(steps, axis=1)
    diff = float(mx.abs(cached - full[:, 59:79]).max())
    assert diff <= 1e-5, diff  # measured 0.0 on mlx 0.32 CPU; a rope ignoring offset gives ~0.5


def test_invalid_parameters_raise_rope_config_error():
    with pytest.raises(rr.RopeConfigError):
        rope_utils.initialize_rope(HEAD_DIM, 10000.0, False, {"rope_type": "resonance_yarn", "factor": 0.5}, 256)
    with pytest.raises(rr.RopeConfigError):
        tiny_llama({"rope_type": "resonance_linear"})  # factor missing
    with pytest.raises(rr.RopeConfigError):
        rope_utils.initialize_rope(HEAD_DIM, 10000.0, False, {"rope_type": "resonance_dynamic", "factor": 2.0}, None)


def test_unregister_reverts_everywhere():
    model = tiny_llama()
    try:
        rml.unregister()
        assert rope_utils.initialize_rope is ORIGINAL and llama.initialize_rope is ORIGINAL
        assert not rml.is_registered()
        with pytest.raises(ValueError, match="Unsupported RoPE type"):
            tiny_llama()
        assert isinstance(model.model.layers[0].self_attn.rope, rml.ResonanceRoPE)  # built models keep theirs
        model(mx.arange(5)[None])
    finally:
        rml.register()
    assert llama.initialize_rope is rml.initialize_rope


def test_reference_agreement_float64_truth():
    """A loose sanity check of the whole chain against the float64 NumPy reference."""
    rope = rope_utils.initialize_rope(HEAD_DIM, 10000.0, False, YARN, 256)
    x = np.random.default_rng(0).standard_normal((1, 2, 50, HEAD_DIM)).astype(np.float32)
    want = rr.rotation.apply_rotary(x.astype(np.float64), np.arange(1000, 1050), reference("resonance_yarn"))
    got = np.asarray(rope(mx.array(x), offset=1000)).astype(np.float64)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max() + 1e-6


def test_v5_rope_parameters_config_is_read(tmp_path):
    """A transformers v5 config.json (rope_parameters only) builds Resonance RoPE through mlx-lm's
    own loader, not plain RoPE: register() wraps mlx_lm.utils.load_config."""
    from mlx_lm import utils

    config = {
        "model_type": "llama",
        "hidden_size": 64,
        "num_hidden_layers": 1,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5,
        "vocab_size": 64,
        "max_position_embeddings": 256,
        "rope_parameters": {"rope_theta": 500000.0, **YARN},
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = utils.load_config(tmp_path)
    assert loaded["rope_scaling"] == YARN and loaded["rope_theta"] == 500000.0
    model, _ = utils.load_model(tmp_path, strict=False)
    rope = model.model.layers[0].self_attn.rope
    assert isinstance(rope, rml.ResonanceRoPE)
    assert rope.cfg == rr.RopeConfig(head_dim=HEAD_DIM, base=500000.0, scaling=rr.YaRN(4.0, 64), resonance=True)
    v4 = {**config, "rope_scaling": {"rope_type": "linear", "factor": 2.0}}
    assert rml.with_v4_rope_keys(v4) is v4  # a v4 rope_scaling wins, as in transformers


def test_unregister_restores_load_config():
    from mlx_lm import utils

    assert utils.load_config is rml.load_config
    try:
        rml.unregister()
        assert utils.load_config is not rml.load_config
    finally:
        rml.register()
