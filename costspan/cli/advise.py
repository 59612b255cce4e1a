"""``costspan advise``: savings with evidence (cheaper models, repeated prompts, prompt-cache use)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import TYPE_CHECKING, Any, cast

from rich.console import Console
from rich.table import Table

from costspan.cli import arguments
from costspan.cli.console import table_console
from costspan.ledger.advise import Advice, advise
from costspan.ledger.report import tokens
from costspan.money import Currency, requested_currency
from costspan.pricing.pricer import build_pricer
from costspan.settings import load_settings
from costspan.terminal import markup

if TYPE_CHECKING:
    from rich.console import JustifyMethod


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("advise", help="savings the ledger can show, with the evidence",
                                   description="Cheaper models of the same provider for the same token mix, "
                                   "repeated identical prompts, and prompt-cache use. Every figure states its basis.")
    arguments.add_filter_args(parser)
    parser.add_argument("--currency", metavar="CODE", help="show money in CODE at the configured rate")
    parser.add_argument("--json", action="store_true", help="print the advice as JSON")
    parser.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
        currency = requested_currency(settings, args.currency)
        pricer = build_pricer(settings)
        filters = arguments.filters_for(args, settings)
        conn = arguments.open_ledger(args, settings)
    except arguments.UsageError as exc:
        print(f"costspan advise: {exc}", file=sys.stderr)
        return 2
    try:
        result = advise(conn, filters, pricer)
    finally:
        conn.close()
    if args.json:
        json.dump(dataclasses.asdict(result), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        render(result, currency, table_console())
    return 0


def render(result: Advice, currency: Currency, console: Console) -> None:
    money = currency.format
    console.print("[bold]Cheaper models[/bold] (same provider, same token mix, prices as costspan charges them)")
    if not result.models:
        console.print("  no model carries 5% or more of the period's cost")
    for m in result.models:
        console.print(f"[bold]{markup(m.provider)} / {markup(m.model)}[/bold]: {m.calls:,} calls, "
                      f"{money(m.ledger_cost_nanos)} "
                      "recorded" + (f", {money(m.list_cost_nanos)} at today's price" if m.list_cost_nanos is not None
                                    else ", no price found"))
        table = Table()
        table.add_column("instead")
        table.add_column("would cost", justify="right")
        table.add_column("saving", justify="right")
        for alt in m.alternatives:
            share = alt.saving_nanos / m.list_cost_nanos if m.list_cost_nanos else 0.0
            table.add_row(markup(alt.model), money(alt.cost_nanos), f"{money(alt.saving_nanos)} ({share:.0%})")
        if m.alternatives:
            console.print(table)
        else:
            console.print("  no cheaper priced model of this provider")
        console.print(f"  [dim]basis: {markup(m.basis)}[/dim]")
    console.print()
    console.print("[bold]Repeated prompts[/bold]")
    if result.repeats is None:
        console.print("  not available: the ledger has no prompt hashes (set ledger.prompt_hashes: true)")
    else:
        r = result.repeats
        console.print(f"  {r.repeated_calls:,} repeats of {r.distinct_repeated_prompts:,} prompts cost "
                      f"{money(r.repeat_cost_nanos)}")
        for item in r.top:
            console.print(f"    {markup(item['prompt_hash'])}  {markup(item['model'])}  x{item['repeats']:,}  "
                          f"{money(item['repeat_cost_nanos'])}")
        console.print(f"  [dim]basis: {markup(r.basis)}[/dim]")
    console.print()
    table = Table(title="Prompt-cache use", title_justify="left", title_style="bold")
    for col, justify in (("provider", "left"), ("model", "left"), ("input", "right"), ("from cache", "right"),
                         ("share", "right"), ("cache read cost", "right")):
        table.add_column(col, justify=cast("JustifyMethod", justify))
    for c in result.cache:
        table.add_row(markup(c.provider), markup(c.model), tokens(c.input_tokens),
                      tokens(c.cache_read_tokens),
                      f"{c.share:.1%}", money(c.cache_read_cost_nanos))
    console.print(table)
    console.print("  [dim]basis: cache reads as reported by each provider, as a share of all input tokens[/dim]")
