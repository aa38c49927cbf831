"""PosGen (rrope_posgen): hand-checked task data, the loss mask, the model variants, and the
CLI end to end (JSON/Markdown/PNG, resume, merge, bad input). Tiny sizes: the module runs in seconds."""

import json
import platform
import sys
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PosGen needs torch")
pytest.importorskip("rrope_torch", reason="rrope_torch is not installed")

from rrope_core.cli import main  # noqa: E402
from rrope_core.errors import RopeInputError  # noqa: E402
from rrope_posgen import protocol as posgen_protocol  # noqa: E402
from rrope_posgen import train as posgen_train  # noqa: E402
from rrope_posgen.cli import _stacks  # noqa: E402
from rrope_posgen.data import COMBINE, TASKS, combination_seeds, far_start, generate, loss_mask, split_seeds  # noqa: E402
from rrope_posgen.model import PosGenTransformer  # noqa: E402
from rrope_posgen.protocol import VARIANTS, rope_config  # noqa: E402
from rrope_posgen.report import setting  # noqa: E402
from rrope_posgen.stacked import StackedPosGen  # noqa: E402
from rrope_posgen.train import masked_loss  # noqa: E402

# Worked by hand from the docstring of posgen/data.py (seeds 1 2 3, sum mod 10).
# j=2, k=1: recursive x3 = x0+x1+x2 = 6, x4 = x1+x2+x3 = 11 -> 1, ...
#           cot       x4 = x0+x2+x3 = 10 -> 0, x5 = x0+x3+x4 = 7, ...
#           semi      x5: far pointer (5-3)//2 = 1, x1+x3+x4 = 2+6+0 = 8, ...
HAND_J2_K1 = {
    "recursive": [1, 2, 3, 6, 1, 0, 7, 8],
    "cot": [1, 2, 3, 6, 0, 7, 8, 6],
    "semi_recursive": [1, 2, 3, 6, 0, 8, 0, 1],
}
# j=1, k=2 (two far tokens): cot x4 = x3+x0+x1 = 9; recursive x4 = x3+x1+x2 = 11 -> 1;
# semi x5: pointer 1, x4+x1+x2 = 9+2+3 = 14 -> 4; x7: pointer 2, x6+x2+x3 = 9+3+6 = 18 -> 8.
HAND_J1_K2 = {
    "recursive": [1, 2, 3, 6, 1, 0, 7, 8],
    "cot": [1, 2, 3, 6, 9, 2, 5, 8],
    "semi_recursive": [1, 2, 3, 6, 9, 4, 9, 8],
}
TINY = dict(n_layers=1, d_model=32, n_heads=2)
try:
    import matplotlib  # noqa: F401

    HAS_MATPLOTLIB = True
except ImportError:
    HAS_MATPLOTLIB = False


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("j,k,hand", [(2, 1, HAND_J2_K1), (1, 2, HAND_J1_K2)], ids=["j2k1", "j1k2"])
def test_hand_checked_sequences(task, j, k, hand):
    got = generate(task, 1, 8, p=10, j=j, k=k, seeds=np.array([[1, 2, 3]]))
    assert got.tolist() == [hand[task]], f"generate({task!r}, p=10, j={j}, k={k}, seeds=[1,2,3])"


def _slow(task, seeds, length, p, j, k):
    """Plain-Python restatement of the docstring's formula (one sequence)."""
    x = list(seeds)
    for n in range(j + k, length):
        a = {"recursive": n - j - k, "cot": 0, "semi_recursive": (n - j - k) // 2}[task]
        x.append((sum(x[n - j : n]) + sum(x[a : a + k])) % p)
    return x


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("p,j,k", [(17, 3, 1), (7, 2, 3), (5, 1, 1)])
def test_vectorised_matches_the_formula(task, p, j, k):
    x = generate(task, 6, 40, p=p, j=j, k=k, seed=3)
    for row in x:
        assert row.tolist() == _slow(task, row[: j + k].tolist(), 40, p, j, k)
    assert x.min() >= 0 and x.max() < p


def test_far_start_formulas():
    n = np.arange(4, 12)
    assert far_start("recursive", n, 3, 1).tolist() == (n - 4).tolist()
    assert far_start("cot", n, 3, 1).tolist() == [0] * 8
    assert far_start("semi_recursive", n, 3, 1).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_callable_gets_near_then_far_columns():
    seeds = np.array([[1, 2, 3]])
    last = generate("cot", 1, 7, p=10, j=2, k=1, seeds=seeds, fn=lambda a: a[:, -1])  # the far token x0
    assert last.tolist() == [[1, 2, 3, 1, 1, 1, 1]]
    first = generate("recursive", 1, 7, p=10, j=2, k=1, seeds=seeds, fn=lambda a: a[:, 0])  # x[n-2]
    assert first.tolist() == [[1, 2, 3, 2, 3, 2, 3]]
    sq = generate("cot", 1, 6, p=10, j=2, k=1, seeds=seeds, fn="sum_squared")
    assert sq.tolist() == [[1, 2, 3, 6, 0, 9]]  # 6^2=36 -> 6; (1+3+6)^2=100 -> 0; (1+6+0)^2=49 -> 9
    assert set(COMBINE) == {"sum", "sum_squared"}


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(task="nope"), "task"),
        (dict(length=4), "length"),
        (dict(fn=lambda a: a.sum(-1)), "fn"),  # not reduced mod p
        (dict(fn="product"), "fn"),
        (dict(seeds=np.array([[1, 2, 3, 99]])), "seeds"),
    ],
)
def test_generate_rejects_bad_input(kwargs, field):
    args = dict(task="cot", n=1, length=8, p=17, j=3, k=1) | kwargs
    with pytest.raises(RopeInputError, match=f"^{field}="):
        generate(**args)


