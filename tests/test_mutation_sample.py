"""tools/mutation_sample.py: the seeded sample and the Wilson interval it reports (docs/mutation.md)."""

import importlib.util
import json
import os

import pytest

_PATH = os.path.join(os.path.dirname(__file__), os.pardir, "tools", "mutation_sample.py")
_spec = importlib.util.spec_from_file_location("mutation_sample", _PATH)
ms = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ms)


def test_wilson_matches_its_closed_forms():
    # k = 0: upper bound z^2 / (n + z^2); k = n: lower bound n / (n + z^2); z = 1.959964 (95 %).
    z2 = 1.959964**2
    assert ms.wilson(0, 10) == pytest.approx((0.0, z2 / (10 + z2)), abs=1e-12)
    assert ms.wilson(20, 20) == pytest.approx((20 / (20 + z2), 1.0), abs=1e-12)
    lo, hi = ms.wilson(18, 20)
    assert lo < 18 / 20 < hi


def _codes():
    codes = {f"pkg.a.x_f__mutmut_{i}": 1 for i in range(1, 31)}
    codes.update({f"pkg.b.x_g__mutmut_{i}": 0 for i in range(1, 6)})
    return codes


def test_pick_is_seeded_per_module_without_repeats():
    codes = _codes()
    first = ms.pick(codes, 10, 0, None)
    assert first == ms.pick(codes, 10, 0, None)
    assert first != ms.pick(codes, 10, 1, None)
    assert len(set(first)) == len(first) == 10 + 5  # module b has only 5: all of them
    assert sum(x.startswith("pkg.a.") for x in first) == 10
    assert set(ms.pick(codes, 4, 0, None)) < set(first) < set(ms.pick(codes, 20, 0, None))  # nested
    assert ms.pick(codes, 10, 0, ["pkg.b"]) == sorted(x for x in codes if x.startswith("pkg.b."))
    with pytest.raises(SystemExit, match="pkg.c"):
        ms.pick(codes, 3, 0, ["pkg.c"])


def test_report_tallies_each_module(tmp_path, monkeypatch):
    codes = {"pkg.a.x_f__mutmut_1": 1, "pkg.a.x_f__mutmut_2": 0, "pkg.a.x_f__mutmut_3": 36, "pkg.a.x_f__mutmut_4": None}
    (tmp_path / "mutants" / "pkg").mkdir(parents=True)
    (tmp_path / "mutants" / "pkg" / "a.py.meta").write_text(json.dumps({"exit_code_by_key": codes}))
    monkeypatch.chdir(tmp_path)
    table = ms.report(ms.exit_codes(), sorted(codes))
    # 1 killed of the 3 run (the fourth not run): 33 %.
    assert "| pkg.a | 4 | 4 | 1 / 1 / 1 / 1 | 33 % (" in table
    assert "survived: pkg.a.x_f__mutmut_2" in table
    with pytest.raises(SystemExit, match="not generated"):
        ms.report(codes, ["pkg.a.x_f__mutmut_9"])
