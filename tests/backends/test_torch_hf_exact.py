"""rrope_torch.transformers.use_exact_phases: exact cos/sin inside transformers models (tiny random
models built from configs; nothing is downloaded).

Tolerances (u = 2**-24, eps32 = 2u; a the attention factor):

* Our table entry: the reduced angle errs by <= 2*pi*eps32 (resonance: ``r * fl32(2*pi/L)`` with
  ``|r| <= L/2``, <= 2*pi*u; otherwise the float64 ``fmod`` costs <= eps64*|m*theta| <= 4.8e-7 for
  m < 2**31, theta <= 1, and the cast <= pi*u); float32 cos/sin add <= 2u; the product with ``a``
  and the output rounding add <= a*(2u + u**2). In all ``a*(2*pi*eps32 + 4u + u**2)`` at any position.
* Logits: with exact tables the table error is the same at every offset, so the float32 model's
  distance to the float64 model (same weights, float64 tables) at offset ~10**6 is the network's
  own float32 rounding, measured at offsets 0..3 (max over them) and allowed a factor 4 for the
  spread between inputs. transformers' own tables fail that same check (asserted: the check can fail).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the transformers integration needs torch")
transformers = pytest.importorskip("transformers", reason="the transformers integration needs transformers")
pytest.importorskip("rrope_torch", reason="rrope_torch is not installed")

import rrope_core as rr  # noqa: E402
import rrope_torch.transformers as rtt  # noqa: E402
from rrope_torch import table_op  # noqa: E402

if int(transformers.__version__.split(".")[0]) < 5:
    pytest.skip("these tests build v5 configs; found " + transformers.__version__, allow_module_level=True)
pytestmark = pytest.mark.hf
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
U = 2.0**-24
EPS32 = 2 * U
FAR = np.array([0, 1, 63, 65_535, 1_000_003, 2**24 - 1, 2**31 - 1])
SMALL = dict(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
YARN = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 64}
SHORT, LONG = [1.0] * 8, [float(i + 1) for i in range(8)]
LONGROPE = {"short_factor": SHORT, "long_factor": LONG, "original_max_position_embeddings": 64}


@pytest.fixture(autouse=True, scope="module")
def registered():
    rtt.register()
    yield
    rtt.unregister()


def _rope(rope_type: str, **extra) -> dict:
    base = {"rope_type": rope_type, "rope_theta": 10000.0}
    extras = {
        "yarn": {"factor": 4.0, "original_max_position_embeddings": 64},
        "linear": {"factor": 2.0},
        "dynamic": {"factor": 2.0},
        "llama3": {
            "factor": 8.0,
            "original_max_position_embeddings": 64,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
        },
        "longrope": {**LONGROPE, "factor": 4.0},
    }
    return {**base, **extras.get(rope_type.removeprefix("resonance_"), {}), **extra}


def build(family: str, rope_type: str = "resonance_yarn", seed: int = 0):
    """A tiny model of ``family`` with ``rope_type`` (per layer type for Gemma 3)."""
    tf = transformers
    rope = _rope(rope_type)
    if family == "gemma3":
        config = tf.Gemma3TextConfig(
            **SMALL, num_key_value_heads=2, head_dim=16, max_position_embeddings=256, sliding_window=32,
            layer_types=["sliding_attention", "full_attention"],
            rope_parameters={"full_attention": rope, "sliding_attention": _rope("default")},
        )  # fmt: skip
        cls = tf.Gemma3ForCausalLM
    elif family == "deepseek_v3":
        config = tf.DeepseekV3Config(
            **SMALL, num_key_value_heads=4, q_lora_rank=None, kv_lora_rank=16, qk_rope_head_dim=16,
            qk_nope_head_dim=16, v_head_dim=16, n_routed_experts=4, num_experts_per_tok=2, n_group=1,
            topk_group=1, first_k_dense_replace=1, moe_intermediate_size=32, max_position_embeddings=256,
            rope_interleave=True, rope_parameters=rope,
        )  # fmt: skip
        cls = tf.DeepseekV3ForCausalLM
    else:
        config_cls, cls = {
            "llama": (tf.LlamaConfig, tf.LlamaForCausalLM),
            "mistral": (tf.MistralConfig, tf.MistralForCausalLM),
            "qwen2": (tf.Qwen2Config, tf.Qwen2ForCausalLM),
            "qwen3": (tf.Qwen3Config, tf.Qwen3ForCausalLM),
            "phi3": (tf.Phi3Config, tf.Phi3ForCausalLM),
        }[family]
        extra = {"qwen3": {"head_dim": 16}, "phi3": {"pad_token_id": 0}}.get(family, {})
        config = config_cls(**SMALL, num_key_value_heads=2, max_position_embeddings=256, rope_parameters=rope, **extra)
    torch.manual_seed(seed)
    return cls(config).eval()


def table_bound(cfg: rr.RopeConfig) -> float:
    """The module docstring's bound on one entry of our table."""
    return rr.attention_factor(cfg) * (2 * math.pi * EPS32 + 4 * U + U**2)


