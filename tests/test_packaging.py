"""Import hygiene and the console script."""

import subprocess
import sys

import rrope_core as rr


def test_importing_core_imports_no_framework():
    code = "import rrope_core, sys; bad = {'torch','tensorflow','mlx','jax'} & set(sys.modules); assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_version_and_help():
    out = subprocess.run(
        [sys.executable, "-m", "rrope_core.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"rrope {rr.__version__}"
    out = subprocess.run([sys.executable, "-m", "rrope_core.cli", "--help"], capture_output=True, text=True, check=True)
    assert "usage: rrope" in out.stdout
