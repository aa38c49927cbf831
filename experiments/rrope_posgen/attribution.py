"""Attribution: how a change of protocol moves the Resonance comparisons, paired by seed.

``rrope posgen --attribute BASE DIR ...`` reads the runs of ``BASE`` (e.g. the ``clean`` grid) and
of each ``DIR`` (the same sweep with some knobs changed), names what each ``DIR`` changed (the
protocol fields and precision in which its runs differ from ``BASE``'s), and for each task and
comparison of ``report.PAIRS`` prints, over the seeds both directories ran:

* ``D0 = OOD(Resonance variant) - OOD(base)`` under ``BASE`` and ``D1`` under ``DIR``, seed by seed
  (mean and the number of seeds where it is > 0);
* the shift ``D1 - D0`` (mean, and how many seeds it is > 0);
* exact two-sided sign tests of ``D1`` against 0 and of the shift against 0 (ties dropped).

A ``DIR`` trained with ``checkpoint="best_id"`` also holds each run's final weights, scored
(``final_weights`` in its JSONs): validation changes no training, so the same trainings give both
checkpoint rules, and extra rows compare them within ``DIR`` (base: its final weights), paired
without seed noise, over the seeds whose runs all recorded them.

With ``n`` non-tied seeds the smallest p a sign test can give is ``2 / 2**n`` (0.25 at 3 seeds):
at 3 seeds the table describes, it cannot establish.
"""

from __future__ import annotations

from math import comb
from pathlib import Path

import numpy as np

from rrope_core.errors import RopeInputError, bad

from .data import TASKS
from .report import PAIRS, _rank, load_runs, setting

__all__ = ["sign_test", "changed", "attribute", "final_weights", "attribution_table"]


def sign_test(diffs) -> float:
    """Exact two-sided sign test of ``diffs`` against 0 (zeros dropped): ``min(1, 2 P(X <= min(k, n-k)))``
    with ``X ~ Binomial(n, 1/2)``, ``k`` the positive differences among the ``n`` non-zero ones (Dixon &
    Mood 1946). 1.0 when every difference is 0."""
    d = np.asarray(diffs, dtype=np.float64)
    if d.ndim != 1 or not np.all(np.isfinite(d)):
        raise bad("diffs", diffs, "must be a 1-D sequence of finite numbers", RopeInputError)
    d = d[d != 0]
    n, k = len(d), int((d > 0).sum())
    tail = sum(comb(n, i) for i in range(min(k, n - k) + 1))
    return min(1.0, 2.0 * tail / 2.0**n)


def _one_setting(runs: list[dict], where: Path) -> dict:
    settings = {tuple(sorted(setting(r).items())) for r in runs}
    if len(settings) != 1:
        raise bad("--attribute", str(where), "must hold runs of one protocol and precision", RopeInputError)
    return dict(settings.pop())


def changed(base: dict, other: dict) -> str:
    """What ``other`` sets differently from ``base``, as ``field=value`` pairs (``"(none)"`` if nothing)."""
    return ", ".join(f"{k}={other[k]}" for k in sorted(other) if other[k] != base.get(k)) or "(none)"


def _ood(runs: list[dict]) -> dict:
    return {(r["task"], r["variant"], r["seed"]): r["ood_acc"] for r in runs}


def final_weights(runs: list[dict]) -> list[dict] | None:
    """The runs that recorded their final weights' scores (``checkpoint="best_id"`` runs from
    2026-12-04 on), as those weights scored; None if none did. Runs written before the field
    existed are left out, so the rows built on this cover only the seeds whose runs all have it."""
    last = [{**r, **r["final_weights"]} for r in runs if "final_weights" in r]
    return last or None


def attribute(base_runs: list[dict], runs: list[dict]) -> list[dict]:
    """One row per (task, comparison) present in both run sets, over their common seeds (see module doc)."""
    b, o = _ood(base_runs), _ood(runs)
    tasks = sorted({t for t, _, _ in o}, key=lambda t: _rank(t, TASKS))  # as report.paired orders them
    rows = []
    for task in tasks:
        for variant, ref in PAIRS:
            seeds = sorted(
                s for (t, v, s) in o if (t, v) == (task, variant) and all(
                    (task, x, s) in d for x in (variant, ref) for d in (b, o))
            )  # fmt: skip
            if not seeds:
                continue
            d0 = np.array([b[task, variant, s] - b[task, ref, s] for s in seeds])
            d1 = np.array([o[task, variant, s] - o[task, ref, s] for s in seeds])
            shift = d1 - d0
            rows.append(
                {
                    "task": task,
                    "comparison": f"{variant} - {ref}",
                    "seeds": seeds,
                    "base_diff": float(d0.mean()),
                    "base_higher": int((d0 > 0).sum()),
                    "diff": float(d1.mean()),
                    "higher": int((d1 > 0).sum()),
                    "p_diff": sign_test(d1),
                    "shift": float(shift.mean()),
                    "shift_up": int((shift > 0).sum()),
                    "p_shift": sign_test(shift),
                }
            )
    return rows


def attribution_table(base_dir: Path, dirs: list[Path]) -> str:
    """The Markdown table of ``rrope posgen --attribute base_dir dirs...``."""
    base_runs = load_runs([base_dir], flag="--attribute")
    base = _one_setting(base_runs, base_dir)
    lines = [
        f"Base: `{base_dir}`. D = OOD(Resonance variant) - OOD(its base), paired by seed over the seeds both "
        "directories ran; p: exact two-sided sign test (ties dropped).",
        "",
        "| directory | changes | task | comparison | seeds | D, base (higher) | D, changed (higher) | p | "
        "shift (up) | p |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d in dirs:
        runs = load_runs([d], flag="--attribute")
        what = changed(base, _one_setting(runs, d))
        groups = [(f"`{d}`", what, base_runs)]
        if (last := final_weights(runs)) is not None:
            groups.append((f"`{d}`, base: its final weights", "checkpoint=best_id (same trainings)", last))
        for label, change, against in groups:
            for r in attribute(against, runs):
                n = len(r["seeds"])
                lines.append(
                    f"| {label} | {change} | {r['task']} | {r['comparison']} | {n} | {r['base_diff']:+.3f} "
                    f"({r['base_higher']}/{n}) | {r['diff']:+.3f} ({r['higher']}/{n}) | {r['p_diff']:.2f} | "
                    f"{r['shift']:+.3f} ({r['shift_up']}/{n}) | {r['p_shift']:.2f} |"
                )
    return "\n".join(lines)
