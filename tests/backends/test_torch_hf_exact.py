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

import logging
import math
import types
from contextlib import contextmanager

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the transformers integration needs torch")
transformers = pytest.importorskip("transformers", reason="the transformers integration needs transformers")
pytest.importorskip("rrope_torch", reason="rrope_torch is not installed")

import rrope_core as rr  # noqa: E402
import rrope_torch.transformers as rtt  # noqa: E402
from rrope_torch import table_op  # noqa: E402
from rrope_torch.hf_exact import PROBE_POSITIONS, rotary_modules  # noqa: E402

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
    attributes = set(vars(model.model.rotary_emb))
    ids, positions = torch.arange(1, 20)[None], 10**6 + torch.arange(19)[None]
    own = _logits(model, positions, ids)
    exact = _logits(rtt.use_exact_phases(model), positions, ids)
    assert not torch.equal(own, exact)
    model.save_pretrained(tmp_path)
    loaded = rtt.use_exact_phases(type(model).from_pretrained(tmp_path).eval())
    assert torch.equal(_logits(loaded, positions, ids), exact)
    assert torch.equal(_logits(rtt.use_exact_phases(model, False), positions, ids), own)
    assert set(vars(model.model.rotary_emb)) == attributes


def test_half_precision_buffers_pass_the_probe():
    """``model.to(bfloat16)`` rounds inv_freq too: the probe's bound allows for the buffer's dtype."""
    model = rtt.use_exact_phases(build("llama").to(torch.bfloat16))
    cos, sin = model.model.rotary_emb(torch.zeros(1, dtype=torch.bfloat16), torch.tensor([[2**24 - 1]]))
    assert cos.dtype == sin.dtype == torch.bfloat16


def test_float64_models_get_float64_tables():
    """A float64 model's table is computed in float64 (float32 trig would err by ~1e-8). Resonance:
    the angle ``r * fl64(2*pi/L)`` errs by <= 2*pi*u64, float64 cos/sin by <= 2*u64 (1 ulp each,
    generously), the product with ``a`` by u64*a; ours and the NumPy reference each err that much."""
    model = rtt.use_exact_phases(build("llama", "resonance_yarn").to(torch.float64))
    cfg, u64 = rtt.rope_config(model.config), 2.0**-53
    cos, sin = model.model.rotary_emb(torch.zeros(1, dtype=torch.float64), torch.from_numpy(FAR)[None])
    a, bound = rr.attention_factor(cfg), 2 * rr.attention_factor(cfg) * (2 * math.pi + 3) * u64
    for got, want in zip((cos, sin), rr.cos_sin(cfg, FAR), strict=True):
        assert got.dtype == torch.float64
        assert np.abs(got[0, :, : cfg.n_pairs].numpy() - a * want).max() <= bound


def test_torch_compile():
    model = rtt.use_exact_phases(build("llama"))
    ids, positions = torch.arange(1, 20)[None], 10**6 + torch.arange(19)[None]
    eager = _logits(model, positions, ids)
    compiled = torch.compile(model, backend="aot_eager")
    # aot_eager runs the same aten kernels as eager on the same inputs.
    assert torch.equal(_logits(compiled, positions, ids), eager)


@pytest.mark.parametrize("opaque", [True, False] if table_op.OPAQUE else [False])
@pytest.mark.parametrize("rope_type", ["resonance_dynamic", "resonance_yarn"])
def test_compiled_table_is_the_table(monkeypatch, opaque, rope_type):
    """``compiled_table`` (what compiled models call) returns ``table``'s tensors, through the op
    and through the inline fallback of torch < 2.4, passing seq_len on: a dynamic config's table at
    seq_len 5000 differs from its table without one (asserted, so the check can fail)."""
    monkeypatch.setattr(table_op, "OPAQUE", opaque)
    cfg = rtt.rope_config(build("llama", rope_type).config)
    key, positions = table_op.register(cfg), torch.arange(4992, 5000)[None]
    for seq_len, dtype in ((None, torch.float32), (5000, torch.float32), (5000, torch.bfloat16)):
        got = table_op.compiled_table(positions, key, seq_len, dtype)
        want = table_op.table(positions, cfg, seq_len, dtype)
        assert all(g.dtype == dtype and torch.equal(g, w) for g, w in zip(got, want, strict=True))
    if cfg.seq_len_dependent:
        short, long = (table_op.table(positions, cfg, n, torch.float32)[0] for n in (None, 5000))
        assert not torch.equal(short, long)


