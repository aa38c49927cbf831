"""The PosGen protocol: train short with next-token loss, evaluate long with teacher forcing.

One run = (task, variant, seed) under a ``Protocol``. Training: ``n_train`` sequences of
``train_len`` tokens, loss = cross-entropy of ``x[:, 1:]`` given ``x[:, :-1]`` on the targets at
positions ``>= j + k`` only (the random seed tokens are unpredictable and masked out), AdamW and
one-cycle cosine LR (``OneCycleLR(anneal_strategy="cos")``), stepped every batch. Evaluation:
``n_test`` fresh sequences of ``test_len`` tokens, one teacher-forced forward pass, argmax per
position; accuracy per position, in-distribution (``j + k <= t < train_len``) and OOD
(``train_len <= t < test_len``). Defaults are the paper's (sec. 5.1) and its public code's sweep
config (batch 128, weight decay 0.01, 10% warm-up, dropout 0.1 of T5-small).

Determinism: for one seed, every variant gets the same data, the same initial weights and the
same batch order (``torch.manual_seed(seed)`` before the model is built, a seeded generator for
shuffling, NumPy generators seeded ``[seed, split]``). On CPU reruns are bitwise equal; on CUDA,
up to the non-determinism of atomic-add kernels.

Runs of one task are trained together as one ``.stacked.StackedPosGen`` (``train_runs``;
``rrope posgen --stack``): the same computation per run, many runs per kernel launch. Each record
names the runs it was trained with (``trained_with``): with dropout, the masks depend on them.
"""

from __future__ import annotations

import contextlib
import functools
import math
import platform
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from rrope_core.errors import RopeInputError, bad

from .data import generate, loss_mask, split_seeds
from .model import PosGenTransformer
from .protocol import CLEAN, PAPER, PAPER_CODE, PAPER_TEXT, PRECISIONS, PRESETS, QUICK, Protocol, preset
from .stacked import StackedPosGen

__all__ = [
    "Protocol",
    "CLEAN",
    "PAPER",
    "PAPER_CODE",
    "PAPER_TEXT",
    "PRESETS",
    "QUICK",
    "preset",
    "PRECISIONS",
    "make_data",
    "train_runs",
    "train_and_evaluate",
    "evaluate",
    "masked_loss",
    "build_models",
    "batch_loss",
    "make_optimizer",
    "training_precision",
]


