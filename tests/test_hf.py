"""Agreement with Hugging Face transformers, which computes in float32 (we compute in float64)."""

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import rrope_core as rr
from rrope_conformance.strategies import configs

torch = pytest.importorskip("torch", reason="transformers comparisons need torch")
transformers = pytest.importorskip("transformers", reason="transformers comparisons need transformers")
from transformers import LlamaConfig  # noqa: E402
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS  # noqa: E402

pytestmark = pytest.mark.hf
EPS32 = float(np.finfo(np.float32).eps)


def hf_config(cfg: rr.RopeConfig) -> LlamaConfig:
    """A LlamaConfig built from our v5 block of the non-resonance twin (transformers knows no resonance)."""
    block = cfg.with_resonance(False).to_hf(version=5)
    heads = 2
    return LlamaConfig(
        hidden_size=block["head_dim"] * heads,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=block["head_dim"],
        max_position_embeddings=block.get("max_position_embeddings", 2**20),
        rope_parameters=block["rope_parameters"],
    )


def hf_inv_freq(cfg: rr.RopeConfig, seq_len=None):
    hf = hf_config(cfg)
    rope_type = hf.rope_parameters["rope_type"]
    if rope_type == "default":
        base, dim = hf.rope_parameters["rope_theta"], cfg.rotary_dim
        inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
        return inv.double().numpy(), 1.0
    inv, attn = ROPE_INIT_FUNCTIONS[rope_type](hf, "cpu", seq_len=seq_len)
    return inv.double().numpy(), float(attn)


def inv_freq_rtol(cfg: rr.RopeConfig) -> float:
    """transformers' float32 ``base ** (2i/d)``: the exponent's rounding (eps/2 relative) is amplified
    by ln(base); the base itself, the pow, the reciprocal and the scaling's few float32 operations
    add at most 8 more eps (a stated bound, checked by the test)."""
    base = cfg.base if not isinstance(cfg.scaling, rr.NTK) else cfg.scaling.scaled_base(cfg.base, cfg.rotary_dim)
    return (math.log(base) + 8) * EPS32


