"""Reports on a fixture ledger with known answers, including local-day boundaries in non-UTC
zones, rollup/row edges, and the command-line handlers (report, export, prune, advise)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from costspan.cli import advise as advise_cli
from costspan.cli import export as export_cli
from costspan.cli import prune as prune_cli
from costspan.cli import report as report_cli
from costspan.ledger import export, schema
from costspan.ledger.periods import Period, resolve
from costspan.ledger.query import Filters, grouped, latency_percentile
from costspan.ledger.report import build
from costspan.ledger.rows import to_us
from costspan.ledger.store import insert_rows
from tests import ledger_synthetic as synthetic

NY = ZoneInfo("America/New_York")
UTC = timezone.utc


def row(when: datetime, cost: int, *, provider: str = "openai", model: str = "gpt-4o", project: str | None = "research",
        user: str | None = "alice", duration_us: int | None = 100_000, outcome: str = "success",
        prompt_hash: str | None = None, cache_read: int = 0, inp: int = 1000) -> tuple[object, ...]:
    return (to_us(when), "svc", provider, model, model, model, "chat", project, "chat", user, inp, 100, cache_read,
            0, 0, 0, cost, cost, 0, 0, 0, "priced", f"{provider}/{model}", "test", "reported", duration_us, None,
            outcome, None if outcome == "success" else "APIError", None, None, prompt_hash)


# Known answers. New York switched to daylight time on 2025-03-09 at 07:00 UTC (02:00 EST -> 03:00 EDT).
FIXTURE = [
    row(datetime(2025, 3, 8, 4, 59, tzinfo=UTC), 1),          # 2025-03-07 23:59 EST -> Mar 7
    row(datetime(2025, 3, 8, 5, 0, tzinfo=UTC), 10),          # 2025-03-08 00:00 EST -> Mar 8
    row(datetime(2025, 3, 9, 4, 30, tzinfo=UTC), 100, user="bob"),        # Mar 8 23:30 EST -> Mar 8
    row(datetime(2025, 3, 9, 6, 59, tzinfo=UTC), 1_000, provider="anthropic",
        model="claude-haiku-4-5"),                             # 01:59 EST Mar 9
    row(datetime(2025, 3, 9, 7, 0, tzinfo=UTC), 10_000, provider="anthropic", model="claude-haiku-4-5",
        project=None),                                         # 03:00 EDT Mar 9
    row(datetime(2025, 3, 10, 3, 59, tzinfo=UTC), 100_000, user="bob"),   # Mar 9 23:59 EDT -> Mar 9
    row(datetime(2025, 3, 10, 4, 0, tzinfo=UTC), 1_000_000, outcome="error", duration_us=900_000),  # Mar 10 00:00 EDT
]


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    conn = schema.connect(path)
    conn.execute("BEGIN")
    insert_rows(conn, FIXTURE)
    conn.execute("COMMIT")
    conn.close()
    return path


def test_local_days_across_dst_in_new_york(ledger: Path) -> None:
    conn = schema.connect(ledger, readonly=True)
    period = resolve(NY, datetime(2025, 3, 20, tzinfo=UTC), from_="2025-03-07", to="2025-03-10")
    report = build(conn, Filters(period), NY, now=datetime(2025, 3, 11, tzinfo=UTC))
    assert [(d, a.cost_nanos) for d, a in report.days] == [
        ("2025-03-07", 1), ("2025-03-08", 110), ("2025-03-09", 111_000), ("2025-03-10", 1_000_000)]
    assert report.totals.calls == 7 and report.totals.cost_nanos == 1_111_111
    assert report.totals.errors == 1 and report.totals.success_rate == pytest.approx(6 / 7)
    assert report.day_provider["2025-03-09"] == {"anthropic": 11_000, "openai": 100_000}
    by_provider = dict((k[0], a.cost_nanos) for k, a in report.tables[0].rows)
    assert by_provider == {"openai": 1_100_111, "anthropic": 11_000}
    by_project = dict((k[0], a.cost_nanos) for k, a in report.tables[2].rows)
    assert by_project == {"research": 1_101_111, "(none)": 10_000}
    assert [(u, a.cost_nanos) for u, a in report.top_users] == [("alice", 1_011_011), ("bob", 100_100)]
    assert report.p95_latency_s == pytest.approx(0.9)  # nearest rank: ceil(0.95 * 7) = 7th of 7


def test_to_date_is_inclusive_and_from_starts_at_local_midnight(ledger: Path) -> None:
    conn = schema.connect(ledger, readonly=True)
    period = resolve(NY, datetime(2025, 3, 20, tzinfo=UTC), from_="2025-03-08", to="2025-03-09")
    assert build(conn, Filters(period), NY).totals.cost_nanos == 10 + 100 + 1_000 + 10_000 + 100_000
    # The same dates in UTC cut elsewhere: 2025-03-08T00:00Z .. 2025-03-10T00:00Z.
    utc_period = resolve(ZoneInfo("UTC"), datetime(2025, 3, 20, tzinfo=UTC), from_="2025-03-08", to="2025-03-09")
    assert build(conn, Filters(utc_period), ZoneInfo("UTC")).totals.cost_nanos == 1 + 10 + 100 + 1_000 + 10_000


def test_half_hour_zone_days(ledger: Path) -> None:
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+05:30: 2025-03-08T18:30Z is local midnight of Mar 9
    conn = schema.connect(ledger, readonly=True)
    rows = grouped(conn, Filters(Period(0, 2**62)), ("day",), kolkata)
    from costspan.ledger.query import label

    assert [(label("day", k[0]), a.cost_nanos) for k, a in rows] == [
        ("2025-03-08", 11), ("2025-03-09", 11_100), ("2025-03-10", 1_100_000)]


def test_rollup_and_row_edges_match_brute_force(tmp_path: Path) -> None:
    """Random periods (edges inside 15-minute slots) and filters give exactly the brute-force sums."""
    conn = schema.connect(tmp_path / "l.db")
    start = to_us(datetime(2025, 10, 20, tzinfo=UTC))
    end = start + 14 * 86_400_000_000
    data = list(synthetic.rows(3000, start, end, seed=3, users=20))
    synthetic.fill(conn, iter(data))
    rnd = random.Random(5)
    for tz in (NY, ZoneInfo("Asia/Kathmandu"), ZoneInfo("UTC")):
        for _ in range(8):
            lo = rnd.randrange(start - 86_400_000_000, end)
            hi = rnd.randrange(lo + 1, end + 86_400_000_000)
            project = rnd.choice([(), ("research",)])
            got = grouped(conn, Filters(Period(lo, hi), project=project), ("day", "model"), tz)
            want: dict[tuple[object, ...], int] = {}
            for r in data:
                ts = int(r[0])  # type: ignore[call-overload]
                if lo <= ts < hi and (not project or r[7] in project):
                    local = datetime.fromtimestamp(ts / 1e6, UTC).astimezone(tz).date()
                    key = ((local - datetime(1970, 1, 1).date()).days, r[5])
                    want[key] = want.get(key, 0) + int(r[16])  # type: ignore[call-overload]
            assert {k: a.cost_nanos for k, a in got} == want


def test_percentile_paths_agree(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "l.db")
    start = to_us(datetime(2025, 1, 1, tzinfo=UTC))
    synthetic.fill(conn, synthetic.rows(999, start, start + 10**10, seed=1))
    everything = Filters(Period(0, 2**62))
    durations = sorted(r[0] for r in conn.execute("SELECT duration_us FROM calls"))
    want = durations[-(-999 * 95 // 100) - 1] / 1e6
    assert latency_percentile(conn, everything, 0.95) == want
    filtered = Filters(Period(0, 2**62), provider=("openai", "anthropic", "gcp.gemini", "groq"))
    assert latency_percentile(conn, filtered, 0.95) == want


def test_previous_period_and_projection(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "l.db")
    now = datetime(2025, 6, 11, 0, 0, tzinfo=UTC)
    conn.execute("BEGIN")
    insert_rows(conn, [row(now - timedelta(days=d, hours=1), 1_000) for d in range(20)])
    conn.execute("COMMIT")
    report = build(conn, Filters(resolve(ZoneInfo("UTC"), now, since="7d")), ZoneInfo("UTC"), now=now)
    assert report.totals.cost_nanos == 7_000 and report.previous.cost_nanos == 7_000
    assert report.change() == 0
    proj = report.projection
    assert proj is not None and proj.month == "2025-06"
    assert proj.month_to_date_nanos == 10_000  # June 1..10
    assert proj.projected_nanos == 30_000  # 10 days of 30
    assert "linear" in proj.basis


def cli(module: object, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    module.register(parser.add_subparsers())  # type: ignore[attr-defined]
    return parser.parse_args(list(argv))


def run(module: object, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    args = cli(module, *argv)
    code = args.func(args)
    return code, capsys.readouterr().out


def test_report_json_and_text(
    ledger: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COSTSPAN_TIMEZONE", "America/New_York")
    monkeypatch.setenv("COLUMNS", "200")
    code, out = run(report_cli, capsys, "report", "--ledger", str(ledger), "--from", "2025-03-07", "--to",
                    "2025-03-10", "--by", "model", "--by", "project,user", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["totals"]["cost_nanos"] == 1_111_111 and data["totals"]["cost_usd"] == "0.001111111"
    assert data["breakdowns"][1]["by"] == ["project", "user"]
    assert {r["day"]: r["cost_nanos"] for r in data["daily"]}["2025-03-09"] == 111_000
    code, out = run(report_cli, capsys, "report", "--ledger", str(ledger), "--from", "2025-03-07", "--to",
                    "2025-03-10", "--provider", "anthropic")
    assert code == 0 and "claude-haiku-4-5" in out and "daily trend" in out
    code, _ = run(report_cli, capsys, "report", "--ledger", str(ledger), "--by", "colour")
    assert code == 2


def test_report_currency(ledger: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                         tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("currency:\n  code: EUR\n  per_usd: 0.5\n")
    monkeypatch.setenv("COSTSPAN_CONFIG", str(config))
    code, out = run(report_cli, capsys, "report", "--ledger", str(ledger), "--from", "2025-03-01", "--to",
                    "2025-03-31", "--currency", "EUR", "--json")
    assert code == 0 and json.loads(out)["totals"]["cost"] == "0.000555556"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_html_report_renders_in_headless_chromium(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = tmp_path / "l.db"
    now_us = to_us(datetime.now(UTC))
    synthetic.fill(schema.connect(ledger), synthetic.rows(5000, now_us - 20 * 86_400_000_000, now_us))
    html = tmp_path / "report.html"
    code, _ = run(
        report_cli, capsys, "report", "--ledger", str(ledger), "--since", "21d", "--by", "user", "--html", str(html)
    )
    assert code == 0
    text = html.read_text()
    assert "nothing to show" not in text  # every chart has data, whatever --by asked for
    model_chart = text.split("<h2>Cost by model</h2>", 1)[1].split("</div>", 1)[0]
    assert model_chart.count("<rect") >= 3
    assert "<script" not in text and "http://" not in text and "https://" not in text  # self-contained
    assert "Daily cost by provider" in text and "Top users" in text and "Budget utilization" in text
    shot = tmp_path / "report.png"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1000", f"--screenshot={shot}",
         html.as_uri()],
        check=True, timeout=60, capture_output=True,
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a blank page compresses to far less
    keep = Path(__file__).parent / "artifacts"
    if keep.is_dir():
        shutil.copy(shot, keep / "report.png")


def test_export_formats_and_filters(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(export_cli, capsys, "export", "--ledger", str(ledger), "--format", "csv")
    records = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(records) == 7
    assert records[0]["time"] == "2025-03-08T04:59:00+00:00" and records[0]["cost_usd"] == "0.000000001"
    code, out = run(export_cli, capsys, "export", "--ledger", str(ledger), "--format", "jsonl", "--user", "bob")
    assert [json.loads(line)["cost_nanos"] for line in out.splitlines()] == [100, 100_000]
    code, out = run(export_cli, capsys, "export", "--ledger", str(ledger), "--format", "json", "--provider", "nobody")
    assert json.loads(out) == []
    code, out = run(export_cli, capsys, "export", "--ledger", str(ledger), "--format", "json")
    assert sum(r["cost_nanos"] for r in json.loads(out)) == 1_111_111


@pytest.mark.slow
def test_export_memory_is_flat(tmp_path: Path) -> None:
    import tracemalloc

    conn = schema.connect(tmp_path / "l.db")
    synthetic.fill(conn, synthetic.rows(10_000, 0, 10**12))

    class Sink(io.TextIOBase):
        def write(self, s: str) -> int:
            return len(s)

    peaks = []
    for limit in (4_000, 10_000):  # both well past one fetchmany batch
        filters = Filters(Period(0, 10**12 * limit // 10_000))
        tracemalloc.start()
        assert export.write(conn, filters, "json", Sink()) in (limit, limit - 1, limit + 1)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < peaks[0] * 1.2, peaks  # 2.5 times the rows, the same memory


def test_prune(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(prune_cli, capsys, "prune", "--ledger", str(ledger), "--older-than", "1d", "--dry-run", "--json")
    assert code == 0 and json.loads(out)["would_delete"] == 7
    conn = schema.connect(ledger)
    from costspan.ledger.prune import prune

    cut = to_us(datetime(2025, 3, 9, 7, 0, tzinfo=UTC))
    assert prune(conn, cut, chunk_rows=2) == 4
    everything = Filters(Period(0, 2**62))
    from costspan.ledger.query import totals

    assert totals(conn, everything).cost_nanos == 1_110_000
    assert conn.execute("SELECT SUM(cost_nanos) FROM rollup").fetchone()[0] == 1_110_000
    code, out = run(prune_cli, capsys, "prune", "--ledger", str(ledger), "--older-than", "1d")
    assert code == 0 and "deleted 3 rows" in out
    code, _ = run(prune_cli, capsys, "prune", "--ledger", str(ledger), "--older-than", "soon")
    assert code == 2


def test_advise_repeats_and_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = tmp_path / "l.db"
    conn = schema.connect(ledger)
    t = datetime(2025, 5, 1, tzinfo=UTC)
    rows = [row(t + timedelta(minutes=i), 1_000_000, prompt_hash="aaaa" if i < 4 else f"h{i}", cache_read=250)
            for i in range(10)]
    rows.append(row(t, 5, provider="anthropic", model="claude-sonnet-4-5", inp=1000, cache_read=0))
    conn.execute("BEGIN")
    insert_rows(conn, rows)
    conn.execute("COMMIT")
    code, out = run(advise_cli, capsys, "advise", "--ledger", str(ledger), "--from", "2025-05-01", "--to",
                    "2025-05-02", "--json")
    data = json.loads(out)
    assert code == 0
    repeats = data["repeats"]
    assert (repeats["repeated_calls"], repeats["distinct_repeated_prompts"], repeats["repeat_cost_nanos"]) == (
        3, 1, 3_000_000)
    cache = {c["model"]: c["share"] for c in data["cache"]}
    assert cache == {"gpt-4o": 0.25, "claude-sonnet-4-5": 0.0}
    gpt4o = next(m for m in data["models"] if m["model"] == "gpt-4o")
    assert gpt4o["calls"] == 10 and "openai/gpt-4o from genai-prices" in gpt4o["basis"]
    assert gpt4o["alternatives"] and all(a["cost_nanos"] < gpt4o["list_cost_nanos"] for a in gpt4o["alternatives"])
    code, out = run(advise_cli, capsys, "advise", "--ledger", str(ledger), "--from", "2025-05-01")
    assert code == 0 and "Repeated prompts" in out


ADVISE_PRICES = """\
source: acme contract
models:
  - match: {provider: openai, model: gpt-4o}
    input: 1.00
    output: 2.00
  - match: {provider: openai, model: acme-mini}
    input: 0.99
    output: 1.98
