"""The ``ledger:`` settings section, validated once, and where the ledger file lives.

Rule: ``ledger.path`` if set; otherwise, when the budget store is ``sqlite:///X.db``, the ledger is
``X-ledger.db`` beside it (a separate file so ledger batches never take the budget store's write
lock); with a non-SQLite store and no ``ledger.path`` the ledger is off, because there is no
obvious durable place to put it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from costspan.errors import ConfigError, check_keys
from costspan.settings import Settings

_KEYS = {"enabled", "path", "retention_days", "prompt_hashes", "batch_rows", "flush_seconds"}
DEFAULT_BATCH_ROWS = 500
DEFAULT_FLUSH_SECONDS = 2.0


@dataclass(frozen=True)
class LedgerConfig:
    path: Path
    retention_days: int | None = None
    prompt_hashes: bool = False
    batch_rows: int = DEFAULT_BATCH_ROWS
    flush_seconds: float = DEFAULT_FLUSH_SECONDS


def sqlite_path(store_url: str) -> Path | None:
    """The file of a ``sqlite:///path`` URL (``sqlite:////abs`` and ``sqlite:///rel`` both work)."""
    prefix = "sqlite:///"
    if not store_url.startswith(prefix):
        return None
    rest = store_url[len(prefix) :]
    return Path(rest) if rest and rest != ":memory:" else None


def ledger_path(settings: Settings) -> Path | None:
    """Where the ledger is, or None when there is none (see the module docstring)."""
    section = _section(settings)
    explicit = section.get("path")
    if explicit is not None:
        if not isinstance(explicit, str) or not explicit:
            raise ConfigError(settings.source, "ledger.path", f"expected a file path, got {explicit!r}")
        return Path(explicit).expanduser()
    store = sqlite_path(settings.store_url)
    if store is None:
        return None
    return store.with_name(f"{store.stem}-ledger{store.suffix or '.db'}")


def load(settings: Settings, *, require_enabled: bool = True) -> LedgerConfig | None:
    """The validated ledger configuration; None when the ledger is off or has no location.

    ``require_enabled=False`` is for the CLI: ``COSTSPAN_LEDGER=off`` stops writing, but a report on
    an existing ledger is still wanted.
    """
    if require_enabled and not settings.ledger_enabled:
        return None
    path = ledger_path(settings)
    if path is None:
        return None
    section = _section(settings)
    return LedgerConfig(
        path=path,
        retention_days=_positive_int(settings, section, "retention_days", None),
        prompt_hashes=_bool(settings, section, "prompt_hashes", False),
        batch_rows=_positive_int(settings, section, "batch_rows", DEFAULT_BATCH_ROWS) or DEFAULT_BATCH_ROWS,
        flush_seconds=_positive_float(settings, section, "flush_seconds", DEFAULT_FLUSH_SECONDS),
    )


def _section(settings: Settings) -> dict[str, Any]:
    section = settings.section("ledger") or {}
    if not isinstance(section, dict):
        raise ConfigError(settings.source, "ledger", "expected a mapping")
    check_keys(settings.source, "ledger", section, _KEYS)
    return section


def _bool(settings: Settings, section: dict[str, Any], key: str, default: bool) -> bool:
    value = section.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(settings.source, f"ledger.{key}", f"expected true or false, got {value!r}")
    return value


def _positive_int(settings: Settings, section: dict[str, Any], key: str, default: int | None) -> int | None:
    value = section.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(settings.source, f"ledger.{key}", f"expected a positive whole number, got {value!r}")
    return value


def _positive_float(settings: Settings, section: dict[str, Any], key: str, default: float) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(settings.source, f"ledger.{key}", f"expected a positive number of seconds, got {value!r}")
    return float(value)