def test_generation_is_deterministic_given_a_seed():
    for task in TASKS:
        a, b = generate(task, 50, 64, seed=7), generate(task, 50, 64, seed=7)
        assert np.array_equal(a, b)
        assert not np.array_equal(a, generate(task, 50, 64, seed=8))
        assert np.array_equal(generate(task, 5, 64, seed=np.random.default_rng(1)), generate(task, 5, 64, seed=1))


def test_sum_has_the_documented_cot_shortcut():
    """x[n] = 2 x[n-1] - x[n-1-j] (mod p) for n > j+k in cot: docs/posgen.md explains why it matters."""
    p, j, k = 17, 3, 1
    x = generate("cot", 20, 64, p=p, j=j, k=k, seed=0)
    n = np.arange(j + k + 1, 64)
    assert np.array_equal(x[:, n], (2 * x[:, n - 1] - x[:, n - 1 - j]) % p)


def test_loss_mask_excludes_seed_tokens():
    mask = loss_mask(64, 3, 1)
    assert mask.tolist() == [False] * 4 + [True] * 60
    torch.manual_seed(0)
    tokens = torch.randint(0, 17, (3, 64))
    logits = torch.randn(3, 63, 17, requires_grad=True)
    m = torch.from_numpy(mask)
    loss = masked_loss(logits, tokens, m)
    (grad,) = torch.autograd.grad(loss, logits)
    # logits[:, t] predicts tokens[:, t+1]: targets 1..3 are seed tokens and get no gradient.
    assert torch.all(grad[:, :3] == 0) and torch.all(grad[:, 3:].abs().sum(-1) > 0)
    want = torch.nn.functional.cross_entropy(logits[:, 3:].reshape(-1, 17), tokens[:, 4:].reshape(-1))
    assert torch.allclose(loss, want)


def test_rope_configs_of_the_variants():
    assert rope_config("nope", 64, 64, 256) is None
    assert rope_config("rope", 64, 64, 256).scaling is None and not rope_config("rope", 64, 64, 256).resonance
    assert rope_config("resonance", 64, 64, 256).resonance
    for name, res in (("yarn", False), ("resonance_yarn", True)):
        cfg = rope_config(name, 64, 64, 256)
        s = cfg.scaling
        assert (cfg.resonance, s.factor, s.original_max_position, s.beta_fast, s.beta_slow) == (res, 4.0, 64, 2.0, 1.0)
        assert cfg.base == 10000.0 and cfg.head_dim == 64
    with pytest.raises(RopeInputError, match="^variant="):
        rope_config("alibi", 64, 64, 256)


def test_variants_differ_only_in_the_position_encoding():
    tokens = torch.randint(0, 17, (2, 24), generator=torch.Generator().manual_seed(0))
    states, outs = {}, {}
    for v in VARIANTS:
        torch.manual_seed(0)
        model = PosGenTransformer(17, rope_config(v, 16, 8, 24), **TINY).eval()
        states[v] = model.state_dict()
        outs[v] = model(tokens)
        assert outs[v].shape == (2, 24, 17) and torch.isfinite(outs[v]).all(), v
    ref = states["rope"]
    for v, sd in states.items():
        assert list(sd) == list(ref), f"{v}: parameter names differ"
        assert all(torch.equal(sd[n], ref[n]) for n in ref), f"{v}: initial weights differ for one seed"
    for a, b in [("rope", "nope"), ("rope", "resonance"), ("rope", "yarn"), ("yarn", "resonance_yarn")]:
        assert not torch.allclose(outs[a], outs[b]), f"{a} and {b} give the same output: PE unused?"


@pytest.mark.parametrize("variant", ["rope", "resonance_yarn", "nope"])
def test_model_is_causal(variant):
    torch.manual_seed(0)
    model = PosGenTransformer(17, rope_config(variant, 16, 8, 24), **TINY).eval()
    a = torch.randint(0, 17, (1, 20))
    b = a.clone()
    b[0, 12] = (b[0, 12] + 1) % 17
    ya, yb = model(a), model(b)
    assert torch.equal(ya[:, :12], yb[:, :12]) and not torch.allclose(ya[:, 12:], yb[:, 12:])


# Stacked runs (posgen/stacked.py) must compute what separate models compute. In float64 the only
# difference is the summation order of baddbmm vs. linear: ~eps64 = 2.2e-16 relative per op, a few
# hundred ops deep in a forward pass -> below STACK_RTOL. Training: AdamW divides each update by
# sqrt(v), which amplifies rounding where a gradient is near zero; after the 6 steps below the
# weights differ by at most 1.4e-12 (measured, relative), so TRAIN_RTOL leaves a 700x margin. A
# real defect (a member reading another's data or weights, coupled gradients, a shared rotation)
# moves weights by about one learning rate (3e-3), six orders of magnitude above either bound.
STACK_RTOL, TRAIN_RTOL = 1e-12, 1e-9


def test_stacked_members_equal_their_models():
    torch.set_default_dtype(torch.float64)
    try:
        variants = ["rope", "resonance", "resonance", "yarn", "nope"]
        models = []
        for i, v in enumerate(variants):
            torch.manual_seed(i)
            models.append(PosGenTransformer(17, rope_config(v, 16, 8, 24), **TINY).eval())
        stacked = StackedPosGen(models).eval()
        assert [(a, b) for a, b, _ in stacked.groups] == [(0, 1), (1, 3), (3, 4), (4, 5)]
        tokens = torch.randint(0, 17, (5, 3, 24), generator=torch.Generator().manual_seed(0))
        out = stacked(tokens)
        for e, m in enumerate(models):
            want = m(tokens[e])
            assert torch.allclose(out[e], want, rtol=STACK_RTOL, atol=STACK_RTOL), variants[e]
            sd = stacked.member_state_dict(e)
            assert all(torch.equal(sd[n], p) for n, p in m.state_dict().items())
    finally:
        torch.set_default_dtype(torch.float32)