@pytest.mark.skipif(not table_op.OPAQUE, reason="torch.library.custom_op needs torch >= 2.4")
@pytest.mark.parametrize("rope_type", ["resonance_yarn", "llama3", "resonance_dynamic"])
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
    # Static configs read no position value (dynamic ones read max(position_ids), as transformers does).
    assert rtt.rope_config(model.config).seq_len_dependent or not {"max", "item"} & set(targets), targets
    assert torch.equal(_logits(torch.compile(model, backend="aot_eager"), positions, ids), eager)


@contextmanager
def exact_phases_registered():
    """``register(exact_phases=True)`` for the block, undone after it."""
    rtt.register(exact_phases=True)
    try:
        yield
    finally:
        rtt.register(exact_phases=False)


def test_register_exact_phases_for_models_built_afterwards():
    with exact_phases_registered():
        model = build("qwen2")
        assert "forward" in vars(model.model.rotary_emb)
        assert_exact_table(model.model.rotary_emb, rtt.rope_config(model.config))
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
    model = _cohere()
    with pytest.raises(rr.RopeError, match="rotary_emb.*CohereRotaryEmbedding.*format"):
        rtt.use_exact_phases(model)
    assert "forward" not in vars(model.model.rotary_emb)


def _qwen2vl():
    config = transformers.Qwen2VLTextConfig(
        **SMALL, num_key_value_heads=2, max_position_embeddings=256,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
    )  # fmt: skip
    return transformers.Qwen2VLTextModel(config)


def test_refuses_mrope_naming_the_module():
    model = _qwen2vl()
    with pytest.raises(
        rr.RopeError,
        match=r"module 'rotary_emb' \(Qwen2VLRotaryEmbedding\) uses multimodal rotary sections \(mrope_section\), which have no exact form here",
    ):
        rtt.use_exact_phases(model)


class Rotary(torch.nn.Module):
    """The shape ``rotary_modules`` looks for: a ``config``, a ``rope_type`` and inv_freq buffers."""

    def __init__(self, config=None, rope_type="default", buffers=("inv_freq",)):
        super().__init__()
        self.config, self.rope_type = config, rope_type
        for name in buffers:
            self.register_buffer(name, torch.ones(4), persistent=False)

    def forward(self, x, position_ids):
        raise AssertionError("not called: the module is refused before its table is read")


def test_rotary_modules_have_a_config_a_rope_type_and_inv_freq_buffers():
    model = torch.nn.Module()
    model.plain = Rotary(object())
    model.typed = Rotary(object(), buffers=("full_attention_inv_freq",))
    model.no_config = Rotary(None)
    model.other_buffer = Rotary(object(), buffers=("scale",))
    model.no_rope_type = Rotary(object())
    del model.no_rope_type.rope_type
    model.parent = Rotary(object(), buffers=())  # its child has the buffer, it has none of its own
    model.parent.child = Rotary(object(), buffers=("full_attention_inv_freq",))
    assert [name for name, _ in rotary_modules(model)] == ["plain", "typed", "parent.child"]


def _holding(module) -> torch.nn.Module:
    holder = torch.nn.Module()
    holder.rotary = module
    return holder


def _refusal(module) -> str:
    with pytest.raises(rr.RopeError) as info:
        rtt.use_exact_phases(_holding(module))
    assert "forward" not in vars(module)
    return str(info.value)


