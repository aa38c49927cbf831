"""``rrope plot [PATH] [--out fig.png|.svg|.pdf]``: wavelengths and feature gaps of a RoPE config, as a figure.

Top panel: wavelength ``2*pi/theta_i`` per pair (log scale), the rounded Resonance wavelengths,
and the training length as a horizontal line (pairs below it are pre-critical). Bottom panel:
feature gap per pair without and with resonance (Wang et al. 2024, section 3), symlog scale so the
exact zeros of resonance and the ~1e-3 rad gaps of plain RoPE both show. Needs matplotlib,
imported here only, with the Agg canvas (no display, no global pyplot state).
"""

from __future__ import annotations

import argparse
import importlib
import textwrap
from pathlib import Path

from ..errors import RopeError, bad
from .errors import CommandError, MissingDependencyError, report
from .options import add_config_arguments, add_length_arguments, config_from_args, lengths_from_args
from .report import describe, inspect_report

__all__ = ["add_arguments", "run", "draw", "DEFAULT_OUT", "FORMATS"]

DEFAULT_OUT = "rrope-plot.png"
FORMATS = ("png", "svg", "pdf")  # the --out extensions, written by matplotlib in that format
_EXTENSIONS = ".png, .svg or .pdf"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        "-o",
        metavar="FILE",
        help=f"where to write the figure: {_EXTENSIONS} (default {DEFAULT_OUT}, in the current directory)",
    )
    add_config_arguments(parser)
    add_length_arguments(parser)
    parser.add_argument("--dpi", type=int, default=120, help="resolution of the PNG (default 120)")
    parser.set_defaults(_parser=parser)


def out_format(out: str) -> str:
    """The matplotlib format of ``--out`` from its extension; ``CommandError`` for any other."""
    fmt = Path(out).suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise bad("--out", out, f"the file name must end in {_EXTENSIONS}", CommandError)
    return fmt


def _matplotlib():
    """``(Figure, FigureCanvasAgg)``, or ``MissingDependencyError`` naming the package."""
    try:
        figure = importlib.import_module("matplotlib.figure")
        agg = importlib.import_module("matplotlib.backends.backend_agg")
    except ImportError:
        raise MissingDependencyError(
            "matplotlib is required for `rrope plot` but is not installed (pip install matplotlib)"
        ) from None
    return figure.Figure, agg.FigureCanvasAgg


def draw(rep: dict, title: str, out: Path, dpi: int = 120, fmt: str = "png") -> None:
    """Write the two-panel figure of an ``rrope.inspect/1`` report to ``out`` in format ``fmt``."""
    Figure, FigureCanvasAgg = _matplotlib()
    pairs = rep["pairs"]
    idx = [p["index"] for p in pairs]
    fig = Figure(figsize=(8, 7), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True)

    top.semilogy(idx, [p["wavelength"] for p in pairs], "o-", ms=3, label="wavelength 2π/θ")
    top.semilogy(idx, [p["rounded_wavelength"] for p in pairs], "x", ms=5, label="rounded (Resonance)")
    top.axhline(rep["train_len"], color="C3", ls="--", label=f"train_len = {rep['train_len']}")
    top.axhline(rep["test_len"], color="C7", ls=":", label=f"test_len = {rep['test_len']}")
    top.set_ylabel("wavelength (positions)")
    top.set_title("\n".join(textwrap.wrap(title, 110)), fontsize=8)
    top.legend(fontsize=8)

    bottom.plot(idx, [p["feature_gap_without_resonance"] for p in pairs], "o-", ms=3, label="RoPE")
    if pairs and pairs[0]["feature_gap_with_resonance"] is not None:
        bottom.plot(idx, [p["feature_gap_with_resonance"] for p in pairs], "x-", ms=4, label="Resonance")
    # symlog: the pre-critical gaps (~1e-3 rad, exactly 0 with resonance) stay visible next to ~1 rad ones.
    bottom.set_yscale("symlog", linthresh=1e-4)
    bottom.set_xlabel("pair index i")
    bottom.set_ylabel("feature gap (radians, symlog)")
    edge = rep["critical_dim"] / 2 - 0.5
    for ax in (top, bottom):
        ax.axvline(edge, color="C7", lw=0.8)
    bottom.annotate(
        "pre-critical | post-critical",
        (edge, 1),
        xycoords=("data", "axes fraction"),
        ha="center",
        va="bottom",
        fontsize=7,
    )
    bottom.legend(fontsize=8)
    try:
        fig.savefig(out, dpi=dpi, format=fmt)
    except OSError as exc:
        raise CommandError(f"cannot write --out {str(out)!r}: {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    parser = args._parser
    if args.dpi <= 0:
        parser.error(f"argument --dpi: must be a positive integer, got {args.dpi}")
    out = Path(DEFAULT_OUT if args.out is None else args.out)
    try:
        fmt = out_format(str(out))
        if not out.parent.is_dir():
            parser.error(f"argument --out: directory {str(out.parent)!r} of {args.out!r} does not exist")
        cfg, source, data = config_from_args(args, parser)  # argument errors first
        train_len, test_len, note = lengths_from_args(args, parser, data)
        _matplotlib()  # then a missing matplotlib, before any work
        rep = inspect_report(cfg, train_len, test_len, source)
        draw(rep, f"{source}: {describe(cfg)}", out, args.dpi, fmt)
    except RopeError as exc:
        return report("plot", exc)
    if note:
        print(f"note: {note}")
    print(f"wrote {out}")
    return 0