def assert_exact_table(module, cfg: rr.RopeConfig, positions=FAR, layer_type=None) -> None:
    device = next(module.buffers()).device
    kwargs = {} if layer_type is None else {"layer_type": layer_type}
    pos = torch.from_numpy(positions).to(device)[None]
    cos, sin = module(torch.zeros(1, device=device), pos, **kwargs)
    a, half = rr.attention_factor(cfg), cfg.n_pairs
    assert cos.shape == (1, len(positions), cfg.rotary_dim)
    for got, want in zip((cos, sin), rr.cos_sin(cfg, positions), strict=True):
        got = got[0].double().cpu().numpy()
        for part in (got[:, :half], got[:, half:]):  # cat(freqs, freqs)
            err = np.abs(part - a * want)
            assert err.max() <= table_bound(cfg), f"max error {err.max():.3g} > {table_bound(cfg):.3g}"


FAMILIES = ["llama", "mistral", "qwen2", "qwen3", "deepseek_v3"]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("rope_type", ["resonance_yarn", "yarn", "resonance", "default"])
def test_tables_are_exact_at_any_position(family, rope_type):
    if family == "deepseek_v3" and rope_type == "resonance":
        # Some transformers versions' DeepSeek attention reads rope_parameters["factor"] for every
        # type but "default" (the yarn mscale), so a factor-less type does not build there.
        pytest.skip("DeepSeek-V3 ships YaRN; its attention needs a factor for non-default types")
    model = rtt.use_exact_phases(build(family, rope_type))
    module = model.model.rotary_emb
    assert_exact_table(module, rtt.rope_config(model.config))


@pytest.mark.parametrize("rope_type", ["resonance_linear", "resonance_llama3", "llama3", "linear"])
def test_other_static_types(rope_type):
    model = rtt.use_exact_phases(build("llama", rope_type))
    assert_exact_table(model.model.rotary_emb, rtt.rope_config(model.config))


@pytest.mark.parametrize("rope_type", ["resonance_dynamic", "resonance_longrope", "longrope", "dynamic"])
def test_seq_len_dependent_types_follow_the_largest_position(rope_type):
    """seq_len = max(position_ids) + 1: dynamic NTK grows, LongRoPE switches to the long factors."""
    model = rtt.use_exact_phases(build("llama", rope_type))
    module, cfg = model.model.rotary_emb, rtt.rope_config(model.config)
    for last in (40, 5000):
        positions = np.arange(last - 8, last)
        cos, _ = module(torch.zeros(1), torch.from_numpy(positions)[None])
        want = rr.cos_sin(cfg, positions, seq_len=last)[0] * rr.attention_factor(cfg, last)
        assert np.abs(cos[0, :, : cfg.n_pairs].double().numpy() - want).max() <= table_bound(cfg) * 2


def test_gemma3_local_and_global_tables():
    model = rtt.use_exact_phases(build("gemma3"))
    module = model.model.rotary_emb
    for layer_type in ("full_attention", "sliding_attention"):
        assert_exact_table(module, rtt.rope_config(model.config, layer_type), layer_type=layer_type)
    assert rtt.rope_config(model.config, "full_attention").resonance
    assert not rtt.rope_config(model.config, "sliding_attention").resonance


