"""rrope_jax under sharding (context parallelism): q, k and positions sharded along the sequence
give the single-device result, with no collective compiled in.

The checks run in one child process (``jax_sharded_child.py``) with 4 host CPU devices: JAX reads
``--xla_force_host_platform_device_count`` only when it starts, and this pytest process may have
started it already. Tolerance: conformance/tolerance.py's bound for float32 (the reference's
float64 rotation at the same positions), as in test_jax.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("jax", reason="rrope_jax needs jax")
pytest.importorskip("rrope_jax", reason="rrope_jax is not installed")

CHILD = Path(__file__).with_name("jax_sharded_child.py")
CHECKS = ["check_jit_sharded", "check_shard_map_context_parallel", "check_grad_sharded"]
CFGS = ["resonance", "plain"]


@pytest.fixture(scope="module")
def results():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    env.pop("JAX_ENABLE_X64", None)
    done = subprocess.run([sys.executable, str(CHILD)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"child failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("cfg", CFGS)
@pytest.mark.parametrize("check", CHECKS)
def test_sharded_equals_reference_without_collectives(results, check, cfg):
    r = results[f"{check}[{cfg}]"]
    assert r["worst"] <= 0.0, f"{check}[{cfg}]: worst |out - ref| - tol = {r['worst']:.3g}"
    assert r["collectives"] == [], f"{check}[{cfg}] compiled collectives {r['collectives']}"
    assert "seq" in r["spec"], f"{check}[{cfg}] output not sharded along the sequence: {r['spec']}"


def test_jit_sharded_keeps_four_shards_and_matches_one_device(results):
    for cfg in CFGS:
        r = results[f"check_jit_sharded[{cfg}]"]
        assert r["shards"] == 4
        assert r["single_device_worst"] <= 0.0
