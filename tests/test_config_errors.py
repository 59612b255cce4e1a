"""Bad input gets a clear ConfigError (source, key, problem), never a stray exception or silence;
``costspan status`` (the real CLI) exits 2 on each; a bad endpoint setting costs the endpoint alone."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from costspan import runtime
from costspan.check import check
from costspan.cli import main as cli_main
from costspan.errors import ConfigError
from costspan.facts import CallFacts, Usage
from costspan.settings import ENV_SOURCE, load_settings


def configured(tmp_path: Path, yaml_text: str, **env: str) -> dict[str, str]:
    config = tmp_path / "costspan.yaml"
    config.write_text(yaml_text)
    return {"COSTSPAN_CONFIG": str(config), "COSTSPAN_STORE": "memory://", **env}


def problem_of(env: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        check(load_settings(env))
    return raised.value


@pytest.mark.parametrize(
    ("yaml_text", "env", "key", "problem"),
    [
        ("budgets:\n  - {name: tiny, limit_usd: 0.0000000001, window: day}\n", {}, "budgets.tiny.limit_usd",
         "below the smallest amount"),
        ("budgets:\n  - {name: huge, limit_usd: 1e400, window: day}\n", {}, "budgets.huge.limit_usd", "at most"),
        ("quotas:\n  - {name: q, requests_per_day: 100000000000000000000}\n", {}, "quotas.q.requests_per_day",
         "up to"),
        ("prometheus: {prot: 9464}\n", {}, "prometheus.prot", "did you mean 'port'?"),
        ("budgets:\n  - {name: b, limit_usd: 1, window: day, enforec: true}\n", {}, "budgets.b.enforec",
         "did you mean 'enforce'?"),
        ("ledger: {prompt_hash: true}\n", {}, "ledger.prompt_hash", "did you mean 'prompt_hashes'?"),
        ("estimation: {sample: 0.1}\n", {}, "estimation.sample", "did you mean 'sample_rate'?"),
        ("currency: {code: EUR, per_usd: 0.9, rate: 1}\n", {}, "currency.rate", "unknown key"),
        ("store: sqlte:///tmp/x.db\n", {"COSTSPAN_STORE": ""}, "store", "unknown store"),
        ("", {"COSTSPAN_STORE": "redis://localhost:63x9/0"}, "COSTSPAN_STORE", "bad port"),
        ("", {"COSTSPAN_STORE": "redis://localhost:6379/zero"}, "COSTSPAN_STORE", "bad database"),
        ("", {"COSTSPAN_PROMETHEUS_PORT": "9464", "COSTSPAN_PROMETHEUS_ADDR": "not an address!"},
         "COSTSPAN_PROMETHEUS_ADDR", "cannot listen on"),
        ("", {"COSTSPAN_PROMETHEUS_PORT": "nine"}, "COSTSPAN_PROMETHEUS_PORT", "expected a port number"),
    ],
)
def test_bad_input_is_a_config_error_naming_source_key_and_problem(
    tmp_path: Path, yaml_text: str, env: dict[str, str], key: str, problem: str
) -> None:
    settings_env = {k: v for k, v in configured(tmp_path, yaml_text, **env).items() if v}
    error = problem_of(settings_env)
    assert error.key == key
    assert problem in error.problem
    assert error.source == (ENV_SOURCE if key.isupper() else str(tmp_path / "costspan.yaml"))


def test_a_binary_price_file_is_a_config_error(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    error = problem_of(configured(tmp_path, f"pricing: {{files: [{prices}]}}\n"))
    assert (error.source, error.key) == (str(prices), "(file)") and "not UTF-8" in error.problem


@pytest.mark.parametrize(
    ("yaml_text", "env"),
    [
        ("budgets:\n  - {name: tiny, limit_usd: 0.0000000001, window: day}\n", {}),
        ("prometheus: {prot: 9464}\n", {}),
        ("pricing: {files: [missing.yaml]}\n", {}),
        ("estimation: {sample_rate: 2}\n", {}),
        ("", {"COSTSPAN_PROMETHEUS_PORT": "9464", "COSTSPAN_PROMETHEUS_ADDR": "not an address!"}),
    ],
)
def test_status_exits_2_on_every_error_that_disables_costspan_or_its_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], yaml_text: str,
    env: dict[str, str],
) -> None:
    for name, value in configured(tmp_path, yaml_text, **env).items():
        monkeypatch.setenv(name, value)
    assert cli_main.main(["status"]) == 2
    assert "configuration error" in capsys.readouterr().err


def test_a_bad_endpoint_address_costs_the_endpoint_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Like a busy port: logged, and calls are still priced and charged (the runtime the
    launcher builds, through runtime.get)."""
    for name, value in configured(
        tmp_path,
        "budgets:\n  - {name: daily, limit_usd: 5, window: day}\n",
        COSTSPAN_PROMETHEUS_PORT="9464",
        COSTSPAN_PROMETHEUS_ADDR="not an address!",
        COSTSPAN_LEDGER="off",
    ).items():
        monkeypatch.setenv(name, value)
    runtime.reset()
    try:
        with caplog.at_level(logging.ERROR, logger="costspan"):
            current = runtime.get()
        assert current is not None
        assert "no /metrics endpoint" in caplog.text and "COSTSPAN_PROMETHEUS_ADDR" in caplog.text
        accounted = current.accounting.account(CallFacts("openai", "gpt-4o-mini", usage=Usage(1000, 100)))
        assert accounted.quote.total_nanos > 0
        assert [entry.used for entry in current.budgets.status()] == [accounted.quote.total_nanos]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 9464))  # nothing was bound
    finally:
        runtime.reset()


def test_status_no_longer_divides_by_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in configured(
        tmp_path, "budgets:\n  - {name: tiny, limit_usd: 0.0000000001, window: day}\n"
    ).items():
        monkeypatch.setenv(name, value)
    assert cli_main.main(["status", "--json"]) == 2
    assert "budgets.tiny.limit_usd" in capsys.readouterr().err
