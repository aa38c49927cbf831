"""Picking a backend: ``RROPE_BACKEND`` (read once, at import), explicit names, entry points,
and dispatch on an array's type without importing any framework that is not already imported.

Detection looks at ``type(x).__module__`` only (as einops and array-api-compat do): an array of
a framework can only exist if that framework is imported.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from importlib import metadata
from types import ModuleType

from .contract import check_backend
from .errors import BackendNotFoundError, MixedFrameworkError

__all__ = ["backend", "backend_for", "framework_of", "BUILTIN", "ENV_VAR", "known_backends"]

ENV_VAR = "RROPE_BACKEND"
ENTRY_POINT_GROUP = "rrope.backends"
#: name -> (backend module, framework module it needs)
BUILTIN = {
    "numpy": ("rrope_core.numpy_backend", "numpy"),
    "torch": ("rrope_torch", "torch"),
    "tensorflow": ("rrope_tensorflow", "tensorflow"),
    "mlx": ("rrope_mlx", "mlx"),
    "jax": ("rrope_jax", "jax"),
    "keras": ("rrope_keras", "keras"),
}
#: top-level module of an array type -> framework name
_FRAMEWORK_OF_MODULE = {
    "numpy": "numpy",
    "torch": "torch",
    "tensorflow": "tensorflow",
    "keras": "tensorflow",
    "mlx": "mlx",
    "jax": "jax",
    "jaxlib": "jax",
}

#: The backend chosen at import: the environment variable, else the reference.
DEFAULT = os.environ.get(ENV_VAR, "").strip() or "numpy"
_loaded: dict[str, ModuleType] = {}


def _entry_points() -> dict[str, str]:
    return {ep.name: ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def known_backends() -> dict[str, bool]:
    """Every backend name this installation knows, with whether its framework is installed."""
    out = {name: importlib.util.find_spec(fw) is not None for name, (_, fw) in BUILTIN.items()}
    for name in _entry_points():
        out.setdefault(name, True)
    return out


def _not_found(name: str, why: str) -> BackendNotFoundError:
    known = known_backends()
    listing = ", ".join(f"{n} ({'installed' if ok else 'not installed'})" for n, ok in known.items())
    return BackendNotFoundError(
        f"backend={name!r} is invalid: {why}. Known backends: {listing}; "
        f"or a dotted module path of an out-of-tree backend (see docs/porting.md)"
    )


def backend(name: str | None = None) -> ModuleType:
    """The backend module called ``name`` (default: ``RROPE_BACKEND`` as read at import, else ``"numpy"``).

    ``name`` is a built-in name, an ``rrope.backends`` entry-point name, or a dotted module path.
    """
    name = DEFAULT if name is None else name
    if name in _loaded:
        return _loaded[name]
    if name in BUILTIN:
        module_path, framework = BUILTIN[name]
        if importlib.util.find_spec(framework) is None:
            raise _not_found(
                name, f"its framework {framework!r} is not installed (pip install 'resonance-rope[{name}]')"
            )
    else:
        module_path = _entry_points().get(name, name)
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        raise _not_found(name, f"importing {module_path!r} failed ({exc})") from exc
    _loaded[name] = check_backend(module)
    return module


def framework_of(obj) -> str | None:
    """``"numpy"``, ``"torch"``, ``"tensorflow"``, ``"mlx"`` or None (Python scalars, lists, unknown)."""
    top = type(obj).__module__.split(".", 1)[0]
    return _FRAMEWORK_OF_MODULE.get(top)


def backend_for(*arrays) -> ModuleType:
    """The backend for the arrays of one call; NumPy for plain Python values.

    Raises ``MixedFrameworkError`` (a ``TypeError``) naming both frameworks when they differ.
    """
    found: dict[str, str] = {}
    for i, a in enumerate(arrays):
        fw = framework_of(a)
        if fw is not None:
            found.setdefault(fw, f"argument {i} ({type(a).__module__}.{type(a).__qualname__})")
    if len(found) > 1:
        (fa, wa), (fb, wb) = list(found.items())[:2]
        raise MixedFrameworkError(f"arrays of two frameworks in one call: {fa} {wa} and {fb} {wb}; convert one first")
    return backend(next(iter(found), "numpy"))
