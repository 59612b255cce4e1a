"""What costspan adds to a span that is not an LLM call's, in CPU instructions (callgrind).

The application's HTTP and database spans pay for every processor on the provider. This counts
the instructions of N and 2N plain spans (started and ended, as an HTTP instrumentation makes
them) with and without costspan's processor on the provider, and reports the difference per span.
No exporter and no background thread run, so the count is repeatable to the instruction.

Usage: python tests/benchmarks/plain_spans.py [--spans 5000]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

TOTAL = re.compile(r"==\d+== Collected : (\d+)")


def run(costspan: bool, spans: int) -> None:
    os.environ.setdefault("COSTSPAN_STORE", "memory://")
    os.environ.setdefault("COSTSPAN_LEDGER", "off")
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    if costspan:
        from costspan import wiring

        wiring.attach(provider)
        wiring.processor()  # built before the measured spans
    tracer = provider.get_tracer("opentelemetry.instrumentation.requests")
    for _ in range(spans):
        with tracer.start_as_current_span("GET /health", attributes={"http.method": "GET", "http.status_code": 200}):
            pass


def instructions(costspan: bool, spans: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out", sys.executable, __file__,
             "--run", "costspan" if costspan else "bare", "--spans", str(spans)],
            capture_output=True, text=True, check=True,
        )
    found = TOTAL.search(result.stderr)
    if found is None:
        raise RuntimeError(result.stderr[-2000:])
    return int(found.group(1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=5000)
    ap.add_argument("--run", choices=["bare", "costspan"])
    args = ap.parse_args()
    if args.run:
        run(args.run == "costspan", args.spans)
        return
    per_span = {}
    for costspan in (False, True):
        low, high = instructions(costspan, args.spans), instructions(costspan, 2 * args.spans)
        per_span[costspan] = (high - low) / args.spans
    print(f"instructions per plain span (callgrind, {args.spans} vs {2 * args.spans} spans)")
    print(f"  SDK span, no costspan   {per_span[False]:10,.0f}")
    print(f"  with costspan attached  {per_span[True]:10,.0f}  (+{per_span[True] - per_span[False]:,.0f})")


if __name__ == "__main__":
    main()
