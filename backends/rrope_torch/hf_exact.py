"""Exact cos/sin inside transformers models: ``use_exact_phases``.

transformers' rotary embedding modules (``LlamaRotaryEmbedding`` and its copies) return
``cos, sin = cos/sin(cat(f, f)) * attention_scaling`` with ``f = m * inv_freq`` in float32, whose
phase error grows like ``m * theta * eps32``. ``use_exact_phases`` replaces each module's
``forward`` (an instance attribute; the class is untouched) by one that returns the same tensors
from exact phases (``rrope_torch.phases``: ``m mod L`` in int64 for resonance configs, a float64
``fmod`` reduction otherwise), so every attention implementation, the KV cache and
``torch.compile`` consume them unchanged. Error of each entry: <= ``a * 2*pi*eps32`` (float32
models, at any position) plus the output dtype's rounding.

seq_len (dynamic NTK, LongRoPE) is ``max(position_ids) + 1`` of each call, stateless: transformers
keeps a grown dynamic table until a call falls below the original length, we do not.
"""

from __future__ import annotations

import inspect
import logging
import math
import weakref
from collections.abc import Mapping

import torch

import rrope_core as rr
from rrope_core.errors import RopeError, bad

from .table_op import compiled_table, register, table

__all__ = ["use_exact_phases", "exact_cos_sin", "rotary_modules", "registration_hook", "PROBE_POSITIONS"]

logger = logging.getLogger(__name__)
_STATE = "_rrope_exact"  # module.__dict__ key: {"own", "configs": {layer_type: RopeConfig}, "keys", "checked"}
_ENABLED: weakref.WeakSet = weakref.WeakSet()
#: Positions at which ``use_exact_phases`` checks a module's own table against ours.
PROBE_POSITIONS = 64
_U32 = 2.0**-24  # unit roundoff of float32


def exact_cos_sin(position_ids: torch.Tensor, cfg: rr.RopeConfig, dtype: torch.dtype):
    """transformers' ``(cos, sin)`` of shape ``position_ids.shape + (rotary_dim,)``, in ``dtype``,
    from exact phases: ``cos/sin(cat(phi, phi)) * attention_factor`` (float64 trig for float64)."""
    return table(position_ids, cfg, _seq_len(position_ids, cfg), dtype)


def _seq_len(position_ids: torch.Tensor, cfg: rr.RopeConfig) -> int | None:
    return int(position_ids.max()) + 1 if cfg.seq_len_dependent else None  # a host sync, as transformers'


def _layer_types(module) -> list:
    rope_type = module.__dict__.get("rope_type")
    return sorted(rope_type) if isinstance(rope_type, Mapping) else [None]


