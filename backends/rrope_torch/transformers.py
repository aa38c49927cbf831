"""Resonance RoPE types for Hugging Face transformers: ``register()`` / ``unregister()``.

``register()`` (idempotent) teaches transformers the ``rope_type`` values ``resonance`` and
``resonance_<type>`` (``linear``, ``dynamic``, ``yarn``, ``llama3``, ``longrope``), so a
``config.json`` with ``"rope_parameters": {"rope_type": "resonance_yarn", ...}`` builds and loads
like any other model. What it adds, through transformers' own extension points (nothing is patched):

* ``ROPE_INIT_FUNCTIONS[<type>]``: ``(config, device=None, seq_len=None, layer_type=None) ->
  (inv_freq float32, attention_factor)``, computed as ``rr.inv_freq`` / ``rr.attention_factor`` of
  ``rr.RopeConfig.from_hf(<the config's rope block>)`` (float64 math, one float32 rounding).
* ``RotaryEmbeddingConfigMixin._validate_<type>_rope_parameters``, the name ``validate_rope`` looks
  up (v5; v4: ``ROPE_VALIDATION_FUNCTIONS``): unknown keys are logged as transformers does, invalid values raise
  ``rrope_core.RopeConfigError`` (a ``ValueError``; transformers v5's ``@strict`` config re-raises
  it as huggingface_hub's ``StrictDataclassClassValidationError``, with our error as ``__cause__``).

``dynamic_rope_update`` (the decorator on every rotary embedding's ``forward``) dispatches on the
type string: ``"dynamic" in rope_type`` already covers ``resonance_dynamic`` (frequencies are
recomputed through our init function when the sequence grows past ``max_position_embeddings``), but
``rope_type == "longrope"`` misses ``resonance_longrope``. Instead of patching transformers, the
``resonance_longrope`` init function attaches a forward pre-hook (public torch API) to the rotary
embedding module it is computing for (found in the caller's frame with ``inspect``: ``self`` in the
module's ``__init__``, ``module`` in ``PreTrainedModel._init_weights``), which does
what transformers' ``longrope_frequency_update`` does: ``inv_freq <- long if max(position_ids) + 1 >
original_max_position_embeddings else short``, in place, without a host sync. ``enable_longrope_switch``
attaches it explicitly where that lookup cannot work. ``unregister()`` removes all of it.

Exact phases: transformers builds ``cos/sin(m * inv_freq)`` in float32, whose phase error grows
like ``m * theta * eps32``; ``use_exact_phases`` (``rrope_torch.hf_exact``) makes a model's
rotary modules return exact tables, and ``register(exact_phases=True)`` does so for every model
built afterwards. See docs/integrations.md.
"""

from __future__ import annotations

import inspect
import logging
import warnings
import weakref
from collections.abc import Mapping

import torch

import rrope_core as rr
from rrope_core.errors import RopeError, RopeWarning, bad
from rrope_core.hf import CONFIG_KEYS, unknown_keys

from .hf_exact import registration_hook, use_exact_phases

__all__ = [
    "RESONANCE_TYPES",
    "register",
    "unregister",
    "is_registered",
    "rope_config",
    "enable_longrope_switch",
    "use_exact_phases",
]

logger = logging.getLogger(__name__)

#: The rope types ``register`` adds (every resonance type ``rr.RopeConfig.from_hf`` reads).
RESONANCE_TYPES = tuple(t for t in rr.HF_ROPE_TYPES if t.startswith("resonance"))

_INIT_FUNCTIONS: dict = {}  # rope_type -> our init function (stable objects: register() is idempotent)
_VALIDATORS: dict = {}  # rope_type -> our validator
_HOOKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # rotary module -> hook handle
_STATE_ATTR = "_rrope_longrope"  # per-module cache of the short/long inv_freq (CPU float32)
_warned = False  # the "no module found" warning is logged once
_EXACT_HOOK: list = []  # the handle of register(exact_phases=True)'s module registration hook


def _base_type(rope_type: str) -> str:
    return "default" if rope_type == "resonance" else rope_type.removeprefix("resonance_")


