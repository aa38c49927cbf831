"""Training: next-byte cross-entropy on random windows of the training stream, AdamW, warm-up + cosine.

One loop serves pretraining (length ``L``) and the extension fine-tune (length ``s * L``). Each step
draws ``batch_size`` windows of ``length + 1`` tokens at offsets uniform over the training stream
(``numpy.random.default_rng([seed, purpose])``: the same windows for every variant of a seed, a
different stream per purpose); the loss is the mean over every position of
``CE(logits(x[:, :-1]), x[:, 1:])``, computed in float32. AdamW (``betas = (0.9, beta2)``, eps 1e-8;
weight decay on matrices only, not on norm gains), gradient norm clipped to ``grad_clip``; learning
rate ``lr * f(step)`` with ``f`` rising linearly over the first ``ceil(warmup * steps)`` steps, then
falling as a cosine to ``min_lr_frac`` at the last step (``lr_factor``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from rrope_core.errors import RopeInputError, bad

__all__ = ["PURPOSE", "lr_factor", "windows", "lm_loss", "train"]

#: The second entry of each data generator's seed.
PURPOSE = {"pretrain": 1, "finetune": 2}


def lr_factor(step: int, total: int, warmup: float, min_frac: float) -> float:
    """Multiplier of the peak LR at optimizer step ``step`` (0-based) of ``total``:
    ``(step + 1) / w`` for ``step < w = ceil(warmup * total)``, then
    ``min_frac + (1 - min_frac) * (1 + cos(pi * t)) / 2`` with ``t = (step - w) / max(1, total - 1 - w)``."""
    w = math.ceil(warmup * total)
    if step < w:
        return (step + 1) / w
    t = (step - w) / max(1, total - 1 - w)
    return min_frac + (1 - min_frac) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


def windows(stream: np.ndarray, length: int, batch_size: int, steps: int, seed: int, purpose: str) -> Iterator:
    """``steps`` batches ``(batch_size, length + 1)`` (int64) of windows at uniform random offsets."""
    if len(stream) < length + 2:
        raise bad(
            "length",
            length,
            f"must be below the training stream's {len(stream)} tokens (a window holds length + 1)",
            RopeInputError,
        )
    rng = np.random.default_rng([seed, PURPOSE[purpose]])
    span = np.arange(length + 1)
    for _ in range(steps):
        starts = rng.integers(0, len(stream) - length, size=batch_size)
        yield stream[starts[:, None] + span].astype(np.int64)


def lm_loss(model, x: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of ``x[:, 1:]`` given ``x[:, :-1]`` (float32 logits)."""
    logits = model(input_ids=x[:, :-1]).logits
    return F.cross_entropy(logits.float().flatten(0, 1), x[:, 1:].flatten())


def _optimizer(model, lr: float, weight_decay: float, beta2: float, device: torch.device) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.ndim >= 2]
    keep = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, beta2), eps=1e-8, fused=device.type == "cuda" or None)


def train(
    model,
    stream: np.ndarray,
    *,
    length: int,
    steps: int,
    batch_size: int,
    lr: float,
    warmup: float,
    min_lr_frac: float,
    weight_decay: float,
    beta2: float,
    grad_clip: float,
    seed: int,
    purpose: str,
    device: torch.device,
    autocast: Callable,
    validate: Callable[[], float] | None = None,
    val_every: int | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> dict:
    """Train ``model`` (on ``device``) in place; returns ``{"loss": [[step, mean loss over the steps
    since the last entry], ...], "val": [[step, validate()], ...], "steps", "tokens", "train_s"}``.

    ``validate`` (if given) runs after every ``val_every`` steps and after the last; the model is put
    back in train mode after it. ``on_step(step, loss)`` is called at each logged step (every
    ``max(1, steps // 50)``, a host sync each time, not every step)."""
    start = time.perf_counter()
    opt = _optimizer(model, lr, weight_decay, beta2, device)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps, warmup, min_lr_frac))
    log_every = max(1, steps // 50)
    losses, vals, running = [], [], torch.zeros((), device=device)
    model.train()
    for step, batch in enumerate(windows(stream, length, batch_size, steps, seed, purpose), start=1):
        x = torch.from_numpy(batch).to(device, non_blocking=True)
        with autocast():
            loss = lm_loss(model, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        sched.step()
        running += loss.detach()
        if step % log_every == 0 or step == steps:
            n = step - (losses[-1][0] if losses else 0)
            losses.append([step, float(running) / n])
            running.zero_()
            if on_step is not None:
                on_step(step, losses[-1][1])
        if validate is not None and (step == steps or (val_every and step % val_every == 0)):
            vals.append([step, validate()])
            model.train()
    if not all(math.isfinite(v) for _, v in losses):
        raise FloatingPointError(f"training diverged: a non-finite loss in {losses}")
    return {
        "loss": losses,
        "val": vals,
        "steps": steps,
        "tokens": steps * batch_size * length,
        "train_s": round(time.perf_counter() - start, 3),
    }
