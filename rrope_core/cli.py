"""The ``rrope`` command line. Each subcommand lives in the module that owns it and is imported only
when its name is on the command line, so ``rrope --help`` imports no framework."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from ._version import __version__

#: name -> (module with ``add_arguments(parser)`` and ``run(args) -> int``, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "inspect": ("rrope_core.commands.inspect", "per-pair table of a RoPE config (flags or config.json)"),
    "plot": ("rrope_core.commands.plot", "PNG, SVG or PDF of wavelengths and feature gap (needs matplotlib)"),
    "convert": ("rrope_core.commands.convert", "rewrite a rope block: transformers v4 <-> v5, MLX freqs, GGUF"),
    "posgen": ("rrope_posgen.cli", "the PosGen train-short-test-long benchmark (needs torch)"),
    "lm-tstl": ("rrope_core.commands.lm_tstl", "YaRN vs Resonance YaRN in a byte-level Llama (needs transformers)"),
}
#: name -> (package it cannot start without, how to install it); checked before its module is imported
NEEDS: dict[str, tuple[str, str]] = {"posgen": ("torch", 'pip install ".[posgen]"')}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rrope",
        description="Resonance RoPE: inspect, convert and benchmark rotary position embeddings.",
    )
    parser.add_argument("--version", action="version", version=f"rrope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            mod = importlib.import_module(module)
            mod.add_arguments(p)
            p.set_defaults(func=mod.run)
    return parser


def missing_package(command: str | None) -> int | None:
    """Exit status 1 after a one-line error when ``command`` needs a package that is not installed
    (found without importing it), else ``None``."""
    if command not in NEEDS or importlib.util.find_spec(NEEDS[command][0]) is not None:
        return None
    from .commands.errors import MissingDependencyError, report

    package, install = NEEDS[command]
    return report(
        command, MissingDependencyError(f"`rrope {command}` needs {package}, which is not installed: {install}")
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if a in SUBCOMMANDS), None)
    missing = missing_package(command)
    if missing is not None:
        return missing
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