def _rope_params(config, layer_type: str | None):
    """The config's rope block: v5 ``rope_parameters`` (per layer type if given), else None (v4)."""
    params = getattr(config, "rope_parameters", None)
    if isinstance(params, Mapping) and layer_type is not None:
        params = params[layer_type]
    return params


def _hf_block(config, params: Mapping | None) -> dict:
    """The mapping ``rr.RopeConfig.from_hf`` reads: the config's own keys, unchanged."""
    block = {key: getattr(config, key, None) for key in CONFIG_KEYS}
    if params is not None:  # transformers v5
        block["rope_parameters"] = dict(params)
    else:  # transformers v4: rope_scaling + rope_theta + partial_rotary_factor at the top level
        block["rope_scaling"] = dict(getattr(config, "rope_scaling", None) or {})
        block["rope_theta"] = getattr(config, "rope_theta", 10000.0)
        block["partial_rotary_factor"] = getattr(config, "partial_rotary_factor", None) or 1.0
    return block


def _resolve(config, layer_type: str | None) -> tuple[str, dict]:
    """``(rope_type, from_hf block)`` of a transformers config (v5 or v4), for ``layer_type`` if given."""
    if layer_type is not None:
        try:  # transformers' own lookup for heterogeneous (per-layer) configs, e.g. gemma4
            config = config.per_layer_config[layer_type]
        except (ValueError, AttributeError):
            pass
    params = _rope_params(config, layer_type)
    rope = params if params is not None else (getattr(config, "rope_scaling", None) or {})
    return rope.get("rope_type", rope.get("type", "default")), _hf_block(config, params)


def rope_config(config, layer_type: str | None = None) -> rr.RopeConfig:
    """The ``rr.RopeConfig`` a transformers config (v5 or v4) describes, for ``layer_type`` if given."""
    return _read(_resolve(config, layer_type)[1])


def _frequencies(config, seq_len, layer_type, rope_type: str) -> tuple[torch.Tensor, float]:
    found, block = _resolve(config, layer_type)
    cfg = _read(block)
    if found != rope_type:
        raise bad("rope_type", found, f"the init function of {rope_type!r} was called for another type")
    n = None if seq_len is None else int(seq_len)  # dynamic_rope_update passes a 0-d tensor
    return torch.from_numpy(rr.inv_freq(cfg, n)).to(torch.float32), rr.attention_factor(cfg, n)


def _make_init(rope_type: str):
    def init(config, device=None, seq_len=None, layer_type=None):
        inv, attention = _frequencies(config, seq_len, layer_type, rope_type)
        if rope_type == "resonance_longrope" and seq_len is None:
            _attach_from_caller(config, inspect.currentframe())
        # device None: torch's default device, as transformers' own init functions (meta while from_pretrained builds)
        return inv.to(torch.empty(0).device if device is None else device), attention

    init.__name__ = init.__qualname__ = f"compute_{rope_type}_parameters"
    init.__doc__ = (
        f"transformers init function of ``{rope_type}``: ``rr.inv_freq(cfg, seq_len)`` as float32 and "
        "``rr.attention_factor(cfg, seq_len)``, ``cfg = rr.RopeConfig.from_hf(config's rope block)``."
    )
    return init


def _check_keys(rope_type: str, params: Mapping, ignore_keys) -> None:
    unknown = unknown_keys(rope_type, params, ignore_keys or ())
    if unknown:
        logger.warning("Unrecognized keys in `rope_parameters` for 'rope_type'='%s': %s", rope_type, unknown)


