"""The corpus: the Python sources of the installed standard library, as byte-level tokens (NumPy only).

Real text that nobody here wrote, present offline wherever Python is, and the same files for a given
Python version (``sysconfig.get_paths()["stdlib"]``; a distribution's patches show in the content
hash). Rules, all deterministic:

* **Files**: every ``*.py`` under the stdlib root, as sorted relative POSIX paths, walked without
  following links; a file under any directory named in ``EXCLUDED_DIRS`` (the test suites, installed
  third-party packages, byte-code caches) is left out, and so is every top-level package or module
  matching one of ``exclude`` (shell globs; default ``DEFAULT_EXCLUDE``: generated tables, not
  written code: the codec tables of ``encodings``, ``pydoc_data``'s help text, the build-specific
  ``_sysconfigdata*`` and ``config-*``).
* **Package**: a file's top-level package (first path component) or module (``name.py`` -> ``name``).
* **Split** by package, never by file, so no module's text is in two splits: packages in the order of
  ``sha256(name)`` go to ``test`` until it holds at least ``test_frac`` of all bytes, then to ``val``
  until ``val_frac``, the rest to ``train`` (a hash order, filled by bytes: a plain hash bucket puts
  about a third of the bytes in one split for this stdlib, since a few packages are large).
* **Tokens**: bytes ``0..255`` and one special, ``EOS = 256``, after every file ("end of file");
  ``VOCAB = 257``. No tokenizer to download; ``decode(encode(b)) == b``.
* **Streams**: a split's files in path order, each followed by ``EOS``. Test and validation
  documents are cut from one package's stream at a time (``documents``): a document never spans two
  packages.

The file list's SHA-256 (of the paths joined by newlines), the content's SHA-256 and the Python
version go into every result (``describe``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import platform
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rrope_core.errors import RopeInputError, bad

__all__ = [
    "EOS",
    "VOCAB",
    "SPLITS",
    "EXCLUDED_DIRS",
    "DEFAULT_EXCLUDE",
    "stdlib_root",
    "list_files",
    "package_of",
    "split_packages",
    "file_list_sha256",
    "encode",
    "decode",
    "split_files",
    "join_files",
    "documents",
    "Corpus",
    "load_corpus",
]

EOS = 256
VOCAB = 257
SPLITS = ("train", "val", "test")
#: Directory names whose files are never read: the stdlib's test suites and third-party installs.
EXCLUDED_DIRS = ("test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__")
#: Top-level packages left out by default: generated tables rather than written code.
DEFAULT_EXCLUDE = ("encodings", "pydoc_data", "_sysconfigdata*", "config-*")


def stdlib_root() -> Path:
    """The running Python's standard library directory."""
    return Path(sysconfig.get_paths()["stdlib"])


def package_of(rel: str) -> str:
    """Top-level package of a relative path: ``"email/mime/text.py"`` -> ``"email"``, ``"os.py"`` -> ``"os"``."""
    head, _, rest = rel.partition("/")
    return head if rest else head.removesuffix(".py")


def list_files(root: Path | str | None = None, exclude: tuple[str, ...] = DEFAULT_EXCLUDE) -> list[str]:
    """Sorted relative POSIX paths of the ``*.py`` files under ``root`` (default: the stdlib), without
    ``EXCLUDED_DIRS`` and the top-level packages matching a glob of ``exclude``."""
    root = stdlib_root() if root is None else Path(root)
    if not root.is_dir():
        raise bad("corpus root", str(root), "must be a directory", RopeInputError)
    out = []
    for d, dirs, files in os.walk(root, followlinks=False):
        rel = Path(d).relative_to(root).parts
        if any(part in EXCLUDED_DIRS for part in rel):
            dirs[:] = []
            continue
        out += ["/".join((*rel, f)) for f in files if f.endswith(".py") and (Path(d) / f).is_file()]
    return sorted(f for f in out if not any(fnmatch.fnmatchcase(package_of(f), g) for g in exclude))


