"""Subcommands of the ``rrope`` CLI (see rrope_core/cli.py)."""
