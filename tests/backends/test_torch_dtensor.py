"""rrope_torch on DTensors: 2 CPU processes over gloo (and 2 GPUs over NCCL where a machine has
them: skipped otherwise), q/k sharded on heads or on the sequence
(context parallelism) with global positions give DTensors with the same placements, equal to the
reference, with no collective issued by the rotation (``CommDebugMode``); the gradient too.

The ranks run ``torch_dtensor_child.py`` in fresh processes. Tolerance: conformance/tolerance.py's
float32 bound against the float64 reference at the same positions.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="rrope_torch needs torch")
dist = pytest.importorskip("torch.distributed", reason="needs torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available in this torch build", allow_module_level=True)

CHILD = Path(__file__).with_name("torch_dtensor_child.py")
CFGS = ["resonance_yarn", "plain", "dynamic_ntk"]
CASES = ["heads", "sequence", "sequence_inverse", "qk", "qk_mixed", "grad"]


def _nccl_missing() -> str | None:
    """Why the NCCL run cannot happen here (None: it can)."""
    if not dist.is_nccl_available():
        return "this torch build has no NCCL"
    if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        return f"NCCL needs 2 CUDA devices, this machine has {torch.cuda.device_count()}"
    return None


@pytest.fixture(scope="module", params=["gloo", "nccl"])
def results(request, tmp_path_factory):
    if request.param == "nccl" and (why := _nccl_missing()):
        pytest.skip(why)
    store = tmp_path_factory.mktemp(request.param) / "store"
    procs = [
        subprocess.Popen(
            [sys.executable, str(CHILD), str(rank), str(store), request.param],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, f"rank failed ({p.returncode}):\n{out}\n{err[-4000:]}"
    return json.loads(outs[0][0].strip().splitlines()[-1])


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("cfg", CFGS)
def test_dtensor_rotation_is_local_and_exact(results, cfg, case):
    r = results[cfg][case]
    assert r["dtensor"], f"{cfg}/{case}: the output is not a DTensor"
    assert r["placements"] == "(Shard(dim=1),)", f"{cfg}/{case}: placements {r['placements']}"
    assert r["comms"] == 0, f"{cfg}/{case}: the rotation issued {r['comms']} collectives"
    assert r["worst"] <= 0.0, f"{cfg}/{case}: worst |out - ref| - tol = {r['worst']:.3g}"


@pytest.mark.parametrize(
    ("case", "text"),
    [
        ("feature_axis", "x.placements=(Shard(dim=2),) is invalid: must not shard the feature"),
        ("inplace", "cannot be rotated in place"),
        ("sharded_positions", "positions.placements=(Shard(dim=0),) is invalid: must be Replicate()"),
    ],
)
def test_dtensor_bad_inputs_name_the_argument(results, case, text):
    assert text in results["errors"][case]
