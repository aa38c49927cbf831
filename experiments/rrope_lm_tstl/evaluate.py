"""Evaluation: perplexity of held-out documents at growing lengths, in non-overlapping chunks.

``docs`` is ``(n, T + 1)`` with ``T`` the longest length. At length ``n_len`` (dividing ``T``) each
document is cut into ``T / n_len`` non-overlapping chunks: chunk ``j`` reads tokens
``j*n_len .. (j+1)*n_len - 1`` (positions ``0..n_len-1``, no context carried over from chunk ``j-1``)
and predicts tokens ``j*n_len + 1 .. (j+1)*n_len``. So every length scores the same ``n * T`` target
tokens, each seen with ``1..n_len`` tokens of context. Reported per length: mean NLL in nats over
all scored tokens, perplexity ``exp(NLL)``, and the mean NLL per segment of ``segment`` positions
within the chunk (where in the context the loss grows). Our choice of protocol (sliding windows
would give every token a long context; chunks keep the cost linear and the positions explicit).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from rrope_core.errors import RopeInputError, bad

__all__ = ["nll_by_length"]


@torch.no_grad()
def nll_by_length(
    model,
    docs: np.ndarray,
    lengths: list[int],
    *,
    segment: int,
    device: torch.device,
    autocast: Callable,
    max_tokens: int = 32768,
) -> dict:
    """``{"lengths", "nll", "ppl", "tokens", "nll_by_segment"}`` of ``model`` (eval mode) on ``docs``;
    ``max_tokens`` bounds the tokens of one forward pass (``max(1, max_tokens // n_len)`` chunks)."""
    longest = docs.shape[1] - 1
    if any(longest % n for n in lengths):
        raise bad("lengths", lengths, f"must each divide the documents' length {longest}", RopeInputError)
    model.eval()
    out = {"lengths": list(lengths), "nll": [], "ppl": [], "tokens": [], "nll_by_segment": []}
    for n_len in lengths:
        inputs = docs[:, :longest].reshape(-1, n_len)
        targets = docs[:, 1:].reshape(-1, n_len)
        by_position = torch.zeros(n_len, dtype=torch.float64)
        per = max(1, max_tokens // n_len)
        for i in range(0, len(inputs), per):
            x = torch.from_numpy(inputs[i : i + per].astype(np.int64)).to(device)
            y = torch.from_numpy(targets[i : i + per].astype(np.int64)).to(device)
            with autocast():
                logits = model(input_ids=x).logits
            ce = F.cross_entropy(logits.float().transpose(1, 2), y, reduction="none")  # (b, n_len)
            by_position += ce.sum(0).to("cpu", torch.float64)
        by_position /= len(inputs)
        nll = float(by_position.mean())
        out["nll"].append(nll)
        out["ppl"].append(math.exp(nll))
        out["tokens"].append(int(inputs.size))
        seg = by_position.view(-1, segment).mean(1) if n_len % segment == 0 else by_position.mean().view(1)
        out["nll_by_segment"].append([float(v) for v in seg])
    return out
