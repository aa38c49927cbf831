"""The ``rrope`` subcommands inspect, plot and convert: values against rrope_core, schema, errors."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys

import numpy as np
import pytest

import rrope_core as rr
from rrope_core.cli import main
from rrope_core.commands import table
from rrope_core.scaling import default_inv_freq

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
YARN_FLAGS = ["--head-dim", "32", "--scaling", "yarn", "--factor", "4", "--original-max-position", "512"]

# Llama 3.1 8B's rope keys (public config.json), transformers v4 spelling, with non-rope keys around them.
LLAMA31_V4 = {
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 4096,
    "num_attention_heads": 32,
    "max_position_embeddings": 131072,
    "rope_scaling": {
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "rope_theta": 500000.0,
    "torch_dtype": "bfloat16",
    "vocab_size": 128256,
}
YARN_V5 = {
    "model_type": "qwen2",
    "head_dim": 64,
    "max_position_embeddings": 32768,
    "rope_parameters": {
        "rope_type": "yarn",
        "rope_theta": 1000000.0,
        "factor": 4.0,
        "original_max_position_embeddings": 8192,
        "beta_fast": 32.0,
        "beta_slow": 1.0,
        "partial_rotary_factor": 0.5,
    },
    "tie_word_embeddings": False,
}


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))
    return path


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run_cli(capsys, "inspect", *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def usage_error(capsys, *argv) -> str:
    """argparse-style failure: SystemExit(2), ``usage:`` and ``rrope <cmd>: error:`` on stderr."""
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    assert info.value.code == 2, argv
    err = capsys.readouterr().err
    assert "usage: rrope" in err and f"rrope {argv[0]}: error: " in err, err
    return err


def table_rows(text: str) -> tuple[list[str], list[list[str]]]:
    """Header cells and row cells of the plain table in ``rrope inspect`` output."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["pair", "theta"])
    assert set(lines[start + 1].replace(" ", "")) == {"-"}
    rows = []
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        rows.append(line.split())
    return lines[start].split(), rows


# ---------------------------------------------------------------- inspect: table


def test_inspect_table_columns_and_values_match_the_core(capsys):
    code, out, err = run_cli(capsys, "inspect", *YARN_FLAGS, "--train-len", "512", "--test-len", "2048")
    assert code == 0 and err == ""
    headers, rows = table_rows(out)
    assert headers == ["pair", "theta", "wavelength", "rounded", "change", "critical", "gap", "gap(res)"]
    cfg = rr.RopeConfig(head_dim=32, scaling=rr.YaRN(4.0, 512))
    theta = rr.scaled_inv_freq(cfg)
    wl = 2 * np.pi / theta
    gap = rr.feature_gap(cfg, 512, 2048)
    gap_res = rr.feature_gap(cfg.with_resonance(), 512, 2048)
    assert len(rows) == cfg.n_pairs
    for i, row in enumerate(rows):
        assert int(row[0]) == i
        assert float(row[1]) == pytest.approx(theta[i], rel=1e-5), row
        assert float(row[2]) == pytest.approx(wl[i], abs=5e-4), row
        assert int(row[3]) == int(np.rint(wl[i])), row
        assert float(row[4]) == pytest.approx(np.rint(wl[i]) - wl[i], abs=5e-4), row
        assert row[5] == ("pre" if wl[i] <= 512 else "post"), row
        assert float(row[6]) == pytest.approx(gap[i], rel=1e-3, abs=1e-12), row
        assert float(row[7]) == pytest.approx(gap_res[i], rel=1e-3, abs=1e-12), row
    assert f"critical dimension: {rr.critical_dim(cfg, 512)} of 32" in out
    assert f"attention factor: {rr.attention_factor(cfg):.6g}" in out
    assert f"({2048 * 32 * 2 * 4} bytes)" in out  # HF-style table


def test_inspect_hand_checked_resonance_wavelengths(capsys):
    """base 10000, d=8: theta = 1, 0.1, 0.01, 0.001 -> wavelengths 6.283, 62.83, 628.3, 6283.2."""
    code, out, _ = run_cli(capsys, "inspect", "--head-dim", "8", "--resonance")
    assert code == 0
    _, rows = table_rows(out)
    assert [r[3] for r in rows] == ["6", "63", "628", "6283"]
    assert [r[5] for r in rows] == ["pre", "pre", "pre", "post"]  # train_len 4096
    assert [r[7] for r in rows][:3] == ["0", "0", "0"]  # Theorem 1: pre-critical gap exactly 0
    assert float(rows[3][7]) > 0.1
    # periodic table: (6 + 63 + 628 + 6283) entries x cos/sin x float32
    assert f"({(6 + 63 + 628 + 6283) * 8} bytes)" in out


