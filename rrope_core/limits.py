"""Size limits, each with the reason for its value; every check runs before the allocation it guards.

* ``MAX_HEAD_DIM = 2**20``: 4096 times the widest attention head in common use (256, Gemma) and 64
  times the widest hidden size of a released model (16384, Llama 3.1 405B), should one rotate a
  whole hidden state as one head. Every per-pair vector is then at most 2**19 float64 (4 MiB), and
  ``rrope inspect`` of the widest config holds 1.2 KiB (table) to 2.2 KiB (``--json``) per pair,
  ~1.1 GiB: under ``TABLE_BUDGET`` (tests/test_limits.py measures it).
* ``TABLE_BUDGET = 2 GiB``: the most that one working table the library chooses to build may take
  (the feature gap's brute force holds ``8 * train_len`` bytes), so that ``rrope inspect`` fits on
  an 8 GiB laptop with room to spare. It allows ``train_len <= 2**28``, over 25 times the longest
  context length in use (~10M).
* Tables the caller asks for (``phases``, ``cos_sin``, the rotated copy of ``x``) are sized by the
  caller: they are refused only when they exceed this machine's physical memory
  (``physical_memory``), where they could only end in ``MemoryError`` or the kernel's OOM killer.
  Their temporaries are computed in blocks of ``BLOCK_ELEMENTS`` (8 MiB of float64 each).
"""

from __future__ import annotations

import os

from .errors import RopeError, RopeInputError, bad

__all__ = ["MAX_HEAD_DIM", "TABLE_BUDGET", "BLOCK_ELEMENTS", "FLOAT64_BYTES", "physical_memory", "check_fits"]

MAX_HEAD_DIM = 2**20
TABLE_BUDGET = 2 * 2**30
BLOCK_ELEMENTS = 2**20
FLOAT64_BYTES = 8


def physical_memory() -> int | None:
    """Bytes of RAM of this machine (``os.sysconf``), or None where the OS does not say."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * size if pages > 0 and size > 0 else None


def check_fits(field: str, value: object, n_bytes: int, what: str, cls: type[RopeError] = RopeInputError) -> None:
    """Raise ``cls`` naming ``field=value`` when ``n_bytes`` (what ``what`` holds) exceed physical memory."""
    ram = physical_memory()
    if ram is not None and n_bytes > ram:
        raise bad(
            field,
            value,
            f"{what} would take {n_bytes} bytes, more than this machine's physical memory ({ram} bytes)",
            cls,
        )
