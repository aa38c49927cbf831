"""``rrope posgen --attribute``: sign tests, what a directory changed, paired shifts (NumPy only:
results are read without torch). Expected values are worked by hand in the comments."""

import json

import pytest

from rrope_core.cli import main
from rrope_core.errors import RopeInputError
from rrope_posgen.attribution import attribute, changed, final_weights, sign_test
from rrope_posgen.protocol import CLEAN


@pytest.mark.parametrize(
    "diffs, p",
    [
        ([0.1, 0.2, 0.3], 0.25),  # n=3, k=3: 2 * P(X <= 0) = 2/8
        ([0.1, -0.2, 0.3], 1.0),  # k=1: 2 * (1 + 3)/8 = 1
        ([0.1, 0.2, 0.3, 0.4, -0.5], 0.375),  # n=5, k=4: 2 * (1 + 5)/32
        ([-1.0] * 6, 0.03125),  # n=6, k=0: 2/64
        ([0.0, 0.0, 0.2], 1.0),  # zeros dropped: n=1, k=1: min(1, 2 * 1/2)
        ([0.0, 0.0], 1.0),  # nothing left: no evidence either way
    ],
)
def test_sign_test_matches_the_binomial_by_hand(diffs, p):
    assert sign_test(diffs) == pytest.approx(p, rel=1e-15)


def test_sign_test_refuses_non_finite_input():
    with pytest.raises(RopeInputError, match="^diffs="):
        sign_test([0.1, float("nan")])


def test_changed_names_only_the_fields_that_differ():
    base = {"bos": False, "n_layers": 6, "precision": "bf16"}
    assert changed(base, dict(base)) == "(none)"
    assert changed(base, {**base, "n_layers": 2, "bos": True}) == "bos=True, n_layers=2"


def _runs(ood: dict, **protocol) -> list[dict]:
    proto = {**CLEAN.to_dict(), **protocol}
    return [
        {"task": t, "variant": v, "seed": s, "ood_acc": a, "protocol": proto, "precision": "bf16"}
        for (t, v, s), a in ood.items()
    ]


def test_attribute_pairs_by_seed_over_the_seeds_both_ran():
    base = _runs(
        {
            ("cot", "rope", 0): 0.9, ("cot", "resonance", 0): 0.8,
            ("cot", "rope", 1): 0.9, ("cot", "resonance", 1): 0.7,
            ("cot", "rope", 2): 0.5, ("cot", "resonance", 2): 0.6,
        }
    )  # fmt: skip
    knob = _runs(
        {
            ("cot", "rope", 0): 0.6, ("cot", "resonance", 0): 0.7,
            ("cot", "rope", 1): 0.5, ("cot", "resonance", 1): 0.8,
            ("cot", "rope", 3): 0.1, ("cot", "resonance", 3): 0.2,  # seed 3: not in base, left out
        },
        n_layers=2,
    )  # fmt: skip
    (row,) = attribute(base, knob)  # no yarn runs: no resonance_yarn row
    assert row["task"] == "cot" and row["comparison"] == "resonance - rope" and row["seeds"] == [0, 1]
    # D0 = (-0.1, -0.2), D1 = (+0.1, +0.3), shift = (+0.2, +0.5)
    assert row["base_diff"] == pytest.approx(-0.15) and row["base_higher"] == 0
    assert row["diff"] == pytest.approx(0.2) and row["higher"] == 2 and row["p_diff"] == 0.5
    assert row["shift"] == pytest.approx(0.35) and row["shift_up"] == 2 and row["p_shift"] == 0.5


def _write(d, runs):
    (d / "runs").mkdir(parents=True)
    for r in runs:
        rec = {**r, "id_acc": 1.0, "acc_by_position": [1.0], "train_s": 1.0, "epoch_s": [1.0]}
        (d / "runs" / f"{r['task']}-{r['variant']}-seed{r['seed']}.json").write_text(json.dumps(rec))


