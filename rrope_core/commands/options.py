"""The config flags shared by ``rrope inspect`` and ``rrope plot``, and their checks.

A config comes either from flags (``--head-dim --base --scaling ...``) or from a model's
``config.json`` (the positional ``PATH`` or ``--config``: a file, or a model directory holding
one); the two are exclusive, except ``--resonance``, which forces resonance on either way.
Without ``--train-len`` a config file gives the training length (``default_train_len``).
Flag combinations are checked before any work, with argparse's ``usage + error`` (exit 2)
naming the flag and what is allowed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import LAYOUTS, RopeConfig
from ..errors import RopeError
from ..scaling import NTK, DynamicNTK, Linear, Llama3, YaRN
from .config_file import read_json_object, rope_config_from_file
from .errors import CommandError

__all__ = [
    "add_config_arguments",
    "add_length_arguments",
    "check_flag_combination",
    "config_from_args",
    "default_train_len",
    "lengths_from_args",
    "SCALINGS",
]

SCALINGS = ("none", "linear", "ntk", "dynamic", "yarn", "llama3")
DEFAULT_TRAIN_LEN = 4096
#: where a config file's training length is looked up, first found wins
TRAIN_LEN_KEYS = (
    "original_max_position_embeddings",
    "rope_parameters.original_max_position_embeddings",
    "rope_scaling.original_max_position_embeddings",
    "max_position_embeddings",
)

#: flag -> (dest, scalings that take it)
_SCALING_FLAGS = {
    "--factor": ("factor", ("linear", "ntk", "dynamic", "yarn", "llama3")),
    "--original-max-position": ("original_max_position", ("dynamic", "yarn", "llama3")),
    "--beta-fast": ("beta_fast", ("yarn",)),
    "--beta-slow": ("beta_slow", ("yarn",)),
    "--low-freq-factor": ("low_freq_factor", ("llama3",)),
    "--high-freq-factor": ("high_freq_factor", ("llama3",)),
}
#: scaling -> flags it cannot do without
_REQUIRED = {
    "linear": ("--factor",),
    "ntk": ("--factor",),
    "dynamic": ("--factor", "--original-max-position"),
    "yarn": ("--factor", "--original-max-position"),
    "llama3": ("--factor", "--original-max-position"),
}
#: flags that describe the rope itself, so they cannot be combined with --config
_ROPE_FLAGS = {
    "--head-dim": "head_dim",
    "--base": "base",
    "--rotary-dim": "rotary_dim",
    "--scaling": "scaling",
    "--layout": "layout",
    **{flag: dest for flag, (dest, _) in _SCALING_FLAGS.items()},
}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """``PATH``/``--config`` or the rope flags, plus ``--resonance``. Defaults are applied in
    ``config_from_args`` (``None`` here tells "not given" apart from "given the default")."""
    g = parser.add_argument_group("config from a model (exclusive with the rope flags below)")
    g.add_argument(
        "path",
        nargs="?",
        metavar="PATH",
        help="a transformers config.json (v4 or v5 rope keys), or a model directory holding one",
    )
    g.add_argument("--config", metavar="CONFIG_JSON", help="the same as PATH (give one of the two)")
    f = parser.add_argument_group("config from flags")
    f.add_argument("--head-dim", type=_positive_int, help="features per attention head (default 128)")
    f.add_argument("--base", type=_finite_float, help="RoPE base, theta (default 10000)")
    f.add_argument("--rotary-dim", type=_positive_int, help="rotated features per head (default: head-dim)")
    f.add_argument("--scaling", choices=SCALINGS, help="scaling method (default none)")
    f.add_argument("--factor", type=_finite_float, help="scaling factor (linear, ntk, dynamic, yarn, llama3)")
    f.add_argument(
        "--original-max-position",
        type=_positive_int,
        help="pre-scaling context length L0 (dynamic, yarn, llama3)",
    )
    f.add_argument("--beta-fast", type=_finite_float, help="YaRN beta_fast (default 32)")
    f.add_argument("--beta-slow", type=_finite_float, help="YaRN beta_slow (default 1)")
    f.add_argument("--low-freq-factor", type=_finite_float, help="llama3 low_freq_factor (default 1)")
    f.add_argument("--high-freq-factor", type=_finite_float, help="llama3 high_freq_factor (default 4)")
    f.add_argument("--layout", choices=LAYOUTS, help="feature pairing (default half)")
    parser.add_argument("--resonance", action="store_true", help="round wavelengths to integers (Resonance RoPE)")


def add_length_arguments(parser: argparse.ArgumentParser) -> None:
    """``--train-len`` and ``--test-len``: the positions seen in training and the ones met at inference."""
    keys = ", else ".join(TRAIN_LEN_KEYS)
    parser.add_argument(
        "--train-len",
        type=_positive_int,
        help=f"training length L (default: from a config file its {keys}; from flags {DEFAULT_TRAIN_LEN})",
    )
    parser.add_argument("--test-len", type=_positive_int, help="test length T > L (default 4 x train-len)")


def default_train_len(data: dict | None, path: str = "") -> tuple[int, str | None]:
    """``(train_len, key)`` without ``--train-len``: the first of ``TRAIN_LEN_KEYS`` in a config
    file's object ``data`` (``key`` names it), else ``DEFAULT_TRAIN_LEN`` (``key`` None).
    A key holding something other than a positive integer raises ``CommandError``."""
    for key in TRAIN_LEN_KEYS if data is not None else ():
        *block, name = key.split(".")
        holder = data.get(block[0]) if block else data
        if not isinstance(holder, dict) or holder.get(name) is None:
            continue
        value = holder[name]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise CommandError(f"config file {path!r} has {key}={value!r}, not a positive integer: give --train-len")
        return value, key
    return DEFAULT_TRAIN_LEN, None


def lengths_from_args(
    args: argparse.Namespace, parser: argparse.ArgumentParser, data: dict | None = None
) -> tuple[int, int, str | None]:
    """``(train_len, test_len, note)``: ``--train-len``, else ``default_train_len`` of the config
    file's object ``data`` (``note`` then names the key); ``parser.error`` unless ``test_len > train_len``."""
    train_len, key = (args.train_len, None) if args.train_len is not None else default_train_len(data, args.config)
    note = None if key is None else f"train_len={train_len} is the config's {key} (give --train-len to change it)"
    test_len = 4 * train_len if args.test_len is None else args.test_len
    if test_len <= train_len:
        where = "" if args.train_len is not None else f" (the config's {key})" if key else " (the default)"
        parser.error(f"argument --test-len: must be > --train-len={train_len}{where}, got {test_len}")
    return train_len, test_len, note


