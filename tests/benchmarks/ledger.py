"""Ledger benchmark: caller-thread cost of recording, ``costspan report`` on 1,000,000 rows, and
export memory on the same ledger. Run: ``python tests/benchmarks/ledger.py [ROWS]`` (not collected by
pytest: it builds a ~400 MB ledger in a temporary directory and takes about a minute)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from costspan.accounted import Accounted  # noqa: E402
from costspan.exporters.ledger import LedgerSink  # noqa: E402
from costspan.facts import CallFacts, Usage  # noqa: E402
from costspan.ledger import schema  # noqa: E402
from costspan.pricing import Quote  # noqa: E402
from tests import ledger_synthetic as synthetic  # noqa: E402

CLI = (
    "import sys; from costspan.cli import report, export; import argparse\n"
    "p = argparse.ArgumentParser(); s = p.add_subparsers(); report.register(s); export.register(s)\n"
    "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))\n"
)


def record_cost(directory: Path, calls: int = 200_000) -> float:
    sink = LedgerSink(directory / "record.db", "bench")
    item = Accounted(
        CallFacts("openai", "gpt-4o-mini", usage=Usage(1200, 300, 400), started_at=datetime.now(timezone.utc),
                  duration_s=0.8, project="research", user="u1"),
        Quote("priced", input_nanos=120_000, output_nanos=180_000, cache_read_nanos=30_000),
    )
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(calls):
            sink.record(item)
        best = min(best, (time.perf_counter() - start) / calls)
        sink.flush(60)
    sink.close()
    return best * 1e6


def run_cli(*argv: str) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one CLI run in a fresh interpreter."""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-c", CLI, *argv], cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True,
                          env={**os.environ, "COSTSPAN_STORE": "memory://"})
    return time.perf_counter() - start, int(proc.stderr.strip().splitlines()[-1])


def main(rows: int) -> None:
    with tempfile.TemporaryDirectory(prefix="costspan-ledger-bench-") as tmp:
        directory = Path(tmp)
        print(f"record() on the caller's thread: {record_cost(directory):.2f} µs per call")
        ledger = directory / "ledger.db"
        now_us = int(time.time() * 1e6)
        start = time.perf_counter()
        synthetic.fill(schema.connect(ledger), synthetic.rows(rows, now_us - 30 * 86_400_000_000, now_us))
        print(f"built a {rows:,}-row ledger in {time.perf_counter() - start:.1f} s "
              f"({ledger.stat().st_size / 1e6:.0f} MB)")
        for argv in (["report", "--ledger", str(ledger)],
                     ["report", "--ledger", str(ledger), "--json"],
                     ["report", "--ledger", str(ledger), "--since", "7d", "--by", "model,project", "--by", "day"],
                     ["report", "--ledger", str(ledger), "--html", str(directory / "r.html")]):
            seconds, _ = run_cli(*argv)
            print(f"costspan {' '.join(a for a in argv[3:]) or 'report'}: {seconds:.2f} s (process wall time)")
        for limit in ("1d", "7d", "30d"):
            seconds, rss = run_cli("export", "--ledger", str(ledger), "--since", limit, "--format", "jsonl",
                                   "-o", str(directory / "out.jsonl"))
            with open(directory / "out.jsonl", encoding="utf-8") as out:
                lines = sum(1 for _ in out)
            print(f"export --since {limit}: {lines:,} rows, {seconds:.1f} s, peak RSS {rss / 1024:.0f} MiB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