def test_refusals_name_the_module_and_why():
    """Forwards of another signature, mrope in a v4-style config (``rope_scaling``), and a config
    rrope cannot read: each refused with the module's name, class and reason."""

    class Renamed(Rotary):
        def forward(self, hidden, position_ids):
            raise AssertionError

    class Longer(Rotary):
        def forward(self, x, position_ids, layer_type, extra):
            raise AssertionError

    prefix = "use_exact_phases: module 'rotary' "
    suffix = "; its own rotary embedding is left as is"
    for cls, params in (
        (Renamed, "('hidden', 'position_ids')"),
        (Longer, "('x', 'position_ids', 'layer_type', 'extra')"),
    ):
        want = f"({cls.__name__}) has forward{params}, not (x, position_ids[, layer_type])"
        assert _refusal(cls(object())) == prefix + want + suffix
    v4 = dict(hidden_size=64, num_attention_heads=4, max_position_embeddings=256, rope_theta=10000.0)
    mrope = types.SimpleNamespace(**v4, rope_scaling={"type": "default", "mrope_section": [2, 3, 3]})
    want = "(Rotary) uses multimodal rotary sections (mrope_section), which have no exact form here"
    assert _refusal(Rotary(mrope)) == prefix + want + suffix
    unreadable = types.SimpleNamespace(**{**v4, "rope_theta": -1.0}, rope_scaling={"type": "default"})
    with pytest.raises(rr.RopeConfigError) as info:
        rtt.rope_config(unreadable)
    want = f"(Rotary) has a rope config rrope cannot read ({info.value})"
    assert _refusal(Rotary(unreadable)) == prefix + want + suffix


def test_bad_arguments():
    """Each error names the argument, the value and what is allowed (the whole message is checked)."""
    with pytest.raises(rr.RopeInputError) as info:
        rtt.use_exact_phases("llama")
    assert str(info.value) == "model='str' is invalid: must be a torch.nn.Module (a transformers model)"
    with pytest.raises(rr.RopeInputError) as info:
        rtt.use_exact_phases(build("llama"), resonance="yes")
    assert str(info.value) == "resonance='yes' is invalid: must be None, True or False"
    with pytest.raises(rr.RopeError) as info:
        rtt.use_exact_phases(torch.nn.Linear(2, 2))
    assert str(info.value) == "use_exact_phases: Linear has no transformers rotary embedding module"
    rotary = rtt.use_exact_phases(build("llama")).model.rotary_emb
    with pytest.raises(
        rr.RopeError, match=r"LlamaRotaryEmbedding got position_ids of shape \(8,\); only \(batch, seq\)"
    ):
        rotary(torch.zeros(1), torch.arange(8))


def _cohere(**extra):
    config = transformers.CohereConfig(**SMALL, num_key_value_heads=2, max_position_embeddings=256, **extra)
    return transformers.CohereForCausalLM(config).eval()  # repeat_interleave tables, not cat(freqs, freqs)


def test_models_built_on_the_meta_device_are_checked_at_their_first_call(tmp_path, caplog):
    """transformers v5's ``from_pretrained`` builds modules on the meta device, where
    ``register(exact_phases=True)`` cannot compare tables: the first eager call does. Llama's passes
    and returns our table; Cohere's (another format) is refused then: a warning names the module,
    that call and later ones return transformers' own table, and the module is restored."""
    build("llama").save_pretrained(tmp_path / "llama")
    _cohere().save_pretrained(tmp_path / "cohere")
    with exact_phases_registered():
        llama = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "llama")
        cohere = transformers.CohereForCausalLM.from_pretrained(tmp_path / "cohere")
    assert_exact_table(llama.model.rotary_emb, rtt.rope_config(llama.config))
    rotary, x, positions = cohere.model.rotary_emb, torch.zeros(1), torch.arange(8)[None]
    assert "forward" in vars(rotary)
    own = type(rotary).forward(rotary, x, positions)
    with caplog.at_level(logging.WARNING, logger="rrope_torch.hf_exact"):
        first = rotary(x, positions)
    assert "forward" not in vars(rotary)
    assert [r.getMessage() for r in caplog.records if r.name == "rrope_torch.hf_exact"] == [
        "use_exact_phases: module 'CohereRotaryEmbedding' (CohereRotaryEmbedding) returns a cos/sin table in a "
        "format other than cat(freqs, freqs); its own rotary embedding is left as is; transformers' own float32 "
        "table is used"
    ]
    for got in (first, rotary(x, positions)):
        assert all(torch.equal(g, o) for g, o in zip(got, own, strict=True))


