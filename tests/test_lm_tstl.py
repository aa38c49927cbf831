"""LM train-short-test-long (rrope_lm_tstl): the corpus rules, byte tokens, the chunked perplexity,
the rope of every built model, and the CLI end to end on a micro run (JSON, exact CPU reruns,
resume, merge, bad flags). The micro run trains models of 27K parameters: the module runs in
under a minute on 2 CPU cores."""

import json
import math
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="rrope lm-tstl needs torch")
pytest.importorskip("transformers", reason="rrope lm-tstl needs transformers")
pytest.importorskip("rrope_torch", reason="rrope_torch is not installed")
import rrope_core as rr  # noqa: E402
import rrope_torch.transformers as rtt  # noqa: E402
from rrope_core.cli import main  # noqa: E402
from rrope_core.errors import RopeInputError  # noqa: E402
from rrope_torch.hf_exact import exact_cos_sin  # noqa: E402

try:
    import rrope_lm_tstl  # noqa: F401
except ImportError:  # a source checkout: the experiment is not in the wheel's packages yet
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

from rrope_lm_tstl import corpus as C  # noqa: E402
from rrope_lm_tstl.evaluate import nll_by_length  # noqa: E402
from rrope_lm_tstl.model import build_model, describe_rope, exact_phases_enabled, rotary_modules  # noqa: E402
from rrope_lm_tstl.protocol import GPU, HF_ROPE_TYPES, METHODS, MODES, PRETRAIN, QUICK, Protocol  # noqa: E402
from rrope_lm_tstl.report import comparisons, load_runs, summarize  # noqa: E402
from rrope_lm_tstl.train import lr_factor, windows  # noqa: E402

# The micro run: smaller than --quick (1 layer, d_model 32, L = 16, s = 4, lengths 16..64).
MICRO_FLAGS = [
    "--quick", "--seeds", "1", "--layers", "1", "--d-model", "32", "--heads", "2", "--kv-heads", "2", "--ffn", "64",
    "--train-len", "16", "--steps", "12", "--batch-size", "4", "--val-every", "6",
    "--scale", "4", "--ft-steps", "3", "--ft-batch-size", "1",
    "--eval-multiples", "1,2,4", "--n-test-docs", "2", "--n-val-docs", "1",
    "--device", "cpu", "--threads", "1", "--no-progress",
]  # fmt: skip
MICRO = replace(
    QUICK,
    n_layers=1,
    d_model=32,
    n_heads=2,
    n_kv_heads=2,
    ffn=64,
    train_len=16,
    steps=12,
    batch_size=4,
    val_every=6,
    scale=4,
    ft_steps=3,
    ft_batch_size=1,
    eval_multiples=(1, 2, 4),
    n_test_docs=2,
    n_val_docs=1,
)
N_RUNS = len(PRETRAIN) * (1 + len(METHODS) * len(MODES))


# ------------------------------------------------------------------ corpus


@pytest.fixture(scope="module")
def stdlib_corpus():
    return C.load_corpus()


def test_file_list_is_sorted_deterministic_and_excludes_tests():
    files = C.list_files()
    assert files == C.list_files() and files == sorted(files) and len(set(files)) == len(files)
    assert all(f.endswith(".py") for f in files)
    for f in files:
        assert not set(f.split("/")[:-1]) & set(C.EXCLUDED_DIRS), f
        assert C.package_of(f) not in ("encodings", "pydoc_data") and not C.package_of(f).startswith("_sysconfigdata")
    assert "os.py" in files and "json/decoder.py" in files and "email/message.py" in files
    assert len(C.list_files(exclude=())) > len(files)  # the default exclusions remove something


