"""PosGen results on disk: one JSON per run, a merged summary, a Markdown table and a PNG plot.

Layout of a results directory: ``runs/<task>-<variant>-seed<seed>.json`` (one per run, written
atomically, so a run interrupted half-way leaves nothing and is redone), ``summary.json``,
``summary.md`` and ``accuracy_by_position.png``. Aggregates are mean and sample standard deviation
(``ddof=1``; 0 for a single seed) over seeds of each (task, variant), and, seed by seed, the OOD
difference of each Resonance variant from its base (the paper's claim). The plot draws on a
matplotlib Agg canvas directly (no pyplot, no global backend switch).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from rrope_core.errors import RopeInputError, bad

from .data import TASKS
from .protocol import VARIANTS, Protocol

__all__ = [
    "run_path",
    "write_json",
    "load_runs",
    "summarize",
    "paired",
    "markdown_table",
    "plot",
    "write_reports",
]

SUMMARY_JSON, SUMMARY_MD, PLOT_PNG = "summary.json", "summary.md", "accuracy_by_position.png"


def run_path(out: Path, task: str, variant: str, seed: int) -> Path:
    return Path(out) / "runs" / f"{task}-{variant}-seed{seed}.json"


def write_json(path: Path, data: object) -> None:
    """Write ``data`` as JSON to ``path`` atomically (a temporary file, then ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")
    os.replace(tmp, path)


def setting(rec: dict) -> dict:
    """What must match for two runs to be compared or merged: every protocol knob and the training
    precision. Records written before a knob existed get its default (the clean protocol's: what
    they ran), and before ``precision`` existed were float32."""
    return {**Protocol(**rec["protocol"]).to_dict(), "precision": rec.get("precision", "fp32")}


def load_runs(dirs: list[Path], flag: str = "--merge") -> list[dict]:
    """Every run record under ``<dir>/runs/*.json`` of ``dirs``; duplicates of one (task, variant,
    seed) must have the same protocol and are kept once. Raises (naming ``flag``) if a directory has
    no runs."""
    by_key: dict[tuple, dict] = {}
    for d in dirs:
        files = sorted((Path(d) / "runs").glob("*.json"))
        if not files:
            raise bad(flag, str(d), "must be a posgen results directory (no runs/*.json in it)", RopeInputError)
        for f in files:
            rec = json.loads(f.read_text())
            key = (rec["task"], rec["variant"], rec["seed"])
            old = by_key.get(key)
            if old is not None and setting(old) != setting(rec):
                raise bad(
                    flag,
                    str(f),
                    f"holds run {key} with a different protocol or precision than another directory",
                    RopeInputError,
                )
            by_key.setdefault(key, rec)
    return [by_key[k] for k in sorted(by_key)]


def _rank(name: str, known: tuple[str, ...]) -> tuple[int, str]:
    """Sort key: ``known`` names in their documented order, then unknown ones alphabetically."""
    return (known.index(name) if name in known else len(known), name)


def _mean_std(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = values.mean(axis=0)
    std = values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros_like(mean)
    return mean, std


def _nullable(a: np.ndarray) -> list:
    return [None if np.isnan(v) else float(v) for v in a]


def summarize(runs: list[dict]) -> dict:
    """Mean and std over seeds per (task, variant). All runs must share one protocol and precision."""
    if not runs:
        raise bad("runs", [], "must hold at least one run record", RopeInputError)
    proto, first = runs[0]["protocol"], setting(runs[0])
    for r in runs:
        if setting(r) != first:
            diff = sorted(k for k in first if first[k] != setting(r).get(k))
            raise bad(
                "runs",
                f"{r['task']}-{r['variant']}-seed{r['seed']}",
                f"must share one protocol and precision; it differs in {diff}",
                RopeInputError,
            )
    groups = {}
    for r in runs:
        groups.setdefault((r["task"], r["variant"]), []).append(r)

    rows = []
    for (task, variant), rs in sorted(
        groups.items(), key=lambda kv: _rank(kv[0][0], TASKS) + _rank(kv[0][1], VARIANTS)
    ):
        by_pos = np.array([[np.nan if a is None else a for a in r["acc_by_position"]] for r in rs], dtype=np.float64)
        pos_mean, pos_std = _mean_std(by_pos)
        row = {"task": task, "variant": variant, "seeds": sorted(r["seed"] for r in rs)}
        for name in ("id_acc", "ood_acc"):
            m, s = _mean_std(np.array([r[name] for r in rs]))
            row[f"{name}_mean"], row[f"{name}_std"] = float(m), float(s)
        row["acc_by_position_mean"], row["acc_by_position_std"] = _nullable(pos_mean), _nullable(pos_std)
        row["train_s_mean"] = float(np.mean([r["train_s"] for r in rs]))
        # Epoch 1 excluded where there are more: it includes torch.compile's compilation and warm-up.
        row["epoch_s_median"] = float(np.median([np.median(r["epoch_s"][1:] or r["epoch_s"]) for r in rs]))
        rows.append(row)
    return {
        "protocol": proto,
        "precision": first["precision"],
        "std": "sample std over seeds (ddof=1), 0 for one seed",
        "groups": rows,
        "paired": paired(runs),
    }


#: (Resonance variant, the variant whose wavelengths it rounds): the comparisons the paper's claim is about.
PAIRS = (("resonance", "rope"), ("resonance_yarn", "yarn"))


def paired(runs: list[dict]) -> list[dict]:
    """OOD accuracy of each Resonance variant minus its base (``PAIRS``), seed by seed, per task,
    over the seeds run for both: mean and sample std of the difference, and the seeds it is > 0."""
    ood = {(r["task"], r["variant"], r["seed"]): r["ood_acc"] for r in runs}
    tasks = sorted({t for t, _, _ in ood}, key=lambda t: _rank(t, TASKS))
    rows = []
    for task in tasks:
        for variant, base in PAIRS:
            seeds = sorted(s for t, v, s in ood if (t, v) == (task, variant) and (task, base, s) in ood)
            if seeds:
                diff = np.array([ood[task, variant, s] - ood[task, base, s] for s in seeds])
                mean, std = _mean_std(diff)
                rows.append(
                    {
                        "task": task,
                        "variant": variant,
                        "base": base,
                        "seeds": seeds,
                        "ood_diff_mean": float(mean),
                        "ood_diff_std": float(std),
                        "higher": int((diff > 0).sum()),
                    }
                )
    return rows


def markdown_table(summary: dict, command: str | None = None) -> str:
    """The summary as a Markdown table: ID and OOD accuracy, mean ± std over seeds."""
    proto = summary["protocol"]
    lines = [
        "# PosGen results",
        "",
        f"Train length {proto['train_len']}, test length {proto['test_len']} (teacher forcing); "
        f"p={proto['p']}, j={proto['j']}, k={proto['k']}, fn {proto.get('fn', 'sum')}; {proto['n_layers']} layers, d_model {proto['d_model']}, "
        f"{proto['n_heads']} heads; {proto['n_train']} sequences x {proto['epochs']} epochs; "
        f"{summary.get('precision', 'fp32')} training. "
        f"ID: positions {proto['j'] + proto['k']}..{proto['train_len'] - 1}; "
        f"OOD: {proto['train_len']}..{proto['test_len'] - 1}. Mean ± std over seeds ({summary['std']}).",
    ]
    if command:
        lines += ["", f"Command: `{command}`"]
    lines += ["", "| task | variant | seeds | ID acc | OOD acc |", "|---|---|---|---|---|"]
    for g in summary["groups"]:
        lines.append(
            f"| {g['task']} | {g['variant']} | {len(g['seeds'])} | {g['id_acc_mean']:.3f} ± {g['id_acc_std']:.3f} "
            f"| {g['ood_acc_mean']:.3f} ± {g['ood_acc_std']:.3f} |"
        )
    epoch_s = [g["epoch_s_median"] for g in summary["groups"] if "epoch_s_median" in g]
    if epoch_s:
        lines += [
            "",
            f"Seconds per training epoch of a whole stack (each run's median over epochs 2 on, then the "
            f"median over a row's runs): "
            f"{min(epoch_s):.3g} to {max(epoch_s):.3g} across the rows.",
        ]
    if summary.get("paired"):
        lines += [
            "",
            "Resonance variant minus its base, OOD accuracy, paired by seed (mean ± std of the difference):",
            "",
            "| task | comparison | seeds | OOD difference | seeds where Resonance is higher |",
            "|---|---|---|---|---|",
        ]
        for d in summary["paired"]:
            lines.append(
                f"| {d['task']} | {d['variant']} - {d['base']} | {len(d['seeds'])} "
                f"| {d['ood_diff_mean']:+.3f} ± {d['ood_diff_std']:.3f} | {d['higher']} of {len(d['seeds'])} |"
            )
    return "\n".join(lines) + "\n"


def _binned(values: list, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``(centres, means)`` of ``values`` (``None`` = not scored) over consecutive bins of ``width`` positions."""
    a = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    a = np.concatenate([a, np.full(-len(a) % width, np.nan)]).reshape(-1, width)
    count = (~np.isnan(a)).sum(1)
    means = np.where(count > 0, np.nansum(a, 1) / np.maximum(count, 1), np.nan)
    return np.arange(len(a)) * width + (width - 1) / 2, means


def plot(summary: dict, path: Path, width: int = 4) -> None:
    """Accuracy vs position, one panel per task, one line per variant, shaded ± std over seeds.

    Each point is the mean over ``width`` consecutive positions (the std, shaded, likewise): in
    ``semi_recursive`` tokens with and without the sum's shortcut alternate, and unbinned lines
    zigzag between them."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    proto = summary["protocol"]
    tasks = list(dict.fromkeys(g["task"] for g in summary["groups"]))
    fig = Figure(figsize=(5.5 * len(tasks), 4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks, strict=True):
        for g in (g for g in summary["groups"] if g["task"] == task):
            pos, mean = _binned(g["acc_by_position_mean"], width)
            _, std = _binned(g["acc_by_position_std"], width)
            (line,) = ax.plot(pos, mean, label=f"{g['variant']} (n={len(g['seeds'])})", lw=1.2)
            ax.fill_between(pos, mean - std, mean + std, color=line.get_color(), alpha=0.2, lw=0)
        ax.axvline(proto["train_len"] - 0.5, color="k", ls="--", lw=0.8)
        xlabel = "position" if width == 1 else f"position (mean over {width})"
        ax.set(title=task, xlabel=xlabel, ylabel="accuracy (teacher forcing)", ylim=(0, 1.02))
        ax.legend(fontsize=8, loc="lower left")
    fig.savefig(path, dpi=110)


def write_reports(runs: list[dict], out: Path, command: str | None = None) -> dict:
    """Write summary.json, summary.md and (if matplotlib is installed) the PNG into ``out``.

    Returns the summary; its ``"plot"`` is the PNG's file name, or ``None`` without matplotlib.
    """
    return write_summary_files(summarize(runs), Path(out), command, plot, markdown_table, PLOT_PNG)


def write_summary_files(summary: dict, out: Path, command, plot_fn, markdown_fn, png: str) -> dict:
    """The report files of an experiment (PosGen's and rrope_lm_tstl's): ``summary.json``,
    ``summary.md`` (``markdown_fn(summary, command)``) and, with matplotlib, ``png`` drawn by
    ``plot_fn(summary, path)``; ``summary["plot"]`` is the PNG's name or ``None``."""
    out.mkdir(parents=True, exist_ok=True)
    if command:
        summary["command"] = command
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        summary["plot"] = None
    else:
        summary["plot"] = png
        plot_fn(summary, out / png)
    write_json(out / SUMMARY_JSON, summary)
    (out / SUMMARY_MD).write_text(markdown_fn(summary, command))
    return summary