def test_stacked_refuses_models_that_differ_beyond_the_encoding():
    torch.manual_seed(0)
    base = PosGenTransformer(17, rope_config("rope", 16, 8, 24), **TINY)
    for other in (
        PosGenTransformer(17, rope_config("rope", 16, 8, 24), n_layers=2, d_model=32, n_heads=2),
        PosGenTransformer(17, rope_config("rope", 8, 8, 24), n_layers=1, d_model=32, n_heads=4),
        PosGenTransformer(17, None, **TINY, dropout=0.1),
        PosGenTransformer(17, None, **TINY, block="t5"),
    ):
        with pytest.raises(RopeInputError, match=r"^models\[1\]=.*heads, dropout, block and frozen FFN of models\[0\]"):
            StackedPosGen([base, other])
    with pytest.raises(RopeInputError, match="^models="):
        StackedPosGen([])


def _train_alone(task, variant, seed, proto):
    """The protocol for one model, written out with PosGenTransformer (the reference for stacking)."""
    import math

    rule = dict(p=proto.p, j=proto.j, k=proto.k, fn=proto.fn)
    train = torch.from_numpy(
        generate(task, proto.n_train, proto.train_len, seed=np.random.default_rng([seed, 0]), **rule)
    )
    torch.manual_seed(seed)
    model = PosGenTransformer(
        proto.p, proto.rope_config(variant), n_layers=proto.n_layers, d_model=proto.d_model, n_heads=proto.n_heads
    )
    opt = torch.optim.AdamW(model.parameters(), lr=proto.lr, weight_decay=proto.weight_decay)
    steps = proto.epochs * math.ceil(proto.n_train / proto.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, proto.lr, total_steps=steps, pct_start=proto.pct_start)
    mask = torch.from_numpy(loss_mask(proto.train_len, proto.j, proto.k))
    shuffle, losses = torch.Generator().manual_seed(seed), []
    for _ in range(proto.epochs):
        for idx in torch.randperm(proto.n_train, generator=shuffle).split(proto.batch_size):
            loss = masked_loss(model(train[idx][:, :-1]), train[idx], mask)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
    return model, losses


def test_stacked_training_equals_training_alone(monkeypatch):
    """Whole runs: each member of a stack ends with the weights it reaches when trained alone."""
    torch.set_default_dtype(torch.float64)
    try:
        proto = posgen_train.Protocol(
            n_layers=1, d_model=32, n_heads=2, n_train=48, n_test=8, epochs=2, batch_size=16,
            train_len=16, test_len=32, lr=3e-3, dropout=0.0,
        )  # fmt: skip
        runs = [("rope", 0), ("resonance_yarn", 1), ("resonance_yarn", 2), ("nope", 1)]
        kept = {}
        real_eval = posgen_train.evaluate

        def keep(model, *a, **kw):
            kept["model"] = model
            return real_eval(model, *a, **kw)

        monkeypatch.setattr(posgen_train, "evaluate", keep)
        recs = posgen_train.train_runs("semi_recursive", runs, proto)
        for e, (variant, seed) in enumerate(runs):
            alone, _ = _train_alone("semi_recursive", variant, seed, proto)
            got = kept["model"].member_state_dict(e)
            for name, want in alone.state_dict().items():
                assert torch.allclose(got[name], want, rtol=TRAIN_RTOL, atol=TRAIN_RTOL), (variant, seed, name)
            assert recs[e]["trained_with"] == [
                "rope/seed0",
                "resonance_yarn/seed1",
                "resonance_yarn/seed2",
                "nope/seed1",
            ]
    finally:
        torch.set_default_dtype(torch.float32)


def test_stacks_hold_whole_seeds_balanced_seed_major():
    todo = [(t, v, s) for t in ("cot", "recursive") for s in range(3) for v in ("rope", "yarn")]
    stacks = _stacks(todo, 4)  # 2 variants: 2 seeds fit a stack; 3 seeds -> 1 + 2
    assert [(t, sorted({s for _, s in r})) for t, r in stacks] == [
        ("cot", [0]), ("recursive", [0]), ("cot", [1, 2]), ("recursive", [1, 2])
    ]  # fmt: skip
    assert stacks[2][1] == [("rope", 1), ("rope", 2), ("yarn", 1), ("yarn", 2)]  # grouped by variant
    one = _stacks(todo, 1)  # smaller than the variants: a seed's variants split
    assert one[:3] == [("cot", [("rope", 0)]), ("recursive", [("rope", 0)]), ("cot", [("yarn", 0)])]
    assert len(one) == 12
    assert [len(r) for _, r in _stacks(todo, 100)] == [6, 6]
    five = [("cot", v, s) for s in range(5) for v in "abcd"]
    assert [len(r) for _, r in _stacks(five, 16)] == [8, 12]  # 5 seeds of 4 variants: 2 + 3 seeds
    assert [len(r) for _, r in _stacks([("cot", v, 0) for v in "abcde"], 2)] == [1, 2, 2]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_stack_flag_writes_each_run_with_its_stack(tmp_path, precision):
    out = tmp_path / "res"
    flags = ("--variants", "rope,resonance", "--seeds", "2", "--stack", "4", "--precision", precision)
    assert _posgen("--tasks", "cot", *flags, "--out", str(out)) == 0
    rec = json.loads((out / "runs" / "cot-resonance-seed1.json").read_text())
    assert rec["trained_with"] == ["rope/seed0", "rope/seed1", "resonance/seed0", "resonance/seed1"]
    assert rec["precision"] == precision and len(rec["train_loss_by_epoch"]) == 2
    assert all(np.isfinite(rec["train_loss_by_epoch"])) and 0 <= rec["ood_acc"] <= 1
    assert rec["device"] == "cpu" and rec["device_name"] == (platform.processor() or "cpu")  # the hardware, recorded


@pytest.mark.parametrize(("runs", "field"), [([("alibi", 0)], "^variant="), ([], "^models=")])
def test_bad_runs_are_refused_before_any_data(monkeypatch, runs, field):
    monkeypatch.setattr(posgen_train, "generate", lambda *a, **k: pytest.fail("generated data for bad runs"))
    with pytest.raises(RopeInputError, match=field):
        posgen_train.train_runs("cot", runs, posgen_train.QUICK)