def test_the_check_runs_on_the_module_device_whatever_the_default_device():
    """The check builds its inputs on the module's device, not torch's default one (here meta, as
    while ``from_pretrained`` loads, or CUDA after ``torch.set_default_device``)."""
    model = build("llama")
    with torch.device("meta"):
        rtt.use_exact_phases(model)
    assert_exact_table(model.model.rotary_emb, rtt.rope_config(model.config))


def _enabled_on_meta(cls, config) -> torch.nn.Module:
    """A ``cls(config)`` built on the meta device under ``register(exact_phases=True)`` (so nothing
    could be checked), then given real buffers on the CPU, as ``from_pretrained`` does."""
    with exact_phases_registered(), torch.device("meta"):
        holder = _holding(cls(config))
    assert "forward" in vars(holder.rotary)
    holder.to_empty(device="cpu")
    for name, buffer in cls(config).named_buffers():
        holder.rotary.get_buffer(name).copy_(buffer)
    return holder.rotary


def test_the_check_runs_once():
    """The check calls the class's forward on PROBE_POSITIONS positions: once per module, when
    ``use_exact_phases`` changes it, or at the first call of one enabled on the meta device."""
    base, calls = transformers.models.llama.modeling_llama.LlamaRotaryEmbedding, []

    class Counted(base):
        def forward(self, x, position_ids):
            calls.append(1)
            return base.forward(self, x, position_ids)

    x, positions = torch.zeros(1), torch.arange(8)[None]
    holder = _holding(_enabled_on_meta(Counted, build("llama", "default").config))
    assert calls == []  # nothing checked on the meta device
    for _ in range(3):
        holder.rotary(x, positions)
    assert calls == [1]
    rtt.use_exact_phases(holder, False)
    rtt.use_exact_phases(holder)
    for _ in range(3):
        holder.rotary(x, positions)
    assert calls == [1, 1]


def test_a_refused_module_with_layer_types_returns_its_own_table_per_layer_type():
    """A module with per-layer-type tables in another format (repeat_interleave, as Cohere's),
    built on the meta device under ``register(exact_phases=True)`` and refused at its first call:
    that call and later ones return its own table of the layer type asked for."""
    base = transformers.models.gemma3.modeling_gemma3.Gemma3RotaryEmbedding

    class Interleaved(base):
        def forward(self, x, position_ids, layer_type):
            cos, sin = base.forward(self, x, position_ids, layer_type)
            half = cos.shape[-1] // 2
            return cos[..., :half].repeat_interleave(2, -1), sin[..., :half].repeat_interleave(2, -1)

    config = build("gemma3", "yarn").config  # full_attention: YaRN, sliding_attention: default
    rotary, twin = _enabled_on_meta(Interleaved, config), Interleaved(config)
    x, positions = torch.zeros(1), torch.arange(8)[None]
    for layer_type in ("full_attention", "sliding_attention", "full_attention"):
        got, want = rotary(x, positions, layer_type=layer_type), twin(x, positions, layer_type)
        assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))
    assert "forward" not in vars(rotary)


def test_refuses_a_table_that_is_not_a_pair_and_falls_back_without_layer_type():
    """A forward returning cos and sin stacked in one tensor (its first dimension 2) is refused, and
    one refused at its first call with a plain ``forward(x, position_ids)`` is called that way."""
    base = transformers.models.llama.modeling_llama.LlamaRotaryEmbedding

    class Stacked(base):
        def forward(self, x, position_ids):
            return torch.stack(base.forward(self, x, position_ids))

    config = build("llama", "default").config
    with pytest.raises(
        rr.RopeError,
        match=r"^use_exact_phases: module 'rotary' \(Stacked\) does not return a \(cos, sin\) pair; its own",
    ):
        rtt.use_exact_phases(_holding(Stacked(config)))
    rotary, x, positions = _enabled_on_meta(Stacked, config), torch.zeros(1), torch.arange(8)[None]
    assert torch.equal(rotary(x, positions), Stacked(config)(x, positions))
    assert "forward" not in vars(rotary)


