"""The ledger Sink: every accounted call (priced, free, unpriced, failed or blocked) becomes a row.

``record`` runs on the application's thread inside the span's end, so it only enqueues; the
:class:`~costspan.ledger.writer.LedgerWriter` thread converts and writes in batches. Accounting is
independent of sampling because the processor calls every sink for every GenAI span.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from costspan.accounted import Accounted
from costspan.ledger import config as ledger_config
from costspan.ledger.writer import LedgerWriter
from costspan.settings import Settings


class LedgerSink:
    """``Sink`` that appends accounted calls to the SQLite ledger at ``path``."""

    def __init__(
        self,
        path: Path | str,
        service: str = "unknown_service",
        *,
        batch_rows: int = ledger_config.DEFAULT_BATCH_ROWS,
        flush_seconds: float = ledger_config.DEFAULT_FLUSH_SECONDS,
        retention_days: int | None = None,
        prompt_hashes: bool = False,
    ) -> None:
        self.path = Path(path)
        self.prompt_hashes = prompt_hashes
        """Whether the instrumentation should hash request messages (see ``prompt_salt``)."""
        self._writer = LedgerWriter(
            self.path, service, batch_rows=batch_rows, flush_seconds=flush_seconds, retention_days=retention_days
        )

    @classmethod
    def from_settings(cls, settings: Settings, service: str = "unknown_service") -> LedgerSink | None:
        """The sink for these settings, or None when the ledger is off (``COSTSPAN_LEDGER=off``, or a
        non-SQLite store without ``ledger.path``). Raises ``ConfigError`` on a bad ``ledger:`` section."""
        cfg = ledger_config.load(settings)
        if cfg is None:
            return None
        return cls(
            cfg.path,
            service,
            batch_rows=cfg.batch_rows,
            flush_seconds=cfg.flush_seconds,
            retention_days=cfg.retention_days,
            prompt_hashes=cfg.prompt_hashes,
        )

    def set_drop_hook(self, hook: Callable[[int], None]) -> None:
        """Call ``hook(rows)`` whenever rows are given up (the ``costspan_ledger_rows_dropped_total`` counter)."""
        self._writer.on_drop = hook

    def record(self, accounted: Accounted) -> None:
        """Enqueue one call (a few microseconds; never blocks on disk)."""
        self._writer.put(accounted)

    def prompt_salt(self) -> bytes:
        """The salt for :func:`costspan.instrumentation.prompt_hash.hash_messages`, kept beside the ledger."""
        from costspan.instrumentation.prompt_hash import load_salt

        return load_salt(self.path.parent)

    def flush(self, timeout: float = 10.0) -> bool:
        """Commit everything recorded so far (tests, the CLI before a report)."""
        return self._writer.flush(timeout)

    def drain(self) -> bool:
        """Commit what is recorded, then write each new row at once (the process is stopping)."""
        self._writer.draining = True
        return self._writer.flush()

    def close(self) -> None:
        """Commit everything and stop the writer; called by the runtime at exit and on SIGTERM."""
        self._writer.close()
