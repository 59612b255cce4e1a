"""What budgets add to one LLM call: ``precheck`` + ``charge`` on each store, in the caller's thread.

Two configs: ``one`` is a single enforced monthly budget (the check reads, the charge writes);
``realistic`` has a global daily budget, a project budget (enforced, reserving), a per-user
budget and an enforced quota with per-minute and per-day limits, so each call touches six
counters and a claim check, and the check writes too. Rounds are interleaved and medians reported,
the best round in brackets (shared machines are noisy). Redis is a real ``redis-server`` started
here on a free port, on loopback.

Run: ``python tests/benchmarks/budgets.py [--calls 5000] [--rounds 5] [--span-ids]`` (not collected by pytest).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from costspan.budgets import BudgetEngine  # noqa: E402
from costspan.facts import CallFacts, Usage  # noqa: E402
from costspan.pricing import PRICED, Quote  # noqa: E402
from costspan.settings import load_settings  # noqa: E402
from tests.test_budget_stores import free_port, start_redis  # noqa: E402

CONFIGS = {
    "one": """
budgets:
  - {name: research, match: {project: research}, limit_usd: 1000000, window: month, enforce: true}
""",
    "realistic": """
budgets:
  - {name: global-daily, limit_usd: 1000000, window: day}
  - {name: research, match: {project: research}, limit_usd: 1000000, window: month, enforce: true, reserve: true}
  - {name: per-user, per: user, limit_usd: 1000000, window: day}
quotas:
  - {name: openai, match: {provider: openai}, requests_per_minute: 100000000, tokens_per_day: 100000000000,
     enforce: true}
""",
}
QUOTE = Quote(PRICED, input_nanos=180_000, output_nanos=180_000)
_spans = itertools.count(1)


def calls_facts(calls: int, span_ids: bool) -> list[CallFacts]:
    """One call's facts per call, made before the clock starts. With ``span_ids`` each carries its own
    span's ids, as costspan's instrumented calls do: the charge then records its id (a gateway may
    charge the same span), which a call without them (``track`` with no span) does not."""
    facts = []
    for _ in range(calls):
        one = CallFacts("openai", "gpt-4o-mini", usage=Usage(1200, 300), project="research", user="u-42")
        if span_ids:
            one.trace_id, one.span_id = "ab" * 16, f"{next(_spans):016x}"
        facts.append(one)
    return facts


def engine_for(url: str, directory: Path, config_text: str) -> BudgetEngine:
    directory.mkdir(exist_ok=True)
    config = directory / "costspan.yaml"
    config.write_text(config_text)
    return BudgetEngine.from_settings(load_settings({"COSTSPAN_CONFIG": str(config), "COSTSPAN_STORE": url}))


def per_call_us(engine: BudgetEngine, calls: int, span_ids: bool) -> tuple[float, float]:
    """Microseconds per call: precheck + charge, and charge alone."""
    facts = calls_facts(calls, span_ids)
    started = time.perf_counter()
    for one in facts:
        engine.charge(one, QUOTE, engine.precheck(one, worst_case_nanos=900_000))
    both = (time.perf_counter() - started) / calls * 1e6
    facts = calls_facts(calls, span_ids)
    started = time.perf_counter()
    for one in facts:
        engine.charge(one, QUOTE)
    alone = (time.perf_counter() - started) / calls * 1e6
    return both, alone


def redis_round_trip_us(url: str, calls: int) -> float:
    """One bare loopback round trip with the same client (a PING), to compare the charge with."""
    import redis

    client = redis.Redis.from_url(url)
    client.ping()
    started = time.perf_counter()
    for _ in range(calls):
        client.ping()
    elapsed = (time.perf_counter() - started) / calls * 1e6
    client.close()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--span-ids", action="store_true", help="each call's facts carry its span's ids")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="costspan-budget-bench-"))
    port = free_port()
    redis = start_redis(port)
    try:
        for database, (config_name, config_text) in enumerate(CONFIGS.items()):
            here = directory / config_name
            urls = {
                "memory": "memory://",
                "sqlite": f"sqlite:///{here / 'budgets.db'}",
                "redis": f"redis://127.0.0.1:{port}/{database}",
            }
            engines = {name: engine_for(url, here, config_text) for name, url in urls.items()}
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in engines}
            pings: list[float] = []
            for engine in engines.values():
                per_call_us(engine, 200, args.span_ids)  # warm up: connections, schema, Lua scripts
            for _ in range(args.rounds):
                for name, engine in engines.items():
                    results[name].append(per_call_us(engine, args.calls, args.span_ids))
                pings.append(redis_round_trip_us(f"redis://127.0.0.1:{port}/0", args.calls))
            shown = f"{config_name!r} with span ids" if args.span_ids else repr(config_name)
            print(f"config {shown}: median (and best) of {args.rounds} x {args.calls} calls")
            print(f"  {'store':8s} {'precheck+charge':>22s} {'charge':>18s}")
            for name, samples in results.items():
                both, alone = [s[0] for s in samples], [s[1] for s in samples]
                print(
                    f"  {name:8s} {statistics.median(both):13.1f} ({min(both):5.1f}) us"
                    f" {statistics.median(alone):7.1f} ({min(alone):5.1f}) us"
                )
            print(f"  (one bare Redis PING round trip with redis-py: {statistics.median(pings):.1f} us)")
            for engine in engines.values():
                engine.close()
    finally:
        redis.terminate()
        redis.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
