"""Ledger writer and sink: rows as recorded, batching, configuration, migrations, prompt hashes."""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from costspan.accounted import Accounted
from costspan.errors import ConfigError
from costspan.exporters.ledger import LedgerSink
from costspan.facts import CallFacts, Usage
from costspan.instrumentation.prompt_hash import hash_messages, load_salt
from costspan.ledger import config as ledger_config
from costspan.ledger import schema
from costspan.ledger.store import MEASURES
from costspan.pricing import Quote
from costspan.settings import load_settings

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def accounted(i: int = 0, *, error: str | None = None, status: str = "priced", **facts: object) -> Accounted:
    f = CallFacts(
        provider="openai", request_model="gpt-4o-mini", response_model="gpt-4o-mini-2024-07-18",
        usage=Usage(input_tokens=100 + i, output_tokens=20, cache_read_tokens=40, reasoning_tokens=5),
        started_at=T0, duration_s=0.25, time_to_first_chunk_s=0.05, error_type=error,
        project="research", feature="chat", user="u1", trace_id=f"{i:032x}", span_id=f"{i:016x}",
    )
    for key, value in facts.items():
        setattr(f, key, value)
    quote = Quote(status, input_nanos=1000 + i, output_nanos=2000, cache_read_nanos=7, key="openai/gpt-4o-mini",
                  source="genai-prices") if status == "priced" else Quote(status)
    return Accounted(f, quote)


def rows(path: Path, sql: str = "SELECT * FROM calls ORDER BY id") -> list[sqlite3.Row]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_row_holds_every_fact_and_exact_cost(tmp_path: Path) -> None:
    sink = LedgerSink(tmp_path / "l.db", "checkout")
    sink.record(accounted(1))
    sink.record(accounted(2, error="BudgetExceededError", status="unpriced"))
    sink.record(accounted(3, error="RateLimitError"))
    sink.close()
    got = rows(tmp_path / "l.db")
    assert [r["outcome"] for r in got] == ["success", "blocked", "error"]
    first = got[0]
    assert first["service"] == "checkout"
    assert first["model"] == "gpt-4o-mini-2024-07-18" and first["request_model"] == "gpt-4o-mini"
    assert first["ts_us"] == int(T0.timestamp()) * 1_000_000
    assert (first["input_tokens"], first["cache_read_tokens"], first["reasoning_tokens"]) == (101, 40, 5)
    assert (first["cost_nanos"], first["input_nanos"], first["output_nanos"]) == (3008, 1001, 2000)
    assert (first["duration_us"], first["ttfc_us"]) == (250_000, 50_000)
    assert first["trace_id"] == f"{1:032x}" and first["pricing_key"] == "openai/gpt-4o-mini"
    assert got[1]["cost_status"] == "unpriced" and got[1]["cost_nanos"] == 0
    assert got[2]["error_type"] == "RateLimitError"


def test_rollup_equals_rows(tmp_path: Path) -> None:
    sink = LedgerSink(tmp_path / "l.db", batch_rows=7)
    for i in range(100):
        sink.record(accounted(i, project=None if i % 3 else "research"))
    sink.close()
    conn = sqlite3.connect(tmp_path / "l.db")
    rolled = conn.execute("SELECT SUM(calls), SUM(cost_nanos), SUM(input_tokens), SUM(duration_count) FROM rollup")
    raw = conn.execute("SELECT COUNT(*), SUM(cost_nanos), SUM(input_tokens), COUNT(duration_us) FROM calls")
    assert rolled.fetchone() == raw.fetchone()


def test_flush_commits_without_closing(tmp_path: Path) -> None:
    sink = LedgerSink(tmp_path / "l.db", flush_seconds=60)
    sink.record(accounted())
    assert sink.flush()
    assert len(rows(tmp_path / "l.db")) == 1
    sink.record(accounted(1))
    sink.close()
    sink.close()  # idempotent
    assert len(rows(tmp_path / "l.db")) == 2


