"""The three PosGen sequence tasks (Wang et al. 2024, Resonance RoPE, sec. 5.1), in NumPy.

A sequence ``x`` over the integers mod ``p`` starts with ``s = j + k`` seed tokens drawn uniformly
from ``[0, p)``. Every later token ``n >= s`` is

    x[n] = f(x[n - j], ..., x[n - 1], x[a(n)], ..., x[a(n) + k - 1])

i.e. ``f`` of the ``j`` *near* tokens (the previous ``j``) followed by ``k`` *far* tokens starting
at index ``a(n)``; ``f`` defaults to the sum mod ``p``. The tasks differ only in ``a(n)``:

- ``recursive``:      ``a(n) = n - j - k``       (far tokens right before the near ones: fixed window)
- ``cot``:            ``a(n) = 0``               (the first ``k`` tokens: distance grows one-for-one)
- ``semi_recursive``: ``a(n) = (n - s) // 2``    (starts at the first token, advances every two tokens)

These index formulas are the generators of the paper's public PosGen code
(``src/data/components/{recurrent,cot,semi_recurrent}_sequence.py`` of sheryc/resonance_rope),
restated. Where the seed tokens come from is a protocol choice (``SEED_RULES``):

- ``random``: uniform draws from a seeded generator, fresh per split and per run seed (ours);
- ``disjoint``: distinct seed tuples drawn without replacement over all splits, so no two sequences
  share their first ``j + k`` tokens (the paper's text, appendix C.1: the sequences "do not overlap
  in the first j+k tokens");
- ``code``: the official code's rule (``base_sequence_dataset.py``, ``_generate_complete_data`` and
  ``generate_data``): rows cycle through ``itertools.combinations(range(p), j + k)`` in order
  (sorted, distinct seed tokens); train = rows ``[0, n_train)``, validation = rows ``[0, n_val)``,
  test = rows ``[n_val, n_val + n_test)``, the same rows for every run seed. Validation and test rows
  are therefore training rows, extended past the training length.

No data files are written.

A shortcut of the sum: whenever ``a(n) = a(n-1)`` (every ``n > s`` in ``cot``, every other one in
``semi_recursive``), ``x[n] - x[n-1] = x[n-1] - x[n-1-j]``, so ``x[n] = 2 x[n-1] - x[n-1-j] (mod p)``:
a fixed window of the last ``j + 1`` tokens predicts the token without looking at the far ones.
``fn="sum_squared"`` (``(sum mod p)^2 mod p``: two-to-one, so earlier tokens give the sum only up
to sign) weakens that shortcut with the same dependency pattern; no ``f`` removes it entirely,
since earlier tokens always carry information about the far ones.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from rrope_core._checks import positive_int
from rrope_core.errors import RopeInputError, bad

__all__ = [
    "TASKS",
    "COMBINE",
    "SEED_RULES",
    "far_start",
    "generate",
    "loss_mask",
    "combination_seeds",
    "distinct_seeds",
    "split_seeds",
]

TASKS = ("recursive", "cot", "semi_recursive")

#: ``f(args) -> tokens``: ``args`` is the ``(n, j + k)`` int64 array ``[near..., far...]``.
Combine = Callable[[np.ndarray], np.ndarray]


#: Named combining functions: ``name -> (p -> f)``. ``sum`` is the paper's.
COMBINE: dict[str, Callable[[int], Combine]] = {
    "sum": lambda p: lambda args: args.sum(axis=-1) % p,
    "sum_squared": lambda p: lambda args: (args.sum(axis=-1) % p) ** 2 % p,
}


def _check_task(task: str) -> str:
    if task not in TASKS:
        raise bad("task", task, f"must be one of {TASKS}", RopeInputError)
    return task


def far_start(task: str, n: np.ndarray | int, j: int, k: int) -> np.ndarray:
    """``a(n)``, the index of the first far token of the token at position ``n >= j + k``."""
    _check_task(task)
    n = np.asarray(n, dtype=np.int64)
    if task == "recursive":
        return n - j - k
    if task == "cot":
        return np.zeros_like(n)
    return (n - (j + k)) // 2


def generate(
    task: str,
    n: int,
    length: int,
    *,
    p: int = 17,
    j: int = 3,
    k: int = 1,
    seed: int | np.random.Generator = 0,
    fn: str | Combine = "sum",
    seeds: np.ndarray | None = None,
) -> np.ndarray:
    """``n`` sequences of ``length`` tokens of ``task``, an ``(n, length)`` int64 array.

    Deterministic given ``seed`` (an int or a ``numpy.random.Generator``); ``seeds`` (an
    ``(n, j + k)`` int array) replaces the random seed tokens. ``fn`` names one of ``COMBINE``
    or is a callable ``fn(args)`` that gets the ``(n, j + k)`` int64 array ``[near..., far...]`` and
    returns ``n`` ints in ``[0, p)``. Loops over positions, vectorised over sequences.
    """
    _check_task(task)
    n = positive_int("n", n, RopeInputError)
    p = positive_int("p", p, RopeInputError)
    j = positive_int("j", j, RopeInputError)
    k = positive_int("k", k, RopeInputError)
    s = j + k
    length = positive_int("length", length, RopeInputError)
    if length <= s:
        raise bad("length", length, f"must be > j + k = {s} (the seed tokens)", RopeInputError)
    if p < 2:
        raise bad("p", p, "must be >= 2", RopeInputError)
    if isinstance(fn, str):
        if fn not in COMBINE:
            raise bad("fn", fn, f"must be one of {tuple(COMBINE)} or a callable", RopeInputError)
        fn = COMBINE[fn](p)
    elif not callable(fn):
        raise bad("fn", fn, f"must be one of {tuple(COMBINE)} or a callable", RopeInputError)
    x = np.empty((n, length), dtype=np.int64)
    if seeds is None:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        x[:, :s] = rng.integers(0, p, size=(n, s))
    else:
        seeds = np.asarray(seeds)
        if seeds.shape != (n, s) or not np.issubdtype(seeds.dtype, np.integer):
            raise bad(
                "seeds",
                f"<{seeds.dtype} array {seeds.shape}>",
                f"must be an int array of shape {(n, s)}",
                RopeInputError,
            )
        if seeds.min() < 0 or seeds.max() >= p:
            raise bad("seeds", f"<values in [{seeds.min()}, {seeds.max()}]>", f"must lie in [0, p={p})", RopeInputError)
        x[:, :s] = seeds
    far = np.arange(k)
    for t in range(s, length):
        a = int(far_start(task, t, j, k))
        args = np.concatenate([x[:, t - j : t], x[:, a + far]], axis=1)
        out = np.asarray(fn(args))
        if out.shape != (n,) or not np.issubdtype(out.dtype, np.integer) or out.min() < 0 or out.max() >= p:
            raise bad("fn", fn, f"must return {n} integers in [0, p={p}) (got {out.dtype} {out.shape})", RopeInputError)
        x[:, t] = out
    return x


def loss_mask(length: int, j: int, k: int) -> np.ndarray:
    """Bool ``(length,)``: which positions are scored (``True`` from ``j + k`` on; seeds are not).

    With next-token training on ``x[:, :-1] -> x[:, 1:]``, target ``t`` is position ``t + 1``,
    so the loss mask for the targets is ``loss_mask(length, j, k)[1:]``.
    """
    mask = np.zeros(length, dtype=bool)
    mask[j + k :] = True
    return mask


#: Where the seed tokens of each split come from (see the module docstring).
SEED_RULES = ("random", "disjoint", "code")


def combination_seeds(n: int, p: int, s: int) -> np.ndarray:
    """``(n, s)``: rows cycling through ``itertools.combinations(range(p), s)`` in order (the official
    code's ``cycle(combinations(range(modular), total_dependency_count))``, base_sequence_dataset.py)."""
    combos = np.array(list(itertools.combinations(range(p), s)), dtype=np.int64)
    return combos[np.arange(n) % len(combos)]


def distinct_seeds(n: int, p: int, s: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, s)``: ``n`` distinct seed tuples over ``[0, p)^s``, drawn uniformly without replacement."""
    if n > p**s:
        raise bad("n", n, f"must be <= p**(j+k) = {p**s} distinct seed tuples", RopeInputError)
    codes = rng.choice(p**s, size=n, replace=False)
    return (codes[:, None] // p ** np.arange(s - 1, -1, -1)) % p


def split_seeds(rule: str, sizes: dict[str, int], p: int, s: int, seed: int) -> dict[str, np.ndarray]:
    """The seed tokens of each split (``sizes``: ``{"train": n, "val": n, "test": n}``) under ``rule``
    (``SEED_RULES``); deterministic given ``seed`` (``code`` ignores it)."""
    if rule not in SEED_RULES:
        raise bad("data", rule, f"must be one of {SEED_RULES}", RopeInputError)
    names = ("train", "val", "test")
    if rule == "random":  # streams [seed, 0] train and [seed, 1] test, as before the rules existed
        stream = {"train": 0, "test": 1, "val": 2}
        return {k: np.random.default_rng([seed, stream[k]]).integers(0, p, size=(sizes[k], s)) for k in names}
    if rule == "disjoint":
        rows = distinct_seeds(sum(sizes[k] for k in names), p, s, np.random.default_rng([seed, 3]))
        cuts = np.cumsum([0] + [sizes[k] for k in names])
        return {k: rows[cuts[i] : cuts[i + 1]] for i, k in enumerate(names)}
    n_train, n_val, n_test = (sizes[k] for k in names)
    rows = combination_seeds(max(n_train, n_val + n_test), p, s)
    return {"train": rows[:n_train], "val": rows[:n_val], "test": rows[n_val : n_val + n_test]}