def test_plain_table_alignment():
    text = table.render(["a", "bb"], [["1", "x"], ["100", "yyy"]], [True, False])
    assert text.splitlines() == ["  a  bb", "---  ---", "  1  x", "100  yyy"]


def test_rich_table_on_a_terminal():
    pytest.importorskip("rich")

    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    table.print_table(["pair", "theta"], [["0", "1"], ["1", "0.1"]], [True, True], out)
    assert "theta" in out.getvalue() and "0.1" in out.getvalue()


# ---------------------------------------------------------------- inspect: JSON

PAIR_KEYS = {
    "index",
    "theta",
    "wavelength",
    "rounded_wavelength",
    "rounding_change",
    "critical",
    "feature_gap_without_resonance",
    "feature_gap_with_resonance",
}
TOP_KEYS = {
    "schema",
    "source",
    "config",
    "train_len",
    "test_len",
    "seq_len",
    "pairs",
    "critical_dim",
    "critical_dim_without_resonance",
    "critical_dim_with_resonance",
    "attention_factor",
    "memory_bytes",
    "notes",
}


def test_inspect_json_schema_and_values(capsys):
    rep = run_json(capsys, *YARN_FLAGS, "--train-len", "512")
    cfg = rr.RopeConfig(head_dim=32, scaling=rr.YaRN(4.0, 512))
    assert set(rep) == TOP_KEYS
    assert rep["schema"] == "rrope.inspect/1" and rep["source"] == "flags"
    assert rr.RopeConfig.from_dict(rep["config"]) == cfg
    assert (rep["train_len"], rep["test_len"], rep["seq_len"]) == (512, 2048, None)
    assert [set(p) for p in rep["pairs"]] == [PAIR_KEYS] * cfg.n_pairs
    theta = rr.scaled_inv_freq(cfg)
    np.testing.assert_array_equal([p["theta"] for p in rep["pairs"]], theta)
    np.testing.assert_array_equal([p["wavelength"] for p in rep["pairs"]], 2 * np.pi / theta)
    res = cfg.with_resonance()
    np.testing.assert_array_equal([p["rounded_wavelength"] for p in rep["pairs"]], rr.integer_wavelengths(res))
    np.testing.assert_array_equal(
        [p["feature_gap_without_resonance"] for p in rep["pairs"]], rr.feature_gap(cfg, 512, 2048)
    )
    np.testing.assert_array_equal(
        [p["feature_gap_with_resonance"] for p in rep["pairs"]], rr.feature_gap(res, 512, 2048)
    )
    assert rep["critical_dim"] == rep["critical_dim_without_resonance"] == rr.critical_dim(cfg, 512)
    assert rep["critical_dim_with_resonance"] == rr.critical_dim(res, 512)
    assert rep["attention_factor"] == rr.attention_factor(cfg)
    periods = rr.integer_wavelengths(res)
    assert rep["memory_bytes"] == {
        "hf_table": 2048 * 32 * 2 * 4,
        "periodic_table": int(periods.sum()) * 2 * 4,
        "periodic_table_capped": int(np.minimum(periods, 2048).sum()) * 2 * 4,
        "on_the_fly": 0,
    }
    assert rep["notes"] == []


@pytest.mark.parametrize(
    "flags",
    [
        [],
        ["--scaling", "linear", "--factor", "4"],
        ["--scaling", "ntk", "--factor", "8"],
        ["--scaling", "llama3", "--factor", "8", "--original-max-position", "1024", "--high-freq-factor", "8"],
        YARN_FLAGS[2:] + ["--beta-fast", "16", "--layout", "interleaved"],
    ],
    ids=["none", "linear", "ntk", "llama3", "yarn"],
)
def test_resonance_gap_is_zero_for_pre_critical_pairs(capsys, flags):
    rep = run_json(capsys, "--head-dim", "64", *flags, "--train-len", "1024", "--resonance")
    assert rep["config"]["resonance"] is True
    pre = [p for p in rep["pairs"] if p["critical"] == "pre"]
    assert len(pre) == rep["critical_dim"] // 2 > 0
    assert all(p["feature_gap_with_resonance"] == 0.0 for p in pre)
    assert any(p["feature_gap_without_resonance"] > 0 for p in pre)  # what resonance removes