def test_once_draining_each_row_is_committed_before_record_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After SIGTERM the process may die of the signal's default action the moment a call returns
    (uvicorn restores it and raises SIGTERM again): waking the writer thread is not enough."""
    sink = LedgerSink(tmp_path / "l.db", flush_seconds=60)
    sink.record(accounted())
    assert sink.drain()
    writer = sink._writer
    insert = writer._insert

    def slow_insert(conn: sqlite3.Connection, batch: list[Any]) -> None:
        time.sleep(0.05)  # a busy machine, or another process holding the write lock
        insert(conn, batch)

    monkeypatch.setattr(writer, "_insert", slow_insert)
    for i in range(1, 6):
        sink.record(accounted(i))
        assert len(rows(tmp_path / "l.db")) == i + 1  # no flush, no close: on disk when record returns
    sink.close()


def test_missing_start_time_uses_record_time_minus_duration(tmp_path: Path) -> None:
    sink = LedgerSink(tmp_path / "l.db")
    before = datetime.now(timezone.utc).timestamp() * 1e6
    sink.record(accounted(started_at=None, duration_s=2.0))
    sink.close()
    ts = rows(tmp_path / "l.db")[0]["ts_us"]
    assert before - 2.5e6 < ts < before


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "costspan.yaml"
    path.write_text(text)
    return path


def test_location_follows_the_sqlite_store(tmp_path: Path) -> None:
    settings = load_settings({"COSTSPAN_STORE": f"sqlite:///{tmp_path}/state/costspan.db"})
    cfg = ledger_config.load(settings)
    assert cfg is not None and cfg.path == tmp_path / "state" / "costspan-ledger.db"
    assert ledger_config.load(load_settings({"COSTSPAN_STORE": "redis://localhost:6379/0"})) is None
    off = load_settings({"COSTSPAN_STORE": f"sqlite:///{tmp_path}/c.db", "COSTSPAN_LEDGER": "off"})
    assert LedgerSink.from_settings(off) is None


def test_ledger_section_is_validated(tmp_path: Path) -> None:
    cfg_file = write_config(tmp_path, f"store: redis://h:6379/0\nledger:\n  path: {tmp_path}/x.db\n"
                            "  retention_days: 30\n  prompt_hashes: true\n  batch_rows: 50\n  flush_seconds: 0.5\n")
    cfg = ledger_config.load(load_settings({"COSTSPAN_CONFIG": str(cfg_file)}))
    assert cfg == ledger_config.LedgerConfig(tmp_path / "x.db", 30, True, 50, 0.5)
    for bad in ("ledger:\n  batch_rows: 0\n", "ledger:\n  prompt_hashes: maybe\n", "ledger:\n  colour: red\n"):
        settings = load_settings({"COSTSPAN_CONFIG": str(write_config(tmp_path, bad))})
        with pytest.raises(ConfigError, match=r"ledger\."):
            ledger_config.load(settings)


def test_migration_from_v1_backfills_the_rollup(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    schema.MIGRATIONS[0](conn)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("COMMIT")
    from costspan.ledger.rows import to_row

    conn.executemany(schema.INSERT_SQL, [to_row(accounted(i), "svc", 0) for i in range(10)])
    conn.close()
    upgraded = schema.connect(path)
    assert schema.user_version(upgraded) == schema.SCHEMA_VERSION
    calls, cost = upgraded.execute("SELECT SUM(calls), SUM(cost_nanos) FROM rollup").fetchone()
    assert (calls, cost) == (10, sum(3007 + i for i in range(10)))
    assert len(MEASURES) == 18
    upgraded.execute("PRAGMA user_version = 99")
    with pytest.raises(schema.LedgerVersionError):
        schema.connect(path)


def test_prompt_hash_is_salted_and_order_independent(tmp_path: Path) -> None:
    salt = load_salt(tmp_path)
    assert load_salt(tmp_path) == salt and len(salt) == 32
    assert (tmp_path / "prompt-hash.salt").stat().st_mode & 0o077 == 0
    a = [{"role": "user", "content": "hi"}]
    b = [{"content": "hi", "role": "user"}]
    assert hash_messages(a, salt) == hash_messages(b, salt)
    assert hash_messages(a, salt) != hash_messages(a, b"other salt")
    assert "hi" not in hash_messages(a, salt)


def test_sink_exposes_salt_beside_the_ledger(tmp_path: Path) -> None:
    sink = LedgerSink(tmp_path / "l.db", prompt_hashes=True)
    assert sink.prompt_salt() == load_salt(tmp_path)
    sink.record(accounted(prompt_hash=hash_messages(["x"], sink.prompt_salt())))
    sink.close()
    assert rows(tmp_path / "l.db")[0]["prompt_hash"] == hash_messages(["x"], load_salt(tmp_path))


def test_retention_applies_in_the_writer(tmp_path: Path) -> None:
    old = datetime(2001, 1, 1, tzinfo=timezone.utc)
    sink = LedgerSink(tmp_path / "l.db", retention_days=30)
    sink.record(accounted(started_at=old))
    sink.record(accounted(1, started_at=datetime.now(timezone.utc)))
    sink.close()
    # The writer prunes once on start-up and hourly; a second writer opening the file prunes the old row.
    LedgerSink(tmp_path / "l.db", retention_days=30).close()
    assert len(rows(tmp_path / "l.db")) == 1
    assert rows(tmp_path / "l.db", "SELECT SUM(calls) AS n FROM rollup")[0]["n"] == 1


def test_a_row_no_sqlite_column_can_hold_is_dropped_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Before: the batch holding a 2**63 count was retried forever (3 of 64 rows written)."""
    sink = LedgerSink(tmp_path / "l.db", "svc", batch_rows=16)
    dropped: list[int] = []
    sink.set_drop_hook(dropped.append)
    for i in range(64):
        huge = Usage(input_tokens=2**63, output_tokens=1)
        sink.record(accounted(i, usage=huge) if i == 3 else accounted(i))
    assert sink.flush()
    sink.close()
    assert len(rows(tmp_path / "l.db")) == 63
    assert dropped == [1]
    assert "cannot store" in caplog.text


def test_rows_the_disk_will_not_take_at_exit_are_counted_and_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A disk that stays full: SQLite's own "database or disk is full", from a page limit."""
    sink = LedgerSink(tmp_path / "l.db", "svc")
    sink.record(accounted(0))
    assert sink.flush()
    real_connect = schema.connect

    def full_disk(path: Path) -> sqlite3.Connection:
        conn = real_connect(path)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    monkeypatch.setattr(schema, "connect", full_disk)
    writer = sink._writer
    writer._stop = True  # the current thread ends after its next pass; the next connection is "full"
    writer._wake.set()
    writer._thread.join(5)
    writer._start()
    dropped: list[int] = []
    sink.set_drop_hook(dropped.append)
    for i in range(1, 2001):
        sink.record(accounted(i, project="p" * 200))
    sink.close()
    assert sum(dropped) > 0
    assert len(rows(tmp_path / "l.db")) + sum(dropped) == 2001
    assert "could not be written at exit" in caplog.text
