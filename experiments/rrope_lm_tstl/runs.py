"""One run = one JSON record: a pretraining at ``L``, or one extension of a pretrained model.

``pretrain_run(pretrain, seed, ...)`` builds the ``pretrain`` model (``rope`` or ``resonance``) under
``torch.manual_seed(seed)``, trains it at ``L`` and evaluates it unextended at every length; it
returns the record and the trained ``state_dict``. ``extension_run(pretrain, method, mode, seed,
...)`` loads that ``state_dict`` into a model whose rope is ``method`` (``yarn`` or
``resonance_yarn``, factor ``s``), fine-tunes it at ``s * L`` (``mode="finetune"``; the same windows
for both methods of a seed) or not (``"free"``), and evaluates it. For one seed every variant starts
from the same initial weights and sees the same pretraining windows; both methods of one pretrained
model see the same fine-tuning windows. On CPU a rerun gives the same numbers bit for bit.
Checkpoints (``save_state``/``load_state``) are ``torch.save`` of a ``state_dict``, read back with
``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rrope_core.errors import RopeInputError, bad
from rrope_posgen.train import device_name

from .corpus import Corpus, load_corpus
from .evaluate import nll_by_length
from .model import build_model, describe_rope
from .protocol import METHODS, MODES, PRETRAIN, Protocol, variant_key
from .train import train

__all__ = ["Data", "make_data", "pretrain_run", "extension_run", "save_state", "load_state"]


@dataclass(frozen=True)
class Data:
    """What every run of a sweep reads: the training stream, the validation and test documents
    (``(n, max_len + 1)`` each) and the corpus description for the JSON."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    corpus: dict


def make_data(proto: Protocol, root: Path | str | None = None, corpus: Corpus | None = None) -> Data:
    """Read the corpus (``root``: default the stdlib) and cut the documents ``proto`` asks for."""
    corpus = corpus or load_corpus(root, proto.exclude, proto.val_frac, proto.test_frac)
    length = proto.max_len + 1
    test = corpus.docs("test", length, proto.n_test_docs, "--n-test-docs")
    val = corpus.docs("val", length, proto.n_val_docs, "--n-val-docs")
    info = {
        **corpus.info,
        "test_docs_sha256": hashlib.sha256(test.tobytes()).hexdigest(),
        "val_docs_sha256": hashlib.sha256(val.tobytes()).hexdigest(),
    }
    return Data(corpus.train_stream(), val, test, info)


def _versions() -> dict:
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version()}


def _peak_memory(device: torch.device) -> float | None:
    """GiB of CUDA memory allocated at most since the run began (``None`` on the CPU)."""
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 3) if device.type == "cuda" else None


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _record(kind: str, key: str, seed: int, proto: Protocol, data: Data, model, **fields) -> dict:
    return {
        "kind": kind,
        "variant": key,
        "seed": seed,
        **fields,
        "protocol": proto.to_dict(),
        "corpus": data.corpus,
        "rope": describe_rope(model),
        "n_params": sum(p.numel() for p in model.parameters()),
        **_versions(),
    }


def _evaluate(model, data: Data, proto: Protocol, device, autocast, eval_tokens: int) -> dict:
    """Test perplexity at every length; a non-finite one raises (``FloatingPointError``)."""
    out = nll_by_length(
        model,
        data.test,
        proto.eval_lengths,
        segment=proto.train_len,
        device=device,
        autocast=autocast,
        max_tokens=eval_tokens,
    )
    if not all(math.isfinite(v) for v in out["nll"]):
        raise FloatingPointError(f"a non-finite test NLL: {out['nll']}")
    return out


def _validator(model, data: Data, lengths: list[int], proto: Protocol, device, autocast, eval_tokens: int):
    """Mean validation NLL at each of ``lengths`` (a float for one length)."""

    def validate():
        nll = nll_by_length(
            model, data.val, lengths, segment=proto.train_len, device=device, autocast=autocast, max_tokens=eval_tokens
        )["nll"]
        return nll[0] if len(nll) == 1 else nll

    return validate


