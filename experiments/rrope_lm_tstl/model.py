"""The model: transformers' ``LlamaForCausalLM``, its rope from our registered rope types.

``llama_config(variant, proto)`` is a ``LlamaConfig`` whose ``rope_parameters`` say
``rope_type`` ``default`` (RoPE), ``resonance``, ``yarn`` or ``resonance_yarn``
(``Protocol.rope_parameters``); ``rrope_torch.transformers.register()`` makes transformers build the
resonance types through ``rrope_core`` (``rr.inv_freq``, ``rr.attention_factor``), and
``use_exact_phases`` (when ``proto.exact_phases``) makes every type's cos/sin exact (integer
``m mod lambda`` for the rounded wavelengths, a float64 reduction otherwise), so the variants differ
in their wavelengths only, not in float32 table error. The block is transformers' LLaMA block
(RMSNorm eps 1e-5, SwiGLU FFN, no biases, untied output head, init N(0, 0.02)); vocabulary
``corpus.VOCAB`` (bytes + EOS). The rotary embedding has no parameters: one ``state_dict`` serves
every variant, which is how an extension starts from a pretrained model (``build_model(...,
state_dict=)``).
"""

from __future__ import annotations

import torch

import rrope_torch.transformers as rtt

from .corpus import EOS, VOCAB
from .protocol import Protocol

__all__ = ["llama_config", "build_model", "rotary_modules", "exact_phases_enabled", "describe_rope"]


def llama_config(variant: str, proto: Protocol):
    """The ``LlamaConfig`` of ``variant`` under ``proto`` (``max_position_embeddings = s * L``, the length YaRN extends to: transformers checks ``factor`` against it)."""
    from transformers import LlamaConfig

    rtt.register()  # idempotent: the resonance rope types, validated when the config is built
    return LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=proto.d_model,
        intermediate_size=proto.ffn,
        num_hidden_layers=proto.n_layers,
        num_attention_heads=proto.n_heads,
        num_key_value_heads=proto.n_kv_heads,
        max_position_embeddings=proto.ft_len,
        rope_parameters=proto.rope_parameters(variant),
        rms_norm_eps=1e-5,
        initializer_range=0.02,
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
        attention_dropout=0.0,
        use_cache=False,
        bos_token_id=None,
        eos_token_id=EOS,
        pad_token_id=None,
    )


def build_model(variant: str, proto: Protocol, *, seed: int = 0, state_dict: dict | None = None):
    """A ``LlamaForCausalLM`` of ``variant``: weights initialised under ``torch.manual_seed(seed)`` (so
    one seed gives every variant the same initial weights), then ``state_dict`` if given; exact phases
    if ``proto.exact_phases``. On the CPU, in float32, in train mode."""
    from transformers import LlamaForCausalLM

    cfg = llama_config(variant, proto)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    if state_dict is not None:
        model.load_state_dict(state_dict)
    if proto.exact_phases:
        rtt.use_exact_phases(model)
    return model.train()


def rotary_modules(model) -> list:
    """The model's transformers rotary embedding modules."""
    from rrope_torch.hf_exact import rotary_modules as found

    return [m for _, m in found(model)]


def exact_phases_enabled(model) -> bool:
    """True when every rotary module's ``forward`` is ``use_exact_phases``' (an instance attribute)."""
    modules = rotary_modules(model)
    return bool(modules) and all("forward" in m.__dict__ for m in modules)


def describe_rope(model) -> dict:
    """What the built model's rotary embedding is, for the JSON: its class, ``rope_type``, attention
    factor, the ``rrope_core`` config its transformers config describes, and whether phases are exact."""
    (module,) = rotary_modules(model)
    return {
        "module": type(module).__name__,
        "rope_type": module.rope_type,
        "attention_scaling": float(module.attention_scaling),
        "rope_parameters": dict(model.config.rope_parameters),
        "rrope_config": rtt.rope_config(model.config).to_dict(),
        "exact_phases": exact_phases_enabled(model),
        "attn_implementation": model.config._attn_implementation,
    }