def test_inspect_feature_gaps_are_the_documented_ones(capsys):
    """docs/cli.md's JSON example (written by the brute-force implementation), bit for bit."""
    rep = run_json(capsys, "--head-dim", "8", "--train-len", "1024")
    assert [p["feature_gap_without_resonance"] for p in rep["pairs"]] == [
        0.00030144353364081056,
        0.007933123595581737,
        0.004073464102068325,
        2.63,
    ]
    assert [p["feature_gap_with_resonance"] for p in rep["pairs"]] == [0.0, 0.0, 0.0, 2.6300775677036943]


def test_inspect_llama31_at_a_million_positions_is_unchanged(tmp_path, capsys):
    """Llama 3.1 (head_dim 128), 131072 -> 1048576: the values the brute force (every OOD position)
    printed, bit for bit. Its time is shown by running it (docs/cli.md), not asserted here."""
    path = write(tmp_path, "config.json", LLAMA31_V4)
    rep = run_json(capsys, path, "--train-len", "131072", "--test-len", "1048576")
    pinned = {
        0: (2.7831433947689277e-05, 0.0),
        20: (4.123141196687996e-05, 0.0),
        40: (0.8949639646196242, 0.8949729591321572),
        45: (2.3356575571942937, 2.3356543527569498),
        50: (2.852480371419776, 2.852480536867904),
        63: (0.281575187053302, 0.2815751889645837),
    }
    for i, gaps in pinned.items():
        pair = rep["pairs"][i]
        assert (pair["feature_gap_without_resonance"], pair["feature_gap_with_resonance"]) == gaps, i
    assert rep["critical_dim"] == 78


def test_inspect_dynamic_uses_test_length_frequencies(capsys):
    flags = ["--head-dim", "16", "--scaling", "dynamic", "--factor", "2", "--original-max-position", "256"]
    rep = run_json(capsys, *flags, "--train-len", "256", "--test-len", "1024")
    cfg = rr.RopeConfig(head_dim=16, scaling=rr.DynamicNTK(2.0, 256))
    assert rep["seq_len"] == 1024 and "seq_len=test_len=1024" in rep["notes"][0]
    np.testing.assert_array_equal([p["theta"] for p in rep["pairs"]], rr.scaled_inv_freq(cfg, 1024))


def test_inspect_from_config_json(tmp_path, capsys):
    path = write(tmp_path, "config.json", LLAMA31_V4)
    rep = run_json(capsys, "--config", path, "--train-len", "256")
    cfg = rr.RopeConfig.from_hf(LLAMA31_V4)
    assert rep["source"] == str(path) and rr.RopeConfig.from_dict(rep["config"]) == cfg
    np.testing.assert_array_equal([p["theta"] for p in rep["pairs"]], rr.scaled_inv_freq(cfg))
    forced = run_json(capsys, "--config", path, "--train-len", "256", "--resonance")
    assert rr.RopeConfig.from_dict(forced["config"]) == cfg.with_resonance()
    assert forced["critical_dim"] == rr.critical_dim(cfg.with_resonance(), 256)


def test_inspect_takes_the_config_as_path_file_or_model_directory(tmp_path, capsys):
    path = write(tmp_path, "config.json", LLAMA31_V4)
    want = run_json(capsys, "--config", path, "--train-len", "256")
    for given in (["--config", tmp_path], [path], [tmp_path], ["--train-len", "256", tmp_path]):
        rep = run_json(capsys, *given, *([] if "--train-len" in given else ["--train-len", "256"]))
        assert rep == want, given  # same config, same numbers, source = the config.json itself
    code, out, _ = run_cli(capsys, "inspect", tmp_path, "--train-len", "256")
    assert code == 0 and out.startswith(f"config ({path}): head_dim=128 base=500000")


def test_path_and_config_together_name_both(tmp_path, capsys):
    path = write(tmp_path, "config.json", LLAMA31_V4)
    for argv in (["inspect", path, "--config", path], ["plot", tmp_path, "--config", path, "-o", tmp_path / "f.png"]):
        err = usage_error(capsys, *argv)
        assert "argument PATH: not allowed with argument --config" in err, err
        assert repr(str(path)) in err
    assert not (tmp_path / "f.png").exists()
    err = usage_error(capsys, "inspect", path, "--head-dim", "64")
    assert "argument --head-dim: not allowed with PATH (the config file defines the rope" in err


