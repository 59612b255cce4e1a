"""``costspan report``: spend and usage from the ledger, for the terminal, JSON or one HTML file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from costspan.cli import arguments
from costspan.cli.console import table_console
from costspan.ledger import report as report_module
from costspan.ledger.query import DIMENSIONS
from costspan.money import requested_currency
from costspan.settings import load_settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="spend by provider, model, project, user, feature, day; top users; month-end projection",
        description="Answers from the local ledger: totals, breakdowns, daily trend, change against the "
        "previous period, top users and the month-end projection.",
    )
    arguments.add_filter_args(parser)
    parser.add_argument("--by", action="append", default=[], metavar="DIM",
                        help=f"breakdown table: {', '.join(DIMENSIONS)}; repeat for several tables, "
                        "join with commas for one crossed table (project,model)")
    parser.add_argument("--top", type=int, default=10, metavar="N", help="rows per table and top users (default 10)")
    parser.add_argument("--currency", metavar="CODE", help="show money in CODE at the configured rate (currency:)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report with charts")
    parser.set_defaults(func=handler)


def parse_by(values: list[str]) -> tuple[tuple[str, ...], ...]:
    if not values:
        return report_module.DEFAULT_BY
    groups: list[tuple[str, ...]] = []
    for value in values:
        dims = tuple(d.strip() for d in value.split(",") if d.strip())
        for d in dims:
            if d not in DIMENSIONS:
                raise arguments.UsageError(f"--by {d}: expected one of {', '.join(DIMENSIONS)}")
        groups.append(dims)
    return tuple(groups)


def handler(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
        if args.top < 1:
            raise arguments.UsageError("--top must be at least 1")
        by = parse_by(args.by)
        currency = requested_currency(settings, args.currency)
        filters = arguments.filters_for(args, settings)
        conn = arguments.open_ledger(args, settings)
    except arguments.UsageError as exc:
        print(f"costspan report: {exc}", file=sys.stderr)
        return 2
    try:
        report = report_module.build(conn, filters, settings.timezone, by=by, top=args.top)
        if args.html:
            from costspan.ledger import report_html

            report.budgets = _budget_status(settings)
            Path(args.html).write_text(report_html.render(report, currency), encoding="utf-8")
        if args.json:
            from costspan.ledger.report_json import as_dict

            json.dump(as_dict(report, currency), sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:

            from costspan.ledger.report_text import render

            render(report, currency, table_console())
            if args.html:
                print(f"HTML report written to {args.html}")
    finally:
        conn.close()
    return 0


def _budget_status(settings: Any) -> list[dict[str, Any]]:
    """Budgets for the HTML chart; the report works without them (no store, budgets not built)."""
    try:
        import importlib

        engine_class = getattr(importlib.import_module("costspan.budgets"), "BudgetEngine", None)
        if engine_class is None:
            return []
        engine = engine_class.from_settings(settings)
        try:
            return [entry.as_dict() for entry in engine.status()]
        finally:
            close = getattr(engine, "close", None)
            if close is not None:
                close()
    except Exception:
        return []