def masked_loss(logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``tokens[..., 1:]`` under ``logits`` (of ``tokens[..., :-1]``) where ``mask[1:]``.

    ``tokens`` ``(B, L)`` gives a scalar; ``(E, B, L)`` (stacked runs) gives one mean per member ``(E,)``.
    """
    targets = tokens[..., 1:]
    ce = F.cross_entropy(logits.flatten(0, -2), targets.flatten(), reduction="none").view(targets.shape)
    # A weighted mean, not boolean indexing: the same value, and no data-dependent shape to break
    # a torch.compile graph.
    weight = mask[1:].to(ce.dtype)
    return (ce * weight).flatten(-2).sum(-1) / (ce.shape[-2] * weight.sum())


@torch.no_grad()
def predictions_correct(model: StackedPosGen, tokens: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """``(E, L-1)`` float64: per member, how many of its sequences ``tokens[e]`` ``(E, n, L)`` have
    token ``t+1`` predicted right (teacher forcing, argmax) from tokens ``0..t``; eval mode."""
    model.eval()
    n_members, n, length = tokens.shape
    correct = torch.zeros(n_members, length - 1, dtype=torch.float64)
    for i in range(0, n, batch_size):
        x = tokens[:, i : i + batch_size]
        pred = model(x[..., :-1]).argmax(-1)
        correct += (pred == x[..., 1:]).sum(1).to("cpu", torch.float64)
    return correct


def evaluate(
    model: StackedPosGen,
    tokens: torch.Tensor,
    train_len: int,
    scored_from: int,
    batch_size: int = 256,
    offset: int = 0,
) -> list[dict]:
    """Teacher-forced accuracy of each member of ``model`` on its ``tokens[e]`` ``(E, n, offset + test_len)``.

    ``offset`` tokens (a start token) precede the data; positions are data positions. Returns per
    member ``acc_by_position`` (a list, ``None`` for the unscored seed positions), ``id_acc``
    (positions ``scored_from .. train_len-1``) and ``ood_acc`` (``train_len .. test_len-1``).
    """
    n = tokens.shape[1]
    out = []
    for row in (predictions_correct(model, tokens, batch_size) / n).numpy():
        acc = np.concatenate([[np.nan], row])[offset:]  # acc[t]: data token t
        acc[:scored_from] = np.nan
        out.append(
            {
                "id_acc": float(np.mean(acc[scored_from:train_len])),
                "ood_acc": float(np.mean(acc[train_len:])) if len(acc) > train_len else None,  # None: validation
                "acc_by_position": [None if np.isnan(a) else float(a) for a in acc],
            }
        )
    return out


def make_data(task: str, proto: Protocol, seed: int) -> dict[str, np.ndarray]:
    """``{"train": (n_train, L), "val": (n_val, L), "test": (n_test, L')}`` token arrays of one run seed:
    train and val at ``train_len`` (validation scores in-distribution positions only, and attention is
    causal, so the code's longer validation rows give the same predictions there), test at
    ``test_len``; seed tokens by ``proto.data`` (``data.split_seeds``), a start token ``p`` first
    if ``proto.bos``."""
    sizes = {"train": proto.n_train, "val": proto.n_val, "test": proto.n_test}
    seeds = split_seeds(proto.data, sizes, proto.p, proto.j + proto.k, seed)
    rule = dict(p=proto.p, j=proto.j, k=proto.k, fn=proto.fn)
    out = {}
    for split, n in sizes.items():
        length = proto.test_len if split == "test" else proto.train_len
        x = generate(task, n, length, seeds=seeds[split], **rule)
        out[split] = np.concatenate([np.full((n, 1), proto.p), x], axis=1) if proto.bos else x
    return out


def build_models(task_vocab: int, runs: list[tuple[str, int]], proto: Protocol) -> list[PosGenTransformer]:
    """One ``PosGenTransformer`` per ``(variant, seed)``, initialised under ``torch.manual_seed(seed)``
    (so one seed gives every variant the same initial weights)."""
    models = []
    for variant, seed in runs:
        torch.manual_seed(seed)
        models.append(
            PosGenTransformer(
                task_vocab + proto.offset,
                proto.rope_config(variant),
                n_layers=proto.n_layers,
                d_model=proto.d_model,
                n_heads=proto.n_heads,
                dropout=proto.dropout,
                block=proto.block,
                freeze_ffn=proto.freeze_ffn,
            )
        )
    return models


def train_runs(
    task: str,
    runs: list[tuple[str, int]],
    proto: Protocol = PAPER,
    *,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    compile: bool = False,
    on_epoch: Callable[[int, list[float]], None] | None = None,
) -> list[dict]:
    """Train the ``(variant, seed)`` runs of ``task`` as one ``StackedPosGen`` and evaluate them.

    Each run sees its own seed's data and batch order, as if trained alone. With
    ``yarn_timing="eval_only"`` the runs of ``yarn`` and ``rope`` (``resonance_yarn`` and
    ``resonance``) of one seed are one training, evaluated under each table. ``precision``:
    ``fp32``; ``tf32`` (CUDA matmuls with TensorFloat-32 inputs, float32 accumulation); ``bf16``
    (``torch.autocast``: bfloat16 matmuls and attention, float32 weights, optimizer and losses).
    ``compile``: the training forward pass and loss go through ``torch.compile`` (the rotation
    then runs as traced torch ops, ``impl="eager"``, which Inductor fuses with its neighbours;
    evaluation stays eager). The same math; float rounding and dropout's random stream differ.
    Returns one JSON-safe record per run, in order; its times (``epoch_s``, ``train_s``,
    ``wall_s``) are those of the whole stack.
    """
    if precision not in PRECISIONS:
        raise bad("precision", precision, f"must be one of {PRECISIONS}", RopeInputError)
    if not isinstance(compile, bool):
        raise bad("compile", compile, "must be True or False", RopeInputError)
    start = time.perf_counter()
    device = torch.device(device)
    trainings = list(dict.fromkeys((proto.trained_as(v), s) for v, s in runs))
    # Models first: a bad variant (or no runs) is refused before any data is generated.
    model = StackedPosGen(build_models(proto.p, trainings, proto), impl="eager" if compile else None).to(device)
    member = [trainings.index((proto.trained_as(v), s)) for v, s in runs]  # the model each run is
    passes = _eval_passes(runs, member)
    data = {s: make_data(task, proto, s) for s in dict.fromkeys(s for _, s in trainings)}
    train_t, val_t, test_t = (
        torch.stack([torch.from_numpy(data[s][split]) for _, s in trainings]).to(device)
        for split in ("train", "val", "test")
    )
    opt = make_optimizer(model, proto)
    steps = math.ceil(proto.n_train / proto.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=proto.lr, total_steps=proto.epochs * steps, pct_start=proto.pct_start, anneal_strategy="cos"
    )
    mask = np.concatenate([np.zeros(proto.offset, bool), loss_mask(proto.train_len, proto.j, proto.k)])
    mask = torch.from_numpy(mask).to(device)
    shuffles = [torch.Generator().manual_seed(seed) for _, seed in trainings]
    members = torch.arange(len(trainings), device=device)[:, None]
    scored = dict(train_len=proto.train_len, scored_from=proto.j + proto.k, offset=proto.offset)
    best: dict[tuple[str, int], dict] = {}  # run -> {"acc", "epoch", "params"} (checkpoint="best_id")
    losses, epoch_s = [], []
    with training_precision(precision, device) as autocast:
        step_loss = batch_loss(model, mask, autocast, compile)
        for epoch in range(proto.epochs):
            tick = time.perf_counter()
            model.train()
            total = torch.zeros(len(trainings), device=device)
            order = torch.stack([torch.randperm(proto.n_train, generator=g) for g in shuffles]).to(device)
            for idx in order.split(proto.batch_size, dim=1):
                x = train_t[members, idx]  # (E, batch, L): member e's own sequences
                loss = step_loss(x)
                opt.zero_grad(set_to_none=True)
                loss.sum().backward()  # members are independent: d(sum)/d(theta_e) = d(loss_e)/d(theta_e)
                opt.step()
                sched.step()
                total += loss.detach() * idx.shape[1]
            losses.append((total / proto.n_train).tolist())  # waits for the device: epoch_s is honest
            if proto.checkpoint == "best_id" and (epoch + 1) % proto.val_every == 0:
                with autocast():
                    _keep_best(model, proto, trainings, passes, val_t, scored, best, epoch + 1)
            epoch_s.append(round(time.perf_counter() - tick, 3))
            if on_epoch is not None:
                on_epoch(epoch, losses[-1])
        train_s = time.perf_counter() - start
        metrics, final = {}, {}
        last = {name: p.detach().clone() for name, p in model.params.items()} if best else None
        with autocast():
            for ps in passes:
                _use_pass(model, proto, trainings, ps)
                if best:  # the final weights too: validation changes no training, so a run gives both rules
                    with torch.no_grad():
                        for name, p in model.params.items():
                            p.copy_(last[name])
                    results = evaluate(model, test_t, **scored)
                    final.update({run: results[e] for e, run in ps.items()})
                    with torch.no_grad():
                        for e, run in ps.items():
                            for name, p in model.params.items():
                                p[e].copy_(best[run]["params"][name])
                results = evaluate(model, test_t, **scored)
                metrics.update({run: results[e] for e, run in ps.items()})
    wall_s = round(time.perf_counter() - start, 3)
    n_params = sum(p[0].numel() for p in model.parameters())
    stack = [f"{v}/seed{s}" for v, s in trainings]
    return [
        {
            "task": task,
            "variant": variant,
            "seed": seed,
            "protocol": proto.to_dict(),
            "rope": _rope_dict(proto, variant),
            "trained_as": proto.trained_as(variant),
            **metrics[variant, seed],
            **(
                {
                    "checkpoint_epoch": best[variant, seed]["epoch"],
                    "val_id_acc": best[variant, seed]["acc"],
                    "final_weights": final[variant, seed],
                }
                if best
                else {"checkpoint_epoch": proto.epochs}
            ),
            "train_loss_by_epoch": [row[member[i]] for row in losses],
            "epoch_s": epoch_s,
            "n_params": n_params,
            "device": str(device),
            "device_name": device_name(device),
            "precision": precision,
            "compiled": compile,
            "trained_with": stack,
            "torch": torch.__version__,
            "train_s": round(train_s, 3),
            "wall_s": wall_s,
        }
        for i, (variant, seed) in enumerate(runs)
    ]


def _eval_passes(runs: list[tuple[str, int]], member: list[int]) -> list[dict[int, tuple[str, int]]]:
    """Evaluation passes: each maps members to the run they are evaluated as, a member at most once
    per pass (one trained model serves two runs when YaRN is applied at evaluation only)."""
    passes: list[dict[int, tuple[str, int]]] = []
    for run, e in zip(runs, member, strict=True):
        free = next((ps for ps in passes if e not in ps), None)
        if free is None:
            passes.append(free := {})
        free[e] = run
    return passes


def _use_pass(model: StackedPosGen, proto: Protocol, trainings, ps: dict) -> None:
    """Set each member's evaluation encoding to that of the run it stands for in pass ``ps``."""
    model.set_eval_ropes([proto.rope_config(ps[e][0] if e in ps else trainings[e][0]) for e in range(len(trainings))])


def _keep_best(model, proto, trainings, passes, val_t, scored, best, epoch) -> None:
    """checkpoint="best_id": validate every run (eval mode, its own evaluation table) on its validation
    rows; keep a copy of its weights when its ID accuracy beats its best so far (strictly, as
    Lightning's ModelCheckpoint(mode="max") does, so the first epoch reaching the best is kept)."""
    for ps in passes:
        _use_pass(model, proto, trainings, ps)
        results = evaluate(model, val_t, **scored)
        for e, run in ps.items():
            acc = results[e]["id_acc"]
            if run not in best or acc > best[run]["acc"]:
                params = {name: p[e].detach().clone() for name, p in model.params.items()}
                best[run] = {"acc": acc, "epoch": epoch, "params": params}


def make_optimizer(model: StackedPosGen, proto: Protocol) -> torch.optim.AdamW:
    """AdamW at the protocol's peak LR and weight decay; on CUDA its fused kernel (the same update,
    one launch for all parameters)."""
    on_cuda = next(model.parameters()).is_cuda
    return torch.optim.AdamW(model.parameters(), lr=proto.lr, weight_decay=proto.weight_decay, fused=on_cuda or None)


def batch_loss(
    model: StackedPosGen, mask: torch.Tensor, autocast: Callable, compile: bool = False
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x (E, B, L) -> (E,)``: each member's ``masked_loss`` on its batch, the forward pass under
    ``autocast()`` (see ``training_precision``); through ``torch.compile`` if ``compile``."""

    def loss(x: torch.Tensor) -> torch.Tensor:
        with autocast():
            return masked_loss(model(x[..., :-1]), x, mask)

    return torch.compile(loss) if compile else loss


def _rope_dict(proto: Protocol, variant: str) -> dict | None:
    cfg = proto.rope_config(variant)
    return None if cfg is None else cfg.to_dict()


def train_and_evaluate(
    task: str,
    variant: str,
    seed: int,
    proto: Protocol = PAPER,
    *,
    device: str | torch.device = "cpu",
    on_epoch: Callable[[int, float], None] | None = None,
) -> dict:
    """Train one model and evaluate it; returns the JSON-safe result record of the run."""
    hook = None if on_epoch is None else (lambda epoch, losses: on_epoch(epoch, losses[0]))
    return train_runs(task, [(variant, seed)], proto, device=device, on_epoch=hook)[0]


@contextlib.contextmanager
def training_precision(precision: str, device: torch.device):
    """TF32 matmuls (``tf32``) for the duration of a training run, restored afterwards; yields the
    context each forward pass runs in: bf16 ``torch.autocast`` (``bf16``) or a no-op.

    Autocast wraps forward passes only, as PyTorch's AMP recipe says: backward reuses the forward's
    dtypes, and autocast's cache of weight casts lives only until the context exits, so a context
    around optimizer steps could hand later steps stale casts of updated ``nn.Linear`` weights."""
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    try:
        yield functools.partial(torch.autocast, device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


def device_name(device: torch.device | str) -> str:
    """What a run's JSON records of the hardware: the CUDA device's name (results from an H100 and
    an H200 may then be told apart), else the CPU's ``platform.processor()`` (or ``"cpu"``)."""
    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
