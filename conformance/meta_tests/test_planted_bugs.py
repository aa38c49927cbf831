"""The suite has teeth: each planted bug fails it; the documented out-of-tree port passes it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from . import BUGS

KIT = Path(__file__).resolve().parents[1]  # conformance/ in a clone, rrope_conformance/ installed
ROOT = KIT.parent
EXAMPLE = ROOT / "examples" / "porting"  # only in a clone


def run_suite(backend: str, **env) -> subprocess.CompletedProcess:
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
    ]
    full_env = {**os.environ, "RROPE_BACKEND": backend, "HYPOTHESIS_PROFILE": "ci", **env}
    return subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("bug", BUGS)
def test_planted_bug_fails_the_suite(bug):
    res = run_suite(f"{__package__}.planted", RROPE_PLANTED_BUG=bug)
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
