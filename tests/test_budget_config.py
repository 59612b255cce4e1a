"""Bad budget configuration fails at start-up, naming the file, the budget and the key; and
``costspan status`` shows the budgets (or that message, exiting non-zero)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from costspan.budgets import BudgetEngine
from costspan.cli import main as cli_main
from costspan.errors import ConfigError
from costspan.pricing import PRICED, Quote
from costspan.settings import load_settings
from tests.test_budget_stores import facts, make_engine


def load(tmp_path: Path, yaml_text: str) -> BudgetEngine:
    return make_engine(tmp_path, yaml_text, "memory://")


@pytest.mark.parametrize(
    ("yaml_text", "key", "problem"),
    [
        ("budgets:\n  - {name: b, limit_usd: 5, window: fortnight}\n", "budgets.b.window", "expected one of day"),
        ("budgets:\n  - {name: b, limit_usd: -5, window: day}\n", "budgets.b.limit_usd", "positive"),
        ("budgets:\n  - {name: b, limit_usd: five, window: day}\n", "budgets.b.limit_usd", "US dollars"),
        ("budgets:\n  - {name: b, limit_usd: 5, window: day, match: {team: x}}\n", "budgets.b.match.team", "unknown"),
        ("budgets:\n  - {name: b, limit_usd: 5, window: day, match: {user: []}}\n", "budgets.b.match.user", "a name"),
        ("budgets:\n  - {limit_usd: 5, window: day}\n", "budgets[0].name", "expected a name"),
        ("budgets:\n  - {name: b, limit_usd: 5, window: day, per: team}\n", "budgets.b.per", "expected one of"),
        ("budgets:\n  - {name: b, limit_usd: 5, window: day, enforced: true}\n", "budgets.b.enforced", "unknown key"),
        ("budgets:\n  - {name: b, limit_usd: 5, window: day, week_start: monday}\n", "budgets.b.week_start", "week"),
        ("budgets:\n  - {name: b, limit_usd: 5, window: week, week_start: funday}\n", "budgets.b.week_start", "day"),
        ("budgets:\n  - {name: b, limit_usd: 5, window: day, reserve: true}\n", "budgets.b.reserve", "enforce"),
        ("budgets:\n  - {name: b, limit_usd: 5, window: day, timezone: Mars/Base}\n", "budgets.b.timezone", "Mars"),
        ("budgets:\n  - {name: b, limit_usd: 5, window: day, thresholds: [0]}\n", "budgets.b.thresholds", "fraction"),
        ("budgets: {name: b}\n", "budgets", "list"),
        (
            "budgets:\n  - {name: b, limit_usd: 5, window: day}\nquotas:\n  - {name: b, requests_per_day: 5}\n",
            "quotas.b.name",
            "duplicate",
        ),
        ("quotas:\n  - {name: q, match: {provider: groq}}\n", "quotas.q.requests_per_day", "at least one"),
        ("quotas:\n  - {name: q, requests_per_minute: 1.5}\n", "quotas.q.requests_per_minute", "whole number"),
        ("quotas:\n  - {name: q, tokens_per_day: 0}\n", "quotas.q.tokens_per_day", "positive"),
        ("alerts:\n  thresholds: 0.5\n", "alerts.thresholds", "list"),
        ("alerts:\n  warning: 0.95\n  critical: 0.9\n", "alerts", "warning <= critical"),
        ("alerts:\n  levels: {}\n", "alerts.levels", "unknown key"),
        ("fail_closed: sometimes\n", "fail_closed", "true or false"),
    ],
)
def test_bad_config_names_file_key_and_problem(tmp_path: Path, yaml_text: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, yaml_text)
    assert caught.value.source == str(tmp_path / "costspan.yaml")
    assert caught.value.key == key
    assert problem in caught.value.problem


def test_a_full_config_parses(tmp_path: Path) -> None:
    engine = load(
        tmp_path,
        """
budgets:
  - name: global-daily
    limit_usd: 50
    window: day
  - name: research-monthly
    match: {project: research}
    limit_usd: "5000.25"
    window: month
    enforce: true
    reserve: true
    reserve_output_tokens: 2048
  - name: per-user-daily
    per: user
    limit_usd: 5
    window: day
