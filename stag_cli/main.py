"""The ``stag`` command: catalog, inspect, store and serve subcommands.

Each subcommand lives in the module that owns its work and exposes
``register(subparsers)``; this file only assembles them, importing lazily so
that ``stag --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from stag_cli.parsing import OneLineParser

# (command, module that defines register(subparsers))
SUBCOMMANDS: tuple[tuple[str, str], ...] = (
    ("catalog", "stag_cli.catalog"),
    ("inspect", "stag_cli.inspect"),
    ("store", "stag_cli.store"),
    ("serve", "stag_cli.serve"),
    ("evaluate", "stag_cli.evaluate"),
    ("export", "stag_cli.export"),
    ("compare", "stag_cli.compare"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="stag", description="stag: micro-expression feature stores")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for _name, module_name in SUBCOMMANDS:
        module = importlib.import_module(module_name)
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"stag {args.command}: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of our output went away (stag store info --config | head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at interpreter exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
