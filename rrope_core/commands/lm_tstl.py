"""``rrope lm-tstl``: YaRN vs Resonance YaRN on a byte-level Llama, train short, test long.

The experiment lives beside the library, in ``experiments/rrope_lm_tstl`` (``import rrope_lm_tstl``;
docs/lm_tstl.md); this module only forwards to ``rrope_lm_tstl.cli`` once torch, transformers and
the experiment are found (without importing them), and otherwise turns the command into the
one-line error of ``commands.errors`` (exit status 1), ``--help`` included: ``rrope_core.cli`` calls
``add_arguments`` only when ``lm-tstl`` is the command.
"""

from __future__ import annotations

import argparse
import importlib.util

from .errors import MissingDependencyError, report

__all__ = ["add_arguments", "run", "missing"]

#: (import name, how to get it), checked in this order.
NEEDS = (
    ("torch", 'pip install ".[posgen]"'),
    ("transformers", 'pip install ".[hf]"'),
    ("rrope_lm_tstl", "install resonance-rope from a checkout that has it, or put experiments/ on PYTHONPATH"),
)


def missing() -> str | None:
    """The error message for the first package of ``NEEDS`` that is not installed, else ``None``."""
    for name, how in NEEDS:
        if importlib.util.find_spec(name) is None:
            return f"`rrope lm-tstl` needs {name}, which is not installed: {how}"
    return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    message = missing()
    if message is not None:  # before argparse reads the flags (or --help)
        raise SystemExit(report("lm-tstl", MissingDependencyError(message)))
    from rrope_lm_tstl.cli import add_arguments as add

    add(parser)


def run(args: argparse.Namespace) -> int:
    message = missing()
    if message is not None:
        return report("lm-tstl", MissingDependencyError(message))
    from rrope_lm_tstl.cli import run as go

    return go(args)
