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
import shutil
import sys
import textwrap
from pathlib import Path

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
    # experiments/: tests/test_posgen_attribution.py imports rrope_posgen (NumPy only) without torch.
    path = os.pathsep.join(os.path.abspath(p) for p in ("mutants", "experiments"))
    env = {"PYTHONPATH": path, "HYPOTHESIS_PROFILE": "mutation"}
    _run_mutmut(session, env)


SAMPLER = os.path.abspath("tools/mutation_sample.py")


def _run_mutmut(session: nox.Session, env: dict) -> None:
    """``mutmut run`` with the posargs, then ``mutmut results``; or, for ``-- --sample N [--seed S]
    [--module M ...] [other mutmut run options]``, a seeded sample of N mutants per module (of each
    module M if given; tools/mutation_sample.py) and the sample's score per module."""
    args = list(session.posargs)
    if "--sample" not in args:
        session.run("mutmut", "run", *args, env=env)
        session.run("mutmut", "results", env=env)
        return
    pick = []
    for option, flag in (("--sample", "--n"), ("--seed", "--seed"), ("--module", "--module")):
        while option in args:
            i = args.index(option)
            if i + 1 == len(args):
                session.error(f"{option} needs a value (--sample N [--seed S] [--module rrope_jax.phases])")
            pick += [flag, args[i + 1]]
            del args[i : i + 2]
    # mutmut 3.8.1 has no command that only generates the mutants: a filter that matches none
    # generates them all, then stops with an assertion (exit 1) before any test runs.
    session.run("mutmut", "run", "__generate_only__", env=env, success_codes=[0, 1], silent=True)
    names = session.run("python", SAMPLER, "pick", *pick, env=env, silent=True).split()
    session.run("mutmut", "run", *args, *names, env=env)
    session.run("python", SAMPLER, "report", *names, env=env)


#: Per backend: the modules mutation_backend mutates (rotation, phases, kernels), the test files
#: besides conformance/ that it runs, what mutmut's fork server imports before forking a worker, and
#: extra pytest arguments. torch: tests of torch.compile(fullgraph=True) fail under mutmut (Dynamo
#: cannot trace its trampolines: the unmutated run fails too), so they are deselected there.
MUTATION_BACKENDS = {
    "jax": (["rotation.py", "phases.py", "pallas_kernel.py"], ["test_jax.py"], ["jax", "jax.numpy"], []),
    # triton_kernel.py: mutmut skips decorated functions, so the @triton.jit kernels themselves are
    # not mutated; its launch helpers are (the interpreter test runs the kernel's logic on CPU).
    # table_op.py, hf_exact.py: the exact phases transformers models get, against their tests.
    "torch": (
        ["rotation.py", "phases.py", "constants.py", "fused.py", "triton_kernel.py", "table_op.py", "hf_exact.py"],
        ["test_torch.py", "test_torch_triton.py", "test_torch_dtensor.py", "test_torch_hf_exact.py"],
        ["torch", "transformers"],
        ["-k", "not torch_compile"],
    ),
    "tensorflow": (["rotation.py", "phases.py", "frequencies.py"], ["test_tensorflow.py"], ["tensorflow"], []),
    "mlx": (["rotation.py", "phases.py", "fast.py"], ["test_mlx.py"], ["mlx.core"], []),
}

#: What a backend's mutated modules need besides its framework (pyproject's extras).
MUTATION_EXTRAS = {"torch": ["transformers>=4.45"]}

#: Files the tests above run in child processes (not collected): copied beside them. mutmut's stats
#: see only the parent, so the DTensor ranks' mutants are judged by hand (docs/mutation.md, †).
MUTATION_HELPERS = {"torch": ["torch_dtensor_child.py"]}

#: The workspace's conftest.py. mutmut's stats run (one process, every test) learns which tests
#: reach each function from its trampolines, which run only when Python code runs: a jax.jit /
#: torch.compile / lru_cache filled by an earlier test would hide that a later test reaches the function,
#: and mutmut would not run that test against its mutants. So the stats run clears those caches
#: before each test. Mutant runs need nothing: each is a fresh process forked from a server that
#: has only imported modules (forkserver, warmup "import"), so every trace runs the mutant's code.
#: But a trace happens once per program in that process: a test of what happens while tracing (a
#: warning) clears the caches itself, since an earlier test may have traced the same program.
_MUTATION_CONFTEST = """\
import os

import pytest


@pytest.fixture(autouse=True)
def _fresh_traces_for_mutmut_stats():
    if os.environ.get("MUTANT_UNDER_TEST") == "stats":
        import sys

        if "jax" in sys.modules:
            sys.modules["jax"].clear_caches()
        if "torch" in sys.modules and hasattr(sys.modules["torch"], "_dynamo"):
            sys.modules["torch"]._dynamo.reset()
        # Every lru_cache of the packages under test (a cached call hides its callees, e.g.
        # rrope_tensorflow's _frozen behind _constants), and torch's per-device constants.
        for name, module in list(sys.modules.items()):
            if name.startswith("rrope_") and module is not None:
                for value in list(vars(module).values()):
                    if callable(getattr(value, "cache_clear", None)):
                        value.cache_clear()
        getattr(sys.modules.get("rrope_torch.constants"), "_DEVICE_CACHE", {}).clear()
    yield
"""


