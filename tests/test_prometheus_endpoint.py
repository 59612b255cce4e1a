"""The /metrics endpoint: loopback by default, basic auth, TLS, and pre-fork multiprocess mode."""

from __future__ import annotations

import base64
import os
import socket
import ssl
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from costspan.errors import ConfigError
from costspan.exporters import prometheus_endpoint
from costspan.exporters.prometheus_endpoint import serve
from costspan.settings import load_settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def registry_with_sample() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("costspan_probe", "probe", registry=registry).inc(3)
    return registry


def test_binds_loopback_by_default() -> None:
    port = free_port()
    server = serve(load_settings({"COSTSPAN_PROMETHEUS_PORT": str(port)}), registry_with_sample())
    assert server is not None
    try:
        assert server.server_address[0] == "127.0.0.1"
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert "costspan_probe_total 3.0" in body
    finally:
        server.shutdown()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_binds_an_ipv6_address() -> None:
    port = free_port()
    settings = load_settings({"COSTSPAN_PROMETHEUS_PORT": str(port), "COSTSPAN_PROMETHEUS_ADDR": "::1"})
    server = serve(settings, registry_with_sample())
    assert server is not None
    try:
        assert server.address_family == socket.AF_INET6 and server.server_address[0] == "::1"
        body = urllib.request.urlopen(f"http://[::1]:{port}/metrics", timeout=5).read().decode()
        assert "costspan_probe_total 3.0" in body
    finally:
        server.shutdown()


def test_scrapes_write_no_access_log(capfd: pytest.CaptureFixture[str]) -> None:
    """A scrape every few seconds must not fill the application's stderr."""
    port = free_port()
    server = serve(load_settings({"COSTSPAN_PROMETHEUS_PORT": str(port)}), registry_with_sample())
    assert server is not None
    try:
        for path in ("/metrics", "/missing"):
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5).read()
    finally:
        server.shutdown()
    assert capfd.readouterr().err == ""


def test_a_busy_port_is_logged_and_costspan_keeps_working(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = load_settings({"COSTSPAN_PROMETHEUS_PORT": str(port)})
        with caplog.at_level("ERROR", logger="costspan"):
            assert serve(settings, registry_with_sample()) is None
    assert f"cannot serve /metrics on 127.0.0.1:{port}" in caplog.text


def test_basic_auth(tmp_path: Path) -> None:
    port = free_port()
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    config = tmp_path / "costspan.yaml"
    config.write_text(f"prometheus:\n  basic_auth: {{username: scraper, password_file: {secret}}}\n")
    settings = load_settings({"COSTSPAN_CONFIG": str(config), "COSTSPAN_PROMETHEUS_PORT": str(port)})
    server = serve(settings, registry_with_sample())
    assert server is not None
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=5)
        assert refused.value.code == 401
        wrong = urllib.request.Request(
            url, headers={"Authorization": "Basic " + base64.b64encode(b"scraper:x").decode()}
        )
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(wrong, timeout=5)
        right = urllib.request.Request(
            url, headers={"Authorization": "Basic " + base64.b64encode(b"scraper:s3cret").decode()}
        )
        assert b"costspan_probe_total" in urllib.request.urlopen(right, timeout=5).read()
    finally:
        server.shutdown()


def test_basic_auth_without_password_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "costspan.yaml"
    config.write_text("prometheus:\n  basic_auth: {username: scraper}\n")
    settings = load_settings({"COSTSPAN_CONFIG": str(config), "COSTSPAN_PROMETHEUS_PORT": str(free_port())})
    with pytest.raises(ConfigError, match=r"costspan.yaml: prometheus.basic_auth: no password"):
        serve(settings, registry_with_sample())


@pytest.fixture
def tls_config(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate and a costspan.yaml that serves /metrics over TLS with it."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost"],
        check=True,
        capture_output=True,
    )
    config = tmp_path / "costspan.yaml"
    config.write_text(f"prometheus:\n  certfile: {cert}\n  keyfile: {key}\n")
    return config, cert


