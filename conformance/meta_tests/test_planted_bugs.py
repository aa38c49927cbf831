"""The suite has teeth: each planted bug fails it; correct ports pass it, whatever their name.

``wrapped`` (the reference under another module and name) is the control of the planted ports:
they are NumPy-array ports too, so a test failing them for anything but their bug fails it as well.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from . import BUGS

KIT = Path(__file__).resolve().parents[1]  # conformance/ in a clone, rrope_conformance/ installed
ROOT = KIT.parent
EXAMPLE = ROOT / "examples" / "porting"  # only in a clone


def run_suite(backend: str, *args: str, **env) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(KIT),
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--ignore={KIT / 'meta_tests'}",
        *args,
    ]
    full_env = {**os.environ, "RROPE_BACKEND": backend, "HYPOTHESIS_PROFILE": "ci", **env}
    return subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("bug", BUGS)
def test_planted_bug_fails_the_suite(bug):
    res = run_suite(f"{__package__}.planted", RROPE_PLANTED_BUG=bug, HYPOTHESIS_PROFILE="meta")
    tail = res.stdout[-2000:]
    assert res.returncode == 1, (
        f"planted bug {bug!r} was not caught (exit {res.returncode}):\n{tail}{res.stderr[-1000:]}"
    )
    assert " failed" in tail, tail


@pytest.mark.skipif(not EXAMPLE.is_dir(), reason="examples/porting is in the repository, not in the installed kit")
def test_out_of_tree_example_port_passes():
    path = os.pathsep.join(filter(None, [str(EXAMPLE), os.environ.get("PYTHONPATH")]))
    res = run_suite("rrope_example_port", PYTHONPATH=path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-1000:]


#: The tests a correct port with NumPy arrays and no autodiff skips: dispatch sends NumPy arrays to
#: the reference, NumPy is the only framework its arrays bring, and it has no grad_apply_rotary.
NUMPY_ARRAY_PORT_SKIPS = {"test_contract.py", "test_errors.py", "test_autodiff.py"}


def test_correct_port_with_numpy_arrays_passes():
    res = run_suite(f"{__package__}.wrapped", "-rs")
    out = res.stdout[-4000:] + res.stderr[-1000:]
    assert res.returncode == 0 and " passed" in res.stdout, out
    skipped = {
        Path(line.split()[2].split(":")[0]).name for line in res.stdout.splitlines() if line.startswith("SKIPPED")
    }
    assert skipped == NUMPY_ARRAY_PORT_SKIPS, out
