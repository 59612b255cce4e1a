"""The ledger and the SQLite budget store hold user ids and spend: owner-only files, real SQLite."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from costspan.budgets.sqlite import SqliteStore
from costspan.budgets.store import Increment
from costspan.exporters.ledger import LedgerSink
from costspan.files import create_private
from tests.test_ledger_writer import accounted


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The usual 022 umask, under which SQLite itself would create 0644 files."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_ledger_and_its_side_files_are_owner_only(tmp_path: Path, loose_umask: None) -> None:
    path = tmp_path / "state" / "costspan-ledger.db"
    sink = LedgerSink(path, "svc", flush_seconds=60)
    sink.record(accounted(1))
    assert sink.flush()
    try:
        assert mode(path.parent) == 0o700
        side_files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
        assert {p.name for p in side_files} >= {path.name, f"{path.name}-wal", f"{path.name}-shm"}
        assert {p.name: mode(p) for p in side_files} == {p.name: 0o600 for p in side_files}
    finally:
        sink.close()


def test_the_sqlite_budget_store_and_its_side_files_are_owner_only(tmp_path: Path, loose_umask: None) -> None:
    path = tmp_path / "state" / "costspan.db"
    store = SqliteStore(path)
    try:
        store.apply([Increment("k", 5, 2**40)])
        assert mode(path.parent) == 0o700
        side_files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
        assert f"{path.name}-wal" in {p.name for p in side_files}
        assert {p.name: mode(p) for p in side_files} == {p.name: 0o600 for p in side_files}
    finally:
        store.close()


def test_an_existing_file_and_directory_keep_their_mode(tmp_path: Path, loose_umask: None) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o750)
    existing = shared / "costspan.db"
    existing.touch(mode=0o640)
    create_private(existing)
    assert (mode(shared), mode(existing)) == (0o750, 0o640)
