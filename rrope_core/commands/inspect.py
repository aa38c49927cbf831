"""``rrope inspect [PATH]``: per-pair table of a RoPE config (from flags or a model's config.json).

Per pair ``i``: ``theta_i`` (after scaling, before rounding), wavelength ``2*pi/theta_i``, the
Resonance period ``rint(wavelength)`` and the change it makes, pre/post-critical against the
training length, and the feature gap (Wang et al. 2024, section 3) without and with resonance.
Then the critical dimension, the attention factor and the memory of a float32 cos/sin cache.
``--json`` prints the same as the ``rrope.inspect/1`` schema (docs/cli.md).
"""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import RopeError
from .errors import report
from .options import add_config_arguments, add_length_arguments, config_from_args, lengths_from_args
from .report import describe, inspect_report
from .table import print_table

__all__ = ["add_arguments", "run"]

HEADERS = ("pair", "theta", "wavelength", "rounded", "change", "critical", "gap", "gap(res)")
RIGHT = (True, True, True, True, True, False, True, True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    add_length_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the rrope.inspect/1 JSON instead of a table")
    parser.set_defaults(_parser=parser)


def _bytes(n: int | None) -> str:
    if n is None:
        return "n/a"
    size, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            break
        size /= 1024
    return f"{n} B" if unit == "B" else f"{size:.1f} {unit} ({n} bytes)"


def _gap(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def rows(rep: dict) -> list[list[str]]:
    """Table cells of each pair (``theta`` 6 significant digits, wavelengths 3 decimals, gaps 4 digits)."""
    return [
        [
            str(p["index"]),
            f"{p['theta']:.6g}",
            f"{p['wavelength']:.3f}",
            str(p["rounded_wavelength"]),
            f"{p['rounding_change']:+.3f}",
            p["critical"],
            _gap(p["feature_gap_without_resonance"]),
            _gap(p["feature_gap_with_resonance"]),
        ]
        for p in rep["pairs"]
    ]


def format_summary(rep: dict) -> str:
    """The lines after the table: critical dimension, attention factor, cache memory."""
    rd = rep["config"]["rotary_dim"]
    mem = rep["memory_bytes"]
    with_res = rep["critical_dim_with_resonance"]
    lines = [
        f"critical dimension: {rep['critical_dim']} of {rd} rotary features have wavelength <= "
        f"train_len={rep['train_len']} (without resonance: {rep['critical_dim_without_resonance']}, "
        f"with: {'n/a' if with_res is None else with_res})",
        f"attention factor: {rep['attention_factor']:.6g}",
        f"float32 cos/sin cache at test_len={rep['test_len']}:",
        f"  HF-style table (test_len x rotary_dim x 2 x 4 B): {_bytes(mem['hf_table'])}",
        f"  resonance periodic table (sum of rounded wavelengths x 2 x 4 B): {_bytes(mem['periodic_table'])}",
        f"    rows past test_len never read; capped at test_len: {_bytes(mem['periodic_table_capped'])}",
        f"  on-the-fly kernel: {_bytes(mem['on_the_fly'])}",
    ]
    return "\n".join(lines)


def format_header(rep: dict, cfg_line: str) -> str:
    lines = [
        f"config ({rep['source']}): {cfg_line}",
        f"train_len={rep['train_len']} test_len={rep['test_len']}; gap = feature gap in radians "
        "(resonance off), gap(res) = with resonance",
    ]
    lines += [f"note: {n}" for n in rep["notes"]]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    parser = args._parser
    try:
        cfg, source, data = config_from_args(args, parser)
        train_len, test_len, note = lengths_from_args(args, parser, data)
        rep = inspect_report(cfg, train_len, test_len, source)
        rep["notes"] += [note] if note else []
    except RopeError as exc:
        return report("inspect", exc)
    if args.json:
        print(json.dumps(rep, indent=2, allow_nan=False))
        return 0
    print(format_header(rep, describe(cfg)), end="\n\n")
    print_table(HEADERS, rows(rep), RIGHT)
    print()
    print(format_summary(rep))
    sys.stdout.flush()
    return 0
