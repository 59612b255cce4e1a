"""``costspan prune --older-than 30d``: retention for the ledger (``ledger.retention_days`` does the
same automatically in the writer)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from costspan.cli import arguments
from costspan.ledger import prune as prune_module
from costspan.ledger.periods import parse_duration
from costspan.settings import load_settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("prune", help="delete ledger rows older than a duration",
                                   description="Delete ledger rows that started before now minus DURATION "
                                   "(cut at a 15-minute boundary, rows and rollup together).")
    arguments.add_ledger_arg(parser)
    parser.add_argument("--older-than", required=True, metavar="DURATION", help="e.g. 30d, 12w, 48h")
    parser.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
    parser.add_argument("--vacuum", action="store_true", help="give the freed space back to the file system")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    try:
        age = parse_duration(args.older_than)
    except ValueError as exc:
        print(f"costspan prune: --older-than: {exc}", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
        conn = arguments.open_ledger(args, settings, write=True)
    except arguments.UsageError as exc:
        print(f"costspan prune: {exc}", file=sys.stderr)
        return 2
    try:
        cutoff = prune_module.snap(prune_module.cutoff_us(age))
        if args.dry_run:
            count = prune_module.count_older(conn, cutoff)
        else:
            count = prune_module.prune(conn, cutoff)
            if args.vacuum:
                conn.execute("VACUUM")
        remaining = int(conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])
    finally:
        conn.close()
    from datetime import datetime, timezone

    cutoff_text = datetime.fromtimestamp(cutoff / 1e6, timezone.utc).isoformat()
    if args.json:
        print(json.dumps({"deleted" if not args.dry_run else "would_delete": count, "before": cutoff_text,
                          "remaining": remaining}))
    else:
        verb = "would delete" if args.dry_run else "deleted"
        print(f"{verb} {count:,} rows that started before {cutoff_text}; {remaining:,} rows remain")
    return 0
