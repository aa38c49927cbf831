"""The LM train-short-test-long protocol: its knobs, its presets and each variant's rope (NumPy and
rrope_core only: results can be read and merged without torch).

A sweep pretrains a byte-level Llama at length ``L = train_len`` with each ``PRETRAIN`` encoding,
then extends every pretrained model to ``s * L`` (``s = scale``) with each ``METHODS`` entry, either
by a short fine-tune at ``s * L`` (``"finetune"``) or at evaluation only (``"free"``), and evaluates
perplexity at ``m * L`` for ``m`` in ``eval_multiples``. docs/lm_tstl.md cites the source of every
default (the paper, arXiv 2403.00071 sec. 6.2 and appendix C.2, as summarised in RESEARCH.md sec. 7,
or "ours").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import rrope_core as rr
from rrope_core.errors import RopeInputError, bad

from .corpus import DEFAULT_EXCLUDE

__all__ = [
    "PRETRAIN",
    "METHODS",
    "MODES",
    "HF_ROPE_TYPES",
    "Protocol",
    "GPU",
    "QUICK",
    "QUICK_SIZES",
    "preset",
    "variant_key",
    "label",
]

#: Pretraining encodings: plain RoPE and Resonance RoPE (rounded wavelengths).
PRETRAIN = ("rope", "resonance")
#: Extension methods: YaRN and Resonance YaRN (YaRN's frequencies, rounded; the same attention factor).
METHODS = ("yarn", "resonance_yarn")
#: ``finetune``: a short fine-tune at ``s * L`` with the method's rope; ``free``: the method's rope
#: at evaluation only, no training (the paper compares such training-free methods too, sec. 6.2).
MODES = ("finetune", "free")
#: Our names -> transformers ``rope_type`` (``resonance*`` registered by ``rrope_torch.transformers``).
HF_ROPE_TYPES = {"rope": "default", "resonance": "resonance", "yarn": "yarn", "resonance_yarn": "resonance_yarn"}


@dataclass(frozen=True)
class Protocol:
    """Everything shared by the runs of one sweep (all but the variant and the seed).

    Defaults are the GPU preset (``GPU``); ``QUICK`` is the CPU pipeline check. Each value is a
    ``rrope lm-tstl`` flag. Sizes are ours (a scaled-down LLaMA-2 block: RMSNorm, SwiGLU, no biases);
    ``scale = 8`` is the paper's 7B setting (4K -> 32K), ``beta_fast = 32``, ``beta_slow = 1`` its YaRN
    (alpha 1, beta 32), ``ft_weight_decay = 0.01`` its fine-tune (appendix C.2).
    """

    # corpus (corpus.py)
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    val_frac: float = 0.05
    test_frac: float = 0.10
    n_test_docs: int = 64
    n_val_docs: int = 16
    # model: transformers LlamaForCausalLM
    n_layers: int = 8
    d_model: int = 512
    n_heads: int = 8
    n_kv_heads: int = 8
    ffn: int = 1376
    base: float = 10000.0
    # pretraining at L
    train_len: int = 512
    steps: int = 2000
    batch_size: int = 32
    lr: float = 1e-3
    warmup: float = 0.05
    min_lr_frac: float = 0.1
    weight_decay: float = 0.1
    beta2: float = 0.95
    grad_clip: float = 1.0
    val_every: int = 250
    # extension to s * L
    scale: int = 8
    ft_steps: int = 200
    ft_batch_size: int = 4
    ft_lr: float = 1e-4
    ft_warmup: float = 0.1
    ft_weight_decay: float = 0.01
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    # evaluation
    eval_multiples: tuple[int, ...] = (1, 2, 4, 8, 16)
    exact_phases: bool = True

    def __post_init__(self):
        for name in ("exclude", "eval_multiples"):  # JSON gives lists
            object.__setattr__(self, name, tuple(getattr(self, name)))
        flag = lambda name: "--" + name.replace("_", "-")  # noqa: E731
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type == "int" and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise bad(flag(f.name), v, "must be a positive integer", RopeInputError)
            if f.type == "float" and (isinstance(v, bool) or not isinstance(v, int | float) or not v == v):
                raise bad(flag(f.name), v, "must be a number", RopeInputError)
        positive = ("base", "lr", "ft_lr", "beta_fast", "beta_slow", "grad_clip")
        for name in positive:
            if not 0 < getattr(self, name) < float("inf"):
                raise bad(flag(name), getattr(self, name), "must be a finite number > 0", RopeInputError)
        for name in ("weight_decay", "ft_weight_decay"):
            if not 0 <= getattr(self, name) < float("inf"):
                raise bad(flag(name), getattr(self, name), "must be a finite number >= 0", RopeInputError)
        for name in ("warmup", "ft_warmup", "min_lr_frac"):
            if not 0 <= getattr(self, name) < 1:
                raise bad(flag(name), getattr(self, name), "must be in [0, 1)", RopeInputError)
        for name in ("val_frac", "test_frac", "beta2"):
            if not 0 < getattr(self, name) < 1:
                raise bad(flag(name), getattr(self, name), "must be in (0, 1)", RopeInputError)
        if self.val_frac + self.test_frac >= 0.5:
            raise bad("--test-frac", self.test_frac, f"plus --val-frac={self.val_frac} must be < 0.5", RopeInputError)
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise bad(
                "--d-model",
                self.d_model,
                f"must be divisible by --heads={self.n_heads} into an even head dim",
                RopeInputError,
            )
        if self.n_heads % self.n_kv_heads:
            raise bad("--kv-heads", self.n_kv_heads, f"must divide --heads={self.n_heads}", RopeInputError)
        if self.scale < 2:
            raise bad("--scale", self.scale, "must be an integer >= 2 (the paper: 4 and 8)", RopeInputError)
        top = max(self.eval_multiples, default=0)
        if not self.eval_multiples or any(m < 1 or top % m for m in self.eval_multiples):
            raise bad(
                "--eval-multiples",
                ",".join(map(str, self.eval_multiples)),
                "must be positive integers that each divide the largest",
                RopeInputError,
            )
        if list(self.eval_multiples) != sorted(set(self.eval_multiples)):
            raise bad("--eval-multiples", ",".join(map(str, self.eval_multiples)), "must be increasing", RopeInputError)
        if not isinstance(self.exact_phases, bool):
            raise bad("--exact-phases", self.exact_phases, "must be True or False", RopeInputError)
        if self.val_every > self.steps:
            raise bad("--val-every", self.val_every, f"must be <= --steps={self.steps}", RopeInputError)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def ft_len(self) -> int:
        """The fine-tuning length ``s * L``."""
        return self.scale * self.train_len

    @property
    def eval_lengths(self) -> list[int]:
        return [m * self.train_len for m in self.eval_multiples]

    @property
    def max_len(self) -> int:
        return self.eval_lengths[-1]

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def rope_config(self, variant: str) -> rr.RopeConfig:
        """The ``rrope_core.RopeConfig`` of ``variant`` (``PRETRAIN`` or ``METHODS``): RoPE at ``base``;
        the YaRN ones ``YaRN(factor=scale, original_max_position=train_len, beta_fast, beta_slow)``."""
        if variant not in HF_ROPE_TYPES:
            raise bad("variant", variant, f"must be one of {tuple(HF_ROPE_TYPES)}", RopeInputError)
        scaling = None
        if variant in METHODS:
            scaling = rr.YaRN(
                float(self.scale), self.train_len, beta_fast=float(self.beta_fast), beta_slow=float(self.beta_slow)
            )
        return rr.RopeConfig(
            head_dim=self.head_dim, base=float(self.base), scaling=scaling, resonance=variant.startswith("resonance")
        )

    def rope_parameters(self, variant: str) -> dict:
        """transformers v5 ``rope_parameters`` of ``variant``: the same rope as ``rope_config``."""
        if variant not in HF_ROPE_TYPES:
            raise bad("variant", variant, f"must be one of {tuple(HF_ROPE_TYPES)}", RopeInputError)
        params = {"rope_type": HF_ROPE_TYPES[variant], "rope_theta": float(self.base)}
        if variant in METHODS:
            params.update(
                factor=float(self.scale),
                original_max_position_embeddings=self.train_len,
                beta_fast=float(self.beta_fast),
                beta_slow=float(self.beta_slow),
            )
        return params


#: ``rrope lm-tstl`` default: sized for one GPU (docs/lm_tstl.md gives the sizes and the cost).
GPU = Protocol()

#: ``rrope lm-tstl --quick``: a pipeline check on 2 CPU cores in minutes, not evidence.
QUICK_SIZES = dict(
    n_test_docs=12,
    n_val_docs=4,
    n_layers=2,
    d_model=64,
    n_heads=4,
    n_kv_heads=4,
    ffn=176,
    train_len=64,
    steps=300,
    batch_size=16,
    lr=3e-3,
    val_every=100,
    ft_steps=30,
    ft_batch_size=2,
    ft_lr=3e-4,
)
QUICK = replace(GPU, **QUICK_SIZES)


def preset(quick: bool = False) -> Protocol:
    return QUICK if quick else GPU


def variant_key(pretrain: str, method: str | None = None, mode: str | None = None) -> str:
    """Compact name of a row: ``rope``, ``rope.yarn.finetune``, ``resonance.resonance_yarn.free``."""
    return pretrain if method is None else f"{pretrain}.{method}.{mode}"


_NAMES = {"rope": "RoPE", "resonance": "Resonance RoPE", "yarn": "YaRN", "resonance_yarn": "Resonance YaRN"}


def label(key: str) -> str:
    """Readable name of ``variant_key``: ``"RoPE -> YaRN, fine-tuned"``."""
    parts = key.split(".")
    if len(parts) == 1:
        return f"{_NAMES.get(parts[0], parts[0])}, no extension"
    pretrain, method, mode = parts
    how = {"finetune": "fine-tuned", "free": "training-free"}.get(mode, mode)
    return f"{_NAMES.get(pretrain, pretrain)} -> {_NAMES.get(method, method)}, {how}"