def inv_freq_rtols(cfg: rr.RopeConfig) -> np.ndarray:
    """Per pair: ``inv_freq_rtol`` plus what the scaling's float32 blend adds (its condition number).

    Llama3's medium band computes ``theta/f * (1 + s*(f-1))`` with ``s = (L0/lambda - lo)/(hi - lo)``
    from the float32 wavelength, so a relative error ``r`` of theta moves ``s`` by ``(L0/lambda)*r/(hi-lo)``
    and the result by ``r * (1 + (L0/lambda)*(f-1) / ((hi-lo)*(1 + s*(f-1))))``.
    """
    r = inv_freq_rtol(cfg)
    rtol = np.full(cfg.rotary_dim // 2, r)
    sc = cfg.scaling
    if isinstance(sc, rr.Llama3):
        lam = 2 * math.pi / rr.inv_freq(rr.RopeConfig(head_dim=cfg.head_dim, base=cfg.base, rotary_dim=cfg.rotary_dim))
        ratio = sc.original_max_position / lam
        width = sc.high_freq_factor - sc.low_freq_factor
        s = np.clip((ratio - sc.low_freq_factor) / width, 0.0, 1.0)
        medium = (ratio >= sc.low_freq_factor) & (ratio <= sc.high_freq_factor)
        kappa = ratio * (sc.factor - 1) / (width * (1 + s * (sc.factor - 1)))
        rtol = np.where(medium, r * (1 + kappa), rtol)
    if isinstance(sc, rr.YaRN):
        # YaRN computes ``theta * (1 - ramp*(1 - 1/f))`` with ``ramp = (i - low)/(high - low)`` in float32
        # (low rounded to float32, one subtraction, one division): inside the ramp its error is
        # <= eps32 * ((|low| + |i - low|) / (2*(high - low)) + ramp), moving the result by
        # ``d_ramp * (f - 1) / (f - ramp*(f - 1))`` relative. Clamped ramps (0 or 1) are exact.
        low, high = sc.correction_range(cfg.base, cfg.rotary_dim)
        high = high + 0.001 if low == high else high
        i = np.arange(cfg.rotary_dim // 2)
        ramp = (i - low) / (high - low)
        inside = (ramp > 0) & (ramp < 1)
        d_ramp = EPS32 * ((abs(low) + np.abs(i - low)) / (2 * (high - low)) + ramp)
        f = sc.factor
        rtol = rtol + np.where(inside, d_ramp * (f - 1) / (f - np.clip(ramp, 0, 1) * (f - 1)), 0.0)
    return rtol


@given(configs(resonance=False, layouts=("half",)), st.sampled_from([None, 1, 100, 4096, 20000, 200000]))
def test_inv_freq_and_attention_factor_match_transformers(cfg, seq_len):
    ours = rr.inv_freq(cfg, seq_len)
    theirs, attn = hf_inv_freq(cfg, seq_len)
    rel = np.abs(ours - theirs) / np.abs(theirs)
    rtol = inv_freq_rtols(cfg)
    assert np.all(rel <= rtol), (
        f"inv_freq({cfg!r}, {seq_len}): relative error {rel.max():.3g} > {rtol[rel.argmax()]:.3g}"
    )
    assert math.isclose(rr.attention_factor(cfg, seq_len), attn, rel_tol=1e-12), f"attention_factor({cfg!r})"


@given(configs(resonance=True, layouts=("half",)))
def test_resonance_rounds_transformers_wavelengths(cfg):
    theirs, attn = hf_inv_freq(cfg)
    lam = 2 * math.pi / theirs
    rtol = inv_freq_rtols(cfg)
    # Skip pairs whose float32 wavelength is within its own error of a .5 tie: the two
    # precisions may round those to different integers, and both are right.
    clear = np.abs(lam - np.floor(lam) - 0.5) > 2 * rtol * lam
    assume(clear.any())
    np.testing.assert_array_equal(rr.wavelengths(cfg)[clear], np.rint(lam[clear]), err_msg=f"{cfg!r}")
    assert math.isclose(rr.attention_factor(cfg), attn, rel_tol=1e-12)


@given(configs(layouts=("half",)), st.sampled_from([4, 5]))
def test_hf_round_trip(cfg, version):
    back = rr.RopeConfig.from_hf(cfg.to_hf(version=version))
    assert back.head_dim == cfg.head_dim and back.rotary_dim == cfg.rotary_dim and back.resonance == cfg.resonance
    np.testing.assert_allclose(rr.inv_freq(back), rr.inv_freq(cfg), rtol=4 * np.finfo(float).eps)
    assert rr.attention_factor(back) == rr.attention_factor(cfg)
    if not isinstance(cfg.scaling, (rr.NTK, rr.LongRoPE)):
        assert back == cfg  # NTK folds into theta; LongRoPE writes factor=1.0 for None


def test_reads_real_world_blocks():
    llama31 = {
        "head_dim": 128,
        "max_position_embeddings": 131072,
        "rope_theta": 500000.0,
        "rope_scaling": {
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
            "rope_type": "llama3",
        },
    }
    cfg = rr.RopeConfig.from_hf(llama31)
    assert cfg.scaling == rr.Llama3(8.0, 8192, 1.0, 4.0) and cfg.base == 500000.0
    qwen_yarn_v5 = {
        "hidden_size": 4096,
        "num_attention_heads": 32,
        "max_position_embeddings": 32768,
        "rope_parameters": {
            "rope_type": "resonance_yarn",
            "rope_theta": 1e6,
            "factor": 4.0,
            "original_max_position_embeddings": 32768,
        },
    }
    cfg = rr.RopeConfig.from_hf(qwen_yarn_v5)
    assert cfg.head_dim == 128 and cfg.resonance and cfg.scaling.factor == 4.0
    phi = {
        "head_dim": 96,
        "partial_rotary_factor": 0.5,
        "rope_theta": 10000.0,
        "rope_scaling": {"type": "linear", "factor": 2.0},
    }
    cfg = rr.RopeConfig.from_hf(phi)
    assert cfg.rotary_dim == 48 and cfg.scaling == rr.Linear(2.0)
    assert rr.RopeConfig.from_hf(LlamaConfig(head_dim=64, hidden_size=128, num_attention_heads=2)) == rr.RopeConfig(
        head_dim=64
    )


def _hf_rotate(cfg, x, pos):
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    hf = hf_config(cfg)
    emb = LlamaRotaryEmbedding(hf)
    t = torch.from_numpy(x)
    cos, sin = emb(t, torch.from_numpy(pos)[None])
    q, _ = apply_rotary_pos_emb(t, t, cos, sin)
    return q.numpy()


@given(
    configs(resonance=False, layouts=("half",), kinds=("none", "linear", "ntk", "yarn", "llama3")),
    st.integers(0, 2**32 - 1),
)
def test_apply_rotary_matches_transformers_llama(cfg, seed):
    cfg = dataclasses.replace(cfg, rotary_dim=cfg.head_dim)  # transformers' Llama rotates the whole head
    x = np.random.default_rng(seed).standard_normal((1, 2, 8, cfg.head_dim)).astype(np.float32)
    pos = np.arange(100, 108)
    ours = rr.apply_rotary(x.astype(np.float64), pos, cfg)
    theirs = _hf_rotate(cfg, x, pos)
    a = rr.attention_factor(cfg)
    # float32 end to end: phase error <= m * theta * (ln(base)+8) eps32 (inv_freq) + |m theta| eps32 (product),
    # then ~4 roundings per output; times a * (|x1|+|x2|).
    phase = pos.max() * np.max(rr.inv_freq(cfg) * (inv_freq_rtols(cfg) + 2 * EPS32))
    tol = a * 2 * np.abs(x).max() * (phase + 8 * EPS32)
    err = np.abs(ours - theirs).max()
    assert err <= tol, f"apply_rotary vs LlamaRotaryEmbedding for {cfg!r}: {err:.3g} > {tol:.3g}"


def test_block_precedence_follows_transformers():
    # An empty rope_parameters is the default RoPE, not a per-layer block.
    assert rr.RopeConfig.from_hf({"head_dim": 8, "rope_parameters": {}}) == rr.RopeConfig(head_dim=8)
    # A non-empty rope_scaling wins over rope_parameters (transformers' convert_rope_params_to_dict).
    both = {
        "head_dim": 8,
        "rope_parameters": {"rope_type": "default"},
        "rope_scaling": {"type": "linear", "factor": 2.0},
    }
    with pytest.warns(rr.RopeWarning, match="rope_scaling is used"):
        assert rr.RopeConfig.from_hf(both).scaling == rr.Linear(2.0)
    # DeepSeek: RoPE covers qk_rope_head_dim, interleaved when rope_interleave.
    ds = {
        "hidden_size": 7168,
        "num_attention_heads": 128,
        "qk_rope_head_dim": 64,
        "rope_interleave": True,
        "max_position_embeddings": 163840,
        "rope_theta": 10000,
        "rope_scaling": {
            "type": "yarn",
            "factor": 40,
            "original_max_position_embeddings": 4096,
            "beta_fast": 32,
            "beta_slow": 1,
            "mscale": 1.0,
            "mscale_all_dim": 1.0,
        },
    }
    cfg = rr.RopeConfig.from_hf(ds)
    assert cfg.head_dim == 64 and cfg.layout == "interleaved" and rr.attention_factor(cfg) == 1.0


def test_dynamic_block_is_what_transformers_expects():
    block = rr.RopeConfig(head_dim=8, scaling=rr.DynamicNTK(2.0, 4096)).to_hf()
    assert block["max_position_embeddings"] == 4096
    assert block["rope_parameters"] == {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}


def test_misspelled_keys_warn_naming_them():
    block = {"head_dim": 8, "rope_parameters": {"rope_type": "yarn", "factor": 2.0, "beta_fsat": 16.0}}
    with pytest.warns(rr.RopeWarning, match=r"\['beta_fsat'\]"):
        cfg = rr.RopeConfig.from_hf({**block, "max_position_embeddings": 64})
    assert cfg.scaling.beta_fast == 32.0  # the misspelled key is not read


def test_known_keys_do_not_warn():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", rr.RopeWarning)
        rr.RopeConfig.from_hf({"head_dim": 8, "rope_type": "default", "max_position_embeddings": 64})
        rr.RopeConfig.from_hf(
            {"head_dim": 8, "original_max_position_embeddings": 64, "rope_scaling": {"type": "yarn", "factor": 2.0}}
        )


def test_yarn_beta_fast_below_beta_slow_warns():
    with pytest.warns(rr.RopeWarning, match="beta_fast=1.0 < beta_slow=32.0"):
        rr.YaRN(2.0, 64, beta_fast=1.0, beta_slow=32.0)
