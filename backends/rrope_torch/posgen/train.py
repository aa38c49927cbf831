"""The PosGen protocol: train short with next-token loss, evaluate long with teacher forcing.

One run = (task, variant, seed) under a :class:`Protocol`. Training: ``n_train`` sequences of
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
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .data import generate, loss_mask
from .model import PosGenTransformer, rope_config

__all__ = ["Protocol", "QUICK", "PAPER", "train_and_evaluate", "evaluate", "masked_loss"]


@dataclass(frozen=True)
class Protocol:
    """Everything shared by the runs of one sweep (all but task, variant and seed)."""

    p: int = 17
    fn: str = "sum"
    j: int = 3
    k: int = 1
    train_len: int = 64
    test_len: int = 256
    n_train: int = 10_000
    n_test: int = 1_000
    epochs: int = 150
    batch_size: int = 128
    lr: float = 2e-4
    weight_decay: float = 0.01
    pct_start: float = 0.1
    n_layers: int = 6
    d_model: int = 512
    n_heads: int = 8
    dropout: float = 0.1
    base: float = 10000.0
    beta_fast: float = 2.0
    beta_slow: float = 1.0

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict:
        return asdict(self)

    def rope_config(self, variant: str):
        """The position encoding of ``variant`` under this protocol (None for ``nope``)."""
        return rope_config(
            variant,
            self.head_dim,
            self.train_len,
            self.test_len,
            base=self.base,
            beta_fast=self.beta_fast,
            beta_slow=self.beta_slow,
        )


#: The paper's setting (sec. 5.1; 5 seeds; tasks recursive, cot, semi_recursive).
PAPER = Protocol()

#: ``rrope posgen --quick``: fits 2 CPU cores in minutes (see docs/posgen.md for its measured time).
QUICK = Protocol(
    n_layers=2,
    d_model=128,
    n_heads=4,
    n_train=2000,
    n_test=200,
    epochs=8,
    batch_size=32,
    lr=1e-3,
    dropout=0.0,
)


def masked_loss(logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``tokens[:, 1:]`` under ``logits`` (of ``tokens[:, :-1]``) where ``mask[1:]``."""
    target_mask = mask[1:]
    ce = F.cross_entropy(logits[:, target_mask].flatten(0, 1), tokens[:, 1:][:, target_mask].flatten())
    return ce


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, tokens: torch.Tensor, train_len: int, scored_from: int, batch_size: int = 256
) -> dict:
    """Teacher-forced accuracy of ``model`` on ``tokens`` ``(n, test_len)``.

    Returns ``acc_by_position`` (a list, ``None`` for the unscored seed positions), ``id_acc``
    (positions ``scored_from .. train_len-1``) and ``ood_acc`` (``train_len .. test_len-1``).
    """
    model.eval()
    n, length = tokens.shape
    correct = torch.zeros(length - 1, dtype=torch.float64)
    for i in range(0, n, batch_size):
        x = tokens[i : i + batch_size]
        pred = model(x[:, :-1]).argmax(-1)
        correct += (pred == x[:, 1:]).sum(0).to("cpu", torch.float64)
    acc = np.concatenate([[np.nan], (correct / n).numpy()])
    acc[:scored_from] = np.nan
    return {
        "id_acc": float(np.mean(acc[scored_from:train_len])),
        "ood_acc": float(np.mean(acc[train_len:])),
        "acc_by_position": [None if np.isnan(a) else float(a) for a in acc],
    }


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
    start = time.perf_counter()
    device = torch.device(device)
    rule = dict(p=proto.p, j=proto.j, k=proto.k, fn=proto.fn)
    train = generate(task, proto.n_train, proto.train_len, seed=np.random.default_rng([seed, 0]), **rule)
    test = generate(task, proto.n_test, proto.test_len, seed=np.random.default_rng([seed, 1]), **rule)
    train_t, test_t = torch.from_numpy(train).to(device), torch.from_numpy(test).to(device)
    cfg = proto.rope_config(variant)
    torch.manual_seed(seed)
    model = PosGenTransformer(
        proto.p, cfg, n_layers=proto.n_layers, d_model=proto.d_model, n_heads=proto.n_heads, dropout=proto.dropout
    ).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=proto.lr, weight_decay=proto.weight_decay)
    steps = math.ceil(proto.n_train / proto.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=proto.lr, total_steps=proto.epochs * steps, pct_start=proto.pct_start, anneal_strategy="cos"
    )
    mask = torch.from_numpy(loss_mask(proto.train_len, proto.j, proto.k)).to(device)
    shuffle = torch.Generator().manual_seed(seed)
    losses, epoch_s = [], []
    for epoch in range(proto.epochs):
        tick = time.perf_counter()
        model.train()
        total = torch.zeros((), device=device)
        for idx in torch.randperm(proto.n_train, generator=shuffle).split(proto.batch_size):
            x = train_t[idx.to(device)]
            loss = masked_loss(model(x[:, :-1]), x, mask)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.detach() * len(idx)
        losses.append(float(total) / proto.n_train)  # float() waits for the device: epoch_s is honest
        epoch_s.append(round(time.perf_counter() - tick, 3))
        if on_epoch is not None:
            on_epoch(epoch, losses[-1])
    train_s = time.perf_counter() - start
    metrics = evaluate(model, test_t, proto.train_len, proto.j + proto.k)
    return {
        "task": task,
        "variant": variant,
        "seed": seed,
        "protocol": proto.to_dict(),
        "rope": None if cfg is None else cfg.to_dict(),
        **metrics,
        "train_loss_by_epoch": losses,
        "epoch_s": epoch_s,
        "n_params": sum(p.numel() for p in model.parameters()),
        "device": str(device),
        "torch": torch.__version__,
        "train_s": round(train_s, 3),
        "wall_s": round(time.perf_counter() - start, 3),
    }