def _read(block: dict) -> rr.RopeConfig:
    """``rr.RopeConfig.from_hf`` without its unknown-key warning (the validators log it, as transformers does)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RopeWarning)
        return rr.RopeConfig.from_hf(block)


#: model_type -> the only rope types its config class accepts (its own validate_rope refuses others
#: after ours has run, with a message that does not say what to do instead).
_FIXED_TYPES = {"phi3": ("default", "longrope")}


def _refuse_fixed_type(config, rope_type: str) -> None:
    allowed = _FIXED_TYPES.get(getattr(config, "model_type", None))
    if allowed is not None:
        raise rr.RopeConfigError(
            f"rope_type: got {rope_type!r}, but {type(config).__name__} accepts only {list(allowed)}; keep "
            f"rope_type {_base_type(rope_type)!r} in the config and call "
            "rrope_torch.transformers.use_exact_phases(model, resonance=True) after loading (docs/integrations.md)"
        )


def _make_validator(rope_type: str):
    def validate(self, rope_parameters, ignore_keys=None):
        _refuse_fixed_type(self, rope_type)
        _check_keys(rope_type, rope_parameters, ignore_keys)
        _read(_hf_block(self, rope_parameters))  # raises RopeConfigError

    validate.__name__ = validate.__qualname__ = f"_validate_{rope_type}_rope_parameters"
    validate.__doc__ = f"Validate a ``{rope_type}`` block: ``rr.RopeConfig.from_hf`` must accept it."
    return validate


def _make_validator_v4(rope_type: str):
    def validate(config, ignore_keys=None):
        _check_keys(rope_type, getattr(config, "rope_scaling", None) or {}, ignore_keys)
        _read(_hf_block(config, None))

    validate.__name__ = f"_validate_{rope_type}_parameters"
    return validate


# --- resonance_longrope: the short/long switch transformers only does for rope_type == "longrope" ---


def _longrope_state(module, layer_type):
    state = module.__dict__.setdefault(_STATE_ATTR, {})
    if layer_type not in state:
        cfg = rope_config(module.config, layer_type)
        original = cfg.scaling.original_max_position
        short = torch.from_numpy(rr.inv_freq(cfg, None)).to(torch.float32)
        long = torch.from_numpy(rr.inv_freq(cfg, original + 1)).to(torch.float32)
        state[layer_type] = (short, long, original)
    return state[layer_type]


def _longrope_pre_hook(module, args, kwargs):
    """``inv_freq <- long if max(position_ids) + 1 > L0 else short`` (transformers' longrope_frequency_update)."""
    position_ids = kwargs["position_ids"] if "position_ids" in kwargs else args[1]
    layer_type = kwargs.get("layer_type", args[2] if len(args) > 2 else None)
    rope_type = module.rope_type if layer_type is None else module.rope_type[layer_type]
    if rope_type != "resonance_longrope":
        return None
    short, long, original = _longrope_state(module, layer_type)
    buffer = getattr(module, "inv_freq" if layer_type is None else f"{layer_type}_inv_freq")
    seq_len = position_ids.max() + 1  # a 0-d tensor: torch.where picks without a host sync
    buffer.copy_(torch.where(seq_len > original, long.to(buffer.device), short.to(buffer.device)))
    return None


def _attach(module) -> bool:
    if module in _HOOKS:
        return False
    _HOOKS[module] = module.register_forward_pre_hook(_longrope_pre_hook, with_kwargs=True)
    return True


def _is_longrope_module(obj, config) -> bool:
    if not isinstance(obj, torch.nn.Module) or getattr(obj, "config", None) is not config:
        return False
    rope_type = obj.__dict__.get("rope_type")  # a plain attribute of transformers' rotary embeddings
    return rope_type == "resonance_longrope" or (
        isinstance(rope_type, Mapping) and "resonance_longrope" in rope_type.values()
    )


def _attach_from_caller(config, frame) -> None:
    """Attach the switch to the rotary module the init function is computing for: ``self`` in the
    module's ``__init__`` (transformers v4 and v5), ``module`` in ``PreTrainedModel._init_weights``."""
    global _warned
    caller = frame.f_back if frame is not None else None
    try:
        local = caller.f_locals if caller is not None else {}
        for name in ("self", "module"):
            if _is_longrope_module(local.get(name), config):
                _attach(local[name])
                return
    finally:
        del frame, caller
    if not _warned:
        _warned = True
        logger.warning(
            "resonance_longrope: the init function was not called by a rotary embedding module; if it built "
            "one, call rrope_torch.transformers.enable_longrope_switch(model) so that it switches to the long "
            "factors past original_max_position_embeddings."
        )


def enable_longrope_switch(model: torch.nn.Module) -> int:
    """Attach the ``resonance_longrope`` short/long switch to every rotary embedding in ``model``
    that lacks it (normally done automatically at construction); returns how many were attached."""
    return sum(_attach(m) for m in model.modules() if _is_longrope_module(m, getattr(m, "config", None)))


# --- register / unregister ---


def _rope_utils():
    try:
        from transformers import modeling_rope_utils
    except ImportError as err:
        raise RopeError("rrope_torch.transformers needs transformers (pip install transformers)") from err
    return modeling_rope_utils


def register(exact_phases: bool = False) -> None:
    """Add the resonance rope types to transformers (idempotent; call before building a model).

    ``exact_phases=True`` also gives every rotary embedding module built afterwards, of any rope
    type, ``use_exact_phases`` (through torch's global module registration hook);
    ``register(False)`` stops that for later models. Raises ``rrope_core.RopeError`` if
    another function already holds one of the names.
    """
    if not isinstance(exact_phases, bool):
        raise bad("exact_phases", exact_phases, "must be True or False", rr.RopeInputError)
    mru = _rope_utils()
    inits = mru.ROPE_INIT_FUNCTIONS
    mixin = getattr(mru, "RotaryEmbeddingConfigMixin", None)  # v5
    validations = getattr(mru, "ROPE_VALIDATION_FUNCTIONS", None)  # v4
    for rope_type in RESONANCE_TYPES:
        init = _INIT_FUNCTIONS.setdefault(rope_type, _make_init(rope_type))
        if inits.get(rope_type, init) is not init:
            raise RopeError(f"ROPE_INIT_FUNCTIONS[{rope_type!r}] is already taken by {inits[rope_type]!r}")
    for rope_type in RESONANCE_TYPES:
        inits[rope_type] = _INIT_FUNCTIONS[rope_type]
        if mixin is not None:
            fn = _VALIDATORS.setdefault(rope_type, _make_validator(rope_type))
            setattr(mixin, fn.__name__, fn)
        if validations is not None:
            validations[rope_type] = _VALIDATORS.setdefault(("v4", rope_type), _make_validator_v4(rope_type))
    _set_exact_hook(exact_phases)


def _set_exact_hook(on: bool) -> None:
    if on and not _EXACT_HOOK:
        _EXACT_HOOK.append(torch.nn.modules.module.register_module_module_registration_hook(registration_hook))
    elif not on and _EXACT_HOOK:
        _EXACT_HOOK.pop().remove()


def is_registered() -> bool:
    """True when every resonance type is in transformers' ``ROPE_INIT_FUNCTIONS`` (ours)."""
    inits = _rope_utils().ROPE_INIT_FUNCTIONS
    return all(
        rope_type in _INIT_FUNCTIONS and inits.get(rope_type) is _INIT_FUNCTIONS[rope_type]
        for rope_type in RESONANCE_TYPES
    )


def unregister() -> None:
    """Undo ``register``: remove our init and validation functions and every longrope hook.

    Models already built keep their frequencies, but ``resonance_dynamic`` ones can no longer grow
    and ``resonance_longrope`` ones no longer switch: unregister only when none is in use.
    """
    mru = _rope_utils()
    mixin = getattr(mru, "RotaryEmbeddingConfigMixin", None)
    validations = getattr(mru, "ROPE_VALIDATION_FUNCTIONS", None)
    for rope_type in RESONANCE_TYPES:
        if rope_type in _INIT_FUNCTIONS and mru.ROPE_INIT_FUNCTIONS.get(rope_type) is _INIT_FUNCTIONS[rope_type]:
            del mru.ROPE_INIT_FUNCTIONS[rope_type]
        fn = _VALIDATORS.get(rope_type)
        if mixin is not None and fn is not None and mixin.__dict__.get(fn.__name__) is fn:
            delattr(mixin, fn.__name__)
        fn4 = _VALIDATORS.get(("v4", rope_type))
        if validations is not None and fn4 is not None and validations.get(rope_type) is fn4:
            del validations[rope_type]
    _set_exact_hook(False)
    for module, handle in list(_HOOKS.items()):
        handle.remove()
        module.__dict__.pop(_STATE_ATTR, None)
    _HOOKS.clear()
