"""Loads the backend under test (``RROPE_BACKEND``) and the Hypothesis profiles."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Phase, settings

import rrope_core as rr

_NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", max_examples=40, derandomize=True, print_blob=True, **_common)
settings.register_profile("nightly", max_examples=10_000, print_blob=True, **_common)
settings.register_profile("dev", max_examples=15, **_common)
# The meta tests' planted bugs only need to fail: the ci draws, without shrinking the failure found.
settings.register_profile(
    "meta", max_examples=40, derandomize=True, phases=[Phase.explicit, Phase.reuse, Phase.generate], **_common
)
# Mutation runs (noxfile.py): the ci draws without shrinking. A mutant is killed by the first failing
# draw either way (derandomized: the same draws as ci, so the same mutants die); shrinking that
# failure, one trace per step under a JIT, is what took minutes per mutant.
settings.register_profile("mutation", parent=settings.get_profile("ci"), phases=_NO_SHRINK)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

BACKEND_NAME = rr.dispatch.DEFAULT  # RROPE_BACKEND as dispatch reads it (stripped; empty means numpy)
DEVICE = os.environ.get("RROPE_DEVICE") or None

# The suite's own tests build their backends in subprocesses and never use the one under test:
# they run once, in the run of the reference (named "numpy" or by its module path).
_MODULE = rr.dispatch.BUILTIN.get(BACKEND_NAME, (BACKEND_NAME,))[0]
collect_ignore_glob = [] if _MODULE == rr.dispatch.BUILTIN["numpy"][0] else ["meta_tests/*"]


def pytest_report_header(config):
    return f"rrope conformance: backend={BACKEND_NAME!r} device={DEVICE!r}"


@pytest.fixture(scope="session")
def B():
    """The backend module under test."""
    return rr.backend(BACKEND_NAME)


@pytest.fixture(scope="session")
def device():
    return DEVICE
