"""Results on disk: one JSON per run, a merged summary, a Markdown table and a PNG (NumPy only;
matplotlib for the PNG, imported inside ``plot``).

Layout of a results directory: ``runs/<variant>-seed<seed>.json`` (``variant`` is
``protocol.variant_key``: ``rope``, ``rope.yarn.finetune``, ...; written atomically, so a run
interrupted half-way leaves nothing and is redone), ``checkpoints/<pretrain>-seed<seed>.pt`` (the
pretrained weights the extensions start from; never read by ``--merge``), ``summary.json``,
``summary.md`` and ``perplexity_by_length.png``. Aggregates: mean and sample standard deviation
(``ddof=1``; 0 for one seed) over seeds of each variant's perplexity at each length, and, paired by
seed, the perplexity differences in ``comparisons`` (Resonance YaRN - YaRN first: the paper's claim
is that it is negative at every length, sec. 6.2, Figure 4).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rrope_core.errors import RopeInputError, bad
from rrope_posgen.report import write_json, write_summary_files

from .protocol import METHODS, MODES, PRETRAIN, Protocol, label, variant_key

__all__ = [
    "run_path",
    "checkpoint_path",
    "write_json",
    "setting",
    "differences",
    "load_runs",
    "comparisons",
    "summarize",
    "markdown_table",
    "plot",
    "write_reports",
    "SUMMARY_JSON",
    "SUMMARY_MD",
    "PLOT_PNG",
]

SUMMARY_JSON, SUMMARY_MD, PLOT_PNG = "summary.json", "summary.md", "perplexity_by_length.png"


def run_path(out: Path, key: str, seed: int) -> Path:
    return Path(out) / "runs" / f"{key}-seed{seed}.json"


def checkpoint_path(out: Path, pretrain: str, seed: int) -> Path:
    return Path(out) / "checkpoints" / f"{pretrain}-seed{seed}.pt"


def setting(rec: dict) -> dict:
    """What must match for two runs to be compared or merged: every protocol knob, the training
    precision, and the corpus (its content and the test documents' hashes)."""
    corpus = rec["corpus"]
    return {
        "protocol": Protocol(**rec["protocol"]).to_dict(),
        "precision": rec["precision"],
        "corpus": {k: corpus[k] for k in ("content_sha256", "file_list_sha256", "test_docs_sha256")},
    }


def differences(a: dict, b: dict) -> list[str]:
    """The names of the protocol knobs, precision or corpus hashes where two settings differ."""
    flat = lambda s: {**s["protocol"], "precision": s["precision"], **s["corpus"]}  # noqa: E731
    fa, fb = flat(a), flat(b)
    return sorted(k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k))


def load_runs(dirs: list[Path]) -> list[dict]:
    """Every run record under ``<dir>/runs/*.json`` of ``dirs``; duplicates of one (variant, seed) must
    have the same setting and are kept once. Raises if a directory has no runs."""
    by_key: dict[tuple, dict] = {}
    for d in dirs:
        files = sorted((Path(d) / "runs").glob("*.json"))
        if not files:
            raise bad("--merge", str(d), "must be an lm-tstl results directory (no runs/*.json in it)", RopeInputError)
        for f in files:
            rec = json.loads(f.read_text())
            key = (rec["variant"], rec["seed"])
            old = by_key.get(key)
            if old is not None and setting(old) != setting(rec):
                raise bad(
                    "--merge",
                    str(f),
                    f"holds run {key} of another setting than another directory (differs in {differences(old, setting(rec))})",
                    RopeInputError,
                )
            by_key.setdefault(key, rec)
    return [by_key[k] for k in sorted(by_key, key=lambda k: (_order(k[0]), k[1]))]


def _keys() -> list[str]:
    """Every variant key in report order: per pretraining, unextended, then each mode and method."""
    return [
        k for p in PRETRAIN for k in [variant_key(p)] + [variant_key(p, m, mode) for mode in MODES for m in METHODS]
    ]


def _order(key: str) -> tuple[int, str]:
    keys = _keys()
    return (keys.index(key) if key in keys else len(keys), key)


def comparisons() -> list[tuple[str, str]]:
    """``(a, b)`` pairs reported as ``a - b`` by seed: Resonance YaRN - YaRN from each pretraining and
    mode; the all-Resonance pipeline against the all-RoPE one in each mode; Resonance RoPE - RoPE."""
    out = [(variant_key(p, "resonance_yarn", m), variant_key(p, "yarn", m)) for m in MODES for p in PRETRAIN]
    out += [(variant_key("resonance", "resonance_yarn", m), variant_key("rope", "yarn", m)) for m in MODES]
    return out + [(variant_key("resonance"), variant_key("rope"))]