"""


def test_advise_prices_with_the_users_price_files_and_aliases(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """advise prices like the runtime: a user price file moves its figures, an alias finds the model."""
    ledger = tmp_path / "l.db"
    conn = schema.connect(ledger)
    t = datetime(2025, 5, 1, tzinfo=UTC)
    conn.execute("BEGIN")
    insert_rows(conn, [row(t + timedelta(minutes=i), 1_000_000, model=m) for i in range(10)
                       for m in ("gpt-4o", "prod-chat")])  # 1,000 input and 100 output tokens each
    conn.execute("COMMIT")
    conn.close()
    argv = ("advise", "--ledger", str(ledger), "--from", "2025-05-01", "--to", "2025-05-02", "--json")

    def advice() -> dict[str, dict[str, object]]:
        code, out = run(advise_cli, capsys, *argv)
        assert code == 0
        return {m["model"]: m for m in json.loads(out)["models"]}

    catalog = advice()
    assert catalog["prod-chat"]["list_cost_nanos"] is None  # no catalog knows the deployment name
    (tmp_path / "prices.yaml").write_text(ADVISE_PRICES)
    config = tmp_path / "costspan.yaml"
    config.write_text("pricing:\n  files: [prices.yaml]\n  aliases: {prod-chat: gpt-4o}\n")
    monkeypatch.setenv("COSTSPAN_CONFIG", str(config))
    user = advice()
    # 10 calls of 1,000 input tokens at $1/M and 100 output tokens at $2/M: $0.0012 a call.
    for model in ("gpt-4o", "prod-chat"):
        assert user[model]["list_cost_nanos"] == 12_000_000
        assert f"from user:{tmp_path / 'prices.yaml'}" in str(user[model]["basis"])
        alternatives = user[model]["alternatives"]
        assert isinstance(alternatives, list)
        # The user's own cheaper model, closest to the current price, comes first: $0.001188 a call.
        assert alternatives[0] == {"model": "acme-mini", "cost_nanos": 11_880_000, "saving_nanos": 120_000}
    assert catalog["gpt-4o"]["list_cost_nanos"] != user["gpt-4o"]["list_cost_nanos"]
