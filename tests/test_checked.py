"""rrope_core.checked: the checked positions mode's switches (the backends' side: conformance/)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

import rrope_core as rr


def _child(value: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RROPE_CHECK_POSITIONS": value}
    code = "import rrope_core as rr; print(rr.positions_checked())"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("value", "expected"), [("1", "True"), ("on", "True"), ("0", "False"), ("", "False")])
def test_environment_variable_sets_the_default(value, expected):
    done = _child(value)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected


def test_bad_environment_value_names_the_variable():
    done = _child("maybe")
    assert done.returncode != 0
    assert "RROPE_CHECK_POSITIONS='maybe'" in done.stderr and "must be one of" in done.stderr


def test_context_is_local_to_its_thread():
    seen, default = [], rr.positions_checked()
    with rr.checked_positions(not default):
        t = threading.Thread(target=lambda: seen.append(rr.positions_checked()))
        t.start()
        t.join()
        assert rr.positions_checked() is not default
    assert seen == [default]  # a new thread starts from the process default, not this context


def test_set_default_and_bad_arguments():
    before = rr.positions_checked()
    try:
        rr.set_checked_positions(True)
        assert rr.positions_checked()
        with rr.checked_positions(False):
            assert not rr.positions_checked()
    finally:
        rr.set_checked_positions(before)
    with pytest.raises(rr.RopeInputError, match="enabled=1"):
        rr.set_checked_positions(1)
    with pytest.raises(rr.RopeInputError, match="enabled='yes'"):
        with rr.checked_positions("yes"):
            pass


def test_reference_refuses_negative_positions_in_either_mode():
    cfg = rr.RopeConfig(head_dim=8)
    for mode in (False, True):
        with rr.checked_positions(mode), pytest.raises(rr.RopeInputError, match="<min -1>"):
            rr.apply_rotary([[0.0] * 8], [-1], cfg)