def test_exclusion_rules_on_a_tree_of_our_own(tmp_path):
    for rel in [
        "os.py", "json/__init__.py", "json/tests/test_x.py", "test/test_os.py", "idlelib/idle_test/t.py",
        "site-packages/pkg/m.py", "encodings/cp1252.py", "_sysconfigdata__linux.py", "lib2to3/tests/data/f.py",
        "email/mime/text.py", "notes.txt", "__pycache__/os.cpython-311.py",
    ]:  # fmt: skip
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n")
    assert C.list_files(tmp_path) == ["email/mime/text.py", "json/__init__.py", "os.py"]
    assert C.list_files(tmp_path, exclude=("js*",)) == [
        "_sysconfigdata__linux.py",
        "email/mime/text.py",
        "encodings/cp1252.py",
        "os.py",
    ]
    assert [C.package_of(f) for f in C.list_files(tmp_path)] == ["email", "json", "os"]


def test_split_is_by_package_without_overlap(stdlib_corpus):
    c = stdlib_corpus
    splits = [set(c.files[s]) for s in C.SPLITS]
    assert all(splits) and not (splits[0] & splits[1] or splits[0] & splits[2] or splits[1] & splits[2])
    assert set().union(*splits) == set(C.list_files())
    for s in C.SPLITS:  # every file of a package is in its package's split
        assert {c.packages[C.package_of(f)] for f in c.files[s]} == {s}
    assert set(c.streams["test"]) == set(c.info["test_packages"])
    tokens = {s: c.info["splits"][s]["tokens"] for s in C.SPLITS}
    assert tokens["test"] >= 0.10 * sum(tokens.values()) and tokens["val"] >= 0.05 * sum(tokens.values())


def test_split_rule_does_not_depend_on_input_order():
    sizes = {f"pkg{i}": 100 + 37 * i for i in range(40)}
    one = C.split_packages(sizes, 0.1, 0.2)
    other = C.split_packages(dict(reversed(list(sizes.items()))), 0.1, 0.2)
    assert one == other
    total = sum(sizes.values())
    share = {s: sum(v for k, v in sizes.items() if one[k] == s) / total for s in C.SPLITS}
    assert share["test"] >= 0.2 and share["val"] >= 0.1
    # filling stops at the first package that reaches the share: without the last one, it is below
    order = sorted(sizes, key=lambda k: __import__("hashlib").sha256(k.encode()).digest())
    test = [k for k in order if one[k] == "test"]
    assert test == order[: len(test)] and sum(sizes[k] for k in test[:-1]) < 0.2 * total


def test_corpus_info_names_the_python_and_the_file_list(stdlib_corpus):
    info = stdlib_corpus.info
    assert info["python"] == ".".join(map(str, sys.version_info[:3]))
    assert info["file_list_sha256"] == C.file_list_sha256(C.list_files())
    assert info["n_files"] == len(C.list_files()) and len(info["content_sha256"]) == 64


def test_byte_tokens_round_trip():
    data = bytes(range(256)) + "é€ 𝄞 def f(): pass\n".encode()
    ids = C.encode(data)
    assert ids.dtype == np.uint16 and ids.tolist() == list(data) and C.decode(ids) == data
    files = [b"import os\n", b"", data, b"\x00\xff"]
    stream = C.join_files(files)
    assert (stream == C.EOS).sum() == len(files) and stream[-1] == C.EOS and C.VOCAB == 257
    assert C.split_files(stream) == files
    with pytest.raises(RopeInputError, match="token ids"):
        C.decode([1, 257])


def test_documents_are_non_overlapping_pieces_of_one_stream():
    a, b = np.arange(0, 23, dtype=np.uint16), np.arange(100, 110, dtype=np.uint16)
    pieces = C.documents([a, b], 5, 5)  # a gives 4 pieces (3 left over), b gives 2: 6 in all
    assert pieces.tolist() == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 12, 13, 14], [15, 16, 17, 18, 19], [100, 101, 102, 103, 104]]  # fmt: skip
    assert C.documents([a, b], 5, 2).tolist() == [[0, 1, 2, 3, 4], [15, 16, 17, 18, 19]]  # pieces 0 and 3 of 6
    with pytest.raises(RopeInputError, match="at most 6"):
        C.documents([a, b], 5, 7)


# ------------------------------------------------------------------ protocol, training pieces