def pretrain_run(
    pretrain: str,
    seed: int,
    proto: Protocol,
    data: Data,
    *,
    device: torch.device,
    autocast: Callable,
    precision: str,
    eval_tokens: int = 32768,
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[dict, dict]:
    """Pretrain ``pretrain`` at ``L`` and evaluate it at every length; ``(record, CPU state_dict)``."""
    if pretrain not in PRETRAIN:
        raise bad("pretrain", pretrain, f"must be one of {PRETRAIN}", RopeInputError)
    start = time.perf_counter()
    _reset_peak(device)
    model = build_model(pretrain, proto, seed=seed).to(device)
    val = _validator(model, data, [proto.train_len], proto, device, autocast, eval_tokens)
    hist = train(
        model,
        data.train,
        length=proto.train_len,
        steps=proto.steps,
        batch_size=proto.batch_size,
        lr=proto.lr,
        warmup=proto.warmup,
        min_lr_frac=proto.min_lr_frac,
        weight_decay=proto.weight_decay,
        beta2=proto.beta2,
        grad_clip=proto.grad_clip,
        seed=seed,
        purpose="pretrain",
        device=device,
        autocast=autocast,
        validate=val,
        val_every=proto.val_every,
        on_step=on_step,
    )
    tick = time.perf_counter()
    result = _evaluate(model, data, proto, device, autocast, eval_tokens)
    rec = _record(
        "pretrain",
        variant_key(pretrain),
        seed,
        proto,
        data,
        model,
        pretrain=pretrain,
        method=None,
        mode=None,
        eval=result,
        train=hist,
        eval_s=round(time.perf_counter() - tick, 3),
        wall_s=round(time.perf_counter() - start, 3),
        device=str(device),
        device_name=device_name(device),
        peak_memory_gib=_peak_memory(device),
        precision=precision,
        eval_tokens=eval_tokens,
        threads=torch.get_num_threads(),
    )
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    return rec, state


def extension_run(
    pretrain: str,
    method: str,
    mode: str,
    seed: int,
    proto: Protocol,
    data: Data,
    state_dict: dict,
    *,
    device: torch.device,
    autocast: Callable,
    precision: str,
    eval_tokens: int = 32768,
    on_step: Callable[[int, float], None] | None = None,
) -> dict:
    """Extend the pretrained ``state_dict`` with ``method`` (``mode`` ``finetune`` or ``free``) and evaluate."""
    if pretrain not in PRETRAIN or method not in METHODS or mode not in MODES:
        raise bad(
            "(pretrain, method, mode)",
            (pretrain, method, mode),
            f"must be in {PRETRAIN} x {METHODS} x {MODES}",
            RopeInputError,
        )
    start = time.perf_counter()
    _reset_peak(device)
    model = build_model(method, proto, seed=seed, state_dict=state_dict).to(device)
    hist = None
    if mode == "finetune":
        val = _validator(model, data, [proto.train_len, proto.ft_len], proto, device, autocast, eval_tokens)
        hist = train(
            model,
            data.train,
            length=proto.ft_len,
            steps=proto.ft_steps,
            batch_size=proto.ft_batch_size,
            lr=proto.ft_lr,
            warmup=proto.ft_warmup,
            min_lr_frac=proto.min_lr_frac,
            weight_decay=proto.ft_weight_decay,
            beta2=proto.beta2,
            grad_clip=proto.grad_clip,
            seed=seed,
            purpose="finetune",
            device=device,
            autocast=autocast,
            validate=val,
            val_every=None,
            on_step=on_step,
        )
    tick = time.perf_counter()
    result = _evaluate(model, data, proto, device, autocast, eval_tokens)
    return _record(
        "extend",
        variant_key(pretrain, method, mode),
        seed,
        proto,
        data,
        model,
        pretrain=pretrain,
        method=method,
        mode=mode,
        eval=result,
        train=hist,
        eval_s=round(time.perf_counter() - tick, 3),
        wall_s=round(time.perf_counter() - start, 3),
        device=str(device),
        device_name=device_name(device),
        peak_memory_gib=_peak_memory(device),
        precision=precision,
        eval_tokens=eval_tokens,
        threads=torch.get_num_threads(),
    )


def save_state(path: Path, state_dict: dict) -> None:
    """``torch.save(state_dict)`` to ``path`` atomically (a temporary file, then ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state_dict, tmp)
    os.replace(tmp, path)


def load_state(path: Path) -> dict:
    """A ``state_dict`` saved by ``save_state``, loaded with ``weights_only=True`` onto the CPU."""
    return torch.load(Path(path), map_location="cpu", weights_only=True)
