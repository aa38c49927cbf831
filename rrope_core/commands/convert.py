"""``rrope convert CONFIG --to {v4,v5,mlx,gguf}``: rewrite or export a model's rope block.

- ``v4``/``v5``: the same JSON object with its rope keys (``rope_scaling``, ``rope_theta``,
  ``rope_parameters``, top-level ``partial_rotary_factor``) replaced by transformers v4
  (``rope_scaling`` + ``rope_theta``) or v5 (``rope_parameters``) keys, written where the old
  ones were; every other key is kept as it was. The result is read back and must give the same
  ``RopeConfig``.
- ``mlx``: the arguments of ``mx.fast.rope``: ``freqs_i = 1/theta_i = wavelength_i/(2*pi)``
  (MLX divides by them), ``dims``, ``traditional`` (the interleaved layout), ``base`` null.
- ``gguf``: llama.cpp's ``rope_freqs`` tensor, ``factor_i = theta_default_i / theta_i`` with
  ``theta_default_i = freq_base^(-2i/dimension_count)`` (ggml rotates pair ``i`` by
  ``pos * theta_default_i / factor_i``; convert_hf_to_gguf.py writes llama3's factors this way).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from ..config import RopeConfig
from ..errors import RopeError
from ..frequencies import attention_factor, inv_freq
from ..scaling import default_inv_freq
from .config_file import read_json_object, rope_config_from_file
from .errors import CommandError, report

__all__ = ["add_arguments", "run", "rewrite_rope_keys", "mlx_export", "gguf_export", "ROPE_KEYS", "TARGETS"]

TARGETS = ("v4", "v5", "mlx", "gguf")
#: keys of a transformers config that describe the rope (replaced by ``--to v4/v5``)
ROPE_KEYS = ("rope_scaling", "rope_theta", "rope_parameters", "partial_rotary_factor")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG_JSON", help="a transformers config.json (v4 or v5 rope keys)")
    parser.add_argument("--to", required=True, choices=TARGETS, help="target format")
    parser.add_argument("-o", "--output", metavar="OUT_JSON", help="write here instead of stdout")
    parser.add_argument("--resonance", action="store_true", help="turn resonance on in the result")
    parser.add_argument(
        "--seq-len",
        type=int,
        help="for mlx/gguf of dynamic or longrope configs: the sequence length whose frequencies to export",
    )
    parser.set_defaults(_parser=parser)


def rewrite_rope_keys(data: dict, cfg: RopeConfig, version: int) -> dict:
    """``data`` with its ``ROPE_KEYS`` replaced by ``cfg``'s v4/v5 keys (at the first old key's place).

    ``head_dim`` is never touched (the file's own, possibly derived or DeepSeek's ``qk_rope_head_dim``,
    stays); ``max_position_embeddings`` (dynamic NTK's original length) is added only if absent.
    The interleaved layout is kept by the file's own ``rope_interleave`` key, not the rope block.
    """
    hf = dataclasses.replace(cfg, layout="half").to_hf(version)
    new = {k: v for k, v in hf.items() if k in ROPE_KEYS}
    extra = {k: v for k, v in hf.items() if k not in ROPE_KEYS and k != "head_dim" and k not in data}
    out: dict = {}
    placed = False
    for key, value in data.items():
        if key in ROPE_KEYS:
            if not placed:
                out.update(new)
                placed = True
            continue
        out[key] = value
    if not placed:
        out.update(new)
    out.update(extra)
    return out


def _canonical(cfg: RopeConfig) -> tuple:
    """What a rope block means: its v5 keys and the layout (``LongRoPE(factor=None)`` == ``factor=1``)."""
    return dataclasses.replace(cfg, layout="half").to_hf(5), cfg.layout


def _frequencies(cfg: RopeConfig, seq_len: int | None, parser) -> np.ndarray:
    if cfg.seq_len_dependent and seq_len is None:
        kind = type(cfg.scaling).__name__
        parser.error(
            f"argument --seq-len: required for --to mlx/gguf of a {kind} config (its frequencies depend on "
            "the sequence length; pass the length whose frequencies to export)"
        )
    if not cfg.seq_len_dependent and seq_len is not None:
        parser.error("argument --seq-len: only dynamic and longrope configs depend on the sequence length")
    return inv_freq(cfg, seq_len)


def mlx_export(cfg: RopeConfig, seq_len: int | None = None, theta: np.ndarray | None = None) -> dict:
    """``mx.fast.rope`` arguments: ``freqs = 1/theta`` (periods over 2*pi), ``traditional`` = interleaved."""
    theta = inv_freq(cfg, seq_len) if theta is None else theta
    return {
        "format": "mlx.fast.rope",
        "dims": cfg.rotary_dim,
        "traditional": cfg.layout == "interleaved",
        "base": None,
        "scale": 1.0,
        "freqs": [float(f) for f in 1.0 / theta],
        "attention_factor": attention_factor(cfg, seq_len),
    }


def gguf_export(cfg: RopeConfig, seq_len: int | None = None, theta: np.ndarray | None = None) -> dict:
    """llama.cpp ``rope_freqs`` (float32): ``factor_i = base^(-2i/d) / theta_i``, with its GGUF keys."""
    theta = inv_freq(cfg, seq_len) if theta is None else theta
    factors = (default_inv_freq(cfg.base, cfg.rotary_dim) / theta).astype(np.float32)
    return {
        "format": "gguf",
        "tensor": "rope_freqs.weight",
        "rope.freq_base": float(np.float32(cfg.base)),
        "rope.dimension_count": cfg.rotary_dim,
        "rope.scaling.type": "none",
        "rope.scaling.attn_factor": float(np.float32(attention_factor(cfg, seq_len))),
        "rope_freqs": [float(f) for f in factors],
    }


def _dumps_export(out: dict) -> str:
    """A flat export dict as indented JSON with each number list on one line."""
    body = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v, allow_nan=False)}" for k, v in out.items())
    return "{\n" + body + "\n}"


def _write(text: str, output: str | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot write -o {output!r}: {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    parser = args._parser
    if args.seq_len is not None and args.seq_len <= 0:
        parser.error(f"argument --seq-len: must be a positive integer, got {args.seq_len}")
    if args.seq_len is not None and args.to in ("v4", "v5"):
        parser.error(f"argument --seq-len: not allowed with --to {args.to} (a config keeps its scaling)")
    try:
        data = read_json_object(args.config)
        cfg = rope_config_from_file(args.config, data)
        if args.resonance and not cfg.resonance:
            cfg = cfg.with_resonance(True)
        if args.to in ("v4", "v5"):
            out = rewrite_rope_keys(data, cfg, int(args.to[1]))
            back = RopeConfig.from_hf(out)
            if _canonical(back) != _canonical(cfg):  # a bug of ours: say so rather than write another model
                raise CommandError(f"internal check failed: rewritten keys read back as {back!r}, not {cfg!r}")
        else:
            theta = _frequencies(cfg, args.seq_len, parser)
            out = (mlx_export if args.to == "mlx" else gguf_export)(cfg, args.seq_len, theta)
        # v4/v5 keep what the file had, NaN included (json.loads reads it); exports are always finite.
        text = json.dumps(out, indent=2) if args.to in ("v4", "v5") else _dumps_export(out)
        _write(text + "\n", args.output)
    except RopeError as exc:
        return report("convert", exc)
    if args.output is not None:
        print(f"wrote {args.output}", file=sys.stderr)
    return 0