def test_protocol_defaults_cited_in_the_docs():
    assert (GPU.scale, GPU.beta_fast, GPU.beta_slow, GPU.ft_weight_decay, GPU.base) == (8, 32.0, 1.0, 0.01, 10000.0)
    assert GPU.eval_multiples == (1, 2, 4, 8, 16) and GPU.ft_len == 8 * GPU.train_len
    assert Protocol(**json.loads(json.dumps(GPU.to_dict()))) == GPU  # JSON lists come back as tuples


@pytest.mark.parametrize(
    "change, flag",
    [
        (dict(d_model=30, n_heads=4), "--d-model"),
        (dict(n_kv_heads=3), "--kv-heads"),
        (dict(scale=1), "--scale"),
        (dict(eval_multiples=(1, 3, 4)), "--eval-multiples"),
        (dict(eval_multiples=(4, 2, 1)), "--eval-multiples"),
        (dict(val_frac=0.3, test_frac=0.3), "--test-frac"),
        (dict(lr=0.0), "--lr"),
        (dict(warmup=1.0), "--warmup"),
        (dict(steps=0), "--steps"),
    ],
)
def test_bad_protocol_values_name_the_flag(change, flag):
    with pytest.raises(RopeInputError, match=f"^{flag}="):
        replace(GPU, **change)


def test_lr_schedule_formula():
    total, warmup, low = 100, 0.1, 0.1
    f = [lr_factor(s, total, warmup, low) for s in range(total)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)  # linear warm-up over 10 steps
    assert f[10] == pytest.approx(1.0) and f[-1] == pytest.approx(low)  # cosine from 1 to min_lr_frac
    t = (50 - 10) / (total - 1 - 10)
    assert f[50] == pytest.approx(low + (1 - low) * 0.5 * (1 + math.cos(math.pi * t)))
    assert all(a >= b for a, b in zip(f[9:], f[10:], strict=False))


def test_windows_are_seeded_per_purpose():
    stream = np.arange(1000, dtype=np.uint16)
    one = list(windows(stream, 16, 4, 3, seed=0, purpose="pretrain"))
    assert all(np.array_equal(a, b) for a, b in zip(one, windows(stream, 16, 4, 3, 0, "pretrain"), strict=True))
    other = list(windows(stream, 16, 4, 3, seed=0, purpose="finetune"))
    assert not all(np.array_equal(a, b) for a, b in zip(one, other, strict=True))
    for w in one:  # windows of consecutive tokens, length + 1 each
        assert w.shape == (4, 17) and (np.diff(w, axis=1) == 1).all()


