"""``rrope lm-tstl``: pretrain short, extend with YaRN / Resonance YaRN, evaluate long; resumably.

For each seed and each ``--pretrain`` encoding: the pretraining run, then every ``--methods`` x
``--modes`` extension of it, each written to ``runs/<variant>-seed<seed>.json`` as soon as it is
done; runs whose JSON exists in ``--out`` are skipped (an existing file of another setting stops the
command before any work), and the pretrained weights are kept in ``checkpoints/`` for the
extensions still to do. Then the summary JSON, a Markdown table and a PNG over the requested runs.
``--merge DIR ...`` only merges finished results directories into ``--out``. Flags are checked
before any work (``rrope_core.errors.bad``, ``RopeInputError``). torch and transformers are imported
only inside ``run``: ``rrope lm-tstl --help`` loads no framework.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from rrope_core.errors import RopeError, RopeInputError, bad
from rrope_posgen.cli import _choices, _number, _progress

from .protocol import GPU, METHODS, MODES, PRETRAIN, QUICK, label, preset, variant_key

__all__ = ["add_arguments", "run", "resolve"]

_QUICK_SEEDS, _GPU_SEEDS = 3, 3

#: flag -> (Protocol field, kind of posgen's ``_number``, help)
_PROTOCOL_FLAGS = {
    "--val-frac": ("val_frac", "unit", "share of the corpus bytes in the validation packages"),
    "--test-frac": ("test_frac", "unit", "share of the corpus bytes in the test packages"),
    "--n-test-docs": ("n_test_docs", "int", "test documents (each as long as the longest evaluation length)"),
    "--n-val-docs": ("n_val_docs", "int", "validation documents"),
    "--layers": ("n_layers", "int", "Llama layers"),
    "--d-model": ("d_model", "int", "hidden size"),
    "--heads": ("n_heads", "int", "attention heads (head_dim = d_model/heads)"),
    "--kv-heads": ("n_kv_heads", "int", "key/value heads"),
    "--ffn": ("ffn", "int", "SwiGLU intermediate size"),
    "--base": ("base", "pos", "RoPE base (rope_theta; LLaMA 2's 10000)"),
    "--train-len": ("train_len", "int", "pretraining length L"),
    "--steps": ("steps", "int", "pretraining steps"),
    "--batch-size": ("batch_size", "int", "pretraining windows per step"),
    "--lr": ("lr", "pos", "pretraining peak learning rate"),
    "--warmup": ("warmup", "frac", "pretraining warm-up share of the steps"),
    "--min-lr-frac": ("min_lr_frac", "frac", "final learning rate / peak (cosine)"),
    "--weight-decay": ("weight_decay", "nonneg", "pretraining AdamW weight decay"),
    "--beta2": ("beta2", "unit", "AdamW beta2"),
    "--grad-clip": ("grad_clip", "pos", "gradient norm clip"),
    "--val-every": ("val_every", "int", "pretraining steps between validations"),
    "--scale": ("scale", "int", "extension factor s: fine-tune at s*L, YaRN factor s (the paper: 8 for 7B, 4 for 13B)"),
    "--ft-steps": ("ft_steps", "int", "fine-tuning steps at s*L"),
    "--ft-batch-size": ("ft_batch_size", "int", "fine-tuning windows per step"),
    "--ft-lr": ("ft_lr", "pos", "fine-tuning peak learning rate"),
    "--ft-warmup": ("ft_warmup", "frac", "fine-tuning warm-up share"),
    "--ft-weight-decay": ("ft_weight_decay", "nonneg", "fine-tuning weight decay (the paper: 0.01)"),
    "--beta-fast": ("beta_fast", "pos", "YaRN beta_fast (the paper: 32)"),
    "--beta-slow": ("beta_slow", "pos", "YaRN beta_slow (the paper: 1)"),
}


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is invalid: give comma-separated positive integers")
    return values


def _globs(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rrope_posgen.protocol import PRECISIONS

    parser.add_argument(
        "--pretrain", type=_choices(PRETRAIN), default=list(PRETRAIN), help="pretraining encodings (default: both)"
    )
    parser.add_argument(
        "--methods", type=_choices(METHODS), default=list(METHODS), help="extension methods (default: both)"
    )
    parser.add_argument(
        "--modes",
        type=_choices(MODES),
        default=list(MODES),
        help="finetune (a short fine-tune at s*L) and/or free (the method at evaluation only); default both",
    )
    parser.add_argument(
        "--seeds", type=_number("int"), help=f"number of seeds (default {_GPU_SEEDS}; --quick: {_QUICK_SEEDS})"
    )
    parser.add_argument("--seed-start", type=_number("nonneg_int"), default=0, help="first seed (default 0)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (cuda if available; default)")
    parser.add_argument(
        "--out", type=Path, default=Path("results/lm-tstl"), help="results directory (default results/lm-tstl)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="pipeline check for 2 CPU cores in minutes: a 2-layer d_model-64 model, L 64, 300 steps, "
        "fine-tune 30 steps at 512, 12 test documents (not evidence)",
    )
    parser.add_argument("--merge", nargs="+", type=Path, metavar="DIR", help="merge finished results directories")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="fp32 (default), tf32 (CUDA matmuls) or bf16 (autocast: float32 weights, optimizer and loss)",
    )
    parser.add_argument(
        "--threads",
        type=_number("int"),
        help="torch CPU threads (default: torch's; --quick on the CPU: 1, which was 8x faster per matmul than 2 "
        "on a shared 2-core machine)",
    )
    parser.add_argument(
        "--eval-tokens",
        type=_number("int"),
        default=32768,
        help="tokens per evaluation forward pass (memory only; default 32768)",
    )
    parser.add_argument(
        "--time-limit",
        type=_number("pos"),
        metavar="SECONDS",
        help="start no run once the time left is less than the longest run of its kind so far took; "
        "run the same command again to continue",
    )
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    group = parser.add_argument_group("protocol (defaults: the GPU preset; --quick changes sizes; flags override both)")
    for flag, (field, kind, text) in _PROTOCOL_FLAGS.items():
        gpu, quick = getattr(GPU, field), getattr(QUICK, field)
        text += f" (default {gpu:g}" + ("" if quick == gpu else f", quick {quick:g}") + ")"
        group.add_argument(flag, dest=field, type=_number(kind), metavar="N" if kind == "int" else "X", help=text)
    group.add_argument(
        "--eval-multiples",
        type=_ints,
        help="evaluation lengths as multiples of L, each dividing the largest (default "
        + ",".join(map(str, GPU.eval_multiples))
        + ")",
    )
    group.add_argument(
        "--exclude",
        type=_globs,
        help="top-level stdlib packages left out, comma-separated globs (default "
        + ",".join(GPU.exclude)
        + "; '' for none)",
    )
    group.add_argument(
        "--exact-phases",
        dest="exact_phases",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="rrope_torch.transformers.use_exact_phases on every model (default on)",
    )


_FIELDS = [f for f, *_ in _PROTOCOL_FLAGS.values()] + ["eval_multiples", "exclude", "exact_phases"]


def resolve(args: argparse.Namespace):
    """Check the flags together and read the corpus; returns ``(protocol, plan, device, data)``,
    ``plan`` a list of ``(seed, pretrain, [extension (method, mode), ...])``. Raises
    ``RopeInputError`` naming the flag, before any training."""
    import torch

    from .runs import make_data

    proto = replace(preset(args.quick), **{f: getattr(args, f) for f in _FIELDS if getattr(args, f) is not None})
    n_seeds = args.seeds or (_QUICK_SEEDS if args.quick else _GPU_SEEDS)
    seeds = list(range(args.seed_start, args.seed_start + n_seeds))
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise bad("--device", args.device, "must be cpu, cuda, cuda:N or auto", RopeInputError) from exc
    if dev.type not in ("cpu", "cuda"):
        raise bad("--device", args.device, "must be cpu, cuda, cuda:N or auto", RopeInputError)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise bad("--device", args.device, "needs CUDA, which this torch build/machine does not have", RopeInputError)
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise bad("--device", args.device, f"must name one of {torch.cuda.device_count()} CUDA devices", RopeInputError)
    if args.precision == "tf32" and dev.type != "cuda":
        raise bad("--precision", "tf32", "is a CUDA setting: use fp32 or bf16 on the CPU", RopeInputError)
    data = make_data(proto)
    extensions = [(m, mode) for mode in args.modes for m in args.methods]
    plan = [(s, p, extensions) for s in seeds for p in args.pretrain]
    return proto, plan, dev, data


def _command(args: argparse.Namespace, plan) -> str:
    """The canonical command line that reproduces this sweep."""
    seeds = list(dict.fromkeys(s for s, _, _ in plan))
    parts = ["rrope", "lm-tstl"] + (["--quick"] if args.quick else [])
    parts += ["--pretrain", ",".join(args.pretrain), "--methods", ",".join(args.methods)]
    parts += ["--modes", ",".join(args.modes), "--seeds", str(len(seeds))]
    parts += ["--seed-start", str(seeds[0])] if seeds[0] else []
    parts += ["--device", args.device, "--out", str(args.out)]
    parts += [] if args.precision == "fp32" else ["--precision", args.precision]
    for flag, (field, *_) in _PROTOCOL_FLAGS.items():
        if getattr(args, field) is not None:
            parts += [flag, str(getattr(args, field))]
    if args.eval_multiples is not None:
        parts += ["--eval-multiples", ",".join(map(str, args.eval_multiples))]
    if args.exclude is not None:
        parts += ["--exclude", repr(",".join(args.exclude))]
    if args.exact_phases is not None:
        parts += ["--exact-phases" if args.exact_phases else "--no-exact-phases"]
    return " ".join(parts)


class _Deadline:
    """``--time-limit``: a run may start while the time left is at least the longest run of its kind
    (pretraining, fine-tune, training-free) so far."""

    def __init__(self, limit: float | None):
        self.end = None if limit is None else time.monotonic() + limit
        self.longest: dict[str, float] = {}

    def took(self, kind: str, seconds: float) -> None:
        self.longest[kind] = max(self.longest.get(kind, 0.0), seconds)

    def may_start(self, kind: str) -> bool:
        return self.end is None or self.end - time.monotonic() >= self.longest.get(kind, 0.0)


def _short(rec: dict) -> str:
    ppl = " ".join(f"{v:.3g}" for v in rec["eval"]["ppl"])
    return f"{rec['variant']}/seed{rec['seed']}: ppl {ppl} ({rec['wall_s']:.0f} s)"


def _sweep(args: argparse.Namespace) -> int:
    import torch

    from rrope_posgen.train import training_precision

    from .report import checkpoint_path, differences, run_path, setting, write_json, write_reports
    from .runs import extension_run, load_state, pretrain_run, save_state

    proto, plan, device, data = resolve(args)
    threads = args.threads or (1 if args.quick and device.type == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    want = {"protocol": proto.to_dict(), "precision": args.precision, "corpus": data.corpus}
    want = setting(want)
    keys = [(variant_key(p), s) for s, p, _ in plan]
    keys += [(variant_key(p, m, mode), s) for s, p, ext in plan for m, mode in ext]
    for key, seed in keys:
        path = run_path(args.out, key, seed)
        if path.exists():
            old = setting(json.loads(path.read_text()))
            if old != want:
                raise bad(
                    "--out",
                    str(args.out),
                    f"holds {path.name} of another setting (differs in {differences(want, old)}): use another --out",
                    RopeInputError,
                )
    done = sum(run_path(args.out, k, s).exists() for k, s in keys)
    print(
        f"rrope lm-tstl: {len(keys)} runs, {done} already in {args.out}, {len(keys) - done} to run on {device} "
        f"({torch.get_num_threads()} CPU threads); corpus: Python {data.corpus['python']} stdlib, "
        f"{data.corpus['n_files']} files, {len(data.train):,} training tokens",
        flush=True,
    )
    bar = _progress(len(keys), done, args.no_progress)
    clock = _Deadline(args.time_limit)
    stopped = False
    with training_precision(args.precision, device) as autocast:
        common = dict(device=device, autocast=autocast, precision=args.precision, eval_tokens=args.eval_tokens)
        for seed, pre, extensions in plan:
            todo = [
                (m, mode) for m, mode in extensions if not run_path(args.out, variant_key(pre, m, mode), seed).exists()
            ]
            pre_path, ckpt = run_path(args.out, variant_key(pre), seed), checkpoint_path(args.out, pre, seed)
            if pre_path.exists() and not todo:
                continue
            state = None
            if not pre_path.exists():
                if not clock.may_start("pretrain"):
                    stopped = True
                    break
                name = f"{variant_key(pre)}/seed{seed}"
                bar.set_postfix_str(name)
                hook = lambda step, loss, name=name: bar.set_postfix_str(  # noqa: E731
                    f"{name} step {step}/{proto.steps} loss {loss:.3f}"
                )
                start = time.monotonic()
                rec, state = pretrain_run(pre, seed, proto, data, on_step=hook, **common)
                save_state(ckpt, state)
                rec["checkpoint"] = str(ckpt.relative_to(args.out))
                write_json(pre_path, rec)
                clock.took("pretrain", time.monotonic() - start)
                bar.write(_short(rec))
                bar.update()
            for method, mode in todo:
                if not clock.may_start(mode):
                    stopped = True
                    break
                if state is None:
                    if not ckpt.exists():
                        raise bad(
                            "--out",
                            str(args.out),
                            f"holds {pre_path.name} but not its checkpoint {ckpt}, which the extensions still "
                            "to run start from: delete the JSON to pretrain again",
                            RopeInputError,
                        )
                    state = load_state(ckpt)
                name = f"{variant_key(pre, method, mode)}/seed{seed}"
                bar.set_postfix_str(name)
                hook = lambda step, loss, name=name: bar.set_postfix_str(  # noqa: E731
                    f"{name} step {step}/{proto.ft_steps} loss {loss:.3f}"
                )
                start = time.monotonic()
                rec = extension_run(pre, method, mode, seed, proto, data, state, on_step=hook, **common)
                write_json(run_path(args.out, rec["variant"], seed), rec)
                clock.took(mode, time.monotonic() - start)
                bar.write(_short(rec))
                bar.update()
            if stopped:
                break
    bar.close()
    have = [(k, s) for k, s in keys if run_path(args.out, k, s).exists()]
    if len(have) < len(keys):
        print(
            f"rrope lm-tstl: stopped by --time-limit with {len(keys) - len(have)} of {len(keys)} runs not done; "
            "run the same command again to continue",
            flush=True,
        )
        if not have:
            return 0
    runs = [json.loads(run_path(args.out, k, s).read_text()) for k, s in have]
    summary = write_reports(runs, args.out, _command(args, plan))
    print(_table(summary, args.out))
    return 0


def _table(summary: dict, out: Path) -> str:
    from .report import PLOT_PNG, SUMMARY_JSON, SUMMARY_MD

    lengths = summary["lengths"]
    lines = ["| variant | seeds | " + " | ".join(map(str, lengths)) + " |", "|---|---|" + "---|" * len(lengths)]
    for g in summary["groups"]:
        cells = " | ".join(f"{m:.3f} ± {s:.3f}" for m, s in zip(g["ppl_mean"], g["ppl_std"], strict=True))
        lines.append(f"| {label(g['variant'])} | {len(g['seeds'])} | {cells} |")
    png = f", {out / PLOT_PNG}" if summary.get("plot") else " (no PNG: matplotlib is not installed)"
    return "\n".join(lines) + f"\nwrote {out / SUMMARY_JSON}, {out / SUMMARY_MD}{png}"


def _merge(args: argparse.Namespace) -> int:
    from rrope_posgen.cli import merge_runs

    from .report import load_runs, write_reports

    return merge_runs(args, "lm-tstl", load_runs, write_reports, _table)


def run(args: argparse.Namespace) -> int:
    try:
        return _merge(args) if args.merge else _sweep(args)
    except RopeError as exc:
        print(f"rrope lm-tstl: error: {exc}", file=sys.stderr)
        return 2
