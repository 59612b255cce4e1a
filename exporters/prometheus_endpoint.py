"""The /metrics endpoint: loopback by default, optional TLS and basic auth, pre-fork aware.

The figures reveal spend, so the endpoint binds 127.0.0.1 unless ``COSTSPAN_PROMETHEUS_ADDR``
widens it; when it must be reachable from another host, ``prometheus.certfile``/``keyfile``
turn on TLS and ``prometheus.basic_auth`` adds the basic auth that prometheus-client lacks
server-side (a small WSGI wrapper). The server is prometheus-client's own WSGI app on its public
``ThreadingWSGIServer``; the few lines its private helpers would give (address family, TLS
context, a quiet request handler) are written here, so an upgrade of the library cannot break them.

TLS handshakes happen in each connection's own thread, with a deadline
(:data:`CONNECTION_TIMEOUT_S`): prometheus-client's ``start_http_server`` wraps the listening
socket, so the handshake would run inside ``accept`` and one client that connects and sends
nothing would stop every scrape.

Pre-fork servers (gunicorn, uvicorn workers): with ``PROMETHEUS_MULTIPROC_DIR`` set,
prometheus-client keeps each worker's counters in that directory; the endpoint serves a
``MultiProcessCollector`` over it, so counters sum across workers. Only one process can bind the
port: the others log that and record only. Budget gauges are read from the shared store by the
serving process alone, so they are never multiplied.
"""

from __future__ import annotations

import base64
import hmac
import logging
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from costspan.errors import ConfigError
from costspan.settings import Settings
from costspan.tls_server import HandshakePerConnection

logger = logging.getLogger("costspan")
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
CONNECTION_TIMEOUT_S = 10.0
"""Longest wait for a client's next bytes, TLS handshake included; a silent client then loses
its own connection, and only its own."""


class _Server(HandshakePerConnection, ThreadingWSGIServer):
    """prometheus-client's threading server, handshaking TLS per connection in the worker thread."""

    connection_timeout_s = CONNECTION_TIMEOUT_S
    name = "costspan /metrics"


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr: a scrape every few seconds would drown the application's own output."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _family(host: str, port: int) -> tuple[socket.AddressFamily, str]:
    """The address family to bind ``host`` with (IPv6 for ``::``, a v6 literal or a v6-only name)
    and the address to bind; the socket server would otherwise assume IPv4."""
    family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    return family, str(sockaddr[0])


def _server_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    """A server-side context with the standard library's defaults (TLS 1.2 or newer, no client certificate)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile=certfile, keyfile=keyfile)
    return context


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition_registry(extra: Iterable[Any] = ()) -> CollectorRegistry:
    """The registry to serve: the default one, or a multiprocess view of every worker's files."""
    directory = multiprocess_dir()
    if not directory:
        return REGISTRY
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    for collector in extra:
        registry.register(collector)
    return registry


def with_basic_auth(app: WSGIApp, username: str, password: str) -> WSGIApp:
    expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        given = environ.get("HTTP_AUTHORIZATION", "")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            start_response(
                "401 Unauthorized", [("WWW-Authenticate", 'Basic realm="costspan"'), ("Content-Type", "text/plain")]
            )
            return [b"authentication required\n"]
        return app(environ, start_response)

    return guarded


def _auth(settings: Settings, section: Mapping[str, Any]) -> tuple[str, str] | None:
    auth = section.get("basic_auth")
    if auth is None:
        return None
    if not isinstance(auth, dict) or not isinstance(auth.get("username"), str):
        raise ConfigError(settings.source, "prometheus.basic_auth", "expected {username: ..., password_file: ...}")
    password = os.environ.get("COSTSPAN_PROMETHEUS_PASSWORD")
    if password is None and isinstance(auth.get("password_file"), str):
        try:
            with open(auth["password_file"], encoding="utf-8") as fh:
                password = fh.read().strip()
        except OSError as exc:
            raise ConfigError(
                settings.source, "prometheus.basic_auth.password_file", f"cannot read: {exc.strerror}"
            ) from exc
    if not password:
        raise ConfigError(
            settings.source,
            "prometheus.basic_auth",
            "no password: set password_file or the COSTSPAN_PROMETHEUS_PASSWORD variable",
        )
    return auth["username"], password


def _tls(settings: Settings, section: Mapping[str, Any]) -> ssl.SSLContext | None:
    certfile, keyfile = section.get("certfile"), section.get("keyfile")
    if not certfile and not keyfile:
        return None
    if not (certfile and keyfile):
        raise ConfigError(settings.source, "prometheus.certfile", "TLS needs both certfile and keyfile")
    try:
        return _server_context(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(settings.source, "prometheus.certfile", f"cannot load the certificate: {exc}") from exc


def check(settings: Settings) -> tuple[tuple[str, str] | None, ssl.SSLContext | None]:
    """The endpoint's basic-auth credentials and TLS context; raises the ConfigError of any
    problem with the /metrics settings (:attr:`Settings.endpoint_error` included)."""
    if settings.endpoint_error is not None:
        raise settings.endpoint_error
    section = settings.section("prometheus") or {}
    return _auth(settings, section), _tls(settings, section)


def serve(settings: Settings, registry: CollectorRegistry = REGISTRY) -> ThreadingWSGIServer | None:
    """Start the endpoint in a daemon thread; None when there is no port or another process
    already serves it. Raises ConfigError on bad endpoint settings, before binding anything."""
    credentials, context = check(settings)  # before the port is bound, so a bad file leaks no socket
    if settings.prometheus_port is None:
        return None
    app: WSGIApp = make_wsgi_app(registry)
    if credentials is not None:
        app = with_basic_auth(app, *credentials)

    class Server(_Server):
        tls = context

    try:
        Server.address_family, addr = _family(settings.prometheus_addr, settings.prometheus_port)
        httpd = make_server(addr, settings.prometheus_port, app, Server, handler_class=_QuietHandler)
    except OSError as exc:
        if multiprocess_dir():
            logger.info("costspan: /metrics already served by another worker (%s); recording only", exc)
        else:
            # A busy port must not turn off pricing, budgets and the ledger with it.
            logger.error(
                "costspan: cannot serve /metrics on %s:%s (%s); calls are still priced and recorded",
                settings.prometheus_addr, settings.prometheus_port, exc,
            )
        return None
    threading.Thread(target=httpd.serve_forever, name="costspan-metrics", daemon=True).start()
    return httpd