def test_model_directory_without_config_json(tmp_path, capsys):
    code, out, err = run_cli(capsys, "inspect", tmp_path)
    assert code == 2 and out == ""
    assert err == f"rrope inspect: error: model directory {str(tmp_path)!r} has no config.json\n"


PHI3_LIKE = {"hidden_size": 3072, "num_attention_heads": 32, "max_position_embeddings": 131072}
PHI3_LIKE["original_max_position_embeddings"] = 4096


@pytest.mark.parametrize(
    "data, train_len, key",
    [
        (PHI3_LIKE, 4096, "original_max_position_embeddings"),
        (YARN_V5, 8192, "rope_parameters.original_max_position_embeddings"),
        (LLAMA31_V4, 8192, "rope_scaling.original_max_position_embeddings"),
        ({"head_dim": 16, "max_position_embeddings": 2048}, 2048, "max_position_embeddings"),
        # top level first, then rope_parameters / rope_scaling, max_position_embeddings last
        ({**LLAMA31_V4, "original_max_position_embeddings": 1000}, 1000, "original_max_position_embeddings"),
    ],
    ids=["top-level", "rope_parameters", "rope_scaling", "max_position", "top-level-wins"],
)
def test_train_len_defaults_to_the_configs_context(tmp_path, capsys, data, train_len, key):
    path = write(tmp_path, "config.json", data)
    rep = run_json(capsys, path)
    assert (rep["train_len"], rep["test_len"]) == (train_len, 4 * train_len)
    note = f"train_len={train_len} is the config's {key} (give --train-len to change it)"
    assert rep["notes"][-1] == note
    code, out, _ = run_cli(capsys, "inspect", path)
    assert code == 0 and f"\nnote: {note}\n" in out and f"train_len={train_len} test_len={4 * train_len};" in out
    assert f"have wavelength <= train_len={train_len} " in out
    given = run_json(capsys, path, "--train-len", "300")  # --train-len wins, and needs no note
    assert given["train_len"] == 300 and not any("train_len" in n for n in given["notes"])


def test_train_len_default_without_a_context_key_or_from_flags(tmp_path, capsys):
    rep = run_json(capsys, write(tmp_path, "config.json", {"head_dim": 16, "rope_theta": 10000.0}))
    assert (rep["train_len"], rep["notes"]) == (4096, [])
    assert run_json(capsys, "--head-dim", "8")["train_len"] == 4096


def test_train_len_default_errors(tmp_path, capsys):
    data = {"head_dim": 16, "rope_parameters": {"rope_type": "default", "original_max_position_embeddings": 2.5}}
    path = write(tmp_path, "config.json", data)
    code, out, err = run_cli(capsys, "inspect", path)
    assert code == 2 and out == ""
    assert err == (
        f"rrope inspect: error: config file {str(path)!r} has rope_parameters.original_max_position_embeddings=2.5, "
        "not a positive integer: give --train-len\n"
    )
    assert run_cli(capsys, "inspect", path, "--train-len", "64")[0] == 0  # not read when --train-len is given
    err = usage_error(capsys, "inspect", write(tmp_path, "l.json", LLAMA31_V4), "--test-len", "100")
    assert "argument --test-len: must be > --train-len=8192 (the config's rope_scaling.original" in err


