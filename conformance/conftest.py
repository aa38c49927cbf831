"""Loads the backend under test (``RROPE_BACKEND``) and the Hypothesis profiles."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

import rrope_core as rr

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", max_examples=40, derandomize=True, print_blob=True, **_common)
settings.register_profile("nightly", max_examples=1500, print_blob=True, **_common)
settings.register_profile("dev", max_examples=15, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

BACKEND_NAME = os.environ.get(rr.dispatch.ENV_VAR, "numpy")
DEVICE = os.environ.get("RROPE_DEVICE") or None

collect_ignore_glob = [] if BACKEND_NAME == "numpy" else ["meta_tests/*"]


def pytest_report_header(config):
    return f"rrope conformance: backend={BACKEND_NAME!r} device={DEVICE!r}"


@pytest.fixture(scope="session")
def B():
    """The backend module under test."""
    return rr.backend(BACKEND_NAME)


@pytest.fixture(scope="session")
def device():
    return DEVICE
