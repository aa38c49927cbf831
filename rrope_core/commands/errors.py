"""How subcommands fail: one exception, one message format, one exit status.

Runtime errors (an unreadable file, an invalid rope block) print ``rrope <cmd>: error: <message>``
to stderr and exit 2, the status argparse uses for bad arguments; no traceback reaches the user.
"""

from __future__ import annotations

import sys

from ..errors import RopeError

__all__ = ["CommandError", "MissingDependencyError", "report", "EXIT_INVALID", "EXIT_MISSING_DEPENDENCY"]

EXIT_INVALID = 2
EXIT_MISSING_DEPENDENCY = 1


class CommandError(RopeError):
    """A user-facing failure of an ``rrope`` subcommand (message names the file, flag or field)."""


class MissingDependencyError(CommandError, ImportError):
    """An optional package the subcommand needs is not installed."""


def report(command: str, exc: Exception) -> int:
    """Print ``rrope <command>: error: <exc>`` to stderr; return the exit status for ``exc``."""
    print(f"rrope {command}: error: {exc}", file=sys.stderr)
    return EXIT_MISSING_DEPENDENCY if isinstance(exc, MissingDependencyError) else EXIT_INVALID