def check_flag_combination(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """``parser.error`` for flags that contradict each other (exit 2, before any work).

    Leaves the config file's path (``PATH`` or ``--config``) in ``args.config``."""
    if args.path is not None:
        if args.config is not None:
            parser.error(
                f"argument PATH: not allowed with argument --config (got {args.path!r} and {args.config!r}; "
                "give the config file once)"
            )
        args.config, source_flag = args.path, "PATH"
    else:
        source_flag = "--config"
    if args.train_len is not None and args.test_len is not None and args.test_len <= args.train_len:
        parser.error(f"argument --test-len: must be > --train-len={args.train_len}, got {args.test_len}")
    if args.config is not None:
        given = [flag for flag, dest in _ROPE_FLAGS.items() if getattr(args, dest) is not None]
        if given:
            parser.error(
                f"argument {given[0]}: not allowed with {source_flag} (the config file defines the rope; "
                "only --resonance, --train-len and --test-len combine with it)"
            )
        return
    scaling = args.scaling or "none"
    for flag, (dest, takers) in _SCALING_FLAGS.items():
        if getattr(args, dest) is not None and scaling not in takers:
            parser.error(
                f"argument {flag}: not allowed with --scaling {scaling}; it applies to --scaling {{{','.join(takers)}}}"
            )
    missing = [flag for flag in _REQUIRED.get(scaling, ()) if getattr(args, _SCALING_FLAGS[flag][0]) is None]
    if missing:
        parser.error(f"argument --scaling {scaling}: requires {' and '.join(missing)}")


def _scaling(args: argparse.Namespace):
    name = args.scaling or "none"
    if name == "none":
        return None
    if name == "linear":
        return Linear(args.factor)
    if name == "ntk":
        return NTK(args.factor)
    if name == "dynamic":
        return DynamicNTK(args.factor, args.original_max_position)
    if name == "yarn":
        kwargs = {k: getattr(args, k) for k in ("beta_fast", "beta_slow") if getattr(args, k) is not None}
        return YaRN(args.factor, args.original_max_position, **kwargs)
    kwargs = {k: getattr(args, k) for k in ("low_freq_factor", "high_freq_factor") if getattr(args, k) is not None}
    return Llama3(args.factor, args.original_max_position, **kwargs)


def _config_path(path: str) -> str:
    """``path``, or ``path/config.json`` when ``path`` is a model directory (``CommandError`` if it has none)."""
    if not Path(path).is_dir():
        return path
    inside = Path(path) / "config.json"
    if not inside.is_file():
        raise CommandError(f"model directory {path!r} has no config.json")
    return str(inside)


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[RopeConfig, str, dict | None]:
    """``(config, source, data)``: from ``PATH``/``--config`` (source = the file's path, data = its
    JSON object) or from the flags (source = ``"flags"``, data = ``None``).

    Flag combinations fail through ``parser.error``; values the config rejects (``--factor 0.5``)
    fail the same way, with the config's message (which names the field, value and rule).
    File errors raise ``CommandError``.
    """
    check_flag_combination(args, parser)
    if args.config is not None:
        args.config = _config_path(args.config)
        data = read_json_object(args.config)
        cfg = rope_config_from_file(args.config, data)
        if args.resonance and not cfg.resonance:
            try:
                cfg = cfg.with_resonance(True)
            except RopeError as exc:
                parser.error(f"argument --resonance: cannot apply to {args.config!r}: {exc}")
        return cfg, args.config, data
    try:
        cfg = RopeConfig(
            head_dim=128 if args.head_dim is None else args.head_dim,
            base=10000.0 if args.base is None else args.base,
            rotary_dim=args.rotary_dim,
            scaling=_scaling(args),
            resonance=args.resonance,
            layout=args.layout or "half",
        )
    except RopeError as exc:
        parser.error(f"invalid config from flags: {exc}")
    return cfg, "flags", None