@nox.session
@nox.parametrize("backend", list(MUTATION_BACKENDS))
def mutation_backend(session: nox.Session, backend: str) -> None:
    """Mutation testing of one backend's rotation, phases and kernel modules against conformance/
    plus that backend's tests (opt-in, slow: docs/mutation.md). ``-- "rrope_jax.phases*"`` picks
    mutants; the workspace (.nox/<session>/tmp/ws) keeps mutmut's results between runs. torch's
    Triton kernel runs on CPU in test_torch_triton.py's interpreter test (it sets TRITON_INTERPRET=1
    for its child process; mutmut's MUTANT_UNDER_TEST reaches that child through the environment).
    """
    modules, tests_files, preload, pytest_args = MUTATION_BACKENDS[backend]
    session.install(
        *FRAMEWORK[backend], *MUTATION_EXTRAS.get(backend, []), "numpy", "pytest", "hypothesis", "mutmut==3.8.1"
    )
    pkg = f"rrope_{backend}"
    ws = os.path.join(session.create_tmp(), "ws")
    os.makedirs(os.path.join(ws, "tests", "backends"), exist_ok=True)
    # The backend flattened to the top level (import rrope_<backend> from mutants/), the reference
    # and the suite beside it; the package itself is never installed (it would shadow mutants/).
    for src, dst in (("rrope_core", "rrope_core"), (f"backends/{pkg}", pkg), ("conformance", "conformance")):
        shutil.copytree(src, os.path.join(ws, dst), dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    names = ["__init__.py", "conftest.py", *tests_files, *MUTATION_HELPERS.get(backend, [])]
    copies = [(os.path.join("tests", "backends", n), os.path.join(ws, "tests", "backends", n)) for n in names]
    copies.append((os.path.join("tests", "conftest.py"), os.path.join(ws, "tests", "conftest.py")))
    conftest = os.path.join(ws, "conftest.py")
    # mutmut's stats (which tests reach each function) miss what a changed test or conftest now
    # reaches (seen: a new check in an existing test was not run against the mutants it kills), so
    # any change to them means a full collection.
    stale = any(os.path.exists(dst) and Path(src).read_bytes() != Path(dst).read_bytes() for src, dst in copies)
    stale = stale or (os.path.exists(conftest) and Path(conftest).read_text() != _MUTATION_CONFTEST)
    stats = os.path.join(ws, "mutants", "mutmut-stats.json")
    if stale and os.path.exists(stats):
        os.remove(stats)
    for src, dst in copies:
        shutil.copy2(src, dst)
    with open(conftest, "w") as f:
        f.write(_MUTATION_CONFTEST)
    with open(os.path.join(ws, "preload.txt"), "w") as f:
        f.write("\n".join(["numpy", "hypothesis", *preload, "rrope_core"]) + "\n")
    only = ", ".join(f'"{pkg}/{m}"' for m in modules)
    tests = ", ".join(f'"tests/backends/{t}"' for t in tests_files)
    extra = "".join(f', "{a}"' for a in pytest_args)
    with open(os.path.join(ws, "pyproject.toml"), "w") as f:
        f.write(
            textwrap.dedent(f"""\
            [tool.mutmut]
            source_paths = ["{pkg}"]
            only_mutate = [{only}]
            also_copy = ["rrope_core", "conformance", "conftest.py"]
            pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"{extra}]
            pytest_add_cli_args_test_selection = ["conformance", {tests}]
            # A fresh process per mutant from a server that imported modules and traced nothing: no
            # jit / tf.function / torch.compile cache of the unmutated code is inherited.
            process_isolation = "forkserver"
            forkserver_warmup = "import"
            preload_modules_file = "preload.txt"
            """)
        )
    os.makedirs(os.path.join(ws, "mutants"), exist_ok=True)
    if not os.path.lexists(os.path.join(ws, "mutants", "rrope_conformance")):
        os.symlink("conformance", os.path.join(ws, "mutants", "rrope_conformance"))
    env = {
        "RROPE_BACKEND": backend,
        "HYPOTHESIS_PROFILE": "mutation",
        "PYTHONPATH": os.path.join(os.path.abspath(ws), "mutants"),
        "JAX_PLATFORMS": "cpu",
    }
    with session.chdir(ws):
        _run_mutmut(session, env)
