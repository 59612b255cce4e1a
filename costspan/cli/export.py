"""``costspan export --format csv|jsonl|json``: the ledger's rows, streamed, same filters as report."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from costspan.cli import arguments
from costspan.ledger.export import FORMATS, write
from costspan.settings import load_settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("export", help="ledger rows as CSV, JSON Lines or JSON (streamed)",
                                   description="Every call in the ledger, one record each, exact money.")
    arguments.add_filter_args(parser, default_since=None)
    parser.add_argument("--format", choices=FORMATS, default="csv", help="output format (default csv)")
    parser.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of standard output")
    parser.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
        filters = arguments.filters_for(args, settings)
        conn = arguments.open_ledger(args, settings)
    except arguments.UsageError as exc:
        print(f"costspan export: {exc}", file=sys.stderr)
        return 2
    try:
        if args.output:
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                n = write(conn, filters, args.format, out)
            print(f"{n:,} rows written to {args.output}", file=sys.stderr)
        else:
            write(conn, filters, args.format, sys.stdout)
    except BrokenPipeError:  # `costspan export | head` is fine
        return 0
    finally:
        conn.close()
    return 0
