"""Proof under load: 4 processes x 4 threads x 500 calls land exactly once with exact totals, and a
SIGTERM during a burst loses no call that had returned to its caller."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from costspan.ledger import schema
from costspan.ledger.periods import Period
from costspan.ledger.query import Filters, totals

ROOT = Path(__file__).resolve().parents[1]

WORKER = textwrap.dedent(
    """
    import sys, threading
    from datetime import datetime, timezone
    from costspan.accounted import Accounted
    from costspan.exporters.ledger import LedgerSink
    import signal
    from costspan.pricing import Quote
    from costspan.facts import CallFacts, Usage

    path, proc, threads, calls, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    sink = LedgerSink(path, f"worker-{proc}", batch_rows=64, flush_seconds=0.2)
    def on_sigterm(signum, frame):  # what the runtime's own handler does: flush, then die of SIGTERM
        sink.close()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)

    def cost(p, t, i):
        return 1 + (p * 7919 + t * 104729 + i * 1299709) % 987654  # distinct, deterministic nanos

    def call(p, t, i):
        facts = CallFacts("openai", "gpt-4o-mini", usage=Usage(10 + i, 5), started_at=datetime.now(timezone.utc),
                          duration_s=0.01, span_id=f"{p:04x}{t:04x}{i:08x}", project=f"p{t}", user=f"u{i % 17}")
        sink.record(Accounted(facts, Quote("priced", input_nanos=cost(p, t, i))))

    if mode == "load":
        def run(t):
            for i in range(calls):
                call(proc, t, i)
        workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
        for w in workers: w.start()
        for w in workers: w.join()
        sink.close()
    else:  # burst until killed; report each call once record() has returned
        out = sys.stdout
        print("ready", flush=True)
        i = 0
        while True:
            call(proc, 0, i)
            out.write(f"{proc:04x}{0:04x}{i:08x}\\n")
            out.flush()
            i += 1
    """
)


@pytest.fixture
def worker(tmp_path: Path) -> Path:
    path = tmp_path / "worker.py"
    path.write_text(WORKER)
    return path


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.mark.slow
def test_four_processes_four_threads_every_row_once(tmp_path: Path, worker: Path) -> None:
    ledger = tmp_path / "ledger.db"
    procs = [subprocess.Popen([sys.executable, str(worker), str(ledger), str(p), "4", "500", "load"], env=env())
             for p in range(4)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]

    expected = {f"{p:04x}{t:04x}{i:08x}": 1 + (p * 7919 + t * 104729 + i * 1299709) % 987654
                for p in range(4) for t in range(4) for i in range(500)}
    conn = schema.connect(ledger, readonly=True)
    got = conn.execute("SELECT span_id, cost_nanos FROM calls").fetchall()
    assert len(got) == 8000
    assert dict(got) == expected  # every row exactly once, each with its own cost

    everything = Filters(Period(0, 2**62))
    report_total = totals(conn, everything)
    assert report_total.calls == 8000
    assert report_total.cost_nanos == sum(expected.values())


@pytest.mark.slow
def test_sigterm_during_burst_keeps_every_returned_call(tmp_path: Path, worker: Path) -> None:
    ledger = tmp_path / "ledger.db"
    proc = subprocess.Popen([sys.executable, str(worker), str(ledger), "1", "1", "0", "burst"], env=env(),
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.7)  # mid-burst: several batches committed, one pending
    proc.send_signal(signal.SIGTERM)
    returned = [line.strip() for line in proc.stdout if line.strip()]
    assert proc.wait(timeout=30) == -signal.SIGTERM  # the default action still ends the process
    assert len(returned) > 1000
    stored = {r[0] for r in sqlite3.connect(ledger).execute("SELECT span_id FROM calls")}
    missing = [s for s in returned if s not in stored]
    assert not missing, f"{len(missing)} calls returned to the caller but are not in the ledger"
