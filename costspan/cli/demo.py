"""``costspan demo``: the showcase, on the embedded default, with no API key and no network."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "demo",
        help="simulated workload against a local stand-in for the providers (no API key needed)",
        description=(
            "Runs a simulated workload of LLM calls through the real client SDKs against a LOCAL STAND-IN "
            "for the providers: nothing leaves this machine and no API key is needed. Shows the spans, "
            "their costs, budgets crossing their thresholds, a blocked call, the live /metrics endpoint, "
            "and ends with the report and the budget status."
        ),
    )
    parser.add_argument("--calls", type=int, default=60, help="number of simulated calls (default 60)")
    parser.add_argument("--port", type=int, default=9464, help="port of the /metrics endpoint (0: any free port)")
    parser.add_argument("--state-dir", help="where the demo's SQLite store and ledger go (default: a new temp dir)")
    parser.add_argument("--linger", type=float, default=0.0, help="keep /metrics up this many seconds at the end")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from costspan.demo import run_demo

    return run_demo(calls=args.calls, port=args.port, state_dir=args.state_dir, linger=args.linger)