def test_deepseek_rope_config_reads_interleave_and_rope_head_dim():
    config = build("deepseek_v3").config
    cfg = rtt.rope_config(config)
    assert cfg == rr.RopeConfig.from_hf(config.to_dict())
    assert (cfg.layout, cfg.head_dim) == ("interleaved", 16)


def _logits(model, positions, ids):
    with torch.no_grad():
        return model(ids, position_ids=positions).logits.double()


def _distance_to_float64(model, offset: int) -> float:
    ids = (torch.arange(24)[None] * 5) % 64
    positions = offset + torch.arange(24)[None]
    ref = rtt.use_exact_phases(build("llama").double())
    ref.load_state_dict(model.state_dict())
    return float((_logits(model, positions, ids) - _logits(ref, positions, ids)).abs().max())


def test_logits_at_large_offsets_match_float64():
    model = build("llama")
    plain_far = _distance_to_float64(model, 10**6)
    rtt.use_exact_phases(model)
    near = max(_distance_to_float64(model, offset) for offset in range(4))
    far = max(_distance_to_float64(model, offset) for offset in (10**6, 10**6 + 17, 2**24 + 5))
    assert far <= 4 * near, (far, near)
    assert plain_far > 4 * near, "transformers' own float32 tables should fail this check"


def test_generation_with_kv_cache_at_large_offsets():
    """Prefill + 6 cached decode steps from position 10**6 = one full forward over the same positions."""
    model = rtt.use_exact_phases(build("llama"))
    ids = (torch.arange(30)[None] * 7) % 64
    start = 10**6
    with torch.no_grad():
        out = model(ids[:, :24], position_ids=start + torch.arange(24)[None], use_cache=True)
        cache, steps = out.past_key_values, [out.logits[:, -1]]
        for t in range(24, 30):
            out = model(
                ids[:, t : t + 1], position_ids=torch.tensor([[start + t]]), past_key_values=cache, use_cache=True
            )
            cache = out.past_key_values
            steps.append(out.logits[:, -1])
        full = model(ids, position_ids=start + torch.arange(30)[None]).logits
    cached = torch.stack(steps[:-1], dim=1)  # predictions after positions 23..28
    # Same tables at the same positions; only the attention's summation order differs (float32).
    scale = float(full.abs().max())
    assert float((cached - full[:, 23:29]).abs().max()) <= 64 * EPS32 * scale


def test_disable_restores_transformers_tables_and_save_load(tmp_path):
    model = build("llama")
    ids, positions = torch.arange(1, 20)[None], 10**6 + torch.arange(19)[None]
    own = _logits(model, positions, ids)
    exact = _logits(rtt.use_exact_phases(model), positions, ids)
    assert not torch.equal(own, exact)
    model.save_pretrained(tmp_path)
    loaded = rtt.use_exact_phases(type(model).from_pretrained(tmp_path).eval())
    assert torch.equal(_logits(loaded, positions, ids), exact)
    assert torch.equal(_logits(rtt.use_exact_phases(model, False), positions, ids), own)
    assert "forward" not in vars(model.model.rotary_emb)


def test_half_precision_buffers_pass_the_probe():
    """``model.to(bfloat16)`` rounds inv_freq too: the probe's bound allows for the buffer's dtype."""
    model = rtt.use_exact_phases(build("llama").to(torch.bfloat16))
    cos, _ = model.model.rotary_emb(torch.zeros(1, dtype=torch.bfloat16), torch.tensor([[2**24 - 1]]))
    assert cos.dtype == torch.bfloat16


def test_torch_compile():
    model = rtt.use_exact_phases(build("llama"))
    ids, positions = torch.arange(1, 20)[None], 10**6 + torch.arange(19)[None]
    eager = _logits(model, positions, ids)
    compiled = torch.compile(model, backend="aot_eager")
    # aot_eager runs the same aten kernels as eager on the same inputs.
    assert torch.equal(_logits(compiled, positions, ids), eager)