def test_register_leaves_modules_use_exact_phases_changed():
    """``register(exact_phases=True)``'s hook skips a module already changed: one enabled with
    ``resonance=True`` keeps it when assigned into another model."""
    model = rtt.use_exact_phases(build("phi3", "longrope"), resonance=True)
    with exact_phases_registered():
        holder = _holding(model.model.rotary_emb)
    cfg = rtt.rope_config(model.config).with_resonance(True)
    assert_exact_table(holder.rotary, cfg, positions=np.arange(0, 64))


def test_register_refuses_other_formats_when_the_model_is_built(caplog):
    """Built on a real device, a module is checked as it is assigned: Cohere's table format and
    Qwen2-VL's mrope are refused at once, a warning (the refusal's text) names each, and the modules
    stay transformers' own."""
    with exact_phases_registered(), caplog.at_level(logging.WARNING, logger="rrope_torch.hf_exact"):
        modules = [_cohere().model.rotary_emb, _qwen2vl().rotary_emb]
    assert not any("forward" in vars(m) for m in modules)
    prefix, suffix = "use_exact_phases: module 'rotary_emb' ", "; its own rotary embedding is left as is"
    assert [r.getMessage() for r in caplog.records if r.name == "rrope_torch.hf_exact"] == [
        prefix + "(CohereRotaryEmbedding) returns a cos/sin table in a format other than cat(freqs, freqs)" + suffix,
        prefix
        + "(Qwen2VLRotaryEmbedding) uses multimodal rotary sections (mrope_section), which have no exact form here"
        + suffix,
    ]


@pytest.mark.parametrize(
    "rope_type, buffers", [("default", torch.float32), ("linear", torch.float32), ("default", torch.bfloat16)]
)
def test_probe_refuses_a_table_just_beyond_its_documented_bound(rope_type, buffers):
    """The probe's bound (``_probe``'s docstring): ``a*(m*theta*(2*ub + u + u**2) + 4u + u**2 + 2*pi*u)``
    at m = PROBE_POSITIONS - 1, theta the largest inv_freq, ub the buffer dtype's unit roundoff. A
    table whose one entry is off by the bound times (1 -/+ 1e-3) is accepted / refused: sin at
    position 0 is 0 in both tables, so that entry's error is the float32 offset itself."""
    base = transformers.models.llama.modeling_llama.LlamaRotaryEmbedding

    class Nudged(base):
        offset = 0.0

        def forward(self, x, position_ids):
            cos, sin = base.forward(self, x, position_ids)
            sin = sin.clone()
            sin[..., 0, 0] = self.offset
            return cos, sin

    config = transformers.LlamaConfig(**SMALL, num_key_value_heads=2, rope_parameters=_rope(rope_type))
    cfg = rtt.rope_config(config)
    theta, a, ub = float(rr.inv_freq(cfg).max()), rr.attention_factor(cfg), torch.finfo(buffers).eps / 2
    m = PROBE_POSITIONS - 1
    bound = a * (m * theta * (2 * ub + U + U**2) + 4 * U + U**2 + 2 * math.pi * U)
    for factor, accepted in ((1 - 1e-3, True), (1 + 1e-3, False)):
        holder = _holding(Nudged(config).to(buffers))
        holder.rotary.offset = float(np.float32(bound * factor))
        if accepted:
            assert "forward" in vars(rtt.use_exact_phases(holder).rotary)
        else:
            with pytest.raises(rr.RopeError, match="format other than"):
                rtt.use_exact_phases(holder)


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
