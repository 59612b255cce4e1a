"""Settings from ``COSTSPAN_*`` variables and the optional YAML file.

Variables win over the file so that one deployment can differ from the shared file without a
copy of it. Every problem names the file (or variable), the key and what is wrong.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from costspan.errors import ConfigError, check_keys

ENV_SOURCE = "environment"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_TOP_LEVEL_KEYS = {
    "timezone",
    "store",
    "pricing",
    "budgets",
    "quotas",
    "alerts",
    "ledger",
    "currency",
    "prometheus",
    "enforce",
    "capture_content",
    "sigterm",
    "fail_closed",
    "endpoints",
    "estimation",
    "metrics",
    "gateway",
}
PROMETHEUS_KEYS = ("port", "addr", "certfile", "keyfile", "basic_auth")


def default_state_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "costspan"


@dataclass(frozen=True)
class Settings:
    source: str
    """The YAML file the settings came from, or ``environment``; used in every error message."""
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    store_url: str = "memory://"
    """``load_settings`` fills in the real default (SQLite under the state directory); a ``Settings``
    built by hand, as tests do, keeps its state in memory."""
    prometheus_port: int | None = None
    prometheus_addr: str = "127.0.0.1"
    enforce: bool = True
    capture_content: bool = False
    sigterm: bool = True
    """Whether costspan handles SIGTERM (writes out, then hands the signal on); ``false`` for an
    application that owns its signal handling and calls ``costspan.flush()`` itself."""
    ledger_enabled: bool = True
    endpoints: tuple[tuple[str, str], ...] = ()
    """Base-URL prefixes named as a provider (gateways, stand-ins), checked before host detection."""
    endpoint_error: ConfigError | None = None
    """A problem with the /metrics settings (port, address, ``prometheus:`` keys). It costs the
    endpoint alone, as a busy port does: the runtime logs it and prices, charges and records as
    usual, while ``costspan status`` reports it and exits 2."""
    label_caps: Mapping[str, int] = field(default_factory=dict)
    """``metrics.label_caps``: distinct values per metric label before folding into ``other``
    (labels not named keep their defaults)."""
    raw: Mapping[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> Any:
        """A raw YAML section for the component that owns it to validate."""
        return self.raw.get(name)


def _parse_bool(value: str, source: str, key: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(source, key, f"expected true or false, got {value!r}")


def _parse_timezone(value: object, source: str, key: str) -> ZoneInfo:
    if not isinstance(value, str):
        raise ConfigError(source, key, f"expected an IANA time zone name, got {value!r}")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(source, key, f"unknown time zone {value!r}") from exc


def _read_yaml(path: Path) -> dict[str, Any]:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, "(file)", f"cannot read: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise ConfigError(source, where, f"malformed YAML: {getattr(exc, 'problem', exc)}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(source, "(top level)", "expected a mapping of settings")
    check_keys(source, "", data, _TOP_LEVEL_KEYS)
    return data


def _parse_endpoints(env: Mapping[str, str], raw: Mapping[str, Any], source: str) -> tuple[tuple[str, str], ...]:
    from costspan.providers import parse_overrides

    pairs: list[tuple[str, str]] = []
    if env.get("COSTSPAN_ENDPOINTS"):
        try:
            pairs.extend(parse_overrides(env["COSTSPAN_ENDPOINTS"]))
        except ValueError as exc:
            raise ConfigError(ENV_SOURCE, "COSTSPAN_ENDPOINTS", str(exc)) from exc
    section = raw.get("endpoints") or {}
    if not isinstance(section, dict):
        raise ConfigError(source, "endpoints", "expected a mapping of base URL to provider name")
    for url, provider in section.items():
        if not isinstance(provider, str) or not provider:
            raise ConfigError(source, f"endpoints[{url}]", f"expected a provider name, got {provider!r}")
        pairs.append((str(url).rstrip("/"), provider))
    return tuple(pairs)


def _endpoint(env: Mapping[str, str], section: object, source: str) -> tuple[int | None, str]:
    """The /metrics port (None: no endpoint) and address, checked as far as binding would."""
    prom = section or {}
    if not isinstance(prom, dict):
        raise ConfigError(source, "prometheus", "expected a mapping")
    check_keys(source, "prometheus", prom, PROMETHEUS_KEYS)

    def pick(env_name: str, key: str) -> tuple[object, str, str]:
        if env.get(env_name):
            return env[env_name], ENV_SOURCE, env_name
        return prom.get(key), source, f"prometheus.{key}"

    port_value, port_source, port_key = pick("COSTSPAN_PROMETHEUS_PORT", "port")
    addr_value, addr_source, addr_key = pick("COSTSPAN_PROMETHEUS_ADDR", "addr")
    addr = "127.0.0.1" if addr_value in (None, "") else str(addr_value)
    if port_value in (None, ""):
        return None, addr
    try:
        port = int(str(port_value))
    except ValueError as exc:
        raise ConfigError(port_source, port_key, f"expected a port number, got {port_value!r}") from exc
    if not 0 <= port <= 65535:
        raise ConfigError(port_source, port_key, f"port {port} out of range")
    try:
        socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:
        problem = f"cannot listen on {addr!r}: {getattr(exc, 'strerror', None) or exc}"
        raise ConfigError(addr_source, addr_key, problem) from exc
    return port, addr


def config_path(env: Mapping[str, str]) -> Path | None:
    explicit = env.get("COSTSPAN_CONFIG")
    if explicit:
        return Path(explicit)
    default = Path("costspan.yaml")
    return default if default.is_file() else None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings once; raises :class:`ConfigError` on any bad value."""
    env = os.environ if env is None else env
    path = config_path(env)
    raw = _read_yaml(path) if path is not None else {}
    source = str(path) if path is not None else ENV_SOURCE

    tz_value: object = env.get("COSTSPAN_TIMEZONE") or raw.get("timezone", "UTC")
    tz_source = "COSTSPAN_TIMEZONE" if env.get("COSTSPAN_TIMEZONE") else "timezone"
    timezone = _parse_timezone(tz_value, ENV_SOURCE if tz_source.isupper() else source, tz_source)

    store_url = env.get("COSTSPAN_STORE") or raw.get("store")
    if store_url is None:
        store_url = f"sqlite:///{default_state_dir(env) / 'costspan.db'}"
    store_source, store_key = (ENV_SOURCE, "COSTSPAN_STORE") if env.get("COSTSPAN_STORE") else (source, "store")
    if not isinstance(store_url, str) or "://" not in store_url:
        raise ConfigError(
            store_source, store_key, f"expected a URL like sqlite:///path or redis://host:6379/0, got {store_url!r}"
        )
    from costspan.budgets.store import check_url

    check_url(store_url, store_source, store_key)

    port: int | None = None
    addr = "127.0.0.1"
    endpoint_error: ConfigError | None = None
    try:
        port, addr = _endpoint(env, raw.get("prometheus"), source)
    except ConfigError as exc:
        endpoint_error = exc

    def flag(env_name: str, key: str, default: bool) -> bool:
        if env.get(env_name):
            return _parse_bool(env[env_name], ENV_SOURCE, env_name)
        value = raw.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(source, key, f"expected true or false, got {value!r}")
        return value

    ledger_raw = raw.get("ledger") or {}
    if not isinstance(ledger_raw, dict):
        raise ConfigError(source, "ledger", "expected a mapping")
    ledger_env = env.get("COSTSPAN_LEDGER")
    ledger_yaml = ledger_raw.get("enabled", True)
    if not isinstance(ledger_yaml, bool):
        raise ConfigError(source, "ledger.enabled", f"expected true or false, got {ledger_yaml!r}")
    ledger_enabled = _parse_bool(ledger_env, ENV_SOURCE, "COSTSPAN_LEDGER") if ledger_env else ledger_yaml

    endpoints = _parse_endpoints(env, raw, source)

    from costspan.exporters.labels import parse_label_caps  # checked here so every entry point sees errors

    label_caps = parse_label_caps(raw.get("metrics"), source)

    return Settings(
        source=source,
        endpoints=endpoints,
        label_caps=label_caps,
        timezone=timezone,
        store_url=store_url,
        prometheus_port=port,
        prometheus_addr=addr,
        endpoint_error=endpoint_error,
        enforce=flag("COSTSPAN_ENFORCE", "enforce", True),
        capture_content=flag("COSTSPAN_CAPTURE_CONTENT", "capture_content", False),
        sigterm=flag("COSTSPAN_SIGTERM", "sigterm", True),
        ledger_enabled=ledger_enabled,
        raw=raw,
    )
