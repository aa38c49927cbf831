"""rrope_torch.transformers: the resonance rope types inside Hugging Face transformers (tiny random models).

Nothing is downloaded: every model is a randomly initialised ``LlamaForCausalLM`` built from a config.

Tolerances (u = 2**-24, float32's unit roundoff; theta_i the float64 resonance frequency):

* ``inv_freq`` is ``fl32(rr.inv_freq)``: equal bit for bit to that rounding, and within ``u``
  relative of the float64 value. ``attention_scaling`` is the very Python float of ``rr.attention_factor``.
* transformers' cos/sin at position ``m``: ``inv32 = theta(1+d1)``, ``phi32 = fl32(m * inv32) =
  m*theta(1+d1)(1+d2)`` (``m < 2**24`` is exact), so ``|phi32 - m*theta| <= m*theta*(2u + u**2)``;
  cos/sin are 1-Lipschitz; float32 cos/sin (SLEEF u10 / libm) err by <= 1 ulp, bounded here by 2u;
  the product with ``a`` rounds ``a`` and the result (<= a*(2u + u**2)). In all:
  ``|cos_hf - a*cos(m*theta)| <= a * (m*theta*(2u + u**2) + 2u + 2u + u**2)``: the bound grows with ``m*theta``.
"""

from __future__ import annotations

import json
import logging
import types
from contextlib import contextmanager

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the transformers integration needs torch")
pytest.importorskip("transformers", reason="the transformers integration needs transformers")
pytest.importorskip("rrope_torch", reason="rrope_torch is not installed")

import transformers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402
from transformers import modeling_rope_utils as mru  # noqa: E402

import rrope_core as rr  # noqa: E402
import rrope_torch  # noqa: E402
import rrope_torch.transformers as rtt  # noqa: E402

if int(transformers.__version__.split(".")[0]) < 5:
    pytest.skip(
        "these tests build v5 configs (rope_parameters); found " + transformers.__version__, allow_module_level=True
    )