def test_unknown_precision_is_refused_before_training():
    with pytest.raises(RopeInputError, match="^precision='fp8' is invalid"):
        posgen_train.train_runs("cot", [("rope", 0)], posgen_train.QUICK, precision="fp8")


TINY_FLAGS = [
    "--epochs", "2", "--n-train", "64", "--n-test", "8", "--batch-size", "16", "--layers", "1",
    "--d-model", "32", "--heads", "2", "--train-len", "16", "--test-len", "32", "--lr", "3e-3",
    "--device", "cpu", "--no-progress",
]  # fmt: skip


def _posgen(*argv):
    return main(["posgen", *argv, *TINY_FLAGS])


def test_end_to_end_writes_json_markdown_png(tmp_path, capsys):
    out = tmp_path / "res"
    assert _posgen("--tasks", "cot,recursive", "--variants", "rope,resonance", "--seeds", "2", "--out", str(out)) == 0
    runs = sorted(p.name for p in (out / "runs").glob("*.json"))
    assert len(runs) == 8 and "cot-resonance-seed1.json" in runs
    rec = json.loads((out / "runs" / "cot-rope-seed0.json").read_text())
    assert rec["protocol"]["train_len"] == 16 and len(rec["acc_by_position"]) == 32
    assert rec["acc_by_position"][:4] == [None] * 4 and 0 <= rec["ood_acc"] <= 1
    assert rec["rope"]["resonance"] is False and len(rec["epoch_s"]) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert [(g["task"], g["variant"]) for g in summary["groups"]] == [
        ("recursive", "rope"),
        ("recursive", "resonance"),
        ("cot", "rope"),
        ("cot", "resonance"),
    ]
    assert all(g["seeds"] == [0, 1] for g in summary["groups"])
    md = (out / "summary.md").read_text()
    assert "| cot | resonance | 2 |" in md and "rrope posgen --tasks cot,recursive" in md
    assert "| cot | resonance - rope | 2 |" in md and "Seconds per training epoch of a whole stack" in md
    assert ", fn sum;" in md  # the combining function is part of the protocol line
    runs = [json.loads(p.read_text()) for p in (out / "runs").glob("recursive-rope-*.json")]
    want = np.median([r["epoch_s"][1] for r in runs])  # 2 epochs: the second alone is each run's median
    assert summary["groups"][0]["epoch_s_median"] == pytest.approx(want)
    if HAS_MATPLOTLIB:
        assert summary["plot"] == "accuracy_by_position.png"
        assert (out / "accuracy_by_position.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| task | variant |" in capsys.readouterr().out


def test_same_seed_same_result(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert _posgen("--tasks", "cot", "--variants", "resonance", "--seeds", "1", "--out", str(out)) == 0
    ra, rb = (json.loads((d / "runs" / "cot-resonance-seed0.json").read_text()) for d in (a, b))
    assert ra["acc_by_position"] == rb["acc_by_position"] and ra["train_loss_by_epoch"] == rb["train_loss_by_epoch"]


def test_resume_skips_existing_runs(tmp_path, monkeypatch):
    out = tmp_path / "res"
    flags = ("--tasks", "cot", "--variants", "rope,yarn", "--seeds", "1", "--out", str(out))
    assert _posgen(*flags) == 0
    (out / "runs" / "cot-yarn-seed0.json").unlink()
    calls = []
    real = posgen_train.train_runs

    def counting(task, runs, *a, **kw):
        calls.append((task, runs))
        return real(task, runs, *a, **kw)

    monkeypatch.setattr(posgen_train, "train_runs", counting)
    assert _posgen(*flags) == 0
    assert calls == [("cot", [("yarn", 0)])]
    assert _posgen(*flags) == 0 and len(calls) == 1  # everything on disk now


def test_resume_refuses_another_protocol(tmp_path, capsys):
    out = tmp_path / "res"
    assert _posgen("--tasks", "cot", "--variants", "rope", "--seeds", "1", "--out", str(out)) == 0
    rc = main(
        [
            "posgen",
            "--tasks",
            "cot",
            "--variants",
            "rope",
            "--seeds",
            "1",
            "--out",
            str(out),
            *TINY_FLAGS,
            "--epochs",
            "3",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "--out=" in err and "cot-rope-seed0.json" in err and "'epochs'" in err


def test_resume_and_merge_refuse_another_precision(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    flags = ("--tasks", "cot", "--variants", "rope", "--seeds", "1")
    assert _posgen(*flags, "--out", str(a)) == 0
    assert _posgen(*flags, "--precision", "bf16", "--out", str(a)) == 2
    assert "'precision'" in capsys.readouterr().err
    assert _posgen(*flags, "--precision", "bf16", "--out", str(b)) == 0
    assert main(["posgen", "--merge", str(a), str(b), "--out", str(tmp_path / "m")]) == 2
    assert "different protocol or precision" in capsys.readouterr().err


def test_merge_directories_from_two_machines(tmp_path, capsys):
    a, b, merged = tmp_path / "a", tmp_path / "b", tmp_path / "merged"
    common = ("--tasks", "cot", "--variants", "rope,resonance", "--seeds", "1")
    assert _posgen(*common, "--out", str(a)) == 0
    # the process-pool path (with a time limit that never binds)
    assert _posgen(*common, "--seed-start", "1", "--jobs", "2", "--time-limit", "1e5", "--out", str(b)) == 0
    assert main(["posgen", "--merge", str(a), str(b), "--out", str(merged)]) == 0
    summary = json.loads((merged / "summary.json").read_text())
    assert [g["seeds"] for g in summary["groups"]] == [[0, 1], [0, 1]]
    assert "--merge" in summary["command"] and (merged / "accuracy_by_position.png").exists() == HAS_MATPLOTLIB
    # the merged directory holds the runs (byte copies): it merges again, into itself or elsewhere
    copied = sorted(p.name for p in (merged / "runs").glob("*.json"))
    assert copied == sorted(p.name for d in (a, b) for p in (d / "runs").glob("*.json")) and len(copied) == 4
    assert (merged / "runs" / copied[0]).read_bytes() == next(
        (d / "runs" / copied[0]).read_bytes() for d in (a, b) if (d / "runs" / copied[0]).exists()
    )
    assert main(["posgen", "--merge", str(merged), "--out", str(tmp_path / "again")]) == 0
    assert main(["posgen", "--merge", str(a), "--out", str(merged)]) == 2  # holds runs, not merged
    assert "--out=" in capsys.readouterr().err
    c = tmp_path / "c"
    assert _posgen(*common, "--out", str(c), "--base", "500") == 0
    assert main(["posgen", "--merge", str(a), str(c), "--out", str(tmp_path / "bad")]) == 2
    assert "--merge=" in capsys.readouterr().err
    assert main(["posgen", "--merge", str(tmp_path / "empty"), "--out", str(tmp_path / "bad")]) == 2


@pytest.mark.parametrize(
    "argv,flag",
    [
        (["--tasks", "cot,foo"], "--tasks"),
        (["--variants", "rope,alibi"], "--variants"),
        (["--seeds", "0"], "--seeds"),
        (["--lr", "-1"], "--lr"),
        (["--dropout", "1.5"], "--dropout"),
        (["--fn", "product"], "--fn"),
        (["--time-limit", "0"], "--time-limit"),
    ],
)
def test_bad_flags_are_argparse_errors(argv, flag, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["posgen", *argv])
    assert exc.value.code == 2
    assert flag in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,flag",
    [
        (["--d-model", "30", "--heads", "4"], "--d-model="),
        (["--train-len", "64", "--test-len", "64"], "--test-len="),
        (["--train-len", "4"], "--train-len="),
        (["--device", "tpu"], "--device="),
        (["--p", "1"], "--p="),
    ],
)
def test_inconsistent_flags_fail_before_any_work(argv, flag, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(posgen_train, "train_runs", lambda *a, **k: pytest.fail("trained on bad input"))
    assert main(["posgen", "--out", str(tmp_path / "x"), *argv]) == 2
    assert flag in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_cuda_flag_without_cuda_is_refused(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["posgen", "--device", "cuda", "--out", str(tmp_path)]) == 2
    assert "--device='cuda'" in capsys.readouterr().err


def test_quick_preset_is_what_the_docs_say():
    q = posgen_train.QUICK
    assert (q.n_layers, q.d_model, q.n_heads, q.train_len, q.test_len) == (2, 128, 4, 64, 256)
    paper = posgen_train.PAPER
    assert (paper.n_layers, paper.d_model, paper.n_heads, paper.n_train, paper.epochs, paper.lr) == (
        6,
        512,
        8,
        10_000,
        150,
        2e-4,
    )
    assert (paper.p, paper.j, paper.k, paper.fn) == (17, 3, 1, "sum")


def test_runs_without_matplotlib_or_tqdm(tmp_path, monkeypatch, capsys):
    """Both are optional: JSON and Markdown are still written; the summary says there is no plot."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    monkeypatch.setitem(sys.modules, "tqdm", None)
    out = tmp_path / "res"
    assert (
        main(["posgen", "--tasks", "cot", "--variants", "rope", "--seeds", "1", "--out", str(out), *TINY_FLAGS[:-1]])
        == 0
    )
    assert "cot/rope/seed0: ID" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["plot"] is None and not (out / "accuracy_by_position.png").exists()
    assert "| cot | rope | 1 |" in (out / "summary.md").read_text()


def test_compiled_loss_and_gradients_equal_eager():
    """``--compile``: the compiled forward + loss (one graph, no breaks) gives eager's loss and gradients.

    Float64, no dropout: the two programs differ only in the order of float operations (Inductor
    fuses and reassociates), a few hundred ops deep, so they agree to ~1e-13, below TRAIN_RTOL; a
    real defect (a rotation skipped or applied twice, a member's mask or weights mixed up) moves the
    loss by orders of magnitude more.
    """
    from torch._dynamo.utils import counters

    torch.set_default_dtype(torch.float64)
    try:
        proto = posgen_train.Protocol(n_layers=2, d_model=32, n_heads=2, train_len=16, test_len=32, dropout=0.0)
        runs = [("rope", 0), ("resonance", 0), ("yarn", 1), ("nope", 1)]
        mask = torch.from_numpy(loss_mask(proto.train_len, proto.j, proto.k))
        x = torch.randint(0, proto.p, (len(runs), 8, proto.train_len), generator=torch.Generator().manual_seed(0))
        grads = []
        for compile in (False, True):
            model = StackedPosGen(posgen_train.build_models(proto.p, runs, proto), impl="eager" if compile else None)
            counters.clear()
            with posgen_train.training_precision("fp32", torch.device("cpu")) as autocast:
                loss = posgen_train.batch_loss(model, mask, autocast, compile)(x)
            loss.sum().backward()
            grads.append((loss.detach(), {n: p.grad for n, p in model.named_parameters()}))
        assert counters["stats"]["unique_graphs"] == 1 and not counters["graph_break"]
        (eager_loss, eager_grads), (loss, got) = grads
        assert torch.allclose(loss, eager_loss, rtol=TRAIN_RTOL, atol=0)
        for name, want in eager_grads.items():
            assert torch.allclose(got[name], want, rtol=TRAIN_RTOL, atol=TRAIN_RTOL), name
    finally:
        torch.set_default_dtype(torch.float32)


def test_compile_flag_is_recorded(tmp_path):
    out = tmp_path / "res"
    assert _posgen("--tasks", "cot", "--variants", "rope", "--seeds", "1", "--compile", "--out", str(out)) == 0
    rec = json.loads((out / "runs" / "cot-rope-seed0.json").read_text())
    assert rec["compiled"] is True and all(np.isfinite(rec["train_loss_by_epoch"]))
    with pytest.raises(RopeInputError, match="^compile='yes' is invalid"):
        posgen_train.train_runs("cot", [("rope", 0)], posgen_train.QUICK, compile="yes")


def test_paired_differences_match_by_seed():
    from rrope_posgen.report import paired

    ood = {("rope", 0): 0.5, ("resonance", 0): 0.7, ("rope", 1): 0.6, ("resonance", 1): 0.5, ("resonance", 2): 0.9}
    runs = [{"task": "cot", "variant": v, "seed": s, "ood_acc": a} for (v, s), a in ood.items()]
    (row,) = paired(runs)  # no yarn runs: no resonance_yarn row; seed 2 has no rope run: left out
    assert (row["variant"], row["base"], row["seeds"], row["higher"]) == ("resonance", "rope", [0, 1], 1)
    assert row["ood_diff_mean"] == pytest.approx(0.05) and row["ood_diff_std"] == pytest.approx(0.3 / 2**0.5)


def test_plot_bins_skip_unscored_positions():
    from rrope_posgen.report import _binned

    centres, means = _binned([None, None, 0.5, 1.0, 0.0, 1.0, 0.25], 2)
    assert centres.tolist() == [0.5, 2.5, 4.5, 6.5]
    assert np.isnan(means[0]) and means[1:].tolist() == [0.75, 0.5, 0.25]


def test_time_limit_starts_no_stack_that_would_not_finish(tmp_path, monkeypatch, capsys):
    """A fake clock: each stack takes 60 s. With 100 s the first runs, and the second (60 s > 40 s
    left) does not; the same command without the limit then resumes with the second only."""
    from rrope_posgen import cli as posgen_cli

    now, real = [0.0], posgen_cli._run_stack_to_files
    monkeypatch.setattr(posgen_cli, "_clock", lambda: now[0])

    def sixty_seconds(task, runs, *a, **k):
        now[0] += 60
        return real(task, runs, *a, **k)

    monkeypatch.setattr(posgen_cli, "_run_stack_to_files", sixty_seconds)
    out = tmp_path / "res"
    flags = ("--tasks", "cot", "--variants", "rope,resonance", "--seeds", "2", "--stack", "2", "--out", str(out))
    assert _posgen(*flags, "--time-limit", "100") == 0
    assert sorted(p.name for p in (out / "runs").glob("*.json")) == ["cot-resonance-seed0.json", "cot-rope-seed0.json"]
    printed = capsys.readouterr().out
    assert "stopped by --time-limit with 2 of 4 runs not done" in printed
    assert [g["seeds"] for g in json.loads((out / "summary.json").read_text())["groups"]] == [[0], [0]]
    assert _posgen(*flags) == 0 and now[0] == 120
    assert len(list((out / "runs").glob("*.json"))) == 4


# --- the protocol knobs (rrope_posgen.protocol): paper-code / paper-text / clean -----------------


def test_code_yarn_is_the_hand_derived_table():
    """The official code's YaRN (rotary_scaled.py + rotary_utils.py: d=64, base 1e4, s=(4*64+1)/(64+1),
    correction range at max_position_embeddings = 257, beta_fast 2, beta_slow 1), derived by hand:
    c(r) = 64 ln(257 / (2 pi r)) / (2 ln 1e4): c(2) = 10.49 -> floor 10, c(1) = 12.89 -> ceil 13.
    Pairs 0-10 keep theta_i, 13-31 get theta_i / s, 11 and 12 blend with ramp (i - 10) / 3."""
    import math

    import rrope_core as rr

    s = 257 / 65
    assert math.floor(64 * math.log(257 / (4 * math.pi)) / (2 * math.log(1e4))) == 10
    assert math.ceil(64 * math.log(257 / (2 * math.pi)) / (2 * math.log(1e4))) == 13
    ramp = np.clip((np.arange(32) - 10) / 3, 0, 1)
    want = (1 - ramp) + ramp / s  # inv_freq / theta
    cfg = posgen_protocol.PAPER_CODE.rope_config("resonance_yarn")
    assert cfg == rope_config("resonance_yarn", 64, 65, 257, yarn_range="test")
    assert cfg.scaling == rr.YaRN(s, 257, beta_fast=2.0, beta_slow=1.0)
    plain = posgen_protocol.PAPER_CODE.rope_config("yarn")
    theta = rr.inv_freq(posgen_protocol.PAPER_CODE.rope_config("rope"))
    # float64 arithmetic on both sides: a few ulps.
    np.testing.assert_allclose(rr.inv_freq(plain) / theta, want, rtol=8 * np.finfo(np.float64).eps)
    assert rr.attention_factor(plain) == pytest.approx(0.1 * math.log(s) + 1, rel=1e-15)
    # Ours (clean) and the paper's text: s = 4, range at the training length 64 (pairs 0-5 kept).
    for p in (posgen_protocol.CLEAN, posgen_protocol.PAPER_TEXT):
        assert p.rope_config("yarn").scaling == rr.YaRN(4.0, 64, beta_fast=2.0, beta_slow=1.0)


def test_code_data_rule_rows():
    """base_sequence_dataset.py: rows cycle through combinations(range(p), j+k); train = rows [0, n_train),
    val = rows [0, n_val), test = rows [n_val, n_val + n_test); the same for every seed."""
    import itertools

    combos = list(itertools.combinations(range(17), 4))
    rows = combination_seeds(5000, 17, 4)
    assert len(combos) == 2380 and rows[0].tolist() == [0, 1, 2, 3] and rows[2380].tolist() == [0, 1, 2, 3]
    assert [tuple(r) for r in rows[:2380]] == combos
    sizes = {"train": 3000, "val": 100, "test": 200}
    a, b = split_seeds("code", sizes, 17, 4, seed=0), split_seeds("code", sizes, 17, 4, seed=7)
    assert all(np.array_equal(a[k], b[k]) for k in sizes)
    assert np.array_equal(a["val"], a["train"][:100]) and np.array_equal(a["test"], a["train"][100:300])


def test_disjoint_rule_shares_no_seed_tuple():
    sizes = {"train": 500, "val": 50, "test": 80}
    seeds = split_seeds("disjoint", sizes, 6, 4, seed=3)
    rows = np.concatenate([seeds[k] for k in sizes])
    assert rows.shape == (630, 4) and rows.min() >= 0 and rows.max() < 6
    assert len({tuple(r) for r in rows}) == 630
    assert not np.array_equal(seeds["train"], split_seeds("disjoint", sizes, 6, 4, seed=4)["train"])
    with pytest.raises(RopeInputError, match=r"^n=1400 is invalid: must be <= p\*\*\(j\+k\) = 1296"):
        split_seeds("disjoint", {"train": 600, "val": 500, "test": 300}, 6, 4, seed=0)
    with pytest.raises(RopeInputError, match="^data='sorted' is invalid"):
        split_seeds("sorted", sizes, 6, 4, seed=0)


def test_clean_data_is_unchanged_by_the_knobs():
    """The clean protocol draws the same sequences as before the seed rules existed."""
    proto = replace(posgen_protocol.CLEAN, n_train=50, n_test=20, n_val=10)
    got = posgen_train.make_data("cot", proto, 3)
    assert np.array_equal(got["train"], generate("cot", 50, 64, seed=np.random.default_rng([3, 0])))
    assert np.array_equal(got["test"], generate("cot", 20, 256, seed=np.random.default_rng([3, 1])))


def test_start_token_prefixes_every_split():
    proto = replace(posgen_protocol.PAPER_CODE, n_train=30, n_test=20, n_val=10)
    got = posgen_train.make_data("recursive", proto, 0)
    assert got["train"].shape == (30, 65) and got["val"].shape == (10, 65) and got["test"].shape == (20, 257)
    assert all((x[:, 0] == 17).all() and x[:, 1:].max() < 17 for x in got.values())
    assert np.array_equal(got["train"][:, 1:5], combination_seeds(30, 17, 4))


T5 = dict(TINY, block="t5")


def test_t5_stacked_members_equal_their_models():
    torch.set_default_dtype(torch.float64)
    try:
        models = []
        for i, v in enumerate(["rope", "resonance", "yarn"]):
            torch.manual_seed(i)
            models.append(PosGenTransformer(18, rope_config(v, 16, 9, 25), **T5, freeze_ffn=True).eval())
        assert models[0].head is None and not any(p.requires_grad for p in models[0].blocks[0].mlp.parameters())
        stacked = StackedPosGen(models).eval()
        tokens = torch.randint(0, 18, (3, 4, 25), generator=torch.Generator().manual_seed(0))
        out = stacked(tokens)
        for e, m in enumerate(models):
            assert torch.allclose(out[e], m(tokens[e]), rtol=STACK_RTOL, atol=STACK_RTOL), e
        assert [n for n, p in stacked.params.items() if not p.requires_grad] == [
            "blocks__0__ln2__weight",
            "blocks__0__mlp__0__weight",
            "blocks__0__mlp__3__weight",
        ]
    finally:
        torch.set_default_dtype(torch.float32)


def test_t5_block_is_the_codes_layer():
    """Unscaled logits (the init absorbs 1/sqrt(d_head)), RMSNorm, no biases, tied rescaled head, T5 init."""
    torch.manual_seed(0)
    m = PosGenTransformer(18, None, n_layers=2, d_model=64, n_heads=4, block="t5").eval()
    assert not [n for n, _ in m.named_parameters() if n.endswith("bias")]
    assert isinstance(m.ln_f, torch.nn.RMSNorm) and m.ln_f.eps == 1e-6
    qkv = m.blocks[0].attn.qkv.weight
    # Sample stds of 64*64 (q) and 2*64*64 (k, v) normal draws: within 5% of T5's (3+ standard errors).
    assert qkv[:64].std().item() == pytest.approx((64 * 16) ** -0.5, rel=0.05)
    assert qkv[64:].std().item() == pytest.approx(64**-0.5, rel=0.05)
    x = torch.randint(0, 18, (2, 10))
    h = m.drop(m.ln_f(_t5_trunk(m, x)))
    assert torch.allclose(m(x), (h / 8.0) @ m.embed.weight.T, atol=1e-6)


def _t5_trunk(m, x):
    h = m.embed(x)
    for blk in m.blocks:
        h = blk(h)
    return h


def test_frozen_ffn_stays_at_its_init():
    proto = replace(TINY_PROTO, block="t5", freeze_ffn=True)
    models = posgen_train.build_models(17, [("rope", 0)], proto)
    stacked = StackedPosGen(models)
    before = {n: p.detach().clone() for n, p in stacked.params.items()}
    opt = posgen_train.make_optimizer(stacked, proto)
    x = torch.from_numpy(generate("cot", 8, 16, seed=0))[None]
    mask = torch.from_numpy(loss_mask(16, 3, 1))
    masked_loss(stacked(x[..., :-1]), x, mask).sum().backward()
    opt.step()
    for n, p in stacked.params.items():
        assert torch.equal(p, before[n]) == ("mlp" in n or "ln2" in n), n
    with pytest.raises(RopeInputError, match="^freeze_ffn=True is invalid: .*needs block='t5'"):
        replace(TINY_PROTO, freeze_ffn=True)


TINY_PROTO = posgen_protocol.Protocol(
    n_layers=1, d_model=32, n_heads=2, train_len=16, test_len=32, n_train=32, n_test=8, n_val=8,
    epochs=2, batch_size=16, lr=3e-3, dropout=0.0,
)  # fmt: skip


def test_eval_only_yarn_is_the_rope_training_under_the_yarn_table():
    proto = replace(TINY_PROTO, yarn_timing="eval_only")
    pair = posgen_train.train_runs("cot", [("rope", 0), ("yarn", 0)], proto)
    rope, yarn = (
        posgen_train.train_runs("cot", [("rope", 0)], proto),
        posgen_train.train_runs("cot", [("yarn", 0)], proto),
    )
    assert pair[0]["trained_with"] == pair[1]["trained_with"] == ["rope/seed0"]
    assert pair[1]["trained_as"] == "rope" and pair[1]["rope"]["scaling"]["type"] == "yarn"
    # CPU training is deterministic: one training, alone or shared, gives bitwise the same numbers.
    assert pair[0]["train_loss_by_epoch"] == pair[1]["train_loss_by_epoch"] == yarn[0]["train_loss_by_epoch"]
    assert pair[0]["acc_by_position"] == rope[0]["acc_by_position"]
    assert pair[1]["acc_by_position"] == yarn[0]["acc_by_position"]
    # Trained with YaRN (clean), the yarn run is another training.
    trained = posgen_train.train_runs("cot", [("yarn", 0)], TINY_PROTO)[0]
    assert trained["trained_as"] == "yarn" and trained["train_loss_by_epoch"] != yarn[0]["train_loss_by_epoch"]


def test_best_id_checkpoint_keeps_the_first_best():
    """lr 0 and no weight decay: the weights never change, so every validation ties and Lightning's
    strict "better than the best" rule keeps the first (epoch val_every)."""
    frozen = replace(TINY_PROTO, checkpoint="best_id", epochs=6, val_every=2, lr=1e-30, weight_decay=0.0)
    rec = posgen_train.train_runs("recursive", [("rope", 0)], frozen)[0]
    assert rec["checkpoint_epoch"] == 2 and 0 <= rec["val_id_acc"] <= 1
    learning = replace(frozen, lr=3e-3)
    # eval_only YaRN: one trained model, two runs (two evaluation passes over the same weights)
    learning = replace(frozen, lr=1e-2, yarn_timing="eval_only")
    runs = [("rope", 0), ("yarn", 0)]
    bests, finals = (
        posgen_train.train_runs("recursive", runs, p) for p in (learning, replace(learning, checkpoint="final"))
    )
    for best, final in zip(bests, finals, strict=True):
        assert best["checkpoint_epoch"] in (2, 4, 6) and final["checkpoint_epoch"] == 6
        if best["checkpoint_epoch"] == 6:
            assert best["acc_by_position"] == final["acc_by_position"]
        # a best_id run also scores its final weights (in every pass): the same training, since
        # validation changes none of it, so on the CPU the very numbers of the checkpoint="final" run
        assert best["final_weights"] == {k: final[k] for k in ("id_acc", "ood_acc", "acc_by_position")}
        assert "final_weights" not in final
    assert bests[0]["final_weights"] != bests[1]["final_weights"]  # each pass with its own table
    # the first pass's run keeps an earlier epoch, so the second pass must restore the final weights
    assert bests[0]["checkpoint_epoch"] < 6, "no earlier best: the final-weights check tests nothing"
    with pytest.raises(RopeInputError, match="^epochs=1 is invalid"):
        replace(frozen, epochs=1)


def test_every_preset_records_its_knobs_and_refuses_to_mix(tmp_path, capsys):
    out = tmp_path / "res"
    args = ("--tasks", "cot", "--variants", "rope,yarn", "--seeds", "1", "--out", str(out), "--n-val", "8")
    assert _posgen("--protocol", "paper-code", *args) == 0
    rec = json.loads((out / "runs" / "cot-yarn-seed0.json").read_text())
    assert {k: rec["protocol"][k] for k in ("yarn_timing", "yarn_range", "bos", "data", "block", "freeze_ffn")} == {
        "yarn_timing": "eval_only",
        "yarn_range": "test",
        "bos": True,
        "data": "code",
        "block": "t5",
        "freeze_ffn": True,
    }
    assert rec["protocol"]["checkpoint"] == "best_id" and len(rec["acc_by_position"]) == 32
    capsys.readouterr()
    assert _posgen("--protocol", "clean", *args) == 2
    err = capsys.readouterr().err
    assert "another protocol" in err and "'block'" in err and "'yarn_timing'" in err
    assert _posgen("--protocol", "paper-code", "--no-bos", *args) == 2
    assert "'bos'" in capsys.readouterr().err


def test_a_knob_flag_overrides_its_preset():
    from rrope_posgen.cli import resolve

    parser = __import__("argparse").ArgumentParser()
    from rrope_posgen.cli import add_arguments

    add_arguments(parser)
    proto, *_ = resolve(
        parser.parse_args(["--protocol", "paper-code", "--no-freeze-ffn", "--yarn-timing", "train_eval"])
    )
    assert proto == replace(posgen_protocol.PAPER_CODE, freeze_ffn=False, yarn_timing="train_eval")
    proto, *_ = resolve(parser.parse_args(["--protocol", "paper-text", "--quick"]))
    assert proto == replace(posgen_protocol.PAPER_TEXT, **posgen_protocol.QUICK_SIZES)


def test_knob_errors_name_the_flag(tmp_path, capsys):
    assert main(["posgen", "--freeze-ffn", "--out", str(tmp_path / "x")]) == 2
    assert "freeze_ffn=True is invalid" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_records_from_before_the_knobs_are_clean_runs():
    from pathlib import Path

    old = json.loads(next((Path(__file__).parents[1] / "docs" / "posgen-results" / "runs").glob("*.json")).read_text())
    assert "block" not in old["protocol"]
    assert setting(old) == {**posgen_protocol.CLEAN.to_dict(), "precision": "bf16"}


def test_posgen_help_loads_no_framework():
    import subprocess

    code = "import sys, rrope_core.cli as c\ntry:\n    c.main(['posgen', '--help'])\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "--protocol" in out and out.strip().endswith("False")