@pytest.mark.skipif(not table_op.OPAQUE, reason="torch.library.custom_op needs torch >= 2.4")
@pytest.mark.parametrize("rope_type", ["resonance_yarn", "llama3"])
def test_compiled_table_is_one_opaque_op(rope_type):
    """Under torch.compile the table is one ``rrope::exact_cos_sin`` call per forward, so Inductor
    cannot inline its ``m mod L`` / ``fmod``, cos and sin into every layer's rotation (it did: 3 %
    of a training step on an H100, docs/benchmarks.md); the graph holds no remainder, fmod, cos or
    sin of its own, and the compiled model's logits equal eager ones (aot_eager runs the op's own
    eager kernels)."""
    model = rtt.use_exact_phases(build("llama", rope_type))
    ids, positions = torch.arange(1, 20)[None], 10**6 + torch.arange(19)[None]
    eager = _logits(model, positions, ids)
    graphs = []

    def capture(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    assert torch.equal(_logits(torch.compile(model, backend=capture), positions, ids), eager)
    targets = [str(n.target) for g in graphs for n in g.graph.nodes if n.op in ("call_function", "call_method")]
    assert sum("rrope.exact_cos_sin" in t for t in targets) == 1, targets
    inline = [t for t in targets if "rrope." not in t and any(w in t for w in ("remainder", "fmod", "cos", "sin"))]
    assert not inline, targets
    assert torch.equal(_logits(torch.compile(model, backend="aot_eager"), positions, ids), eager)


def test_register_exact_phases_for_models_built_afterwards():
    rtt.register(exact_phases=True)
    try:
        model = build("qwen2")
        assert "forward" in vars(model.model.rotary_emb)
        assert_exact_table(model.model.rotary_emb, rtt.rope_config(model.config))
    finally:
        rtt.register(exact_phases=False)
    assert "forward" not in vars(build("qwen2").model.rotary_emb)


def test_phi3_refuses_resonance_longrope_with_the_way_around():
    with pytest.raises(Exception) as info:
        build("phi3", "resonance_longrope")
    chain, err = [], info.value
    while err is not None:
        chain.append(err)
        err = err.__cause__ or err.__context__
    ours = [e for e in chain if isinstance(e, rr.RopeConfigError)]
    assert ours and "use_exact_phases(model, resonance=True)" in str(ours[0])


def test_phi3_resonance_through_use_exact_phases():
    model = rtt.use_exact_phases(build("phi3", "longrope"), resonance=True)
    cfg = rtt.rope_config(model.config).with_resonance(True)
    assert_exact_table(model.model.rotary_emb, cfg, positions=np.arange(0, 64))


def test_refuses_other_table_formats_and_changes_nothing():
    config = transformers.CohereConfig(**SMALL, num_key_value_heads=2, max_position_embeddings=256)
    model = transformers.CohereForCausalLM(config).eval()  # repeat_interleave tables, not cat(freqs, freqs)
    with pytest.raises(rr.RopeError, match="rotary_emb.*CohereRotaryEmbedding.*format"):
        rtt.use_exact_phases(model)
    assert "forward" not in vars(model.model.rotary_emb)


def test_refuses_mrope_naming_the_module():
    config = transformers.Qwen2VLTextConfig(
        **SMALL, num_key_value_heads=2, max_position_embeddings=256,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
    )  # fmt: skip
    model = transformers.Qwen2VLTextModel(config)
    with pytest.raises(rr.RopeError, match="rotary_emb.*mrope_section"):
        rtt.use_exact_phases(model)


def test_bad_arguments():
    with pytest.raises(rr.RopeInputError, match="model"):
        rtt.use_exact_phases("llama")
    with pytest.raises(rr.RopeInputError, match="resonance"):
        rtt.use_exact_phases(build("llama"), resonance="yes")
    with pytest.raises(rr.RopeError, match="no transformers rotary embedding"):
        rtt.use_exact_phases(torch.nn.Linear(2, 2))


@CUDA
def test_cuda_tables_and_generation():
    model = rtt.use_exact_phases(build("llama").cuda())
    assert_exact_table(model.model.rotary_emb, rtt.rope_config(model.config))
    ids = torch.arange(1, 20, device="cuda")[None]
    with torch.no_grad():
        out = model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False, pad_token_id=0
        )
    assert out.shape[1] == 23
