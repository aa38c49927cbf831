"""Cross-framework test runs: one session per backend, each installing only its framework.

    nox                                    # everything below that is on by default
    nox -s tests                           # NumPy-only core tests (seconds)
    nox -s "conformance(backend='torch')"  # the Hypothesis suite against one backend
    nox -s "keras(keras_backend='jax')"    # rrope_keras on one Keras backend
    nox -s conformance -- -x               # extra args go to pytest

``RROPE_TORCH`` overrides the torch requirement (default ``torch==2.13.0``, the CPU build this
project's CI machines install from local disk; elsewhere e.g. ``RROPE_TORCH=torch``).
"""

from __future__ import annotations

import glob
import os
import sys

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "tests", "hf", "conformance", "keras", "mlx_lm", "posgen", "docs"]

TORCH = os.environ.get("RROPE_TORCH", "torch==2.13.0")
MLX = "mlx" if sys.platform == "darwin" else "mlx[cpu]"
#: What each backend's session installs besides the package (never the package's extras: those
#: do not pin a CPU build). "numpy" is the reference itself.
FRAMEWORK = {
    "numpy": [],
    # triton (which CUDA builds of torch bring anyway) lets the CPU tests run the fused kernel's
    # logic in Triton's interpreter.
    "torch": [TORCH] + (["triton"] if sys.platform.startswith("linux") else []),
    "tensorflow": ["tensorflow-cpu" if sys.platform.startswith("linux") else "tensorflow"],
    "mlx": [MLX],
    "jax": ["jax[cpu]", "flax"],  # flax: rrope_jax.nnx's tests
}
BACKENDS = list(FRAMEWORK)
#: Keras backends rrope_keras runs on, each with the framework its conformance session installs
#: (torch without triton: rrope_keras has no kernel of its own).
KERAS_BACKENDS = {"jax": ["jax[cpu]"], "torch": [TORCH], "tensorflow": FRAMEWORK["tensorflow"]}


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the whole tree."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def tests(session: nox.Session) -> None:
    """The reference's own tests, NumPy only (transformers comparisons skip here; see `hf`)."""
    session.install(".[test]")
    session.run("pytest", "tests", *session.posargs)


@nox.session
def hf(session: nox.Session) -> None:
    """The reference against transformers' own functions (CPU torch + transformers)."""
    session.install(TORCH)
    session.install(".[test,hf]")
    session.run("pytest", "tests/test_hf.py", *session.posargs)
    hf_tests = ["tests/backends/test_torch_transformers.py", "tests/backends/test_torch_hf_exact.py"]
    session.run("pytest", *hf_tests, *session.posargs, env={"RROPE_BACKEND": "torch"})


@nox.session
def mlx_lm(session: nox.Session) -> None:
    """rrope_mlx.mlx_lm against mlx-lm's initialize_rope (mlx-lm brings transformers)."""
    session.install(MLX, "mlx-lm", ".[test]")
    session.run("pytest", "tests/backends/test_mlx_lm.py", *session.posargs, env={"RROPE_BACKEND": "mlx"})


@nox.session
@nox.parametrize("backend", BACKENDS)
def conformance(session: nox.Session, backend: str) -> None:
    """The conformance suite (and the backend's own tests) against one backend."""
    session.install(*FRAMEWORK[backend], ".[test]")
    paths = ["conformance"] + sorted(glob.glob(f"tests/backends/test_{backend}*.py"))
    session.run("pytest", *paths, *session.posargs, env={"RROPE_BACKEND": backend})


@nox.session
@nox.parametrize("keras_backend", list(KERAS_BACKENDS))
def keras(session: nox.Session, keras_backend: str) -> None:
    """rrope_keras (the conformance suite and its own tests) on one Keras backend, only its framework installed."""
    session.install(*KERAS_BACKENDS[keras_backend], ".[keras,test]")
    env = {"RROPE_BACKEND": "keras", "KERAS_BACKEND": keras_backend}
    session.run("pytest", "conformance", "tests/backends/test_keras.py", *session.posargs, env=env)


@nox.session
def posgen(session: nox.Session) -> None:
    """The experiments: rrope_posgen (torch, matplotlib, tqdm: the posgen extra) and rrope_lm_tstl
    (also transformers: the hf extra)."""
    session.install(TORCH, "matplotlib", "tqdm", ".[test,hf]")
    session.run(
        "pytest", "tests/test_posgen.py", "tests/test_posgen_attribution.py", "tests/test_lm_tstl.py", *session.posargs
    )


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site (mkdocs-material + mkdocstrings) with --strict."""
    session.install(".[docs]")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site", *session.posargs, env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def mutation(session: nox.Session) -> None:
    """Mutation testing of the core's math against tests/ with mutmut (opt-in, slow: docs/mutation.md).

    The package is not installed: mutmut copies rrope_core/ to mutants/ and the tests must import
    that copy. ``nox -s mutation -- "rrope_core.phases*"`` tests one module's mutants.
    """
    session.install("numpy", "pytest", "hypothesis", "mutmut==3.8.1")
    # tests/ import rrope_conformance (conformance/ installed under that name): link mutants/'s copy.
    os.makedirs("mutants", exist_ok=True)
    if not os.path.lexists("mutants/rrope_conformance"):
        os.symlink("conformance", "mutants/rrope_conformance")
    # PYTHONPATH: the tests' child processes (python -c, python -m rrope_core.cli) import the copy too.
    env = {"PYTHONPATH": os.path.abspath("mutants"), "HYPOTHESIS_PROFILE": "ci"}
    session.run("mutmut", "run", *session.posargs, env=env)
    session.run("mutmut", "results", env=env)
