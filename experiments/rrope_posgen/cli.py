"""``rrope posgen``: run the PosGen benchmark sweep, resumably, and write its reports.

Runs every (task, variant, seed) whose ``runs/*.json`` is not already in ``--out`` (an existing
file must hold the same protocol, else the command stops before any work), then writes the summary
JSON, a Markdown table and a PNG over the requested runs. ``--merge DIR ...`` only merges
finished result directories (from several machines or sessions) into ``--out``.
This module imports torch, tqdm and matplotlib only inside ``run``: ``rrope posgen --help``
loads no framework (``rrope_posgen.protocol`` and ``.data`` are NumPy and rrope_core only).
tqdm and matplotlib are optional: without them there is no progress bar, or no PNG.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import replace
from pathlib import Path

from rrope_core.errors import RopeError, RopeInputError, bad

from .data import TASKS

__all__ = ["add_arguments", "run", "resolve"]

_DEFAULT_VARIANTS = "rope,resonance,yarn,resonance_yarn"
_QUICK_TASKS, _QUICK_SEEDS = "cot", 3
_PAPER_TASKS, _PAPER_SEEDS = "recursive,cot,semi_recursive", 5
_CUDA_STACK = 4  # an H200 is saturated from about 4 paper-sized runs on (docs/posgen.md)

#: flag -> (Protocol field, kind, help). Kinds: "int" > 0, "pos" > 0, "nonneg" >= 0, "frac" in [0, 1),
#: "unit" in (0, 1).
_PROTOCOL_FLAGS = {
    "--p": ("p", "int", "modulus: tokens are 0..p-1"),
    "--j": ("j", "int", "near tokens (the previous j)"),
    "--k": ("k", "int", "far tokens"),
    "--train-len": ("train_len", "int", "training sequence length"),
    "--test-len": ("test_len", "int", "evaluation length (YaRN factor = test_len/train_len)"),
    "--n-train": ("n_train", "int", "training sequences"),
    "--n-test": ("n_test", "int", "evaluation sequences"),
    "--epochs": ("epochs", "int", "training epochs"),
    "--batch-size": ("batch_size", "int", "training batch size"),
    "--lr": ("lr", "pos", "AdamW peak learning rate (one-cycle cosine)"),
    "--weight-decay": ("weight_decay", "nonneg", "AdamW weight decay"),
    "--pct-start": ("pct_start", "unit", "warm-up fraction of the one-cycle schedule"),
    "--layers": ("n_layers", "int", "Transformer layers"),
    "--d-model": ("d_model", "int", "model width"),
    "--heads": ("n_heads", "int", "attention heads (head_dim = d_model/heads)"),
    "--dropout": ("dropout", "frac", "dropout"),
    "--base": ("base", "pos", "RoPE base (theta)"),
    "--beta-fast": ("beta_fast", "pos", "YaRN beta_fast (the paper's code: 2 for these tiny models)"),
    "--beta-slow": ("beta_slow", "pos", "YaRN beta_slow (the paper's code: 1)"),
    "--n-val": ("n_val", "int", "validation sequences (--checkpoint best_id)"),
    "--val-every": ("val_every", "int", "epochs between validations (--checkpoint best_id)"),
}

#: flag -> (Protocol field, choices or None for a boolean, help): where the protocols differ (docs/posgen.md).
_KNOB_FLAGS = {
    "--yarn-timing": ("yarn_timing", "YARN_TIMINGS", "YaRN tables in training and evaluation, or at evaluation only"),
    "--yarn-range": ("yarn_range", "YARN_RANGES", "YaRN's correction range at the train or the test length"),
    "--bos": ("bos", None, "a start token at position 0"),
    "--data": ("data", "SEED_RULES", "seed tokens: random, disjoint (no shared seeds) or code (cycled combinations)"),
    "--block": ("block", "BLOCKS", "pre_ln (ours) or t5 (the code's T5 decoder block)"),
    "--freeze-ffn": ("freeze_ffn", None, "never train the FFN (the code's T5 quirk; needs --block t5)"),
    "--checkpoint": ("checkpoint", "CHECKPOINTS", "final weights, or best_id: the best by ID validation accuracy"),
}


def _choices(allowed: tuple[str, ...]):
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        wrong = [t for t in items if t not in allowed]
        if not items or wrong:
            raise argparse.ArgumentTypeError(
                f"{text!r} is invalid: give a comma-separated list of {', '.join(allowed)}"
            )
        return list(dict.fromkeys(items))

    return parse


def _number(kind: str):
    def parse(text: str):
        try:
            value = int(text) if kind.endswith("int") else float(text)
        except ValueError:
            value = None
        ok = value is not None and {
            "int": lambda v: v > 0,
            "nonneg_int": lambda v: v >= 0,
            "pos": lambda v: 0 < v < float("inf"),
            "nonneg": lambda v: 0 <= v < float("inf"),
            "frac": lambda v: 0 <= v < 1,
            "unit": lambda v: 0 < v < 1,
        }[kind](value)
        if not ok:
            rule = {
                "int": "a positive integer",
                "nonneg_int": "an integer >= 0",
                "pos": "a finite number > 0",
                "nonneg": "a finite number >= 0",
                "frac": "a number in [0, 1)",
                "unit": "a number in (0, 1)",
            }[kind]
            raise argparse.ArgumentTypeError(f"{text!r} is invalid: must be {rule}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from . import protocol
    from .data import COMBINE
    from .protocol import PAPER, PRECISIONS, PRESETS, QUICK, VARIANTS

    parser.add_argument(
        "--tasks",
        "--task",
        type=_choices(TASKS),
        help=f"comma-separated tasks of {', '.join(TASKS)} (default: all three; --quick: {_QUICK_TASKS})",
    )
    parser.add_argument(
        "--variants",
        type=_choices(VARIANTS),
        default=_DEFAULT_VARIANTS.split(","),
        help=f"comma-separated position encodings of {', '.join(VARIANTS)} (default: {_DEFAULT_VARIANTS})",
    )
    parser.add_argument(
        "--seeds",
        type=_number("int"),
        help=f"number of seeds, run as S..S+N-1 with S = --seed-start (default {_PAPER_SEEDS}; --quick: {_QUICK_SEEDS})",
    )
    parser.add_argument(
        "--seed-start",
        type=_number("nonneg_int"),
        default=0,
        help="first seed (default 0): split one sweep over machines by seed, then --merge",
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (cuda if available; default)")
    parser.add_argument(
        "--out", type=Path, default=Path("results/posgen"), help="results directory (default results/posgen)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="scaled-down preset for 2 CPU cores: task cot, 3 seeds, 2 layers, d_model 128, 4 heads, "
        "2000 sequences x 8 epochs, batch 32, lr 1e-3, no dropout, 2 single-threaded jobs",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        metavar="DIR",
        help="merge these finished results directories into --out (summary, table, plot); trains nothing",
    )
    parser.add_argument(
        "--attribute",
        nargs="+",
        type=Path,
        metavar="DIR",
        help="print how each later results directory's protocol change moves the Resonance comparisons "
        "against the first directory's runs, paired by seed, with sign tests; trains nothing",
    )
    parser.add_argument(
        "--jobs",
        type=_number("int"),
        help="stacks of runs (--stack) at a time, each in its own process (default 1; --quick on CPU: 2). With --device cuda and "
        "several GPUs, workers take the GPUs round-robin; several jobs may also share one GPU",
    )
    parser.add_argument(
        "--stack",
        type=_number("int"),
        help=f"train up to N models of one task together as one stacked model (the same math per run, one "
        f"kernel launch for all: PosGen models are too small to fill a GPU; default 1 on CPU, {_CUDA_STACK} "
        "on CUDA; a paper-sized run in bf16 needs about 1.7 GB of GPU memory)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="training arithmetic: fp32 (default), tf32 (CUDA matmuls with TensorFloat-32 inputs) or bf16 "
        "(autocast; float32 weights and optimizer); recorded in each run's JSON",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the training forward pass and loss (Inductor fuses the element-wise work: faster "
        "on CUDA after about a minute of compiling; the same math, recorded in each run's JSON)",
    )
    parser.add_argument(
        "--threads", type=_number("int"), help="torch CPU threads per run (default: 1 when --jobs > 1, else torch's)"
    )
    parser.add_argument(
        "--time-limit",
        type=_number("pos"),
        metavar="SECONDS",
        help="start no stack once the time left is less than the longest stack so far took (stacks in flight "
        "finish); for time-limited allocations: run the same command again to continue",
    )
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")

    parser.add_argument(
        "--protocol",
        choices=tuple(PRESETS),
        default="clean",
        help="preset of the knobs below: clean (ours; default), paper-code (every choice as the official code "
        "makes it), paper-text (as the paper's appendix C.1 says, the code's choice where it is silent)",
    )
    group = parser.add_argument_group(
        "protocol (defaults: the --protocol preset; --quick changes sizes, flags override both)"
    )
    group.add_argument(
        "--fn",
        choices=tuple(COMBINE),
        help="combining function: sum mod p (the paper's; default) or sum_squared (weakens the sum's shortcut, "
        "see docs/posgen.md)",
    )
    for flag, (field, kind, text) in _PROTOCOL_FLAGS.items():
        paper, quick = getattr(PAPER, field), getattr(QUICK, field)
        text += f" (default {paper:g}" + ("" if quick == paper else f", quick {quick:g}") + ")"
        group.add_argument(flag, dest=field, type=_number(kind), metavar="N" if kind == "int" else "X", help=text)
    presets = ", ".join
    for flag, (field, choices, text) in _KNOB_FLAGS.items():
        text += " (" + presets(f"{name} {getattr(p, field)}" for name, p in PRESETS.items()) + ")"
        if choices is None:
            group.add_argument(flag, dest=field, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            group.add_argument(flag, dest=field, choices=getattr(protocol, choices), help=text)


def resolve(args: argparse.Namespace):
    """Check the flags together and return ``(protocol, tasks, variants, seeds, device)``; raises
    ``RopeInputError`` naming the flag, before any training."""
    import torch

    from .protocol import preset

    proto = preset(args.protocol, args.quick)
    fields = [f for f, *_ in _PROTOCOL_FLAGS.values()] + [f for f, *_ in _KNOB_FLAGS.values()] + ["fn"]
    proto = replace(proto, **{f: getattr(args, f) for f in fields if getattr(args, f) is not None})
    if proto.d_model % proto.n_heads:
        raise bad("--d-model", proto.d_model, f"must be divisible by --heads={proto.n_heads}", RopeInputError)
    if proto.head_dim % 2:
        raise bad(
            "--d-model",
            proto.d_model,
            f"must give an even head dim d_model/heads (got {proto.head_dim})",
            RopeInputError,
        )
    if proto.train_len <= proto.j + proto.k + 1:
        raise bad("--train-len", proto.train_len, f"must be > j + k + 1 = {proto.j + proto.k + 1}", RopeInputError)
    if proto.test_len <= proto.train_len:
        raise bad("--test-len", proto.test_len, f"must be > --train-len={proto.train_len}", RopeInputError)
    if proto.p < 2:
        raise bad("--p", proto.p, "must be >= 2", RopeInputError)
    tasks = args.tasks or (_QUICK_TASKS if args.quick else _PAPER_TASKS).split(",")
    n_seeds = args.seeds or (_QUICK_SEEDS if args.quick else _PAPER_SEEDS)
    seeds = list(range(args.seed_start, args.seed_start + n_seeds))
    for variant in args.variants:
        try:
            proto.rope_config(variant)
        except RopeError as exc:
            raise bad("--variants", variant, f"cannot be built with these flags: {exc}", RopeInputError) from exc
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
    return proto, tasks, list(args.variants), seeds, device


def _command(args: argparse.Namespace, tasks, seeds) -> str:
    """The canonical command line that reproduces this sweep."""
    parts = ["rrope", "posgen"] + (["--quick"] if args.quick else [])
    parts += [] if args.protocol == "clean" else ["--protocol", args.protocol]
    parts += ["--tasks", ",".join(tasks), "--variants", ",".join(args.variants), "--seeds", str(len(seeds))]
    if seeds[0]:
        parts += ["--seed-start", str(seeds[0])]
    parts += ["--device", args.device, "--out", str(args.out)] + (
        [] if args.precision == "fp32" else ["--precision", args.precision]
    )
    parts += ["--compile"] if args.compile else []
    for flag, (field, *_) in {"--fn": ("fn",), **_PROTOCOL_FLAGS, **_KNOB_FLAGS}.items():
        value = getattr(args, field)
        if isinstance(value, bool):
            parts += [flag if value else "--no-" + flag[2:]]
        elif value is not None:
            parts += [flag, str(value)]
    return " ".join(parts)


def _device_queue(ctx, device: str, jobs: int):
    """One device per worker: ``cuda`` with several GPUs spreads workers over them round-robin."""
    import torch

    q = ctx.Queue()
    n_gpu = torch.cuda.device_count() if device == "cuda" else 0
    for i in range(jobs):
        q.put(f"cuda:{i % n_gpu}" if n_gpu > 1 else device)
    return q


_WORKER: dict = {}


def _init_worker(devices, threads: int) -> None:
    import torch

    _WORKER["device"] = devices.get()
    torch.set_num_threads(threads)


def _stacks(todo: list[tuple[str, str, int]], size: int) -> list[tuple[str, list[tuple[str, int]]]]:
    """Group the runs to do into ``(task, [(variant, seed), ...])`` of at most ``size`` runs, one task each.

    A stack holds whole seeds (every variant of a seed, so variants are compared on equal terms) unless
    ``size`` is smaller than the variants, and stacks are balanced (20 runs at ``size`` 16 give 8 + 12,
    not 16 + 4, at 4 variants). Seed-major order: the stacks of the lowest seeds of every task come
    first, so a sweep cut short leaves whole seeds done. Members are ordered by variant (consecutive
    members with one encoding share a rotation call).
    """
    variant_order = {v: i for i, v in enumerate(dict.fromkeys(v for _, v, _ in todo))}
    by_task: dict[str, dict[int, list[str]]] = {}
    for task, variant, seed in todo:
        by_task.setdefault(task, {}).setdefault(seed, []).append(variant)
    ranked = []
    for t, (task, seeds) in enumerate(by_task.items()):
        groups = [[(v, s) for v in variants] for s, variants in sorted(seeds.items())]
        widest = max(map(len, groups))
        if size >= widest:  # whole seeds, size // widest of them per stack, balanced
            chunks = [sum(part, []) for part in _balanced(groups, size // widest)]
        else:  # each seed's variants split into balanced stacks
            chunks = [part for group in groups for part in _balanced(group, size)]
        for i, chunk in enumerate(chunks):
            chunk.sort(key=lambda r: (variant_order[r[0]], r[1]))
            ranked.append(((i, t), (task, chunk)))
    return [stack for _, stack in sorted(ranked, key=lambda r: r[0])]


def _balanced(items: list, most: int) -> list[list]:
    """``items`` cut into the fewest pieces of at most ``most``, their sizes differing by at most one
    (in order; larger pieces last)."""
    n = -(-len(items) // most)
    cuts = [len(items) * i // n for i in range(n + 1)]
    return [items[a:b] for a, b in itertools.pairwise(cuts)]


def _run_stack_to_files(
    task: str, runs, proto: dict, out: str, precision: str, compile: bool, device=None, on_epoch=None
) -> list[dict]:
    """Train and evaluate one stack of runs and write one JSON per run (the unit of work of every worker)."""
    from .report import run_path, write_json
    from .train import Protocol, train_runs

    device = device or _WORKER["device"]
    recs = train_runs(
        task, list(runs), Protocol(**proto), device=device, precision=precision, compile=compile, on_epoch=on_epoch
    )
    for rec in recs:
        write_json(run_path(Path(out), task, rec["variant"], rec["seed"]), rec)
    return recs


def _sweep(args: argparse.Namespace) -> int:
    import json
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    import torch

    from .report import run_path, setting, write_reports

    proto, tasks, variants, seeds, device = resolve(args)
    jobs = args.jobs or (2 if args.quick and device == "cpu" else 1)
    threads = args.threads or (1 if jobs > 1 else None)
    stack = args.stack or (1 if device == "cpu" else _CUDA_STACK)
    plan = [(t, v, s) for t in tasks for s in seeds for v in variants]
    todo = []
    for key in plan:
        path = run_path(args.out, *key)
        if not path.exists():
            todo.append(key)
            continue
        old = setting(json.loads(path.read_text()))
        want = {**proto.to_dict(), "precision": args.precision}
        if old != want:
            diff = sorted(k for k, v in want.items() if old.get(k) != v)
            raise bad(
                "--out",
                str(args.out),
                f"holds {path.name} of another protocol or precision (differs in {diff}): use another --out",
                RopeInputError,
            )
    # A stack counts trained models: with YaRN at evaluation only, a rope and a yarn run of one seed are one.
    runs_of: dict[tuple[str, str, int], list[tuple[str, int]]] = {}
    for t, v, s in todo:
        runs_of.setdefault((t, proto.trained_as(v), s), []).append((v, s))
    work = [(task, [r for v, s in unit for r in runs_of[task, v, s]]) for task, unit in _stacks(list(runs_of), stack)]
    print(
        f"rrope posgen: {len(plan)} runs, {len(plan) - len(todo)} already in {args.out}, {len(todo)} to run "
        f"on {device} as {len(work)} stack(s) of up to {stack} ({jobs} at a time, "
        f"{threads or torch.get_num_threads()} CPU threads each)",
        flush=True,
    )
    bar = _progress(len(plan), len(plan) - len(todo), args.no_progress)

    def done(recs: list[dict]) -> None:
        for rec in recs:
            name = f"{rec['task']}/{rec['variant']}/seed{rec['seed']}"
            bar.write(f"{name}: ID {rec['id_acc']:.3f} OOD {rec['ood_acc']:.3f} ({rec['wall_s']:.0f} s)")
            bar.update()

    clock = _Deadline(args.time_limit)
    if jobs == 1:
        if threads:
            torch.set_num_threads(threads)
        for task, runs in work:
            if not clock.may_start():
                break
            name = f"{task}/{runs[0][0]}/seed{runs[0][1]}" + (f" +{len(runs) - 1}" if len(runs) > 1 else "")
            bar.set_postfix_str(name)

            def on_epoch(epoch, losses, name=name):
                bar.set_postfix_str(f"{name} epoch {epoch + 1}/{proto.epochs} loss {sum(losses) / len(losses):.3f}")

            start = clock.now()
            done(
                _run_stack_to_files(
                    task, runs, proto.to_dict(), str(args.out), args.precision, args.compile, device, on_epoch
                )
            )
            clock.took(clock.now() - start)
    elif work:
        ctx = multiprocessing.get_context("spawn")
        devices = _device_queue(ctx, device, jobs)
        with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker, initargs=(devices, threads)) as pool:
            pending, running = list(work), {}
            while pending or running:
                # At most `jobs` stacks submitted at a time, so a submitted stack starts at once and
                # the time limit is checked when a worker is free.
                while pending and len(running) < jobs and clock.may_start():
                    task, runs = pending.pop(0)
                    args_ = (task, runs, proto.to_dict(), str(args.out), args.precision, args.compile)
                    running[pool.submit(_run_stack_to_files, *args_)] = clock.now()
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    clock.took(clock.now() - running.pop(fut))
                    done(fut.result())
    bar.close()
    have = [key for key in plan if run_path(args.out, *key).exists()]
    if len(have) < len(plan):
        print(
            f"rrope posgen: stopped by --time-limit with {len(plan) - len(have)} of {len(plan)} runs not done "
            "(the longest stack took longer than the time left); run the same command again to continue",
            flush=True,
        )
        if not have:
            return 0
    runs = [json.loads(run_path(args.out, *key).read_text()) for key in have]
    summary = write_reports(runs, args.out, _command(args, tasks, seeds))
    print(_table(summary, args.out))
    return 0


def _clock() -> float:
    return time.monotonic()


class _Deadline:
    """``--time-limit``: a stack may start while the time left is at least the longest stack so far."""

    def __init__(self, limit: float | None):
        self.end = None if limit is None else _clock() + limit
        self.longest = 0.0

    def now(self) -> float:
        return _clock()

    def took(self, seconds: float) -> None:
        self.longest = max(self.longest, seconds)

    def may_start(self) -> bool:
        return self.end is None or self.end - _clock() >= self.longest


class _NoBar:
    """What the sweep uses of a tqdm bar, for when tqdm is not installed or --no-progress is set:
    finished runs are printed, and the status line at most once a minute (logs of long runs)."""

    def __init__(self):
        self._last = time.monotonic()

    def write(self, text: str) -> None:
        print(text, flush=True)

    def update(self, n: int = 1) -> None: ...

    def set_postfix_str(self, text: str) -> None:
        if time.monotonic() - self._last >= 60:
            self._last = time.monotonic()
            print(f"... {text}", flush=True)

    def close(self) -> None: ...


def _progress(total: int, initial: int, off: bool):
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    # disable=None: tqdm draws only on a terminal; its write() prints either way.
    return _NoBar() if off else tqdm(total=total, initial=initial, unit="run", dynamic_ncols=True, disable=None)


def _table(summary: dict, out: Path) -> str:
    from .report import PLOT_PNG, SUMMARY_JSON, SUMMARY_MD, markdown_table

    table = markdown_table(summary).split("\n\n", 2)[-1]
    png = f", {out / PLOT_PNG}" if summary.get("plot") else " (no PNG: matplotlib is not installed)"
    return f"{table}\nwrote {out / SUMMARY_JSON}, {out / SUMMARY_MD}{png}"


def merge_runs(args: argparse.Namespace, prog: str, load_runs, write_reports, table) -> int:
    """``rrope <prog> --merge DIR... --out OUT`` (PosGen's and rrope_lm_tstl's): the run JSONs of every
    DIR copied into ``OUT/runs`` (the first DIR's copy of a duplicate run wins, as in the summary) and
    reports of them written into OUT, which is then a results directory like the others (it can be
    merged or resumed); trains nothing. OUT is one of the DIRs (reports rebuilt in place) or holds no
    runs yet."""
    runs = load_runs(args.merge)
    _copy_runs(args.merge, args.out)
    command = f"rrope {prog} --merge " + " ".join(str(d) for d in args.merge) + f" --out {args.out}"
    summary = write_reports(runs, args.out, command)
    print(f"rrope {prog}: merged {len(runs)} runs from {len(args.merge)} directories")
    print(table(summary, args.out))
    return 0


def _copy_runs(dirs: list[Path], out: Path) -> None:
    """Copy ``<dir>/runs/*.json`` into ``out/runs`` (atomically, first directory first), unless ``out``
    is one of ``dirs``. Refuses an ``out`` that already holds runs of its own."""
    out = Path(out)
    if any(out.resolve() == Path(d).resolve() for d in dirs):
        return
    if any((out / "runs").glob("*.json")):
        raise bad("--out", str(out), "must be one of the merged directories or hold no runs yet", RopeInputError)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    for d in dirs:
        for f in sorted((Path(d) / "runs").glob("*.json")):
            dest = out / "runs" / f.name
            if not dest.exists():
                tmp = dest.with_name(dest.name + ".tmp")
                tmp.write_bytes(f.read_bytes())
                tmp.replace(dest)


def _merge(args: argparse.Namespace) -> int:
    from .report import load_runs, write_reports

    return merge_runs(args, "posgen", load_runs, write_reports, _table)


def _attribute(args: argparse.Namespace) -> int:
    from .attribution import attribution_table

    if len(args.attribute) < 2:
        raise bad("--attribute", [str(d) for d in args.attribute], "needs a base directory and at least one more",
                  RopeInputError)  # fmt: skip
    print(attribution_table(args.attribute[0], args.attribute[1:]))
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        if args.attribute:
            return _attribute(args)
        return _merge(args) if args.merge else _sweep(args)
    except RopeError as exc:
        print(f"rrope posgen: error: {exc}", file=sys.stderr)
        return 2
