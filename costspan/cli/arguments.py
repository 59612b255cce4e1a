"""Flags and ledger opening shared by the ledger commands ``report``, ``export``, ``prune`` and ``advise``.

One definition so the four commands accept the same filters with the same meaning. Argument
parsing is the command line's business, so it lives here rather than beside the ledger it queries.
"""

from __future__ import annotations

import argparse
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from costspan.errors import ConfigError
from costspan.ledger import config as ledger_config
from costspan.ledger import schema
from costspan.ledger.periods import Period, resolve
from costspan.ledger.query import Filters
from costspan.settings import Settings


class UsageError(Exception):
    """A bad flag value: the command prints it and exits with status 2."""


def add_ledger_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ledger", metavar="PATH", help="ledger file (default: from the settings)")


def add_filter_args(parser: argparse.ArgumentParser, *, default_since: str | None = "30d") -> None:
    add_ledger_arg(parser)
    when = parser.add_argument_group("period (the configured time zone's calendar)")
    when.add_argument("--since", metavar="DURATION",
                      help=f"last 30m, 24h, 7d, 2w (default: {default_since or 'everything'})")
    when.add_argument("--from", dest="from_", metavar="DATE", help="start date (or ISO date-time), inclusive")
    when.add_argument("--to", metavar="DATE", help="end date, inclusive (the whole day)")
    which = parser.add_argument_group("filters (repeat a flag for several values)")
    for name in ("project", "user", "provider", "model"):
        which.add_argument(f"--{name}", action="append", default=[], metavar=name.upper())
    parser.set_defaults(default_since=default_since)


def ledger_file(args: argparse.Namespace, settings: Settings) -> Path:
    if getattr(args, "ledger", None):
        return Path(args.ledger)
    path = ledger_config.ledger_path(settings)
    if path is None:
        raise ConfigError(settings.source, "ledger.path",
                          "no ledger: the store is not SQLite; set ledger.path to the ledger file")
    return path


def open_ledger(args: argparse.Namespace, settings: Settings, *, write: bool = False) -> sqlite3.Connection:
    path = ledger_file(args, settings)
    if not path.exists():
        raise UsageError(f"no ledger at {path} (nothing recorded yet, or COSTSPAN_LEDGER=off)")
    try:
        return schema.connect(path, readonly=not write)
    except schema.LedgerVersionError as exc:
        raise UsageError(str(exc)) from exc


def period_for(args: argparse.Namespace, settings: Settings, now: datetime | None = None) -> Period:
    now = now or datetime.now(timezone.utc)
    since = args.since
    if since is None and args.from_ is None and args.to is None and args.default_since is None:
        return Period(0, int(now.timestamp() * 1_000_000) + 1)
    try:
        return resolve(settings.timezone, now, since=since, from_=args.from_, to=args.to,
                       default=args.default_since or "30d")
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def filters_for(args: argparse.Namespace, settings: Settings, now: datetime | None = None) -> Filters:
    return Filters(
        period_for(args, settings, now),
        project=tuple(args.project),
        user=tuple(args.user),
        provider=tuple(args.provider),
        model=tuple(args.model),
    )
