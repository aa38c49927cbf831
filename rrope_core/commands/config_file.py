"""Read a model's ``config.json`` and turn it into a ``RopeConfig``, with errors that name the file.

Parsed with ``json.loads`` only (no eval, no pickle); the rope keys are read by
``RopeConfig.from_hf`` (transformers v5 ``rope_parameters`` or v4 ``rope_scaling`` + ``rope_theta``).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..config import RopeConfig
from ..errors import RopeError
from .errors import CommandError

__all__ = ["read_json_object", "rope_config_from_file"]


def read_json_object(path: str | Path) -> dict:
    """The JSON object in ``path``; ``CommandError`` if unreadable, not JSON or not an object."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CommandError(f"config file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise CommandError(f"config file {str(path)!r} is a directory, not a JSON file") from None
    except UnicodeDecodeError as exc:
        raise CommandError(f"config file {str(path)!r} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise CommandError(f"cannot read config file {str(path)!r}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"config file {str(path)!r} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(data, dict):
        raise CommandError(
            f"config file {str(path)!r} holds a JSON {_json_type(data)}; a model config must be a JSON object"
        )
    return data


def rope_config_from_file(path: str | Path, data: dict | None = None) -> RopeConfig:
    """``RopeConfig.from_hf`` of the file's object, errors prefixed with the file name."""
    data = read_json_object(path) if data is None else data
    try:
        return RopeConfig.from_hf(data)
    except RopeError as exc:
        raise CommandError(f"config file {str(path)!r} has an invalid rope config: {exc}") from None
    except (TypeError, ArithmeticError) as exc:  # e.g. hidden_size "4096" (a string) reaches arithmetic
        raise CommandError(
            f"config file {str(path)!r} has an invalid rope config: a number has the wrong type or value ({exc})"
        ) from None


def _json_type(value: object) -> str:
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), "null" if value is None else type(value).__name__
    )