quotas:
  - name: groq-free-8b
    match: {provider: groq, model: llama-3.1-8b-instant}
    requests_per_day: 14400
    tokens_per_day: 1000000
    requests_per_minute: 30
    enforce: true
alerts:
  thresholds: [0.5, 0.75, 0.9, 1.0]
  warning: 0.8
""",
    )
    rules = engine.config.rules
    assert [(r.name, r.unit, r.window.kind) for r in rules] == [
        ("global-daily", "usd", "day"),
        ("research-monthly", "usd", "month"),
        ("per-user-daily", "usd", "day"),
        ("groq-free-8b", "requests", "minute"),
        ("groq-free-8b", "requests", "day"),
        ("groq-free-8b", "tokens", "day"),
    ]
    assert rules[1].limit == 5_000_250_000_000
    assert engine.output_token_cap() == 2048
    assert engine.config.levels.status(0.79) == "ok"
    assert engine.config.levels.status(0.8) == "warning"
    assert rules[0].thresholds == (0.5, 0.75, 0.9, 1.0)


def _status_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, yaml_text: str, store: str) -> Path:
    """``costspan status`` through the real ``main`` (the module is registered if main lacks it)."""
    if "costspan.cli.status" not in cli_main.COMMAND_MODULES:
        monkeypatch.setattr(cli_main, "COMMAND_MODULES", (*cli_main.COMMAND_MODULES, "costspan.cli.status"))
    config = tmp_path / "costspan.yaml"
    config.write_text(yaml_text)
    monkeypatch.setenv("COSTSPAN_CONFIG", str(config))
    monkeypatch.setenv("COSTSPAN_STORE", store)
    return config


def test_status_command_prints_json_and_a_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    yaml_text = (
        "budgets:\n  - {name: team, limit_usd: 1, window: month, enforce: true}\n"
        "currency: {code: EUR, per_usd: 0.9}\n"
        "quotas:\n  - {name: groq, requests_per_minute: 30, requests_per_day: 1000}\n"
    )
    store = f"sqlite:///{tmp_path / 'budgets.db'}"
    _status_cli(monkeypatch, tmp_path, yaml_text, store)
    app = BudgetEngine.from_settings(load_settings())  # another "process" charging the same store
    app.charge(facts(), Quote(PRICED, input_nanos=950_000_000))
    app.close()

    assert cli_main.main(["status", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [(e["name"], e["kind"], e["window"]) for e in entries] == [
        ("team", "budget", "month"),
        ("groq", "quota", "minute"),
        ("groq", "quota", "day"),
    ]
    team = entries[0]
    assert (team["limit"], team["used"], team["status"]) == (1.0, 0.95, "critical")
    assert team["utilization"] == pytest.approx(0.95)
    assert team["resets_at"].endswith("+00:00") and team["exhaustion_seconds"] > 0

    assert cli_main.main(["status"]) == 0
    table = capsys.readouterr().out
    assert "team" in table and "critical" in table and "$0.95 / $1.00" in table

    assert cli_main.main(["status", "--currency", "EUR"]) == 0
    assert "€0.86 / €0.90" in capsys.readouterr().out  # 0.95 x 0.9 = 0.855, shown rounded half-even


def test_status_command_exits_2_on_bad_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _status_cli(
        monkeypatch, tmp_path, "budgets:\n  - {name: b, limit_usd: 5, window: yearly}\n", "memory://"
    )
    assert cli_main.main(["status"]) == 2
    error = capsys.readouterr().err
    assert str(config) in error and "budgets.b.window" in error and "yearly" in error


def test_status_command_exits_1_when_the_store_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    _status_cli(
        monkeypatch,
        tmp_path,
        "budgets:\n  - {name: b, limit_usd: 5, window: day}\n",
        f"sqlite:///{blocker / 'budgets.db'}",
    )
    assert cli_main.main(["status", "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)[0]["error"] == "the budget store is unreachable"
    assert "unreachable" in captured.err