def _mean_std(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = values.mean(axis=0)
    std = values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros_like(mean)
    return mean, std


def summarize(runs: list[dict]) -> dict:
    """Mean and std over seeds per variant, and the paired differences. All runs must share one setting."""
    if not runs:
        raise bad("runs", [], "must hold at least one run record", RopeInputError)
    first = setting(runs[0])
    for r in runs:
        if setting(r) != first:
            raise bad(
                "runs",
                f"{r['variant']}-seed{r['seed']}",
                f"must share one setting; it differs in {differences(first, setting(r))}",
                RopeInputError,
            )
    groups: dict[str, list[dict]] = {}
    for r in runs:
        groups.setdefault(r["variant"], []).append(r)
    rows = []
    for key in sorted(groups, key=_order):
        rs = sorted(groups[key], key=lambda r: r["seed"])
        ppl = np.array([r["eval"]["ppl"] for r in rs])
        nll = np.array([r["eval"]["nll"] for r in rs])
        seg = np.array([r["eval"]["nll_by_segment"][-1] for r in rs])
        row = {"variant": key, "label": label(key), "seeds": [r["seed"] for r in rs]}
        for name, a in (("ppl", ppl), ("nll", nll), ("nll_by_segment", seg)):
            m, s = _mean_std(a)
            row[f"{name}_mean"], row[f"{name}_std"] = m.tolist(), s.tolist()
        row["ppl_by_seed"] = ppl.tolist()
        row["nll_by_segment_by_seed"] = seg.tolist()
        vals = [r["train"]["val"][-1][1] for r in rs if r.get("train")]
        if vals:
            row["final_val_nll_mean"] = np.mean(np.array(vals, dtype=np.float64), axis=0).tolist()
        row["wall_s_mean"] = float(np.mean([r["wall_s"] for r in rs]))
        rows.append(row)
    by = {(r["variant"], r["seed"]): r for r in runs}
    paired = []
    for a, b in comparisons():
        seeds = sorted(s for (k, s) in by if k == a and (b, s) in by)
        if not seeds:
            continue
        diff = np.array([np.subtract(by[a, s]["eval"]["ppl"], by[b, s]["eval"]["ppl"]) for s in seeds])
        dnll = np.array([np.subtract(by[a, s]["eval"]["nll"], by[b, s]["eval"]["nll"]) for s in seeds])
        m, sd = _mean_std(diff)
        mn, sdn = _mean_std(dnll)
        paired.append(
            {
                "a": a,
                "b": b,
                "seeds": seeds,
                "ppl_diff_mean": m.tolist(),
                "ppl_diff_std": sd.tolist(),
                "nll_diff_mean": mn.tolist(),
                "nll_diff_std": sdn.tolist(),
                "ppl_diff_by_seed": diff.tolist(),
                "a_lower": (diff < 0).sum(0).tolist(),
            }
        )
    r0 = runs[0]
    proto = Protocol(**r0["protocol"])
    return {
        "protocol": proto.to_dict(),
        "precision": first["precision"],
        "corpus": r0["corpus"],
        "lengths": proto.eval_lengths,
        "n_params": r0["n_params"],
        "versions": {k: r0.get(k) for k in ("python", "torch", "transformers")},
        "std": "sample std (ddof=1), 0 for one seed",
        "groups": rows,
        "paired": paired,
    }


def _pm(m: float, s: float) -> str:
    return f"{m:.3f} ± {s:.3f}"


def markdown_table(summary: dict, command: str | None = None) -> str:
    """The summary as Markdown: perplexity per variant and length, the paired differences, per-seed values."""
    p, c = summary["protocol"], summary["corpus"]
    lengths = summary["lengths"]
    head = " | ".join(f"{n} ({n // p['train_len']}L)" for n in lengths)
    lines = [
        "# LM train-short-test-long: YaRN vs Resonance YaRN",
        "",
        f"Byte-level `LlamaForCausalLM` ({p['n_layers']} layers, d_model {p['d_model']}, {p['n_heads']} heads of "
        f"{p['d_model'] // p['n_heads']}, {p['n_kv_heads']} KV heads, FFN {p['ffn']}, {summary['n_params']:,} parameters), "
        f"pretrained at L = {p['train_len']} ({p['steps']} steps x {p['batch_size']} windows), extended to "
        f"s L = {p['scale'] * p['train_len']} (s = {p['scale']}; fine-tuned rows: {p['ft_steps']} steps x "
        f"{p['ft_batch_size']} windows; YaRN beta_fast {p['beta_fast']:g}, beta_slow {p['beta_slow']:g}); "
        f"{'exact' if p['exact_phases'] else 'float32'} phases; {summary['precision']} training.",
        "",
        f"Corpus: Python {c['python']} standard library, {c['n_files']} files (file list SHA-256 "
        f"`{c['file_list_sha256'][:16]}...`, content `{c['content_sha256'][:16]}...`); test: "
        f"{len(c['test_packages'])} packages, {p['n_test_docs']} documents of {lengths[-1]} scored tokens each. "
        "Perplexity = exp(mean NLL per byte token) over non-overlapping chunks of each length (every length "
        f"scores the same tokens); mean ± std over seeds, std: {summary['std']}.",
    ]
    if command:
        lines += ["", f"Command: `{command}`"]
    lines += ["", f"| variant | seeds | {head} |", "|---|---|" + "---|" * len(lengths)]
    for g in summary["groups"]:
        cells = " | ".join(_pm(m, s) for m, s in zip(g["ppl_mean"], g["ppl_std"], strict=True))
        lines.append(f"| {g['label']} | {len(g['seeds'])} | {cells} |")
    if summary["paired"]:
        lines += [
            "",
            "Paired by seed (same initial weights and windows), perplexity difference a - b (mean ± std; "
            "in brackets: seeds where a is lower):",
            "",
            f"| a - b | seeds | {head} |",
            "|---|---|" + "---|" * len(lengths),
        ]
        for d in summary["paired"]:
            n = len(d["seeds"])
            cells = " | ".join(
                f"{m:+.3f} ± {s:.3f} ({k}/{n})"
                for m, s, k in zip(d["ppl_diff_mean"], d["ppl_diff_std"], d["a_lower"], strict=True)
            )
            lines.append(f"| {label(d['a'])} - {label(d['b'])} | {n} | {cells} |")
    lines += ["", "Per seed:", "", f"| variant | seed | {head} |", "|---|---|" + "---|" * len(lengths)]
    for g in summary["groups"]:
        for seed, ppl in zip(g["seeds"], g["ppl_by_seed"], strict=True):
            lines.append(f"| {g['label']} | {seed} | " + " | ".join(f"{v:.3f}" for v in ppl) + " |")
    return "\n".join(lines) + "\n"


_COLORS = {"none": "k", "yarn": "tab:blue", "resonance_yarn": "tab:orange"}
_STYLES = {"none": ":", "finetune": "-", "free": "--"}


def plot(summary: dict, path: Path) -> None:
    """One column per pretraining: perplexity against length (top; log-log), and mean NLL per segment
    of L positions at the longest length (bottom). One line per variant (the mean over seeds), shaded
    between the seeds' lowest and highest value; dotted lines at L and s L. Drawn on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FormatStrFormatter

    p = summary["protocol"]
    L, lengths = p["train_len"], np.array(summary["lengths"])
    pretrains = list(dict.fromkeys(g["variant"].split(".")[0] for g in summary["groups"]))
    fig = Figure(figsize=(6 * len(pretrains), 7.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(pretrains), squeeze=False)
    for col, pre in enumerate(pretrains):
        top, bottom = axes[0][col], axes[1][col]
        for g in (g for g in summary["groups"] if g["variant"].split(".")[0] == pre):
            parts = g["variant"].split(".")
            method, mode = (parts[1], parts[2]) if len(parts) == 3 else ("none", "none")
            style = dict(color=_COLORS.get(method, "tab:gray"), ls=_STYLES.get(mode, "-"), lw=1.4)
            name = f"{g['label'].split(' -> ')[-1]} (n={len(g['seeds'])})"
            ppl = np.array(g["ppl_by_seed"])
            top.plot(lengths, g["ppl_mean"], marker="o", ms=3, label=name, **style)
            top.fill_between(lengths, ppl.min(0), ppl.max(0), color=style["color"], alpha=0.12, lw=0)
            seg = np.array(g["nll_by_segment_by_seed"])
            x = (np.arange(seg.shape[1]) + 0.5) * lengths[-1] / seg.shape[1]
            bottom.plot(x, g["nll_by_segment_mean"], **style)
            bottom.fill_between(x, seg.min(0), seg.max(0), color=style["color"], alpha=0.12, lw=0)
        for ax in (top, bottom):
            for at in (L, p["scale"] * L):
                ax.axvline(at, color="gray", ls=":", lw=0.8)
        top.set(xscale="log", yscale="log", xlabel="evaluation length (tokens)", ylabel="perplexity (test)")
        top.set_xticks(lengths, [str(n) for n in lengths])
        top.xaxis.set_minor_formatter(FormatStrFormatter(""))
        for which in ("major", "minor"):  # plain numbers, not 2x10^1
            getattr(top.yaxis, f"set_{which}_formatter")(FormatStrFormatter("%g"))
        top.set_title(f"pretrained with {label(pre).split(',')[0]} at L={L}", fontsize=10)
        top.legend(fontsize=7)
        bottom.set(xlabel=f"position in a {lengths[-1]}-token chunk", ylabel=f"mean NLL per {L} positions (nats)")
    fig.savefig(path, dpi=110)


def write_reports(runs: list[dict], out: Path, command: str | None = None) -> dict:
    """Write summary.json, summary.md and (with matplotlib) the PNG into ``out``; returns the summary
    (its ``"plot"``: the PNG's file name, or ``None`` without matplotlib)."""
    return write_summary_files(summarize(runs), Path(out), command, plot, markdown_table, PLOT_PNG)
