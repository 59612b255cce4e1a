"""Pricing speed and memory: costspan's memoised quote against genai-prices' own ``calc_price``.

Reports the median over rounds of microseconds per call for each model (these machines are noisy),
the one-off cost of resolving a model the first time, the memory the catalog takes in a fresh
process (tracemalloc and RSS), and how many models each catalog prices per provider.

Usage: python tests/benchmarks/pricing.py [--rounds 7] [--calls 20000] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import genai_prices
from genai_prices.types import PriceCalculation

from costspan.facts import Usage
from costspan.money import usd_to_nanos
from costspan.pricing.config import PricingConfig
from costspan.pricing.pricer import build

NO_IMPORTS = Path("/nonexistent")  # the bundled catalogs only, whatever this machine imported
AT = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
CASES: list[tuple[str, str, str | None, Usage]] = [
    ("openai", "gpt-4o-mini", None, Usage(1_200, 300, cache_read_tokens=1_024)),
    ("openai", "gpt-4o-mini-2024-07-18", "batch", Usage(1_200, 300)),
    ("anthropic", "claude-sonnet-4-5", None, Usage(250_000, 900, cache_read_tokens=20_000, cache_write_tokens=4_000)),
    ("gcp.gemini", "gemini-2.5-pro", None, Usage(240_000, 2_000, reasoning_tokens=1_500)),
    ("deepseek", "deepseek-chat", None, Usage(3_000, 800)),  # time-of-day prices
    ("aws.bedrock", "us.anthropic.claude-3-5-sonnet-20241022-v2:0", None, Usage(3_000, 800)),
]
# genai-prices' own names for the same calls
GENAI_PROVIDER = {"gcp.gemini": "google", "aws.bedrock": "aws"}

MEMORY_PROBE = """
import gc, resource, sys, tracemalloc
tracemalloc.start()
before_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import costspan.facts
base = tracemalloc.get_traced_memory()[0]
from costspan.money import usd_to_nanos
from costspan.pricing.config import PricingConfig
from costspan.pricing.pricer import build
from pathlib import Path
pricer = build(PricingConfig(import_dir=Path("/nonexistent")))
for provider, model in %r:
    pricer.quote(provider, model, costspan.facts.Usage(1000, 100))
gc.collect()
print(tracemalloc.get_traced_memory()[0] - base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_rss)
"""


def per_call_us(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def genai_usage(usage: Usage) -> genai_prices.Usage:
    return genai_prices.Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
    )


def speed(rounds: int, calls: int) -> list[dict[str, Any]]:
    pricer = build(PricingConfig(import_dir=NO_IMPORTS))
    results = []
    for provider, model, tier, usage in CASES:
        start = time.perf_counter()
        first = pricer.quote(provider, model, usage, at=AT, service_tier=tier)
        cold_us = (time.perf_counter() - start) * 1e6
        context = {"processing": "batch"} if tier == "batch" else None
        raw = genai_usage(usage)
        gp_provider = GENAI_PROVIDER.get(provider, provider)

        def ours(p: str = provider, m: str = model, t: str | None = tier, u: Usage = usage) -> object:
            return pricer.quote(p, m, u, at=AT, service_tier=t)

        def ours_now(p: str = provider, m: str = model, t: str | None = tier, u: Usage = usage) -> object:
            return pricer.quote(p, m, u, service_tier=t)

        def theirs(m: str = model, p: str = gp_provider, c: Any = context, u: Any = raw) -> PriceCalculation:
            return genai_prices.calc_price(u, m, provider_id=p, genai_request_timestamp=AT, price_context=c)

        expected = theirs()
        assert first.total_nanos == usd_to_nanos(expected.total_price), (model, first, expected)
        samples: dict[str, list[float]] = {"costspan": [], "costspan_now": [], "genai_prices": []}
        for _ in range(rounds):
            samples["costspan"].append(per_call_us(ours, calls))
            samples["costspan_now"].append(per_call_us(ours_now, calls))
            samples["genai_prices"].append(per_call_us(theirs, max(calls // 20, 200)))
        results.append(
            {
                "provider": provider,
                "model": model,
                "service_tier": tier,
                "key": first.key,
                "first_lookup_us": round(cold_us, 1),
                **{f"{name}_us": round(statistics.median(values), 2) for name, values in samples.items()},
            }
        )
    return results


def memory() -> dict[str, float]:
    probe = MEMORY_PROBE % ([(p, m) for p, m, _, _ in CASES],)
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.split()
    return {"tracemalloc_mib": round(int(out[0]) / 2**20, 1), "rss_mib": round(int(out[1]) / 1024, 1)}


def coverage() -> dict[str, dict[str, int]]:
    pricer = build(PricingConfig(import_dir=NO_IMPORTS))
    assert pricer.genai is not None
    genai = Counter(model.key.split("/", 1)[0] for model in pricer.genai.models())
    snapshot = Counter(p for entry in (pricer.snapshot.entries if pricer.snapshot else ()) for p in entry.providers)
    return {"genai_prices": dict(genai.most_common()), "litellm_snapshot": dict(snapshot.most_common())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    report: dict[str, Any] = {
        "speed": speed(args.rounds, args.calls),
        "memory": memory(),
        "models_per_provider": coverage(),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{'model':<48} {'tier':<6} {'first':>9} {'costspan':>9} {'(at=now)':>9} {'genai calc':>11}  (us/call)")
    for row in report["speed"]:
        print(
            f"{row['provider'] + '/' + row['model']:<48.48} {row['service_tier'] or '':<6} {row['first_lookup_us']:>9}"
            f" {row['costspan_us']:>9} {row['costspan_now_us']:>9} {row['genai_prices_us']:>11}"
        )
    mem = report["memory"]
    print(f"catalog memory in a fresh process: {mem['tracemalloc_mib']} MiB allocated, {mem['rss_mib']} MiB RSS")
    for catalog, counts in report["models_per_provider"].items():
        total = sum(counts.values())
        print(f"{catalog}: {total} models; " + ", ".join(f"{p} {n}" for p, n in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
