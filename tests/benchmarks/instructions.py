"""CPU instructions per call, counted by callgrind: the repeatable twin of ``overhead.py``.

Wall-clock medians on a shared 2-core machine move by tens of percent between runs; instruction
counts do not. Each variant of ``overhead.py`` runs under ``valgrind --tool=callgrind`` twice, with
N and 2N calls, and the difference divided by N is the cost of one call with start-up (imports,
catalog and tokenizer loading) taken out. String hashing is seeded alike in every run
(``PYTHONHASHSEED=0``): with random seeds the same code's dictionaries probe differently, and an
uninstrumented call moved by about 1 % (50,000 instructions) between runs.

Usage: python tests/benchmarks/instructions.py [--calls 200] [--kind sync|stream|async] [variants...]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOTAL = re.compile(r"==\d+== Collected : (\d+)")


def instructions(variant: str, kind: str, calls: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={tmp}/out",
                sys.executable,
                str(HERE / "overhead.py"),
                "--only",
                variant,
                "--kind",
                kind,
                "--calls",
                str(calls),
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
    found = TOTAL.search(result.stderr)
    if found is None:
        raise RuntimeError(f"no instruction total from callgrind:\n{result.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--kind", default="sync", choices=["sync", "stream", "async", "plain"])
    ap.add_argument("variants", nargs="*", default=["bare", "bare+span", "costspan"])
    args = ap.parse_args()
    per_call = {}
    for variant in args.variants:
        low = instructions(variant, args.kind, args.calls)
        high = instructions(variant, args.kind, 2 * args.calls)
        per_call[variant] = (high - low) / args.calls
    bare = per_call.get("bare", 0.0)
    print(f"{args.kind}: instructions per call (callgrind, {args.calls} vs {2 * args.calls} calls)")
    for variant, count in per_call.items():
        print(f"  {variant:12s} {count:12,.0f}  (+{count - bare:,.0f} over bare)")
    if "bare+span" in per_call and "costspan" in per_call:
        span = per_call["bare+span"] - bare
        print(f"  costspan adds {(per_call['costspan'] - bare) / span:.2f}x what a bare span adds")


if __name__ == "__main__":
    main()
