"""A seeded random sample of mutmut's mutants per module, and the sample's score (docs/mutation.md).

Where every mutant would take hours (each reaches the whole conformance suite), a uniform random
sample of the mutants of each module estimates the module's score; random mutant sampling is the
usual way to cut the cost (Wong & Mathur 1995; Zhang et al., ICSE 2013). mutmut has no sampler of
its own, so this reads the mutants it generated (``mutants/**/*.py.meta``) and reports the
sample's tally with a Wilson 95 % interval.

    python tools/mutation_sample.py pick --n 20 --seed 0 [--module rrope_jax.phases ...]
    python tools/mutation_sample.py report NAME...
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import random
import sys

#: mutmut 3.8.1's exit codes (mutmut/stats.py): 1 and 3 kill, 0 survives; the rest are listed.
KILLED, SURVIVED, NOT_RUN = {1, 3}, {0}, {None}
TIMEOUT = {36, 24, -24, 152, 255}


def exit_codes(root: str = "mutants") -> dict[str, int | None]:
    """Every generated mutant's name and exit code (None: not run yet)."""
    codes: dict[str, int | None] = {}
    for path in sorted(glob.glob(os.path.join(root, "**", "*.py.meta"), recursive=True)):
        with open(path) as f:
            codes.update(json.load(f)["exit_code_by_key"])
    return codes


def module_of(name: str) -> str:
    """``rrope_jax.rotation.x__rotate__mutmut_16`` -> ``rrope_jax.rotation``."""
    return name.rsplit(".", 1)[0]  # mutmut's names: <module>.x_<function>__mutmut_<n>, no dot after the module


def pick(codes: dict, n: int, seed: int, modules: list[str] | None) -> list[str]:
    """``n`` mutants of each module (all of a smaller one), without replacement, seeded per module: the
    first ``n`` of a seeded shuffle, so a larger ``n`` with the same seed extends the sample (the
    mutants already run are not run again)."""
    by_module: dict[str, list[str]] = {}
    for name in sorted(codes):
        by_module.setdefault(module_of(name), []).append(name)
    unknown = sorted(set(modules or ()) - set(by_module))
    if unknown:
        raise SystemExit(f"--module: {unknown} not among the generated modules {sorted(by_module)}")
    chosen = []
    for module in modules or sorted(by_module):
        names = by_module[module]
        order = list(names)
        random.Random(f"{seed}:{module}").shuffle(order)
        chosen += sorted(order[:n])
    return chosen


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (95 % for the default z)."""
    if n == 0:
        return (0.0, 1.0)
    p, d = k / n, 1 + z * z / n
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return ((centre - half) / d, (centre + half) / d)


def report(codes: dict, names: list[str]) -> str:
    """One row per module: total mutants, sampled, killed / survived / timeout / other, score and interval."""
    missing = [x for x in names if x not in codes]
    if missing:
        raise SystemExit(f"report: {len(missing)} names are not generated mutants, e.g. {missing[0]!r}")
    totals: dict[str, int] = {}
    for name in codes:
        totals[module_of(name)] = totals.get(module_of(name), 0) + 1
    rows = ["| module | mutants | sampled | killed / survived / timeout / other | score (95 % interval) |"]
    rows.append("|---|---|---|---|---|")
    survivors, other = [], []
    for module in sorted({module_of(x) for x in names}):
        sample = [x for x in names if module_of(x) == module]
        k = sum(codes[x] in KILLED for x in sample)
        s = [x for x in sample if codes[x] in SURVIVED]
        t = sum(codes[x] in TIMEOUT for x in sample)
        o = [x for x in sample if codes[x] not in KILLED | SURVIVED | TIMEOUT]
        survivors += s
        other += o
        run = len(sample) - sum(codes[x] in NOT_RUN for x in sample)
        lo, hi = wilson(k, run)
        score = f"{100 * k / run:.0f} % ({100 * lo:.0f}-{100 * hi:.0f} %)" if run else "not run"
        rows.append(f"| {module} | {totals[module]} | {len(sample)} | {k} / {len(s)} / {t} / {len(o)} | {score} |")
    rows.append("")
    rows.append("survived: " + (" ".join(survivors) or "none"))
    rows.append("other (not run, no tests, suspicious, ...): " + (" ".join(f"{x}={codes[x]}" for x in other) or "none"))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pick", help="print a seeded sample of mutant names, one per line")
    p.add_argument("--n", type=int, required=True, help="mutants per module (>= 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--module", action="append", help="only this module (repeatable), e.g. rrope_jax.phases")
    r = sub.add_parser("report", help="tally the named mutants' results per module")
    r.add_argument("names", nargs="+")
    args = parser.parse_args(argv)
    codes = exit_codes()
    if not codes:
        raise SystemExit(f"no mutants under {os.path.abspath('mutants')}: run mutmut first")
    if args.command == "pick":
        if args.n < 1:
            raise SystemExit(f"--n: got {args.n}, expected a positive number of mutants per module")
        print("\n".join(pick(codes, args.n, args.seed, args.module)))
    else:
        print(report(codes, args.names))


if __name__ == "__main__":
    sys.exit(main())
