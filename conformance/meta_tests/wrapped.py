"""A correct port whose arrays are NumPy arrays: the reference re-exported by a module object of
its own (``wrapped_ref``, ``name = "wrapped"``). The suite must pass it: no test may judge a port
by its name or module, only by what it does and declares.

``RROPE_BACKEND=<this module's path>`` imports this file, which puts the port in its place.
"""

from __future__ import annotations

import sys
import types

from rrope_core import numpy_backend as _reference
from rrope_core.contract import REQUIRED

port = types.ModuleType("wrapped_ref", "The NumPy reference under another module and name.")
for _attr in REQUIRED:
    setattr(port, _attr, getattr(_reference, _attr))
port.name = "wrapped"

sys.modules[__name__] = port  # importlib.import_module(__name__) returns the port
