"""``costspan prices quote|show|list|import``: what a call would cost, and where the price comes from.

The commands use the same pricer the runtime builds from the same settings, so a quote here is
exactly what a span gets (user files, genai-prices, imported maps, the bundled snapshot).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from costspan.facts import Usage
from costspan.money import configured_currency
from costspan.pricing import describe
from costspan.pricing.config import pricing_config
from costspan.pricing.importer import import_file
from costspan.pricing.names import canonical_provider, vendor
from costspan.pricing.pricer import LayeredPricer, build_pricer
from costspan.pricing.rates import PriceCard
from costspan.settings import load_settings
from costspan.terminal import plain


def register(commands: Any) -> None:
    parser = commands.add_parser("prices", help="quote, show, list and import model prices",
                                 description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="prices_command", metavar="SUBCOMMAND", required=True)

    quote = sub.add_parser("quote", help="price one call and show the breakdown and its source")
    quote.add_argument("model", nargs="?", help="model name as the API reports it")
    quote.add_argument("--model", dest="model_flag", metavar="MODEL", help="the model (instead of the argument)")
    quote.add_argument("--provider", help="provider (semconv name: openai, anthropic, gcp.gemini, aws.bedrock...)")
    counts = quote.add_argument_group("usage (semconv: input includes cached tokens, output includes reasoning)")
    for dest, flags in (
        ("input_tokens", ("--input-tokens", "--input")),
        ("output_tokens", ("--output-tokens", "--output")),
        ("cache_read_tokens", ("--cached-input-tokens", "--cached")),
        ("cache_write_tokens", ("--cache-write-tokens", "--cache-write")),
        ("cache_write_1h_tokens", ("--cache-write-1h-tokens", "--cache-write-1h")),
        ("reasoning_tokens", ("--reasoning-tokens", "--reasoning")),
        ("images", ("--images",)),
    ):
        counts.add_argument(*flags, dest=dest, type=_count, default=0, metavar="N")
    quote.add_argument("--service-tier", help="batch, flex, priority... (default: standard)")
    quote.add_argument("--at", type=_moment, help="price as of this date or ISO date-time (default: now)")
    quote.add_argument("--local", action="store_true", help="the call went to a model server on this machine")
    quote.add_argument("--json", action="store_true", help="print the quote as JSON")
    quote.set_defaults(func=run_quote)

    show = sub.add_parser("show", help="the prices that apply to a model, with tiers and service tiers")
    show.add_argument("model")
    show.add_argument("--provider")
    show.add_argument("--at", type=_moment, help="as of this date (default: now)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=run_show)

    listing = sub.add_parser("list", help="every model priced, with its standard prices and source")
    listing.add_argument("--provider", help="only this provider's models")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=run_list)

    importing = sub.add_parser("import", help="add a LiteLLM price map or costspan price file to the catalog")
    importing.add_argument("file", type=Path)
    importing.add_argument("--name", help="stored file name (default: from FILE); importing again replaces it")
    importing.add_argument("--json", action="store_true")
    importing.set_defaults(func=run_import)


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative count, got {text}")
    return value


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _provider(args: argparse.Namespace, model: str) -> str:
    return canonical_provider(args.provider) if args.provider else vendor(model) or ""


def run_quote(args: argparse.Namespace) -> int:
    model = args.model_flag or args.model
    if not model:
        print("costspan prices quote: give a MODEL (or --model)", file=sys.stderr)
        return 2
    usage = Usage(
        input_tokens=args.input_tokens,
        output_tokens=args.output_tokens,
        cache_read_tokens=args.cache_read_tokens,
        cache_write_tokens=args.cache_write_tokens,
        cache_write_1h_tokens=args.cache_write_1h_tokens,
        reasoning_tokens=args.reasoning_tokens,
        images=args.images,
    )
    problems = _inconsistent(usage)
    if problems:
        print(f"costspan prices quote: {problems}", file=sys.stderr)
        return 2
    settings = load_settings()
    provider = _provider(args, model)
    quote = build_pricer(settings).quote(
        provider, model, usage, at=args.at, service_tier=args.service_tier,
        server_address="localhost" if args.local else None,
    )
    currency = configured_currency(settings)
    data = {"provider": provider, "model": model, "service_tier": args.service_tier, **describe.quote(quote)}
    if not currency.is_usd:
        data["currency"] = {"code": currency.code, "per_usd": str(currency.per_usd),
                            "total": f"{currency.amount(quote.total_nanos):.9f}"}
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"{plain(model)} at {provider or '(unknown provider)'}: {quote.status}"
          + (f" ({quote.reason})" if quote.reason else ""))
    if quote.key:
        print(f"  key     {plain(quote.key)}\n  source  {plain(quote.source)}")
    uncached = max(usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens, 0)
    rows = (
        ("input", uncached, quote.input_nanos, ""),
        ("cache read", usage.cache_read_tokens, quote.cache_read_nanos, ""),
        ("cache write", usage.cache_write_tokens, quote.cache_write_nanos,
         f"(1h: {usage.cache_write_1h_tokens:,})" if usage.cache_write_1h_tokens else ""),
        ("output", usage.output_tokens, quote.output_nanos,
         f"(reasoning {usage.reasoning_tokens:,} included)" if usage.reasoning_tokens else ""),
    )
    for label, tokens, nanos, note in rows:
        print(f"  {label:<12}{tokens:>12,} tokens  ${describe.usd(nanos)}  {note}".rstrip())
    if usage.images:
        print(f"  {'':<12}{usage.images:>12,} images included in output")
    total = f"  {'total':<12}{'':>19}  ${describe.usd(quote.total_nanos)}"
    if not currency.is_usd:
        total += f"  = {currency.amount(quote.total_nanos):.6f} {currency.code} ({currency.label()})"
    print(total)
    return 0


def _inconsistent(usage: Usage) -> str | None:
    if usage.cache_read_tokens + usage.cache_write_tokens > usage.input_tokens:
        return "cached and cache-write tokens are part of --input-tokens and cannot exceed it"
    if usage.cache_write_1h_tokens > usage.cache_write_tokens:
        return "--cache-write-1h-tokens are part of --cache-write-tokens and cannot exceed it"
    if usage.reasoning_tokens > usage.output_tokens:
        return "reasoning tokens are part of --output-tokens and cannot exceed it"
    return None


def run_show(args: argparse.Namespace) -> int:
    pricer = build_pricer(load_settings())
    provider = _provider(args, args.model)
    resolution = pricer.resolve(provider, args.model)
    priced = next((m for m in resolution.models if m.card(args.at, None) is not None), None)
    if priced is None:
        print(f"{args.model} at {provider or '(unknown provider)'}: {resolution.otherwise.status} "
              f"({resolution.otherwise.reason})", file=sys.stderr)
        return 1
    standard = priced.card(args.at, None)
    assert standard is not None
    tiers = {tier: describe.card(tier_card) for tier in priced.service_tiers()
             if (tier_card := priced.card(args.at, tier)) is not None}
    data = {"provider": provider, "model": args.model, "key": priced.key, "source": priced.source,
            "unit": "USD per million tokens; per_image, per_request and per_search_unit in USD",
            "prices": describe.card(standard), "service_tiers": tiers}
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"{plain(args.model)} at {provider or '(unknown provider)'}\n"
          f"  key     {plain(priced.key)}\n  source  {plain(priced.source)}")
    print("  standard (USD per million tokens)")
    _print_card(data["prices"], "    ")
    for tier, prices in tiers.items():
        print(f"  service tier {tier}")
        _print_card(prices, "    ")
    return 0


def _print_card(card: dict[str, Any], indent: str) -> None:
    for name, value in card.items():
        if name == "tiers":
            for tier in value:
                prices = ", ".join(f"{k} {v}" for k, v in tier.items() if k != "above")
                print(f"{indent}above {tier['above']:,} input tokens, the whole request: {prices}")
        else:
            print(f"{indent}{name:<15}{value}")


def _listing(pricer: LayeredPricer, provider: str | None) -> Iterator[dict[str, Any]]:
    wanted = canonical_provider(provider) if provider else None
    for table in (*pricer.user, *pricer.imported, *((pricer.snapshot,) if pricer.snapshot else ())):
        for entry in table.entries:
            if wanted is None or not entry.providers or wanted in entry.providers:
                yield _row(",".join(sorted(entry.providers)) or "*", entry.key, entry.card, table.source)
    if pricer.genai is not None:
        for found in pricer.genai.models(wanted):
            card = found.card(None, None)
            if card is not None:
                yield _row(found.key.split("/", 1)[0], found.key, card, found.source)


def _row(provider: str, key: str, card: PriceCard, source: str) -> dict[str, Any]:
    return {"provider": provider, "key": key, **describe.card(card), "source": source}


def run_list(args: argparse.Namespace) -> int:
    rows = list(_listing(build_pricer(load_settings()), args.provider))
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'key':<58} {'input':>9} {'cached':>9} {'output':>9}  source   (USD per million tokens)")
    for row in rows:
        print(f"{plain(row['key'])[:58]:<58} {row.get('input', '-'):>9} {row.get('cached_input', '-'):>9} "
              f"{row.get('output', '-'):>9}  {plain(row['source'])}")
    print(f"{len(rows):,} entries")
    return 0


def run_import(args: argparse.Namespace) -> int:
    config = pricing_config(load_settings())
    result = import_file(args.file, config.import_dir, args.name)
    skipped = dict(result.skipped.most_common())
    if args.json:
        print(json.dumps({"stored": str(result.stored), "kind": result.kind, "models": result.models,
                          "skipped": skipped}, indent=2))
        return 0
    print(f"imported {result.models:,} {result.kind} price entries into {result.stored}")
    if skipped:
        print("skipped: " + ", ".join(f"{n:,} ({why})" for why, n in skipped.items()))
    print("they price models genai-prices lacks; to override genai-prices, list the file in pricing.files")
    return 0
