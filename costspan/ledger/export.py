"""Stream ledger rows as CSV, JSON Lines or one JSON array, in constant memory.

Rows are read with ``fetchmany`` in time order and written as they come: a ledger of millions of
rows never sits in memory, whatever the format (the JSON array is written element by element).
Money is exact: ``cost_nanos`` and its parts as integers, and ``cost_usd`` as a decimal string.

CSV is opened in spreadsheets, which run a cell starting with ``=``, ``+``, ``-`` or ``@`` (or a tab
or carriage return before one) as a formula: a model or project named ``=HYPERLINK(...)`` would
be a live link, or worse. Such text cells get a leading ``'`` (OWASP's CSV-injection advice), so
the spreadsheet shows the text and runs nothing. Numbers stay numbers: integers are written as
they are, and a text cell that is a plain decimal number (``-0.5``) is data, not a formula.
JSON output is never neutralised: it is read by programs, which get the exact values.
"""

from __future__ import annotations

import csv
import json
import re
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import TextIO

from costspan.ledger.query import Filters
from costspan.ledger.schema import COLUMNS
from costspan.money import usd_string

FORMATS = ("csv", "jsonl", "json")
FETCH = 2_000
FIELDS = ("time", *(c for c in COLUMNS if c != "ts_us"), "cost_usd")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?\Z")


def spreadsheet_safe(value: object) -> object:
    """``value`` as a CSV cell no spreadsheet runs as a formula (see the module docstring)."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


def rows(conn: sqlite3.Connection, filters: Filters) -> Iterator[dict[str, object]]:
    where, params = filters.where()
    cursor = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM calls WHERE {where} ORDER BY ts_us, id", params)
    cost_index = COLUMNS.index("cost_nanos")
    while True:
        batch = cursor.fetchmany(FETCH)
        if not batch:
            return
        for raw in batch:
            record = dict(zip(COLUMNS, raw, strict=True))
            ts_us = int(record.pop("ts_us"))
            moment = datetime.fromtimestamp(ts_us // 1_000_000, timezone.utc).replace(microsecond=ts_us % 1_000_000)
            yield {"time": moment.isoformat(), **record, "cost_usd": usd_string(int(raw[cost_index]))}


def write(conn: sqlite3.Connection, filters: Filters, fmt: str, out: TextIO) -> int:
    """Write the filtered rows to ``out`` in ``fmt``; returns how many."""
    n = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        for record in rows(conn, filters):
            writer.writerow({key: spreadsheet_safe(value) for key, value in record.items()})
            n += 1
    elif fmt == "jsonl":
        for record in rows(conn, filters):
            out.write(json.dumps(record, separators=(",", ":")))
            out.write("\n")
            n += 1
    elif fmt == "json":
        out.write("[")
        for record in rows(conn, filters):
            out.write(",\n" if n else "\n")
            out.write(json.dumps(record, separators=(",", ":")))
            n += 1
        out.write("\n]\n" if n else "]\n")
    else:
        raise ValueError(f"unknown format {fmt!r} (expected {', '.join(FORMATS)})")
    return n