def test_help_says_where_train_len_comes_from(capsys):
    with pytest.raises(SystemExit):
        main(["inspect", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "PATH" in text and "or a model directory holding one" in text
    assert (
        "default: from a config file its original_max_position_embeddings, else "
        "rope_parameters.original_max_position_embeddings, else rope_scaling.original_max_position_embeddings, "
        "else max_position_embeddings; from flags 4096" in text
    )


def test_inspect_does_not_import_matplotlib_or_frameworks():
    code = (
        "import sys, io, contextlib; from rrope_core.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()): main(['inspect', '--head-dim', '8'])\n"
        "bad = {'matplotlib', 'torch', 'tensorflow', 'mlx', 'rich'} & set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_subprocess_inspect_json_and_error():
    cmd = [sys.executable, "-m", "rrope_core.cli", "inspect", "--head-dim", "8", "--resonance", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rep = json.loads(out.stdout)
    assert [p["rounded_wavelength"] for p in rep["pairs"]] == [6, 63, 628, 6283]
    bad = subprocess.run(
        [sys.executable, "-m", "rrope_core.cli", "convert", "no/such/config.json", "--to", "v5"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == "rrope convert: error: config file 'no/such/config.json' does not exist"


# ---------------------------------------------------------------- plot


def test_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "fig.png"
    code, stdout, err = run_cli(capsys, "plot", "--out", out, *YARN_FLAGS, "--train-len", "512", "--resonance")
    assert code == 0, err
    assert out.read_bytes()[:8] == PNG_MAGIC and out.stat().st_size > 10_000
    assert str(out) in stdout


def test_plot_from_config(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "llama.png"
    path = write(tmp_path, "config.json", LLAMA31_V4)
    assert run_cli(capsys, "plot", "-o", out, "--config", path, "--train-len", "128")[0] == 0
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_plot_from_path_writes_the_default_file(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    model = tmp_path / "model"
    model.mkdir()
    write(model, "config.json", LLAMA31_V4)
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "plot", "model")
    assert code == 0, err
    assert (tmp_path / "rrope-plot.png").read_bytes()[:8] == PNG_MAGIC
    assert out.splitlines() == [
        "note: train_len=8192 is the config's rope_scaling.original_max_position_embeddings (give --train-len to change it)",
        "wrote rrope-plot.png",
    ]


@pytest.mark.parametrize(
    "name, magic", [("f.svg", b"<svg"), ("f.pdf", b"%PDF-"), ("F.PDF", b"%PDF-"), ("f.png", PNG_MAGIC)]
)
def test_plot_format_follows_the_out_extension(tmp_path, capsys, name, magic):
    pytest.importorskip("matplotlib")
    out = tmp_path / name
    code, stdout, err = run_cli(capsys, "plot", "-o", out, "--head-dim", "8", "--train-len", "64")
    assert code == 0, err
    assert magic in out.read_bytes()[:400] and stdout == f"wrote {out}\n"


@pytest.mark.parametrize("name", ["f.jpg", "f", "f.png.txt", "f.svgz"])
def test_plot_refuses_other_extensions_before_any_work(tmp_path, capsys, monkeypatch, name):
    for module in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, module, None)  # the --out error comes before the matplotlib check
    out = tmp_path / name
    code, stdout, err = run_cli(capsys, "plot", tmp_path / "missing.json", "-o", out)  # ... and before reading
    assert code == 2 and stdout == "" and not out.exists()
    assert err == f"rrope plot: error: --out={str(out)!r} is invalid: the file name must end in .png, .svg or .pdf\n"


def test_plot_names_missing_matplotlib(tmp_path, capsys, monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # makes the import fail even where it is installed
    out = tmp_path / "fig.png"
    code, _, err = run_cli(capsys, "plot", "--out", out, "--head-dim", "8")
    assert code == 1 and not out.exists()
    assert "matplotlib" in err and "pip install matplotlib" in err and err.startswith("rrope plot: error: ")


# ---------------------------------------------------------------- convert


def convert(capsys, tmp_path, data, *argv):
    path = write(tmp_path, "in.json", data)
    code, out, err = run_cli(capsys, "convert", path, *argv)
    assert code == 0, err
    return json.loads(out)


def test_convert_v4_v5_v4_round_trip_keeps_other_keys(tmp_path, capsys):
    v5 = convert(capsys, tmp_path, LLAMA31_V4, "--to", "v5")
    assert "rope_scaling" not in v5 and "rope_theta" not in v5
    assert v5["rope_parameters"] == {"rope_type": "llama3", "rope_theta": 500000.0, **LLAMA31_V4["rope_scaling"]}
    others = {k: v for k, v in LLAMA31_V4.items() if k not in ("rope_scaling", "rope_theta")}
    assert {k: v for k, v in v5.items() if k != "rope_parameters"} == others
    assert list(v5)[:4] == list(LLAMA31_V4)[:4]  # the rope block is written where the old keys were
    assert rr.RopeConfig.from_hf(v5) == rr.RopeConfig.from_hf(LLAMA31_V4)
    v4 = convert(capsys, tmp_path, v5, "--to", "v4")
    assert v4 == LLAMA31_V4


def test_convert_v5_v4_v5_round_trip_partial_rotary(tmp_path, capsys):
    v4 = convert(capsys, tmp_path, YARN_V5, "--to", "v4")
    assert "rope_parameters" not in v4 and v4["rope_theta"] == 1000000.0
    assert v4["partial_rotary_factor"] == 0.5 and v4["rope_scaling"]["rope_type"] == "yarn"
    assert rr.RopeConfig.from_hf(v4) == rr.RopeConfig.from_hf(YARN_V5)
    assert convert(capsys, tmp_path, v4, "--to", "v5") == YARN_V5


def test_convert_resonance_and_interleaved(tmp_path, capsys):
    data = {**YARN_V5, "rope_interleave": True}
    v5 = convert(capsys, tmp_path, data, "--to", "v5", "--resonance")
    assert v5["rope_parameters"]["rope_type"] == "resonance_yarn" and v5["rope_interleave"] is True
    cfg = rr.RopeConfig.from_hf(v5)
    assert cfg.resonance and cfg.layout == "interleaved"


def test_convert_deepseek_and_longrope_blocks(tmp_path, capsys):
    """DeepSeek: RoPE on qk_rope_head_dim, interleaved, v4 ``type`` key; Phi-3: LongRoPE lists, no factor."""
    ds = {
        "hidden_size": 7168,
        "num_attention_heads": 128,
        "qk_rope_head_dim": 64,
        "rope_interleave": True,
        "max_position_embeddings": 163840,
        "rope_theta": 10000,
        "rope_scaling": {
            "type": "yarn",
            "factor": 40,
            "mscale": 1.0,
            "mscale_all_dim": 1.0,
            "original_max_position_embeddings": 4096,
        },
    }
    v5 = convert(capsys, tmp_path, ds, "--to", "v5")
    assert {k: v for k, v in v5.items() if k != "rope_parameters"} == {
        k: v for k, v in ds.items() if k not in ("rope_theta", "rope_scaling")
    }
    assert rr.RopeConfig.from_hf(v5) == rr.RopeConfig.from_hf(ds)
    phi = {
        "hidden_size": 256,
        "num_attention_heads": 8,
        "original_max_position_embeddings": 4096,
        "rope_scaling": {"type": "longrope", "short_factor": [1.0] * 16, "long_factor": [2.0] * 16},
    }
    v5 = convert(capsys, tmp_path, phi, "--to", "v5")
    assert v5["rope_parameters"]["long_factor"] == [2.0] * 16
    np.testing.assert_array_equal(
        rr.inv_freq(rr.RopeConfig.from_hf(v5), 8192), rr.inv_freq(rr.RopeConfig.from_hf(phi), 8192)
    )


def test_convert_writes_output_file(tmp_path, capsys):
    path = write(tmp_path, "in.json", LLAMA31_V4)
    out = tmp_path / "out.json"
    code, stdout, err = run_cli(capsys, "convert", path, "--to", "v5", "-o", out)
    assert code == 0 and stdout == "" and str(out) in err
    assert "rope_parameters" in json.loads(out.read_text())


@pytest.mark.parametrize("resonance", [False, True])
def test_convert_mlx_freqs_are_wavelengths_over_two_pi(tmp_path, capsys, resonance):
    data = {**YARN_V5, "rope_interleave": True}
    mlx = convert(capsys, tmp_path, data, "--to", "mlx", *(["--resonance"] if resonance else []))
    cfg = rr.RopeConfig.from_hf(data).with_resonance(resonance)
    np.testing.assert_allclose(mlx["freqs"], rr.wavelengths(cfg) / (2 * np.pi), rtol=1e-15)
    assert (mlx["dims"], mlx["traditional"], mlx["base"], mlx["scale"]) == (32, True, None, 1.0)
    assert mlx["attention_factor"] == rr.attention_factor(cfg)
    if resonance:
        np.testing.assert_allclose(np.asarray(mlx["freqs"]) * 2 * np.pi, np.rint(rr.wavelengths(cfg)), rtol=1e-15)


def llama_cpp_llama3_factors(base, dim, factor, low, high, old_ctx):
    """The loop of llama.cpp's convert_hf_to_gguf.py (LlamaModel.generate_extra_tensors), in float64."""
    out = []
    for freq in 1.0 / base ** (np.arange(0, dim, 2) / dim):
        wavelen = 2 * math.pi / freq
        if wavelen < old_ctx / high:
            out.append(1.0)
        elif wavelen > old_ctx / low:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out)


def test_convert_gguf_llama3_matches_llama_cpp_formula(tmp_path, capsys):
    gguf = convert(capsys, tmp_path, LLAMA31_V4, "--to", "gguf")
    assert gguf["rope.freq_base"] == 500000.0 and gguf["rope.dimension_count"] == 128
    assert gguf["tensor"] == "rope_freqs.weight" and gguf["rope.scaling.type"] == "none"
    factors = np.array(gguf["rope_freqs"])
    assert np.all(factors.astype(np.float32).astype(np.float64) == factors)  # float32-representable
    want = llama_cpp_llama3_factors(500000.0, 128, 8.0, 1.0, 4.0, 8192)
    np.testing.assert_allclose(factors, want, rtol=2**-23)
    assert factors[0] == 1.0 and factors[-1] == 8.0 and np.any((factors > 1) & (factors < 8))  # all 3 bands


def test_convert_gguf_factors_divide_the_default_theta(tmp_path, capsys):
    """ggml rotates pair i by pos * base^(-2i/d) / factor_i: that must be the config's theta_i."""
    gguf = convert(capsys, tmp_path, YARN_V5, "--to", "gguf", "--resonance")
    cfg = rr.RopeConfig.from_hf(YARN_V5).with_resonance()
    theta = default_inv_freq(gguf["rope.freq_base"], gguf["rope.dimension_count"]) / np.array(gguf["rope_freqs"])
    np.testing.assert_allclose(theta, rr.inv_freq(cfg), rtol=2**-23)
    assert gguf["rope.scaling.attn_factor"] == pytest.approx(rr.attention_factor(cfg), rel=2**-23)


def test_convert_seq_len_for_dynamic(tmp_path, capsys):
    data = {"head_dim": 64, "max_position_embeddings": 2048, "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}
    err = usage_error(capsys, "convert", write(tmp_path, "d.json", data), "--to", "mlx")
    assert "argument --seq-len: required" in err and "DynamicNTK" in err
    mlx = convert(capsys, tmp_path, data, "--to", "mlx", "--seq-len", "8192")
    cfg = rr.RopeConfig.from_hf(data)
    np.testing.assert_allclose(mlx["freqs"], 1 / rr.inv_freq(cfg, 8192), rtol=1e-15)
    err = usage_error(capsys, "convert", write(tmp_path, "d.json", LLAMA31_V4), "--to", "gguf", "--seq-len", "8")
    assert "only dynamic and longrope" in err


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("command", ["inspect", "plot", "convert"])
@pytest.mark.parametrize(
    "content, message",
    [
        (None, "does not exist"),
        ('{"head_dim": 64,\n  "rope_theta": }', "is not valid JSON: Expecting value at line 2 column 17"),
        ("[1, 2]", "holds a JSON array; a model config must be a JSON object"),
        ('"text"', "holds a JSON string"),
        (
            json.dumps(
                {"head_dim": 64, "rope_scaling": {"rope_type": "yarn", "factor": 0.5}, "max_position_embeddings": 8}
            ),
            "invalid rope config: YaRN.factor=0.5 is invalid: must be >= 1",
        ),
        (
            json.dumps({"head_dim": 64, "rope_scaling": {"rope_type": "nope"}}),
            "rope_type='nope' is invalid: must be one of",
        ),
        (json.dumps({"head_dim": 64, "rope_scaling": {"rope_type": "linear"}}), "factor=None is invalid: is required"),
        (
            json.dumps({"hidden_size": "4096", "num_attention_heads": 32}),
            "invalid rope config: hidden_size='4096' is invalid: must be a positive integer",
        ),
        (b"\xff\xfe{}", "is not UTF-8 text"),
    ],
    ids=["missing", "not-json", "array", "string", "bad-factor", "bad-type", "no-factor", "str-number", "not-utf8"],
)
def test_config_file_errors_exit_2_naming_file_and_field(tmp_path, capsys, command, content, message):
    path = tmp_path / "config.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    argv = {
        "inspect": ["inspect", "--config", path],
        "plot": ["plot", "--out", tmp_path / "f.png", "--config", path],
        "convert": ["convert", path, "--to", "v5"],
    }[command]
    if command == "plot":
        pytest.importorskip("matplotlib")  # without it, plot stops earlier (tested above)
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith(f"rrope {command}: error: config file {str(path)!r} "), err
    assert message in err, err
    assert "Traceback" not in err


def test_config_path_is_a_directory(tmp_path, capsys):
    code, _, err = run_cli(capsys, "convert", tmp_path, "--to", "v4")
    assert code == 2 and "is a directory" in err


def test_convert_unwritable_output(tmp_path, capsys):
    path = write(tmp_path, "in.json", LLAMA31_V4)
    code, _, err = run_cli(capsys, "convert", path, "--to", "v5", "-o", tmp_path / "no" / "out.json")
    assert code == 2 and "cannot write -o" in err and "out.json" in err


def test_per_layer_rope_parameters_are_refused(tmp_path, capsys):
    data = {"head_dim": 64, "rope_parameters": {"full_attention": {"rope_type": "default"}, "sliding": {}}}
    code, _, err = run_cli(capsys, "convert", write(tmp_path, "g.json", data), "--to", "v4")
    assert code == 2 and "rope_parameters" in err and "per-layer-type" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--factor", "8"], "argument --factor: not allowed with --scaling none; it applies to --scaling {linear,"),
        (["--scaling", "linear"], "argument --scaling linear: requires --factor"),
        (["--scaling", "yarn", "--factor", "8"], "argument --scaling yarn: requires --original-max-position"),
        (
            ["--scaling", "linear", "--factor", "2", "--beta-fast", "3"],
            "argument --beta-fast: not allowed with --scaling linear; it applies to --scaling {yarn}",
        ),
        (
            ["--scaling", "yarn", "--factor", "2", "--original-max-position", "64", "--low-freq-factor", "1"],
            "argument --low-freq-factor: not allowed with --scaling yarn; it applies to --scaling {llama3}",
        ),
        (["--scaling", "rope"], "argument --scaling: invalid choice: 'rope' (choose from 'none', 'linear'"),
        (["--layout", "neox"], "argument --layout: invalid choice: 'neox' (choose from 'half', 'interleaved')"),
        (["--train-len", "0"], "argument --train-len: must be a positive integer, got '0'"),
        (["--head-dim", "x"], "argument --head-dim: must be a positive integer, got 'x'"),
        (["--base", "nan"], "argument --base: must be a finite number, got 'nan'"),
        (["--train-len", "100", "--test-len", "100"], "argument --test-len: must be > --train-len=100, got 100"),
        (
            ["--scaling", "linear", "--factor", "0.5"],
            "invalid config from flags: Linear.factor=0.5 is invalid: must be >= 1",
        ),
        (["--head-dim", "8", "--rotary-dim", "16"], "rotary_dim=16 is invalid: must be <= head_dim=8"),
        (["--config", "c.json", "--base", "500"], "argument --base: not allowed with --config"),
    ],
)
def test_bad_flags_are_usage_errors(capsys, argv, message):
    err = usage_error(capsys, "inspect", *argv)
    assert message in err, err


def test_bad_flags_fail_before_reading_the_config(capsys):
    err = usage_error(capsys, "inspect", "--config", "missing.json", "--scaling", "yarn")
    assert "argument --scaling: not allowed with --config" in err


def test_plot_out_needs_an_existing_directory(tmp_path, capsys):
    err = usage_error(capsys, "plot", "--out", tmp_path / "nope" / "f.png")
    assert "argument --out: directory" in err and "does not exist" in err


def test_convert_requires_a_known_target(tmp_path, capsys):
    err = usage_error(capsys, "convert", "c.json", "--to", "v6")
    assert "argument --to: invalid choice: 'v6' (choose from 'v4', 'v5', 'mlx', 'gguf')" in err


# ---------------------------------------------------------------- posgen without torch

POSGEN_EXTRA = 'pip install ".[posgen]"'
NO_TORCH = (
    "import sys\n"
    "sys.modules['torch'] = None  # as if torch were not installed\n"
    "from rrope_core.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


@pytest.mark.parametrize("argv", [["posgen", "--help"], ["posgen"], ["posgen", "--quick", "--tasks", "cot"]])
def test_posgen_without_torch_is_one_line_naming_the_extra(tmp_path, argv):
    done = subprocess.run([sys.executable, "-c", NO_TORCH, *argv], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == "", done
    assert done.stderr == f"rrope posgen: error: `rrope posgen` needs torch, which is not installed: {POSGEN_EXTRA}\n"
    assert list(tmp_path.iterdir()) == []  # no results directory started


def test_posgen_without_torch_in_process(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    assert main(["posgen", "--help"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and POSGEN_EXTRA in err
    assert main(["inspect", "--head-dim", "8"]) == 0  # other commands do not need torch


def test_the_posgen_extra_brings_torch():
    tomllib = pytest.importorskip("tomllib")
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    assert "resonance-rope[torch]" in extras["posgen"] and any(r.startswith("torch") for r in extras["torch"])
