"""Aligned plain-text tables; ``rich`` is used only when it is installed and stdout is a terminal."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from typing import TextIO

__all__ = ["render", "print_table"]


def render(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    """Columns padded to their widest cell (right-aligned where ``right``), two spaces apart."""
    widths = [max(len(h), *(len(r[j]) for r in rows)) if rows else len(h) for j, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def print_table(headers, rows, right, out: TextIO | None = None) -> None:
    """Print with ``rich`` on a terminal that has it, else ``render`` (same cells either way)."""
    out = sys.stdout if out is None else out
    if out.isatty() and importlib.util.find_spec("rich") is not None:
        from rich.console import Console
        from rich.table import Table

        t = Table(show_edge=False, pad_edge=False)
        for h, r in zip(headers, right, strict=True):
            t.add_column(h, justify="right" if r else "left")
        for row in rows:
            t.add_row(*row)
        Console(file=out).print(t)
        return
    print(render(headers, rows, right), file=out)