class _Recorder(torch.nn.Module):
    """A stand-in model: uniform logits, and it keeps every input it is given."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, input_ids):
        self.seen.append(input_ids.clone())
        return type("Out", (), {"logits": torch.zeros(*input_ids.shape, C.VOCAB)})()


def test_every_length_scores_the_same_tokens_in_non_overlapping_chunks():
    docs = np.arange(3 * 33, dtype=np.uint16).reshape(3, 33) % 256
    model = _Recorder()
    nullctx = lambda: __import__("contextlib").nullcontext()  # noqa: E731
    out = nll_by_length(
        model, docs, [8, 16, 32], segment=8, device=torch.device("cpu"), autocast=nullctx, max_tokens=40
    )
    assert out["tokens"] == [96, 96, 96]
    # uniform logits: every token costs ln(257), computed in float32 and averaged in float64
    assert out["nll"] == [float(np.float32(math.log(C.VOCAB)))] * 3
    assert [len(s) for s in out["nll_by_segment"]] == [1, 2, 4]
    first = torch.cat([x for x in model.seen if x.shape[1] == 8])  # length 8: 12 chunks, 5 per pass
    assert first.shape == (12, 8) and first.flatten().tolist() == docs[:, :32].flatten().tolist()


# ------------------------------------------------------------------ the models


@pytest.mark.parametrize("variant", PRETRAIN + METHODS)
def test_each_variant_builds_the_intended_rope_with_exact_phases(variant):
    model = build_model(variant, MICRO)
    (rotary,) = rotary_modules(model)
    cfg = MICRO.rope_config(variant)
    assert type(rotary).__name__ == "LlamaRotaryEmbedding" and rotary.rope_type == HF_ROPE_TYPES[variant]
    assert rtt.rope_config(model.config) == cfg  # what transformers' config says is the protocol's rope
    ours = torch.from_numpy(rr.inv_freq(cfg))
    if variant.startswith("resonance"):  # built by our registered init function: rr.inv_freq, rounded once
        assert torch.equal(rotary.inv_freq, ours.float())
    else:  # transformers' own float32 math: base ** (2i/d) amplifies the exponent's rounding by ln(base) ~ 9.2
        assert ((rotary.inv_freq.double() / ours - 1).abs() <= (0.5 * math.log(MICRO.base) + 2) * 2**-24).all()
    assert rotary.attention_scaling == pytest.approx(rr.attention_factor(cfg), rel=1e-15)
    if variant in METHODS:  # YaRN(s=4, L=16, beta_fast 32, beta_slow 1): attention factor 0.1 ln 4 + 1
        assert cfg.scaling.factor == 4 and cfg.scaling.original_max_position == 16
        assert rotary.attention_scaling == pytest.approx(0.1 * math.log(4) + 1, rel=1e-12)
    wavelengths = 2 * np.pi / rr.inv_freq(cfg)
    assert np.allclose(wavelengths, np.round(wavelengths), rtol=0, atol=1e-9) == variant.startswith("resonance")
    assert exact_phases_enabled(model) and describe_rope(model)["exact_phases"] is True
    pos = torch.tensor([[0, 5, 1_000_003]])
    x = torch.zeros(1, 3, 32)
    cos, sin = rotary(x, pos)
    want = exact_cos_sin(pos, cfg, torch.float32)
    assert torch.equal(cos, want[0]) and torch.equal(sin, want[1])
    own_cos, _ = type(rotary).forward(rotary, x, pos)  # transformers' float32 table is off at 10**6
    assert (own_cos[0, 2] - cos[0, 2]).abs().max() > 1e-4


def test_without_exact_phases_the_model_keeps_transformers_tables():
    model = build_model("resonance_yarn", replace(MICRO, exact_phases=False))
    assert not exact_phases_enabled(model) and rotary_modules(model)[0].rope_type == "resonance_yarn"


def test_one_seed_gives_every_variant_the_same_initial_weights():
    a, b = build_model("rope", MICRO, seed=3).state_dict(), build_model("resonance_yarn", MICRO, seed=3).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    c = build_model("rope", MICRO, seed=4).state_dict()
    assert not torch.equal(a["model.embed_tokens.weight"], c["model.embed_tokens.weight"])


# ------------------------------------------------------------------ the CLI end to end


def _run(out: Path, *extra: str) -> int:
    return main(["lm-tstl", *MICRO_FLAGS, "--out", str(out), *extra])


def _records(out: Path) -> dict:
    return {p.name: json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))}


def _numbers(rec: dict) -> dict:
    return {
        "eval": rec["eval"],
        "train": None if rec["train"] is None else {k: rec["train"][k] for k in ("loss", "val")},
    }


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    out = tmp_path_factory.mktemp("lm-tstl") / "a"
    assert _run(out) == 0
    return out


def test_micro_run_writes_finite_results(micro):
    recs = _records(micro)
    assert len(recs) == N_RUNS
    for name, rec in recs.items():
        assert name == f"{rec['variant']}-seed0.json"
        ppl = rec["eval"]["ppl"]
        assert len(ppl) == 3 and all(math.isfinite(v) and 1 < v < C.VOCAB * 2 for v in ppl), name
        assert rec["corpus"]["python"] and len(rec["corpus"]["file_list_sha256"]) == 64
        assert rec["rope"]["exact_phases"] is True and rec["protocol"] == MICRO.to_dict()
        key = rec["variant"].split(".")
        want = key[1] if len(key) == 3 else key[0]
        assert rec["rope"]["rope_type"] == HF_ROPE_TYPES[want]
        if rec["mode"] == "free":
            assert rec["train"] is None
        else:
            assert all(math.isfinite(v) for _, v in rec["train"]["loss"])
    assert recs["rope.yarn.finetune-seed0.json"]["train"]["tokens"] == 3 * 1 * 64  # ft steps x batch x s L
    summary = json.loads((micro / "summary.json").read_text())
    assert [g["variant"] for g in summary["groups"]][:3] == [
        "rope",
        "rope.yarn.finetune",
        "rope.resonance_yarn.finetune",
    ]
    assert (micro / "summary.md").read_text().startswith("# LM train-short-test-long")
    assert {c["a"] for c in summary["paired"]} == {a for a, _ in comparisons()}
    assert sorted(p.name for p in (micro / "checkpoints").iterdir()) == ["resonance-seed0.pt", "rope-seed0.pt"]


def test_same_seed_reproduces_every_number_exactly_on_cpu(micro, tmp_path):
    assert _run(tmp_path / "b") == 0
    one, two = _records(micro), _records(tmp_path / "b")
    assert one.keys() == two.keys()
    for name in one:
        assert _numbers(one[name]) == _numbers(two[name]), name


def test_variants_differ_where_their_ropes_differ(micro):
    recs = _records(micro)
    ppl = {r["variant"]: r["eval"]["ppl"] for r in recs.values()}
    assert ppl["rope.yarn.free"] != ppl["rope.resonance_yarn.free"]  # same weights, other wavelengths
    assert ppl["rope.yarn.finetune"] != ppl["rope.yarn.free"]  # the fine-tune changed the weights


def test_resume_skips_done_runs_and_redoes_a_missing_one_from_the_checkpoint(micro, tmp_path, capsys):
    out = tmp_path / "c"
    __import__("shutil").copytree(micro, out)
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}
    capsys.readouterr()
    assert _run(out) == 0
    text = capsys.readouterr().out
    assert f"{N_RUNS} already in" in text and "0 to run" in text and "seed0: ppl" not in text
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")} == stamps
    gone = out / "runs" / "resonance.resonance_yarn.finetune-seed0.json"
    old = json.loads(gone.read_text())
    gone.unlink()
    assert _run(out) == 0
    text = capsys.readouterr().out
    assert (
        "1 to run" in text
        and "resonance.resonance_yarn.finetune/seed0: ppl" in text
        and "\nresonance/seed0" not in text
    )
    assert _numbers(json.loads(gone.read_text())) == _numbers(old)  # the checkpoint gives the same start
    gone.unlink()
    (out / "checkpoints" / "resonance-seed0.pt").unlink()
    assert _run(out) == 2
    assert "not its checkpoint" in capsys.readouterr().err


def test_resume_refuses_a_directory_of_another_setting(micro, tmp_path, capsys):
    out = tmp_path / "d"
    __import__("shutil").copytree(micro, out)
    assert _run(out, "--ft-steps", "4") == 2
    err = capsys.readouterr().err
    assert "another setting" in err and "ft_steps" in err


def test_merge_rebuilds_the_summary(micro, tmp_path, capsys):
    import shutil

    parts = [tmp_path / "rope-runs", tmp_path / "resonance-runs"]  # the sweep split in two, by pretraining
    for d, prefix in zip(parts, ("rope", "resonance"), strict=True):
        (d / "runs").mkdir(parents=True)
        for f in (micro / "runs").glob(f"{prefix}*.json"):
            if f.name.split(".")[0].split("-")[0] == prefix:
                shutil.copy(f, d / "runs" / f.name)
    out = tmp_path / "merged"
    assert main(["lm-tstl", "--merge", *map(str, parts), str(micro), "--out", str(out)]) == 0  # micro: duplicates
    assert f"merged {N_RUNS} runs from 3 directories" in capsys.readouterr().out
    old, new = (json.loads((d / "summary.json").read_text()) for d in (micro, out))
    assert new["groups"] == old["groups"] and new["paired"] == old["paired"]
    tables = [(d / "summary.md").read_text().split("\n| variant |", 1)[1] for d in (micro, out)]
    assert tables[0] == tables[1] and (out / "perplexity_by_length.png").stat().st_size > 0
    assert main(["lm-tstl", "--merge", str(tmp_path / "nothing"), "--out", str(out)]) == 2
    assert "no runs/*.json" in capsys.readouterr().err


def test_summary_statistics_and_pairing(micro):
    recs = list(_records(micro).values())
    shifted = []
    for r in recs:  # a fabricated second seed: every perplexity + 1, Resonance YaRN ones + 3
        r2 = json.loads(json.dumps(r))
        r2["seed"] = 1
        bump = 3.0 if r2["method"] == "resonance_yarn" else 1.0
        r2["eval"]["ppl"] = [v + bump for v in r["eval"]["ppl"]]
        shifted.append(r2)
    s = summarize(recs + shifted)
    g = next(g for g in s["groups"] if g["variant"] == "rope.yarn.finetune")
    base = next(r for r in recs if r["variant"] == "rope.yarn.finetune")["eval"]["ppl"]
    assert g["ppl_mean"] == pytest.approx([v + 0.5 for v in base]) and g["ppl_std"] == pytest.approx([0.5**0.5] * 3)
    d = next(d for d in s["paired"] if (d["a"], d["b"]) == ("rope.resonance_yarn.finetune", "rope.yarn.finetune"))
    one = np.subtract(
        next(r for r in recs if r["variant"] == d["a"])["eval"]["ppl"],
        next(r for r in recs if r["variant"] == d["b"])["eval"]["ppl"],
    )
    assert d["seeds"] == [0, 1] and d["ppl_diff_mean"] == pytest.approx(one + 1.0)  # seed 1 adds 3 - 1
    assert d["ppl_diff_std"] == pytest.approx([2**0.5] * 3)
    assert d["a_lower"] == [int(v < 0) + int(v + 2 < 0) for v in one]
    with pytest.raises(RopeInputError, match="one setting"):
        bad = json.loads(json.dumps(recs[0]))
        bad["seed"], bad["precision"] = 5, "bf16"
        summarize(recs + [bad])
    assert len(load_runs([micro])) == N_RUNS


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--d-model", "30", "--heads", "4"], "--d-model=30 is invalid"),
        (["--eval-multiples", "1,3,4"], "--eval-multiples='1,3,4' is invalid"),
        (["--scale", "1"], "--scale=1 is invalid"),
        (["--device", "tpu"], "--device='tpu' is invalid"),
        (["--n-test-docs", "100000"], "--n-test-docs=100000 is invalid"),
        (["--precision", "tf32"], "--precision='tf32' is invalid"),
    ],
)
def test_bad_flags_fail_before_any_work(tmp_path, capsys, flags, needle):
    out = tmp_path / "never"
    assert _run(out, *flags) == 2
    assert needle in capsys.readouterr().err and not out.exists()


def test_syntax_errors_are_argparse_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        _run(tmp_path / "x", "--lr", "-1")
    assert exc.value.code == 2 and "--lr" in capsys.readouterr().err


def test_missing_dependency_is_one_line(monkeypatch, capsys):
    import rrope_core.commands.lm_tstl as shim

    real = shim.importlib.util.find_spec
    monkeypatch.setattr(shim.importlib.util, "find_spec", lambda name: None if name == "transformers" else real(name))
    with pytest.raises(SystemExit) as exc:
        main(["lm-tstl", "--help"])
    assert exc.value.code == 1
    assert capsys.readouterr().err == (
        'rrope lm-tstl: error: `rrope lm-tstl` needs transformers, which is not installed: pip install ".[hf]"\n'
    )


def test_help_imports_no_framework():
    import subprocess

    code = (
        "import sys; from rrope_core.cli import main\n"
        "try:\n    main(['lm-tstl', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'transformers', 'matplotlib') if m in sys.modules))"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[1] / "experiments"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_time_limit_starts_nothing_once_it_has_passed(tmp_path, capsys):
    assert _run(tmp_path / "late", "--time-limit", "1e-9") == 0
    assert f"with {N_RUNS} of {N_RUNS} runs not done" in capsys.readouterr().out
    assert not (tmp_path / "late" / "runs").exists()
