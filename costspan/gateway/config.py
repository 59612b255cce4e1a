"""The ``gateway:`` section of costspan.yaml, with the command line's overrides.

Every problem names the file, the key and what is wrong, like the rest of the settings; a key the
gateway does not know is refused with the nearest known one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from costspan.budgets.store import OP_TTL_S
from costspan.errors import ConfigError, check_keys
from costspan.settings import Settings

PROTOCOLS = ("http/protobuf", "grpc")
_KEYS = ("http", "grpc", "forward", "limits", "auth", "tls", "attribution", "dedup_ttl_seconds")
_FORWARD_KEYS = ("endpoint", "protocol", "headers", "tls", "compression", "timeout", "retry", "workers")
_TLS_KEYS = ("ca_file", "cert_file", "key_file", "insecure")
_RETRY_KEYS = ("initial_interval", "max_interval", "max_elapsed_time")
_LIMIT_KEYS = ("max_request_bytes", "max_decompressed_bytes", "queue_spans", "drain_seconds", "window_spans")
_AUTH_KEYS = ("bearer_token_file", "basic")
_BASIC_KEYS = ("username", "password_file")
_RECEIVER_TLS_KEYS = ("certfile", "keyfile")
_ATTRIBUTION_KEYS = ("project", "feature", "user")
TOKEN_ENV = "COSTSPAN_GATEWAY_TOKEN"
PASSWORD_ENV = "COSTSPAN_GATEWAY_PASSWORD"


@dataclass(frozen=True)
class Retry:
    initial_interval: float = 1.0
    max_interval: float = 30.0
    max_elapsed_time: float = 300.0
    """After this long a batch the next hop keeps refusing is dropped (counted); 0: never."""


@dataclass(frozen=True)
class Forward:
    endpoint: str | None = None
    """None: forward nothing (metrics and ledger only)."""
    protocol: str = "http/protobuf"
    headers: Mapping[str, str] = field(default_factory=dict)
    compression: str = "gzip"
    timeout: float = 10.0
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False
    """gRPC only: a plain-text channel (``http://`` endpoints are plain text anyway)."""
    retry: Retry = field(default_factory=Retry)
    workers: int = 4


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int = 4 * 1024 * 1024
    """Largest body as received (compressed); larger is refused with 413 / RESOURCE_EXHAUSTED."""
    max_decompressed_bytes: int = 16 * 1024 * 1024
    """Largest body once decompressed: a gzip bomb stops here, never in memory."""
    queue_spans: int = 100_000
    """Spans answered and waiting to be accounted or to reach the next hop (one bound for both queues);
    past it senders are told to retry (HTTP 503, gRPC UNAVAILABLE)."""
    drain_seconds: float = 20.0
    """On SIGTERM, once everything answered is accounted, how long the queue may take to reach the next
    hop before what is left is counted lost."""
    window_spans: int = 100_000
    """Recent spans remembered (across traces) to count a trace split over requests once."""


@dataclass(frozen=True)
class Auth:
    bearer_token: str | None = None
    username: str | None = None
    password: str | None = None

    @property
    def required(self) -> bool:
        return self.bearer_token is not None or self.username is not None


@dataclass(frozen=True)
class GatewayConfig:
    http: tuple[str, int] | None = ("127.0.0.1", 4318)
    grpc: tuple[str, int] | None = ("127.0.0.1", 4317)
    forward: Forward = field(default_factory=Forward)
    limits: Limits = field(default_factory=Limits)
    auth: Auth = field(default_factory=Auth)
    certfile: str | None = None
    keyfile: str | None = None
    attribution: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Extra attribute keys read (span first, then resource) for ``project``, ``feature``, ``user``."""
    dedup_ttl_seconds: int = OP_TTL_S


def parse_address(value: object, source: str, key: str) -> tuple[str, int] | None:
    """``host:port`` (``[::1]:4317`` for IPv6); ``off`` turns that receiver off."""
    if value is None or value is False or (isinstance(value, str) and value.strip().lower() == "off"):
        return None
    text = str(value).strip()
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(source, key, f"expected ADDR:PORT such as 127.0.0.1:4318 (or off), got {value!r}")
    return host, int(port)


def load(
    settings: Settings, overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> GatewayConfig:
    """The gateway's settings: the YAML ``gateway:`` section, then ``overrides`` from the command line
    (``http``, ``grpc``, ``forward``, ``protocol``, ``no_forward``). Raises ConfigError."""
    env = os.environ if env is None else env
    source = settings.source
    raw = _mapping(settings.section("gateway"), source, "gateway")
    check_keys(source, "gateway", raw, _KEYS)
    overrides = overrides or {}
    http = _pick(overrides, "http", raw, "http", "127.0.0.1:4318")
    grpc = _pick(overrides, "grpc", raw, "grpc", "127.0.0.1:4317")
    http_source = "--http" if overrides.get("http") else source
    grpc_source = "--grpc" if overrides.get("grpc") else source
    config = GatewayConfig(
        http=parse_address(http, http_source, "gateway.http"),
        grpc=parse_address(grpc, grpc_source, "gateway.grpc"),
        forward=_forward(_mapping(raw.get("forward"), source, "gateway.forward"), source, overrides),
        limits=_limits(_mapping(raw.get("limits"), source, "gateway.limits"), source),
        auth=_auth(_mapping(raw.get("auth"), source, "gateway.auth"), source, env),
        attribution=_attribution(_mapping(raw.get("attribution"), source, "gateway.attribution"), source),
        dedup_ttl_seconds=_number(raw, "dedup_ttl_seconds", OP_TTL_S, source, "gateway", minimum=1, kind=int),
        **_receiver_tls(_mapping(raw.get("tls"), source, "gateway.tls"), source),
    )
    if config.http is None and config.grpc is None:
        raise ConfigError(source, "gateway", "both receivers are off: nothing would be received")
    return config


def _pick(overrides: Mapping[str, Any], flag: str, raw: Mapping[str, Any], key: str, default: str) -> object:
    if overrides.get(flag):
        return overrides[flag]
    return raw.get(key, default)


def _mapping(value: object, source: str, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(source, key, "expected a mapping")
    return value


def _number(
    raw: Mapping[str, Any], key: str, default: float, source: str, section: str, *, minimum: float, kind: type = float
) -> Any:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise ConfigError(source, f"{section}.{key}", f"expected a number of at least {minimum:g}, got {value!r}")
    if kind is int and value != int(value):
        raise ConfigError(source, f"{section}.{key}", f"expected a whole number, got {value!r}")
    return kind(value)


def _file(raw: Mapping[str, Any], key: str, source: str, section: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not Path(value).is_file():
        raise ConfigError(source, f"{section}.{key}", f"no such file: {value!r}")
    return value


def _secret(path: str, source: str, key: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, key, f"cannot read {path!r}: {exc}") from exc
    if not text:
        raise ConfigError(source, key, f"{path!r} is empty")
    return text


def _forward(raw: Mapping[str, Any], source: str, overrides: Mapping[str, Any]) -> Forward:
    check_keys(source, "gateway.forward", raw, _FORWARD_KEYS)
    endpoint = overrides.get("forward") or raw.get("endpoint")
    endpoint_source = "--forward" if overrides.get("forward") else source
    if overrides.get("no_forward"):
        endpoint = None
    protocol = overrides.get("protocol") or raw.get("protocol", "http/protobuf")
    protocol_source = "--forward-protocol" if overrides.get("protocol") else source
    if protocol not in PROTOCOLS:
        raise ConfigError(
            protocol_source, "gateway.forward.protocol", f"expected one of {', '.join(PROTOCOLS)}, got {protocol!r}"
        )
    if endpoint is not None:
        if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
            raise ConfigError(
                endpoint_source, "gateway.forward.endpoint", f"expected an http:// or https:// URL, got {endpoint!r}"
            )
        if protocol == "http/protobuf" and not endpoint.rstrip("/").endswith("/v1/traces"):
            endpoint = endpoint.rstrip("/") + "/v1/traces"  # as the Collector's otlphttp exporter does
    headers = _mapping(raw.get("headers"), source, "gateway.forward.headers")
    for name, value in headers.items():
        if not isinstance(value, str) or "\n" in value or "\r" in value:
            raise ConfigError(source, f"gateway.forward.headers.{name}", "expected a one-line text value")
    compression = raw.get("compression", "gzip")
    if compression not in ("gzip", "none"):
        raise ConfigError(source, "gateway.forward.compression", f"expected gzip or none, got {compression!r}")
    tls = _mapping(raw.get("tls"), source, "gateway.forward.tls")
    check_keys(source, "gateway.forward.tls", tls, _TLS_KEYS)
    retry = _mapping(raw.get("retry"), source, "gateway.forward.retry")
    check_keys(source, "gateway.forward.retry", retry, _RETRY_KEYS)
    section = "gateway.forward.retry"
    insecure = tls.get("insecure", False)
    if not isinstance(insecure, bool):
        raise ConfigError(source, "gateway.forward.tls.insecure", f"expected true or false, got {insecure!r}")
    return Forward(
        endpoint=endpoint,
        protocol=protocol,
        headers={str(k).lower(): v for k, v in headers.items()},
        compression=compression,
        timeout=_number(raw, "timeout", 10.0, source, "gateway.forward", minimum=0.1),
        ca_file=_file(tls, "ca_file", source, "gateway.forward.tls"),
        cert_file=_file(tls, "cert_file", source, "gateway.forward.tls"),
        key_file=_file(tls, "key_file", source, "gateway.forward.tls"),
        insecure=insecure,
        retry=Retry(
            initial_interval=_number(retry, "initial_interval", 1.0, source, section, minimum=0.01),
            max_interval=_number(retry, "max_interval", 30.0, source, section, minimum=0.01),
            max_elapsed_time=_number(retry, "max_elapsed_time", 300.0, source, section, minimum=0),
        ),
        workers=_number(raw, "workers", 4, source, "gateway.forward", minimum=1, kind=int),
    )


def _limits(raw: Mapping[str, Any], source: str) -> Limits:
    check_keys(source, "gateway.limits", raw, _LIMIT_KEYS)
    s = "gateway.limits"
    return Limits(
        max_request_bytes=_number(
            raw, "max_request_bytes", Limits.max_request_bytes, source, s, minimum=1024, kind=int
        ),
        max_decompressed_bytes=_number(
            raw, "max_decompressed_bytes", Limits.max_decompressed_bytes, source, s, minimum=1024, kind=int
        ),
        queue_spans=_number(raw, "queue_spans", Limits.queue_spans, source, s, minimum=1, kind=int),
        drain_seconds=_number(raw, "drain_seconds", Limits.drain_seconds, source, s, minimum=0),
        window_spans=_number(raw, "window_spans", Limits.window_spans, source, s, minimum=0, kind=int),
    )


def _auth(raw: Mapping[str, Any], source: str, env: Mapping[str, str]) -> Auth:
    check_keys(source, "gateway.auth", raw, _AUTH_KEYS)
    token = env.get(TOKEN_ENV) or None
    if token is None and raw.get("bearer_token_file") is not None:
        token = _secret(str(raw["bearer_token_file"]), source, "gateway.auth.bearer_token_file")
    basic = _mapping(raw.get("basic"), source, "gateway.auth.basic")
    check_keys(source, "gateway.auth.basic", basic, _BASIC_KEYS)
    username = basic.get("username")
    password = None
    if username is not None:
        if not isinstance(username, str) or not username or ":" in username:
            raise ConfigError(source, "gateway.auth.basic.username", "expected a name without ':'")
        password = env.get(PASSWORD_ENV) or None
        if password is None:
            if basic.get("password_file") is None:
                raise ConfigError(
                    source, "gateway.auth.basic.password_file", f"required with a username (or {PASSWORD_ENV})"
                )
            password = _secret(str(basic["password_file"]), source, "gateway.auth.basic.password_file")
    return Auth(bearer_token=token, username=username, password=password)


def _receiver_tls(raw: Mapping[str, Any], source: str) -> dict[str, str | None]:
    check_keys(source, "gateway.tls", raw, _RECEIVER_TLS_KEYS)
    certfile = _file(raw, "certfile", source, "gateway.tls")
    keyfile = _file(raw, "keyfile", source, "gateway.tls")
    if (certfile is None) != (keyfile is None):
        raise ConfigError(source, "gateway.tls", "certfile and keyfile go together")
    return {"certfile": certfile, "keyfile": keyfile}


def _attribution(raw: Mapping[str, Any], source: str) -> dict[str, tuple[str, ...]]:
    check_keys(source, "gateway.attribution", raw, _ATTRIBUTION_KEYS)
    mapping: dict[str, tuple[str, ...]] = {}
    for name, keys in raw.items():
        listed = [keys] if isinstance(keys, str) else keys
        if not isinstance(listed, list) or not all(isinstance(k, str) and k for k in listed):
            raise ConfigError(source, f"gateway.attribution.{name}", "expected an attribute key or a list of them")
        mapping[str(name)] = tuple(listed)
    return mapping