def rotary_modules(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """``(name, module)`` of every transformers rotary embedding in ``model``: a module with a
    ``config``, a ``rope_type`` and an ``inv_freq`` (or ``<layer_type>_inv_freq``) buffer."""
    return [(name, module) for name, module in model.named_modules() if _is_rotary(module)]


def _refuse(name: str, module, why: str) -> RopeError:
    return RopeError(
        f"use_exact_phases: module {name!r} ({type(module).__name__}) {why}; its own rotary embedding is left as is"
    )


def _is_rotary(module) -> bool:
    if getattr(module, "config", None) is None or "rope_type" not in module.__dict__:
        return False
    return any(key == "inv_freq" or key.endswith("_inv_freq") for key, _ in module.named_buffers(recurse=False))


def _configs(name: str, module) -> dict:
    """``{layer_type: RopeConfig}`` a rotary module's config describes, or a RopeError naming it."""
    from .transformers import _read, _resolve  # the one reading of a config (a sibling: imported late, no cycle)

    params = [p for p in inspect.signature(type(module).forward).parameters if p != "self"]
    if params[:2] != ["x", "position_ids"] or len(params) > 3:
        raise _refuse(name, module, f"has forward{tuple(params)}, not (x, position_ids[, layer_type])")
    out = {}
    for layer_type in _layer_types(module):
        _, block = _resolve(module.config, layer_type)
        if "mrope_section" in (block.get("rope_parameters") or block.get("rope_scaling") or {}):
            raise _refuse(
                name, module, "uses multimodal rotary sections (mrope_section), which have no exact form here"
            )
        try:
            out[layer_type] = _read(block)
        except rr.RopeError as err:
            raise _refuse(name, module, f"has a rope config rrope cannot read ({err})") from err
    return out


def _probe(name: str, module, configs: dict) -> bool:
    """Compare the module's own float32 table at positions ``0..PROBE_POSITIONS-1`` with ours from
    its own config; a table of another format (e.g. ``repeat_interleave`` tables) raises. False
    (nothing checked) while the module's buffers are on the meta device.

    Bound per entry: transformers' table errs by <= ``a*(m*theta*(2*ub + u + u**2) + 4u + u**2)``
    (``inv_freq`` rounded to its buffer's dtype, ``ub``: float32 or, after ``model.to(bfloat16)``,
    bfloat16; the float32 product and trig, ``u = 2**-24``), ours by <= ``a*2*pi*u``.
    """
    device = next(iter(module.buffers())).device
    if device.type == "meta":
        return False
    positions = torch.arange(PROBE_POSITIONS, device=device)[None]
    x = torch.zeros(1, device=device, dtype=torch.float32)
    for layer_type, cfg in configs.items():
        kwargs = {} if layer_type is None else {"layer_type": layer_type}
        with torch.no_grad():
            theirs = type(module).forward(module, x, positions, **kwargs)
        ours = exact_cos_sin(positions, cfg, torch.float32)
        theta, a = float(rr.inv_freq(cfg).max()), float(rr.attention_factor(cfg))
        ub = torch.finfo(_inv_freq(module, layer_type).dtype).eps / 2
        reach = (PROBE_POSITIONS - 1) * theta
        bound = a * (reach * (2 * ub + _U32 + _U32**2) + 4 * _U32 + _U32**2 + 2 * math.pi * _U32)
        if not isinstance(theirs, tuple) or len(theirs) != 2:
            raise _refuse(name, module, "does not return a (cos, sin) pair")
        for t, o in zip(theirs, ours, strict=True):
            if t.shape != o.shape or float((t.double() - o.double()).abs().max()) > bound:
                raise _refuse(name, module, "returns a cos/sin table in a format other than cat(freqs, freqs)")
    return True


def _inv_freq(module, layer_type) -> torch.Tensor:
    return getattr(module, "inv_freq" if layer_type is None else f"{layer_type}_inv_freq")


def _exact_forward(self, x, position_ids, layer_type=None):
    """The rotary module's forward with exact phases (see ``use_exact_phases``)."""
    state = self.__dict__[_STATE]
    if not state["checked"] and not torch.compiler.is_compiling():  # built on the meta device: check now
        try:
            state["checked"] = _probe(type(self).__name__, self, state["own"])
        except RopeError as err:
            _disable(self)
            logger.warning("%s; transformers' own float32 table is used", err)
            return self.forward(x, position_ids, **({} if layer_type is None else {"layer_type": layer_type}))
    if position_ids.ndim != 2:
        raise RopeError(
            f"use_exact_phases: {type(self).__name__} got position_ids of shape {tuple(position_ids.shape)}; "
            "only (batch, seq) positions are supported"
        )
    cfg = state["configs"][layer_type]
    if torch.compiler.is_compiling():  # one opaque op: Inductor would recompute the table in every layer
        return compiled_table(position_ids, state["keys"][layer_type], _seq_len(position_ids, cfg), x.dtype)
    return exact_cos_sin(position_ids, cfg, x.dtype)


def _enable(module, own: dict, resonance: bool | None, checked: bool) -> None:
    configs = {k: cfg if resonance is None else cfg.with_resonance(resonance) for k, cfg in own.items()}
    keys = {k: register(cfg) for k, cfg in configs.items()}
    module.__dict__[_STATE] = {"own": own, "configs": configs, "keys": keys, "checked": checked}
    module.forward = _exact_forward.__get__(module)
    _ENABLED.add(module)


def _disable(module) -> None:
    if module in _ENABLED:
        module.__dict__.pop("forward", None)
        module.__dict__.pop(_STATE, None)
        _ENABLED.discard(module)


def use_exact_phases(model: torch.nn.Module, enable: bool = True, *, resonance: bool | None = None):
    """Make every rotary embedding of a transformers ``model`` return exact cos/sin (in place;
    returns ``model``); ``enable=False`` restores transformers' own tables.

    ``resonance``: ``None`` follows each config's ``rope_type``; ``True`` rounds the wavelengths of
    whatever type the config has (e.g. Phi-3, whose config accepts only ``longrope``: Resonance
    LongRoPE without a ``resonance_longrope`` config). Raises ``rrope_core.RopeError``
    naming the module when one has no exact form here (multimodal mrope, another table format);
    then no module is changed. Models without rotary modules raise too.
    """
    if not isinstance(model, torch.nn.Module):
        raise bad("model", type(model).__name__, "must be a torch.nn.Module (a transformers model)", rr.RopeInputError)
    if resonance is not None and not isinstance(resonance, bool):
        raise bad("resonance", resonance, "must be None, True or False", rr.RopeInputError)
    modules = rotary_modules(model)
    if not enable:
        for _, module in modules:
            _disable(module)
        return model
    if not modules:
        raise RopeError(f"use_exact_phases: {type(model).__name__} has no transformers rotary embedding module")
    checked = []
    for name, module in modules:  # check all before changing any (the probe calls the class's forward)
        own = _configs(name, module)
        checked.append((module, own, _probe(name, module, own)))
    for module, own, ok in checked:
        _enable(module, own, resonance, ok)
    return model


def registration_hook(parent, name, submodule):
    """``register(exact_phases=True)``: a rotary module assigned into a model gets exact phases
    (checked at its first eager call if built on the meta device); one that has none is left as is."""
    if isinstance(submodule, torch.nn.Module) and submodule not in _ENABLED and _is_rotary(submodule):
        try:
            own = _configs(name, submodule)
            _enable(submodule, own, None, _probe(name, submodule, own))
        except RopeError as err:
            logger.warning("%s", err)
    return None
