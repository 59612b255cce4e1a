"""Names chosen by whoever makes the calls reach terminals, HTML and spreadsheets as inert text.

Real ledger files and budget store, the real CLI through ``main``; FORCE_COLOR makes rich write
as to a terminal, so a markup tag or hyperlink that got through would show in the output.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from costspan.budgets import BudgetEngine
from costspan.cli import main as cli_main
from costspan.ledger import schema
from costspan.ledger.store import insert_rows
from costspan.pricing import PRICED, Quote
from costspan.settings import load_settings
from tests.test_budget_stores import facts
from tests.test_report import row

CLOSE_TAG = "[/bold]"
LINK = "[link=https://evil.example]click[/link]"
CLEAR = "wipe\x1b[2J"
OSC8 = "\x1b]8;;https://evil.example\x1b\\osc\x1b]8;;\x1b\\"
FORMULA = '=HYPERLINK("https://evil.example","x")'
TERMINAL_ATTACKS = ("\x1b[2J", "\x1b]8;")
"""What must never reach the terminal: a screen wipe and an OSC 8 hyperlink (as text, the URL is harmless)."""


@pytest.fixture
def hostile_ledger(tmp_path: Path) -> Path:
    from datetime import datetime, timezone

    when = datetime.now(timezone.utc)
    path = tmp_path / "ledger.db"
    conn = schema.connect(path)
    conn.execute("BEGIN")
    insert_rows(conn, [
        row(when, 1_000, model=CLOSE_TAG, project=LINK, user=CLEAR),
        row(when, 2_000, model=OSC8, project=FORMULA, user="@SUM(A1:A9)"),
        row(when, 3_000, model="-2+3+cmd|' /C calc'!A0", project="-0.5", user="\tplain"),
    ])
    conn.execute("COMMIT")
    conn.close()
    return path


@pytest.fixture
def as_terminal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("COSTSPAN_STORE", "memory://")
    monkeypatch.setenv("COSTSPAN_CONFIG", str(tmp_path / "absent.yaml"))
    (tmp_path / "absent.yaml").write_text("")


def test_report_shows_hostile_names_as_text(
    hostile_ledger: Path, as_terminal: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    html = tmp_path / "r.html"
    argv = ["report", "--ledger", str(hostile_ledger), "--by", "model,project", "--by", "user", "--html", str(html)]
    assert cli_main.main(argv) == 0
    out = capsys.readouterr().out
    assert CLOSE_TAG in out and "[link=" in out and "wipe[2J" in out and "osc" in out
    assert not any(attack in out for attack in TERMINAL_ATTACKS)
    page = html.read_text()
    assert CLOSE_TAG in page and "=HYPERLINK(&quot;https://evil.example&quot;" in page


def test_advise_shows_hostile_names_as_text(
    hostile_ledger: Path, as_terminal: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main.main(["advise", "--ledger", str(hostile_ledger)]) == 0
    out = capsys.readouterr().out
    assert CLOSE_TAG in out
    assert not any(attack in out for attack in TERMINAL_ATTACKS)


def test_status_shows_a_hostile_member_name_as_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_terminal: None, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "costspan.yaml"
    config.write_text("budgets:\n  - {name: per-user, per: user, limit_usd: 1, window: day}\n")
    monkeypatch.setenv("COSTSPAN_CONFIG", str(config))
    monkeypatch.setenv("COSTSPAN_STORE", f"sqlite:///{tmp_path / 'budgets.db'}")
    app = BudgetEngine.from_settings(load_settings())
    app.charge(facts(user=f"{CLOSE_TAG}{LINK}{CLEAR}{OSC8}"), Quote(PRICED, input_nanos=500_000_000))
    app.close()
    assert cli_main.main(["status"]) == 0
    out = capsys.readouterr().out
    assert f"top: {CLOSE_TAG}[link=https://evil.example]click[/link]wipe[2J]8;;https://evil.example" in out
    assert not any(attack in out for attack in TERMINAL_ATTACKS)


def test_csv_export_neutralises_formulas_and_keeps_numbers(
    hostile_ledger: Path, as_terminal: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main.main(["export", "--ledger", str(hostile_ledger), "--format", "csv"]) == 0
    records = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    by_cost = {r["cost_nanos"]: r for r in records}
    assert by_cost["2000"]["project"] == "'" + FORMULA
    assert by_cost["2000"]["user_id"] == "'@SUM(A1:A9)"
    assert by_cost["3000"]["model"] == "'-2+3+cmd|' /C calc'!A0"
    assert by_cost["3000"]["user_id"] == "'\tplain"
    assert by_cost["3000"]["project"] == "-0.5"  # a number is data, not a formula
    assert by_cost["1000"]["model"] == CLOSE_TAG and by_cost["1000"]["cost_usd"] == "0.000001000"
    for record in records:
        assert not any(value.startswith(("=", "+", "@", "\t", "\r")) for value in record.values())
