"""The PosGen protocol's knobs and presets, and each variant's position encoding (NumPy and
rrope_core only: results can be read and merged without torch).

A ``Protocol`` holds everything shared by the runs of one sweep; ``PRESETS`` names the
three combinations ``rrope posgen --protocol`` offers. docs/posgen.md cites, for every knob, the
paper's text or the official code's file (sheryc/resonance_rope) its value comes from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import rrope_core as rr
from rrope_core.errors import RopeInputError, bad

from .data import SEED_RULES

__all__ = [
    "VARIANTS",
    "BLOCKS",
    "YARN_RANGES",
    "YARN_TIMINGS",
    "CHECKPOINTS",
    "PRECISIONS",
    "Protocol",
    "CLEAN",
    "PAPER",
    "PAPER_CODE",
    "PAPER_TEXT",
    "PRESETS",
    "QUICK",
    "QUICK_SIZES",
    "preset",
    "rope_config",
    "train_variant",
]

#: Position encodings by name. ``nope`` (no position encoding) is a sanity baseline.
VARIANTS = ("rope", "resonance", "yarn", "resonance_yarn", "nope")
BLOCKS = ("pre_ln", "t5")
#: Where YaRN's correction range is computed: at the training length (YaRN's definition, Peng et al.
#: 2023; transformers) or at the test length (the official PosGen code, below).
YARN_RANGES = ("train", "test")


def train_variant(variant: str) -> str:
    """The variant a model of ``variant`` is trained with when YaRN is applied at evaluation only."""
    return {"yarn": "rope", "resonance_yarn": "resonance"}.get(variant, variant)


def rope_config(
    variant: str,
    head_dim: int,
    train_len: int,
    test_len: int,
    *,
    base: float = 10000.0,
    beta_fast: float = 2.0,
    beta_slow: float = 1.0,
    yarn_range: str = "train",
) -> rr.RopeConfig | None:
    """The ``rrope_core.RopeConfig`` of ``variant`` (``None`` for ``nope``).

    ``train_len`` and ``test_len`` count positions (a start token included). YaRN:
    ``factor = test_len / train_len``; ``original_max_position = train_len`` (``yarn_range="train"``)
    or ``test_len`` (``"test"``). The official code's YaRN (``rotary_scaled.py``,
    ``YaRNScaledRotaryEmbedding(scaling_factor=(4*64+1)/(64+1), max_position_embeddings=4*64+1,
    beta_fast=2)``, whose ``find_correction_range`` in ``rotary_utils.py`` uses that
    ``max_position_embeddings``) is ``rope_config(v, 64, 65, 257, yarn_range="test")``:
    ``YaRN(257/65, 257, beta_fast=2, beta_slow=1)``, attention factor ``0.1 ln(257/65) + 1``.
    The defaults ``beta_fast=2, beta_slow=1`` are that code's for its tiny models
    (transformers' defaults, 32 and 1, are meant for LLM context lengths).
    """
    if variant not in VARIANTS:
        raise bad("variant", variant, f"must be one of {VARIANTS}", RopeInputError)
    if yarn_range not in YARN_RANGES:
        raise bad("yarn_range", yarn_range, f"must be one of {YARN_RANGES}", RopeInputError)
    if variant == "nope":
        return None
    scaling = None
    if variant in ("yarn", "resonance_yarn"):
        fit = train_len if yarn_range == "train" else test_len
        scaling = rr.YaRN(test_len / train_len, fit, beta_fast=beta_fast, beta_slow=beta_slow)
    return rr.RopeConfig(head_dim=head_dim, base=base, scaling=scaling, resonance=variant.startswith("resonance"))


@dataclass(frozen=True)
class Protocol:
    """Everything shared by the runs of one sweep (all but task, variant and seed).

    The sizes and the optimiser are the paper's (appendix C.1) and its code's sweep config
    (``configs/experiment/sweep.yaml``: batch 128, lr 2e-4, weight decay 0.01, 10% warm-up, 150
    epochs). The knobs below them are where our protocol and the official code (or the paper's text)
    differ; ``PRESETS`` names each combination, docs/posgen.md cites the source of each value.
    """

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
    #: "train_eval": YaRN tables in training and evaluation; "eval_only": trained unscaled (the code).
    yarn_timing: str = "train_eval"
    #: YaRN's correction range at the training length ("train") or the test length ("test", the code).
    yarn_range: str = "train"
    #: A start token (id p) at position 0 (the code prepends "[EOS]": training sees train_len + 1 positions).
    bos: bool = False
    #: Seed tokens: "random", "disjoint" (the paper's text) or "code" (data.SEED_RULES).
    data: str = "random"
    #: "pre_ln" (ours) or "t5" (the code's CustomDecoderOnlyT5 block; model.py).
    block: str = "pre_ln"
    #: The FFN never trained (the code, model.py says why).
    freeze_ffn: bool = False
    #: "final" weights, or "best_id": the best by in-distribution validation accuracy, checked every
    #: val_every epochs in eval mode on n_val validation sequences (the code's callbacks).
    checkpoint: str = "final"
    val_every: int = 2
    n_val: int = 1_000

    def __post_init__(self):
        for name, allowed in (
            ("yarn_timing", YARN_TIMINGS),
            ("yarn_range", YARN_RANGES),
            ("data", SEED_RULES),
            ("block", BLOCKS),
            ("checkpoint", CHECKPOINTS),
        ):
            if getattr(self, name) not in allowed:
                raise bad(name, getattr(self, name), f"must be one of {allowed}", RopeInputError)
        if self.checkpoint == "best_id" and self.epochs < self.val_every:
            raise bad(
                "epochs", self.epochs, f"must be >= val_every={self.val_every} for checkpoint='best_id'", RopeInputError
            )
        if self.freeze_ffn and self.block != "t5":
            raise bad("freeze_ffn", True, "is the official code's T5 quirk: needs block='t5'", RopeInputError)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def offset(self) -> int:
        """Positions before the first data token: 1 with a start token."""
        return int(self.bos)

    def to_dict(self) -> dict:
        return asdict(self)

    def rope_config(self, variant: str):
        """The position encoding of ``variant`` under this protocol (None for ``nope``).

        YaRN with ``yarn_range="train"``: ``s = test_len / train_len`` (the paper's s = 4), range at
        ``train_len``; with ``"test"``, lengths count positions as the official code does (start token
        included: 4 * 64 + 1 and 64 + 1): ``s = (test_len + bos) / (train_len + bos)``, range there."""
        off = self.offset if self.yarn_range == "test" else 0
        return rope_config(
            variant,
            self.head_dim,
            self.train_len + off,
            self.test_len + off,
            base=self.base,
            beta_fast=self.beta_fast,
            beta_slow=self.beta_slow,
            yarn_range=self.yarn_range,
        )

    def trained_as(self, variant: str) -> str:
        """The variant whose encoding a model of ``variant`` is trained with."""
        return train_variant(variant) if self.yarn_timing == "eval_only" else variant


YARN_TIMINGS = ("train_eval", "eval_only")
#: Training arithmetic (``train_runs(precision=)``, ``rrope posgen --precision``).
PRECISIONS = ("fp32", "tf32", "bf16")
CHECKPOINTS = ("final", "best_id")

#: Ours (``--protocol clean``): every knob at its default.
CLEAN = Protocol()
PAPER = CLEAN  # the name used before the presets existed

#: ``--protocol paper-code``: every knob as the official code sets it (docs/posgen.md cites each file).
PAPER_CODE = Protocol(
    yarn_timing="eval_only",
    yarn_range="test",
    bos=True,
    data="code",
    block="t5",
    freeze_ffn=True,
    checkpoint="best_id",
)

#: ``--protocol paper-text``: as appendix C.1 describes ("two-layer" T5-small layers, "we train the
#: model with YaRN ... applied", s = 4, seeds that "do not overlap in the first j+k tokens"); where
#: the text is silent (start token, checkpoint), the code's choice.
PAPER_TEXT = Protocol(n_layers=2, bos=True, data="disjoint", block="t5", checkpoint="best_id")

PRESETS = {"clean": CLEAN, "paper-code": PAPER_CODE, "paper-text": PAPER_TEXT}

#: ``rrope posgen --quick``: these sizes over any preset fit 2 CPU cores in minutes (docs/posgen.md).
QUICK_SIZES = dict(
    n_layers=2,
    d_model=128,
    n_heads=4,
    n_train=2000,
    n_test=200,
    n_val=200,
    epochs=8,
    batch_size=32,
    lr=1e-3,
    dropout=0.0,
)
QUICK = replace(CLEAN, **QUICK_SIZES)


def preset(name: str, quick: bool = False) -> Protocol:
    """The protocol of preset ``name`` (``PRESETS``), with ``QUICK_SIZES`` if ``quick``."""
    if name not in PRESETS:
        raise bad("protocol", name, f"must be one of {tuple(PRESETS)}", RopeInputError)
    return replace(PRESETS[name], **QUICK_SIZES) if quick else PRESETS[name]
