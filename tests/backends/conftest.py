"""Each framework's own tests run in that framework's session only (``RROPE_BACKEND=<name>``, as nox
does): torch and tensorflow loaded into one process can crash it, and each nox session installs one."""

import os

SELECTED = os.environ.get("RROPE_BACKEND", "")
_TESTS = {
    "torch": "test_torch*.py",
    "tensorflow": "test_tensorflow*.py",
    "mlx": "test_mlx*.py",
    "keras": "test_keras*.py",
}
collect_ignore_glob = [pattern for name, pattern in _TESTS.items() if name != SELECTED]


def pytest_report_header(config):
    skipped = sorted(n for n in _TESTS if n != SELECTED)
    return f"rrope backend tests: running {SELECTED or 'none'}; not collected: {skipped} (set RROPE_BACKEND)"
