"""``costspan status [--json]``: every budget and quota, with its bar, projection and reset time.

Reads the same store the application charges, so it shows the live figures of every process
that shares it. Exit status: 0, 1 when the store could not be read (the figures shown are then
incomplete), 2 for any configuration error that disables costspan or its /metrics endpoint in the
application (:func:`costspan.check.check`; raised here, reported by ``main``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from costspan.budgets import BudgetEngine, BudgetStatus
from costspan.check import check
from costspan.cli.console import table_console
from costspan.money import Currency, requested_currency
from costspan.settings import load_settings
from costspan.terminal import markup, plain

_BAR_WIDTH = 10
_COLOURS = {"ok": "green", "warning": "yellow", "critical": "red", "exceeded": "bold red"}


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "status",
        help="budgets and quotas: spend, limit, status, projection, reset time",
        description="Budgets and quotas from the shared budget store, as the running applications see them.",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list of objects instead of a table")
    parser.add_argument(
        "--currency", metavar="CODE", help="show money in CODE at the configured rate (currency:); JSON stays USD"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    check(settings)
    money = requested_currency(settings, args.currency)
    engine = BudgetEngine.from_settings(settings)
    try:
        entries = engine.status()
    finally:
        engine.close()
    if args.json:
        json.dump([entry.as_dict() for entry in entries], sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif not entries:
        print(f"no budgets or quotas configured (settings: {settings.source})")
    else:
        console = table_console()
        console.print(table(entries, time.time(), money))
        print("* enforced: calls are refused once the limit is reached")
    errors = {entry.error for entry in entries if entry.error}
    for error in sorted(errors):
        print(f"costspan status: {plain(error)} ({plain(settings.store_url)}); figures are incomplete", file=sys.stderr)
    return 1 if errors else 0


def table(entries: list[BudgetStatus], now: float, money: Currency | None = None) -> Table:
    money = money or Currency()
    grid = Table(title="costspan budgets and quotas", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    grid.add_column("name")
    for heading in ("window", "used / limit", "", "status", "resets in", "projected", "runs out"):
        grid.add_column(heading, justify="right" if heading in ("used / limit", "projected") else "left", no_wrap=True)
    for entry in entries:
        colour = _COLOURS.get(entry.status, "white")
        remaining = entry.resets_at.timestamp() - now
        grid.add_row(
            _name(entry),
            entry.window,
            f"{_amount(entry, entry.used, money)} / {_amount(entry, entry.limit, money)}",
            _bar(entry.utilization, colour) + Text(f" {entry.utilization:.0%}"),
            Text(entry.status, style=colour),
            _duration(remaining),
            _amount(entry, entry.projection.projected, money),
            _runs_out(entry.projection.exhaustion_seconds, remaining),
        )
    return grid


def _name(entry: BudgetStatus) -> str:
    label = markup(entry.name) if entry.kind == "budget" else f"{markup(entry.name)} ({entry.unit})"
    if entry.enforce:
        label += " *"
    if entry.member is not None:
        label += f"\n  top: {markup(entry.member)} (of {entry.members})"
    return label


def _amount(entry: BudgetStatus, value: int, money: Currency) -> str:
    return money.format(value) if entry.is_money else f"{value:,}"


def _bar(utilization: float, colour: str) -> Text:
    filled = min(_BAR_WIDTH, round(utilization * _BAR_WIDTH))
    return Text("█" * filled, style=colour) + Text("░" * (_BAR_WIDTH - filled), style="dim")


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s"


def _runs_out(exhaustion: float | None, remaining: float) -> str:
    """When the limit is reached at the window's pace; "-" when not before the window resets."""
    if exhaustion is None or exhaustion > remaining:
        return "-"
    return "now" if exhaustion == 0 else _duration(exhaustion)