def tls_scrape(port: int, cert: Path, timeout: float = 5) -> bytes:
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    return bytes(urllib.request.urlopen(f"https://127.0.0.1:{port}/metrics", context=context, timeout=timeout).read())


def test_tls(tls_config: tuple[Path, Path]) -> None:
    config, cert = tls_config
    port = free_port()
    server = serve(
        load_settings({"COSTSPAN_CONFIG": str(config), "COSTSPAN_PROMETHEUS_PORT": str(port)}), registry_with_sample()
    )
    assert server is not None
    try:
        assert b"costspan_probe_total" in tls_scrape(port, cert)
    finally:
        server.shutdown()


def test_a_silent_tls_client_blocks_no_scrape_and_is_dropped(
    tls_config: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that connects and never starts the handshake holds only its own connection."""
    monkeypatch.setattr(prometheus_endpoint._Server, "connection_timeout_s", 1.0)
    config, cert = tls_config
    port = free_port()
    server = serve(
        load_settings({"COSTSPAN_CONFIG": str(config), "COSTSPAN_PROMETHEUS_PORT": str(port)}), registry_with_sample()
    )
    assert server is not None
    try:
        with socket.create_connection(("127.0.0.1", port)) as silent:
            time.sleep(0.2)  # the server has accepted it
            started = time.perf_counter()
            assert b"costspan_probe_total" in tls_scrape(port, cert, timeout=3)
            assert time.perf_counter() - started < 0.9  # answered well before the silent client's deadline
            silent.settimeout(5)
            assert silent.recv(1) == b""  # dropped at its deadline
    finally:
        server.shutdown()


WORKER = textwrap.dedent(
    """
    import sys, time
    from costspan.settings import load_settings
    from costspan.exporters.prometheus import PrometheusMetrics
    from costspan.exporters.prometheus_endpoint import exposition_registry, serve
    from costspan.accounted import Accounted
    from costspan.pricing import Quote
    from costspan.facts import CallFacts, Usage

    metrics = PrometheusMetrics()
    facts = CallFacts(provider="openai", request_model="gpt-4o-mini", usage=Usage(10, 5), project="p")
    for _ in range(int(sys.argv[2])):
        metrics.record(Accounted(facts, Quote("priced", input_nanos=1500, output_nanos=3000)))
    server = serve(load_settings({"COSTSPAN_PROMETHEUS_PORT": sys.argv[1]}), exposition_registry())
    print("served" if server else "recording-only", flush=True)
    time.sleep(float(sys.argv[3]))
    """
)


@pytest.mark.slow
def test_prefork_workers_sum_into_one_endpoint(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    first = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(port), "3", "8"], env=env, stdout=subprocess.PIPE, text=True
    )
    assert first.stdout is not None and first.stdout.readline().strip() == "served"
    second = subprocess.run(
        [sys.executable, "-c", WORKER, str(port), "4", "0"], env=env, capture_output=True, text=True, check=True
    )
    assert second.stdout.strip() == "recording-only"
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        first.kill()
        first.wait()
    line = next(line for line in body.splitlines() if line.startswith("costspan_requests_total{"))
    assert line.endswith(" 7.0")  # 3 + 4 calls from two workers


def test_an_unreadable_certificate_is_a_config_error_and_binds_nothing(tmp_path: Path) -> None:
    config = tmp_path / "costspan.yaml"
    config.write_text(f"prometheus:\n  certfile: {tmp_path / 'missing.crt'}\n  keyfile: {tmp_path / 'missing.key'}\n")
    port = free_port()
    settings = load_settings({"COSTSPAN_CONFIG": str(config), "COSTSPAN_PROMETHEUS_PORT": str(port)})
    with pytest.raises(ConfigError, match=r"prometheus\.certfile.*cannot load"):
        serve(settings, registry_with_sample())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # still free: nothing was left bound