def _hash_key(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


def split_packages(sizes: dict[str, int], val_frac: float, test_frac: float) -> dict[str, str]:
    """``{package: split}``: packages in ``sha256(name)`` order fill ``test`` to ``>= test_frac`` of the
    bytes, then ``val`` to ``>= val_frac``; the rest is ``train``."""
    total = sum(sizes.values())
    out, filled, split = {}, 0, "test"
    for name in sorted(sizes, key=_hash_key):
        if split == "test" and filled >= test_frac * total:
            split, filled = "val", 0
        if split == "val" and filled >= val_frac * total:
            split = "train"
        out[name] = split
        filled += sizes[name]
    return out


def file_list_sha256(files: list[str]) -> str:
    """SHA-256 of the relative paths joined by newlines (UTF-8)."""
    return hashlib.sha256("\n".join(files).encode()).hexdigest()


def encode(data: bytes) -> np.ndarray:
    """Bytes -> token ids (``uint16``): each byte is its own token."""
    return np.frombuffer(bytes(data), dtype=np.uint8).astype(np.uint16)


def decode(ids) -> bytes:
    """Token ids -> bytes, the specials (``EOS``) dropped."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= VOCAB):
        raise bad("ids", f"[{ids.min()}, {ids.max()}]", f"must be token ids in [0, {VOCAB})", RopeInputError)
    return ids[ids < 256].astype(np.uint8).tobytes()


def join_files(contents: list[bytes]) -> np.ndarray:
    """One token stream: each file's bytes followed by ``EOS``."""
    parts = [np.append(encode(c), np.uint16(EOS)) for c in contents]
    return np.concatenate(parts) if parts else np.zeros(0, np.uint16)


def split_files(ids) -> list[bytes]:
    """Inverse of ``join_files``: the files of a stream that ends with ``EOS``."""
    ids = np.asarray(ids)
    ends = np.flatnonzero(ids == EOS)
    starts = np.concatenate([[0], ends[:-1] + 1])
    return [decode(ids[a:b]) for a, b in zip(starts, ends, strict=True)]


def documents(streams: list[np.ndarray], length: int, n: int, what: str = "documents") -> np.ndarray:
    """``(n, length)`` documents: every stream cut into consecutive non-overlapping pieces of ``length``
    tokens (a remainder shorter than ``length`` is dropped), then ``n`` of all pieces, evenly spaced
    in stream order (piece ``i * total // n``)."""
    pieces = [s[: len(s) // length * length].reshape(-1, length) for s in streams]
    pieces = np.concatenate(pieces) if pieces else np.zeros((0, length), np.uint16)
    if len(pieces) < n:
        raise bad(
            what,
            n,
            f"must be at most {len(pieces)}: the split has {len(pieces)} pieces of {length} tokens "
            "(lower the count or the longest length, or raise the split's fraction)",
            RopeInputError,
        )
    return pieces[np.arange(n) * len(pieces) // n]


@dataclass(frozen=True)
class Corpus:
    """The files of each split and their token streams, read once."""

    root: str
    files: dict[str, list[str]]  # split -> sorted relative paths
    packages: dict[str, str]  # package -> split
    streams: dict[str, dict[str, np.ndarray]] = field(repr=False)  # split -> package -> stream
    info: dict = field(default_factory=dict)

    def train_stream(self) -> np.ndarray:
        """All training files in path order (each followed by ``EOS``), as one stream."""
        return np.concatenate(list(self.streams["train"].values()))

    def docs(self, split: str, length: int, n: int, what: str | None = None) -> np.ndarray:
        """``documents`` of ``split`` (one package's stream at a time, packages in name order); an
        error names ``what`` (e.g. the flag that set ``n``)."""
        streams = [self.streams[split][p] for p in sorted(self.streams[split])]
        return documents(streams, length, n, what or f"{split} documents")


def load_corpus(
    root: Path | str | None = None,
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE,
    val_frac: float = 0.05,
    test_frac: float = 0.1,
) -> Corpus:
    """Read and split the corpus under ``root`` (default: the stdlib); ``info`` describes it."""
    root = stdlib_root() if root is None else Path(root)
    files = list_files(root, tuple(exclude))
    if not files:
        raise bad("corpus root", str(root), "must hold *.py files outside the excluded directories", RopeInputError)
    contents = {f: (root / f).read_bytes() for f in files}
    sizes: dict[str, int] = {}
    for f, c in contents.items():
        sizes[package_of(f)] = sizes.get(package_of(f), 0) + len(c)
    packages = split_packages(sizes, val_frac, test_frac)
    by_split = {s: [f for f in files if packages[package_of(f)] == s] for s in SPLITS}
    streams: dict[str, dict[str, np.ndarray]] = {s: {} for s in SPLITS}
    for pkg in sorted(packages):
        streams[packages[pkg]][pkg] = join_files([contents[f] for f in files if package_of(f) == pkg])
    content = hashlib.sha256()
    for f in files:
        content.update(f.encode() + b"\0" + hashlib.sha256(contents[f]).digest())
    info = {
        "source": "Python standard library sources (*.py)",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "n_files": len(files),
        "file_list_sha256": file_list_sha256(files),
        "content_sha256": content.hexdigest(),
        "excluded_dirs": list(EXCLUDED_DIRS),
        "exclude": list(exclude),
        "split_rule": "packages in sha256(name) order fill test, then val, by bytes; the rest is train",
        "splits": {
            s: {
                "files": len(by_split[s]),
                "packages": sum(1 for p in packages.values() if p == s),
                "tokens": int(sum(len(v) for v in streams[s].values())),
            }
            for s in SPLITS
        },
        "test_packages": sorted(p for p, s in packages.items() if s == "test"),
        "val_packages": sorted(p for p, s in packages.items() if s == "val"),
    }
    return Corpus(str(root), by_split, packages, streams, info)
