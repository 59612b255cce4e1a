"""Plausible synthetic ledger rows, written straight to SQLite: for the benchmark, tests and
trying the reports without traffic. Deterministic for a given seed so answers can be checked."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator

from costspan.ledger.rows import Row
from costspan.ledger.store import insert_rows

MODELS = (
    ("openai", "gpt-4o", 2_500, 10_000),
    ("openai", "gpt-4o-mini", 150, 600),
    ("anthropic", "claude-sonnet-4-5", 3_000, 15_000),
    ("anthropic", "claude-haiku-4-5", 1_000, 5_000),
    ("gcp.gemini", "gemini-2.5-flash", 300, 2_500),
    ("groq", "llama-3.1-8b-instant", 50, 80),
)
"""(provider, model, input nanos per token, output nanos per token)."""
PROJECTS = ("research", "support", "search", None)
FEATURES = ("chat", "summarize", "classify")


def rows(count: int, start_us: int, end_us: int, *, seed: int = 7, users: int = 200) -> Iterator[Row]:
    """``count`` rows spread evenly over ``[start_us, end_us)`` in time order."""
    rnd = random.Random(seed)
    step = (end_us - start_us) / max(1, count)
    for i in range(count):
        provider, model, in_price, out_price = MODELS[rnd.randrange(len(MODELS))]
        inp, out = rnd.randrange(50, 4000), rnd.randrange(10, 800)
        cache_read = inp // 2 if rnd.random() < 0.3 else 0
        outcome = "success" if rnd.random() < 0.97 else "error"
        input_nanos = (inp - cache_read) * in_price
        cache_nanos = cache_read * in_price // 10
        output_nanos = out * out_price if outcome == "success" else 0
        duration = rnd.randrange(80_000, 6_000_000)
        yield (
            start_us + int(i * step), "bench", provider, model, model, model, "chat",
            PROJECTS[rnd.randrange(len(PROJECTS))], FEATURES[rnd.randrange(len(FEATURES))],
            f"user-{rnd.randrange(users)}", inp, out, cache_read, 0, 0, 0,
            input_nanos + cache_nanos + output_nanos, input_nanos, output_nanos, cache_nanos, 0,
            "priced", f"{provider}/{model}", "synthetic", "reported", duration, None, outcome,
            None if outcome == "success" else "APIError", f"{i:032x}", f"{i:016x}", None,
        )


def fill(conn: sqlite3.Connection, source: Iterator[Row], batch: int = 50_000) -> int:
    """Insert rows in large transactions; returns how many."""
    n = 0
    chunk: list[Row] = []
    for row in source:
        chunk.append(row)
        if len(chunk) >= batch:
            n += _insert(conn, chunk)
            chunk = []
    if chunk:
        n += _insert(conn, chunk)
    return n


def _insert(conn: sqlite3.Connection, chunk: list[Row]) -> int:
    conn.execute("BEGIN IMMEDIATE")
    insert_rows(conn, chunk)
    conn.execute("COMMIT")
    return len(chunk)