pytestmark = pytest.mark.hf
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
U = 2.0**-24
HEAD_DIM = 16
SHORT = [1.0] * (HEAD_DIM // 2)
LONG = [float(i + 1) for i in range(HEAD_DIM // 2)]

# rope_type -> (transformers rope_parameters extras, the independently built reference config)
CASES = {
    "resonance": ({}, rr.RopeConfig(HEAD_DIM, 10000.0, resonance=True)),
    "resonance_linear": ({"factor": 2.0}, rr.RopeConfig(HEAD_DIM, 10000.0, scaling=rr.Linear(2.0), resonance=True)),
    "resonance_dynamic": (
        {"factor": 2.0},
        rr.RopeConfig(HEAD_DIM, 10000.0, scaling=rr.DynamicNTK(2.0, 256), resonance=True),
    ),
    "resonance_yarn": (
        {"factor": 4.0, "original_max_position_embeddings": 64},
        rr.RopeConfig(HEAD_DIM, 10000.0, scaling=rr.YaRN(4.0, 64), resonance=True),
    ),
    "resonance_llama3": (
        {"factor": 8.0, "original_max_position_embeddings": 64, "low_freq_factor": 1.0, "high_freq_factor": 4.0},
        rr.RopeConfig(HEAD_DIM, 10000.0, scaling=rr.Llama3(8.0, 64, 1.0, 4.0), resonance=True),
    ),
    "resonance_longrope": (
        {"short_factor": SHORT, "long_factor": LONG, "original_max_position_embeddings": 64, "factor": 4.0},
        rr.RopeConfig(HEAD_DIM, 10000.0, scaling=rr.LongRoPE(SHORT, LONG, 64, factor=4.0), resonance=True),
    ),
}


@pytest.fixture(autouse=True, scope="module")
def registered():
    rtt.register()
    yield
    rtt.unregister()


def llama_config(rope_type: str, **overrides) -> LlamaConfig:
    extras, _ = CASES[rope_type]
    kwargs = dict(
        vocab_size=64,
        hidden_size=64,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_hidden_layers=2,
        intermediate_size=128,
        max_position_embeddings=256,
        rope_parameters={"rope_type": rope_type, "rope_theta": 10000.0, **extras},
    )
    kwargs.update(overrides)
    return LlamaConfig(**kwargs)


def tiny_model(rope_type: str, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(llama_config(rope_type)).eval()


def assert_inv_freq(inv: torch.Tensor, ref: np.ndarray) -> None:
    """Bit-equal to fl32(reference); within u relative of the float64 reference."""
    assert inv.dtype == torch.float32
    assert torch.equal(inv.cpu(), torch.from_numpy(ref).to(torch.float32))
    assert np.all(np.abs(inv.double().cpu().numpy() / ref - 1.0) <= U)


def cos_sin_bound(ref_cfg: rr.RopeConfig, positions: np.ndarray, seq_len=None) -> np.ndarray:
    """The module docstring's bound on |cos_hf - a*cos(m*theta)|, shape (len(positions), n_pairs)."""
    a = rr.attention_factor(ref_cfg, seq_len)
    reach = positions[:, None].astype(np.float64) * rr.inv_freq(ref_cfg, seq_len)[None, :]
    return a * (reach * (2 * U + U**2) + 4 * U + U**2)


def hf_cos_sin(model, positions: np.ndarray):
    device = model.model.rotary_emb.inv_freq.device
    x = torch.zeros(1, 1, HEAD_DIM, device=device)
    cos, sin = model.model.rotary_emb(x, torch.from_numpy(positions).to(device)[None])
    return cos[0].double().cpu().numpy(), sin[0].double().cpu().numpy()


def assert_cos_sin_within_bound(model, ref: rr.RopeConfig, positions: np.ndarray, seq_len=None) -> None:
    cos, sin = hf_cos_sin(model, positions)
    a = rr.attention_factor(ref, seq_len)
    bound = cos_sin_bound(ref, positions, seq_len)
    half = HEAD_DIM // 2
    for got, want in zip((cos, sin), rr.cos_sin(ref, positions, seq_len), strict=True):
        for part in (got[:, :half], got[:, half:]):  # transformers repeats the pairs: cat(freqs, freqs)
            err = np.abs(part - a * want)
            assert np.all(err <= bound), f"max excess {(err - bound).max():.3g}"


@contextmanager
def rope_log():
    """Records logged by transformers' modeling_rope_utils and by us (transformers' loggers do not propagate)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    loggers = [logging.getLogger(mru.__name__), logging.getLogger(rtt.__name__)]
    for lg in loggers:
        lg.addHandler(handler)
    try:
        yield records
    finally:
        for lg in loggers:
            lg.removeHandler(handler)


# --- every type: inv_freq and attention factor ---


@pytest.mark.parametrize("rope_type", list(CASES))
def test_every_type_builds_with_reference_frequencies(rope_type):
    _, ref = CASES[rope_type]
    with rope_log() as records:
        model = tiny_model(rope_type)
    assert not [r for r in records if "Missing validation function" in r.getMessage()]
    rotary = model.model.rotary_emb
    assert rotary.rope_type == rope_type
    assert_inv_freq(rotary.inv_freq, rr.inv_freq(ref))
    assert rotary.attention_scaling == rr.attention_factor(ref)
    wavelengths = 2 * np.pi / rotary.inv_freq.double().numpy()
    np.testing.assert_allclose(wavelengths, np.rint(wavelengths), rtol=2 * U)  # integer periods survive float32
    logits = model(torch.arange(1, 9)[None]).logits
    assert logits.shape == (1, 8, 64) and torch.isfinite(logits).all()


@pytest.mark.parametrize("rope_type", list(CASES))
def test_init_function_signature_and_device(rope_type):
    _, ref = CASES[rope_type]
    init = mru.ROPE_INIT_FUNCTIONS[rope_type]
    inv, attention = init(llama_config(rope_type), "cpu")
    assert_inv_freq(inv, rr.inv_freq(ref))
    assert attention == rr.attention_factor(ref)
    inv, attention = init(llama_config(rope_type), device=torch.device("cpu"), seq_len=1000, layer_type=None)
    assert_inv_freq(inv, rr.inv_freq(ref, 1000))
    # device=None: torch's default device, as transformers' own init functions (from_pretrained
    # builds on the meta device; a model built under ``with torch.device("cuda")`` gets CUDA buffers).
    with torch.device("meta"):
        assert init(llama_config(rope_type))[0].device == torch.device("meta")


def test_init_function_refuses_another_type():
    with pytest.raises(rr.RopeConfigError, match="another type"):
        mru.ROPE_INIT_FUNCTIONS["resonance_linear"](llama_config("resonance_yarn"))


# --- resonance_yarn: cos/sin, save/load, generate ---


def test_yarn_cos_sin_within_float32_bound():
    _, ref = CASES["resonance_yarn"]
    model = tiny_model("resonance_yarn")
    positions = np.concatenate([np.arange(4097), [65_535, 1_000_003, 2**24 - 1]]).astype(np.int64)
    assert_cos_sin_within_bound(model, ref, positions)
    # The caveat of docs/integrations.md: float32 tables drift with m*theta; rrope_torch's phases do not
    # (rrope_torch/phases.py: phase error <= 2*pi*eps32 at any position; float32 cos <= 2u).
    cos, _ = hf_cos_sin(model, positions)
    want_cos, _ = rr.cos_sin(ref, positions)
    far = positions >= 65_535
    assert np.abs(cos[far, : HEAD_DIM // 2] - rr.attention_factor(ref) * want_cos[far]).max() > 1e-4
    exact_cos, _ = rrope_torch.cos_sin(ref, torch.from_numpy(positions))
    assert np.abs(exact_cos.double().numpy() - want_cos).max() <= 2 * np.pi * 2.0**-23 + 2 * U


def test_yarn_model_rotation_within_bound():
    """transformers' apply_rotary_pos_emb with the model's cos/sin vs the float64 reference rotation.

    Per pair, ``y1 = x1*c - x2*s``: the cos/sin errors move it by ``<= (|x1| + |x2|) * B`` (B: the cos/sin
    bound above), two float32 products and a sum add ``<= 3u * a * (|x1| + |x2|)``.
    """
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    _, ref = CASES["resonance_yarn"]
    model = tiny_model("resonance_yarn")
    positions = np.arange(3000, dtype=np.int64)
    q = torch.randn(1, 2, positions.size, HEAD_DIM)
    cos, sin = model.model.rotary_emb(q, torch.from_numpy(positions)[None])
    q_hf, _ = apply_rotary_pos_emb(q, q, cos, sin)
    q64 = q.double().numpy()
    want = rr.rotation.apply_rotary(q64, positions, ref)
    half = HEAD_DIM // 2
    s = np.abs(q64[..., :half]) + np.abs(q64[..., half:])
    tol = s * (cos_sin_bound(ref, positions) + 3 * U * rr.attention_factor(ref))
    err = np.abs(q_hf.double().numpy() - want)
    assert np.all(err <= np.concatenate([tol, tol], -1))


def test_yarn_save_and_load(tmp_path):
    model = tiny_model("resonance_yarn")
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["rope_parameters"]["rope_type"] == "resonance_yarn"
    loaded = LlamaForCausalLM.from_pretrained(tmp_path).eval()
    assert loaded.config.rope_parameters == model.config.rope_parameters
    assert torch.equal(loaded.model.rotary_emb.inv_freq, model.model.rotary_emb.inv_freq)
    assert loaded.model.rotary_emb.attention_scaling == model.model.rotary_emb.attention_scaling
    ids = torch.arange(1, 41)[None] % 64
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)


def test_yarn_generate_matches_full_recompute():
    """Greedy generate (KV cache, positions past original_max_position_embeddings=64) = argmax of full forwards."""
    model = tiny_model("resonance_yarn")
    prompt = (torch.arange(60)[None] * 7) % 64
    with torch.no_grad():
        mask = torch.ones_like(prompt)  # token 0 is in the prompt: without a mask generate would treat it as padding
        out = model.generate(prompt, attention_mask=mask, max_new_tokens=8, do_sample=False, pad_token_id=0)
        assert out.shape[1] > prompt.shape[1]
        full = model(out).logits[0]  # causal: row t-1 is the prediction from the prefix out[:, :t]
        for t in range(prompt.shape[1], out.shape[1]):
            assert out[0, t] == full[t - 1].argmax()


# --- the seq_len-dependent types: dynamic_rope_update's dispatch ---


def test_dynamic_grows_and_resets():
    """``"dynamic" in rope_type`` routes resonance_dynamic through transformers' dynamic update."""
    _, ref = CASES["resonance_dynamic"]
    model = tiny_model("resonance_dynamic")
    rotary = model.model.rotary_emb
    positions = np.arange(1000, dtype=np.int64)
    assert_cos_sin_within_bound(model, ref, positions, 1000)
    assert_inv_freq(rotary.inv_freq, rr.inv_freq(ref, 1000))
    hf_cos_sin(model, np.arange(10, dtype=np.int64))
    assert_inv_freq(rotary.inv_freq, rr.inv_freq(ref))


def test_longrope_switches_short_long_short():
    _, ref = CASES["resonance_longrope"]
    model = tiny_model("resonance_longrope")
    rotary = model.model.rotary_emb
    assert rtt.enable_longrope_switch(model) == 0  # attached at construction
    for n, seq_len in ((64, 64), (65, 65), (300, 300), (10, 10)):
        assert_cos_sin_within_bound(model, ref, np.arange(n, dtype=np.int64), seq_len)
        assert_inv_freq(rotary.inv_freq, rr.inv_freq(ref, seq_len))
    assert not np.allclose(rr.inv_freq(ref, 65), rr.inv_freq(ref, 64))  # the switch is visible


def test_longrope_save_load_and_generate_past_original(tmp_path):
    """Loaded models get the switch too (it is attached at construction); generate crosses L0 = 64.

    As with transformers' own longrope, keys cached before the switch keep the short factors, so
    generate is not compared with a full recompute here (test_longrope_switches checks the switch).
    """
    model = tiny_model("resonance_longrope")
    model.save_pretrained(tmp_path)
    loaded = LlamaForCausalLM.from_pretrained(tmp_path).eval()
    assert rtt.enable_longrope_switch(loaded) == 0
    ids = (torch.arange(80)[None] * 5) % 64
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)
        assert_inv_freq(loaded.model.rotary_emb.inv_freq, rr.inv_freq(CASES["resonance_longrope"][1], 80))
        prompt = ids[:, :60]
        out = loaded.generate(
            prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=8, do_sample=False, pad_token_id=0
        )
    assert out.shape[1] > 60


# --- validation ---


@pytest.mark.parametrize(
    "rope_type, params",
    [
        ("resonance_yarn", {"factor": 0.5, "original_max_position_embeddings": 64}),
        ("resonance_linear", {}),  # factor missing
        ("resonance_llama3", {"factor": 8.0, "original_max_position_embeddings": 64, "low_freq_factor": 4.0}),
        ("resonance_longrope", {"short_factor": [1.0] * 3, "long_factor": [1.0] * 3, "factor": 2.0}),
    ],
    ids=["yarn_factor_below_1", "linear_without_factor", "llama3_without_high_freq", "longrope_wrong_length"],
)
def test_invalid_parameters_raise_rope_config_error(rope_type, params):
    """Our RopeConfigError, re-raised by v5's @strict config as StrictDataclassClassValidationError (not a ValueError)."""
    with pytest.raises(Exception) as info:
        LlamaConfig(hidden_size=64, num_attention_heads=4, rope_parameters={"rope_type": rope_type, **params})
    chain, err = [], info.value
    while err is not None:
        chain.append(err)
        err = err.__cause__
    assert any(isinstance(e, rr.RopeConfigError) for e in chain), chain


def test_unknown_keys_are_logged_not_raised():
    with rope_log() as records:
        llama_config("resonance_yarn", rope_parameters={"rope_type": "resonance_yarn", "factor": 4.0, "bogus": 1})
    assert any("bogus" in r.getMessage() for r in records)


# --- register / unregister, v4-style configs ---


def test_register_is_idempotent_and_unregister_reverts():
    before = dict(mru.ROPE_INIT_FUNCTIONS)
    rtt.register()
    assert dict(mru.ROPE_INIT_FUNCTIONS) == before and rtt.is_registered()
    model = tiny_model("resonance_longrope")
    try:
        rtt.unregister()
        assert not set(rtt.RESONANCE_TYPES) & set(mru.ROPE_INIT_FUNCTIONS)
        assert not any(
            hasattr(mru.RotaryEmbeddingConfigMixin, f"_validate_{t}_rope_parameters") for t in rtt.RESONANCE_TYPES
        )
        assert not model.model.rotary_emb._forward_pre_hooks
        with rope_log() as records:
            config = llama_config("resonance_yarn")
        assert any("Missing validation function" in r.getMessage() for r in records)
        with pytest.raises(KeyError):
            LlamaForCausalLM(config)
    finally:
        rtt.register()
    assert rtt.is_registered()


def test_register_refuses_a_taken_name():
    rtt.unregister()
    mru.ROPE_INIT_FUNCTIONS["resonance_yarn"] = mru.ROPE_INIT_FUNCTIONS["yarn"]
    try:
        with pytest.raises(rr.RopeError, match="already taken"):
            rtt.register()
    finally:
        del mru.ROPE_INIT_FUNCTIONS["resonance_yarn"]
        rtt.register()


def test_v4_style_config_object():
    """transformers v4 keeps rope_scaling + rope_theta at the top level; rope_config reads both layouts."""
    _, ref = CASES["resonance_yarn"]
    v4 = types.SimpleNamespace(
        hidden_size=64,
        num_attention_heads=4,
        max_position_embeddings=256,
        rope_theta=10000.0,
        rope_scaling={"type": "resonance_yarn", "factor": 4.0, "original_max_position_embeddings": 64},
    )
    assert rtt.rope_config(v4) == ref
    inv, attention = mru.ROPE_INIT_FUNCTIONS["resonance_yarn"](v4, "cpu")
    assert_inv_freq(inv, rr.inv_freq(ref))
    assert attention == rr.attention_factor(ref)


# --- CUDA: init functions on the device, the longrope hook, CUDA's float32 cos/sin (<= 2 ulp) ---


@CUDA
@pytest.mark.parametrize("rope_type", ["resonance_yarn", "resonance_dynamic", "resonance_longrope"])
def test_cuda_model(rope_type):
    _, ref = CASES[rope_type]
    model = tiny_model(rope_type).to("cuda")
    rotary = model.model.rotary_emb
    positions = np.arange(2000, dtype=np.int64)
    seq_len = 2000 if ref.seq_len_dependent else None
    assert_cos_sin_within_bound(model, ref, positions, seq_len)
    assert rotary.inv_freq.device.type == "cuda"
    assert_inv_freq(rotary.inv_freq, rr.inv_freq(ref, seq_len))
    prompt = ((torch.arange(60)[None] * 7) % 64).cuda()
    with torch.no_grad():
        out = model.generate(
            prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=8, do_sample=False, pad_token_id=0
        )
        assert out.shape[1] > 60
        if rope_type != "resonance_longrope":  # longrope switches mid-generation: cached keys keep short factors
            full = model(out).logits[0]  # causal: row t-1 is the prediction from the prefix out[:, :t]
            for t in range(60, out.shape[1]):
                assert out[0, t] == full[t - 1].argmax()