def test_cli_prints_the_table_and_refuses_bad_directories(tmp_path, capsys):
    pytest.importorskip("torch", reason="`rrope posgen` (every mode) needs torch")
    ood = {("recursive", v, s): a for s in (0, 1, 2) for v, a in (("yarn", 0.9), ("resonance_yarn", 0.8))}
    base, knob, mixed = tmp_path / "base", tmp_path / "knob", tmp_path / "mixed"
    _write(base, _runs(ood))
    _write(knob, _runs({k: a + (0.15 if k[1] == "resonance_yarn" else 0.0) for k, a in ood.items()}, bos=True))
    assert main(["posgen", "--attribute", str(base), str(knob)]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if "resonance_yarn - yarn" in line]
    # D0 = -0.1 on 3 seeds, D1 = +0.05 on 3 seeds, shift +0.15 on 3: p = 0.25 each
    assert row == [
        f"| `{knob}` | bos=True | recursive | resonance_yarn - yarn | 3 | -0.100 (0/3) | +0.050 (3/3) | 0.25 | "
        "+0.150 (3/3) | 0.25 |"
    ]
    _write(mixed, _runs({("cot", "rope", 0): 0.5}) + _runs({("cot", "resonance", 0): 0.5}, bos=True))
    assert main(["posgen", "--attribute", str(base), str(mixed)]) == 2
    err = capsys.readouterr().err
    assert f"--attribute='{mixed}' is invalid" in err and "must hold runs of one protocol and precision" in err
    assert main(["posgen", "--attribute", str(base), str(tmp_path / "missing")]) == 2
    assert f"--attribute='{tmp_path / 'missing'}' is invalid" in capsys.readouterr().err
    assert main(["posgen", "--attribute", str(base)]) == 2
    assert "needs a base directory and at least one more" in capsys.readouterr().err


def test_best_id_runs_are_also_compared_with_their_own_final_weights(tmp_path, capsys):
    pytest.importorskip("torch", reason="`rrope posgen` (every mode) needs torch")
    ood = {("cot", v, s): a for s in (0, 1, 2) for v, a in (("rope", 0.9), ("resonance", 0.8))}
    base, best = tmp_path / "base", tmp_path / "best"
    _write(base, _runs(ood))
    runs = _runs({k: a + (0.2 if k[1] == "resonance" else 0.0) for k, a in ood.items()}, checkpoint="best_id")
    for r in runs:  # final weights: the best minus 0.1 for resonance, unchanged for rope
        r["final_weights"] = {"ood_acc": r["ood_acc"] - (0.1 if r["variant"] == "resonance" else 0.0)}
    assert final_weights(runs)[0]["ood_acc"] == runs[0]["final_weights"]["ood_acc"]
    older = _runs({("cot", "rope", 5): 0.5})  # a run written before the field existed
    assert final_weights(older) is None
    assert [r["seed"] for r in final_weights(runs[:1] + older)] == [runs[0]["seed"]]  # only runs that have it
    extra = _runs({("cot", v, 3): a for v, a in (("rope", 0.9), ("resonance", 0.7))}, checkpoint="best_id")
    _write(best, runs + extra)  # seed 3: no final weights recorded (and not in base): in no row
    assert main(["posgen", "--attribute", str(base), str(best)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "resonance - rope" in line]
    # against base: D0 = -0.1, D1 = +0.1, shift +0.2; against its final weights: D0 = 0.0, shift +0.1
    assert rows == [
        f"| `{best}` | checkpoint=best_id | cot | resonance - rope | 3 | -0.100 (0/3) | +0.100 (3/3) | 0.25 | "
        "+0.200 (3/3) | 0.25 |",
        f"| `{best}`, base: its final weights | checkpoint=best_id (same trainings) | cot | resonance - rope | 3 | "
        "+0.000 (0/3) | +0.100 (3/3) | 0.25 | +0.100 (3/3) | 0.25 |",
    ]
