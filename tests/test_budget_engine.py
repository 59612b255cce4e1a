"""BudgetEngine semantics, the same suite on memory://, SQLite and a real redis-server."""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from pathlib import Path

import pytest

from costspan.accounted import ThresholdCrossing
from costspan.budgets import BudgetEngine, guard
from costspan.errors import BudgetExceededError
from costspan.pricing import PRICED, UNPRICED, Quote
from tests.test_budget_stores import backend_url, facts, free_port, fresh_redis, make_engine, start_redis  # noqa: F401

CENT = 10_000_000  # nano-dollars


def priced(nanos: int) -> Quote:
    return Quote(PRICED, input_nanos=nanos)


def spend(engine: BudgetEngine, nanos: int, **who: str) -> None:
    call = facts(**who)
    engine.charge(call, priced(nanos), engine.precheck(call))


def by_name(engine: BudgetEngine) -> dict[str, dict[str, object]]:
    return {f"{s.name}/{s.unit}/{s.window}": s.as_dict() for s in engine.status()}


def test_enforced_budget_refuses_once_spent(tmp_path: Path, backend_url: str) -> None:  # noqa: F811
    engine = make_engine(
        tmp_path, "budgets:\n  - {name: daily, limit_usd: 0.05, window: day, enforce: true}\n", backend_url
    )
    spend(engine, 3 * CENT)
    spend(engine, 3 * CENT)  # starts below the limit, so it runs and overshoots
    with pytest.raises(BudgetExceededError) as caught:
        engine.precheck(facts())
    error = caught.value
    assert (error.budget, error.kind, error.limit, error.spent) == ("daily", "budget", Decimal("0.05"), Decimal("0.06"))
    assert error.resets_at is not None and error.resets_at.timestamp() > time.time()
    message = str(error)
    assert "'daily'" in message and "$0.05" in message and "$0.06" in message and "resets at" in message
    engine.close()


def test_per_user_budgets_count_each_user_and_skip_calls_without_one(tmp_path: Path, backend_url: str) -> None:  # noqa: F811
    yaml = "budgets:\n  - {name: per-user, per: user, limit_usd: 0.10, window: day, enforce: true}\n"
    engine = make_engine(tmp_path, yaml, backend_url)
    spend(engine, 10 * CENT, user="alice")
    spend(engine, 4 * CENT, user="bob")
    spend(engine, 50 * CENT)  # no user: the budget does not apply
    with pytest.raises(BudgetExceededError):
        engine.precheck(facts(user="alice"))
    engine.precheck(facts(user="bob"))
    engine.precheck(facts())
    (entry,) = engine.status()
    assert (entry.member, entry.members, entry.used) == ("alice", 2, 10 * CENT)
    engine.close()


def test_match_needs_every_key_and_accepts_lists_and_globs(tmp_path: Path, backend_url: str) -> None:  # noqa: F811
    yaml = (
        "budgets:\n"
        "  - name: research-openai\n"
        "    match: {project: [research, lab], provider: openai, model: 'gpt-4o*'}\n"
        "    limit_usd: 1\n"
        "    window: month\n"
    )
    engine = make_engine(tmp_path, yaml, backend_url)
    engine.charge(facts(project="research"), priced(1 * CENT))
    engine.charge(facts(project="lab", model="gpt-4o-2024-08-06"), priced(2 * CENT))
    engine.charge(facts(project="research", provider="anthropic", model="gpt-4o"), priced(4 * CENT))
    engine.charge(facts(project="sales"), priced(8 * CENT))
    engine.charge(facts(project="lab", model="o3"), priced(16 * CENT))
    assert engine.status()[0].used == 3 * CENT
    engine.close()


def test_reserve_refuses_the_worst_case_and_reconciles_with_the_real_cost(
    tmp_path: Path,
    backend_url: str,  # noqa: F811
) -> None:
    yaml = "budgets:\n  - {name: reserved, limit_usd: 0.10, window: day, enforce: true, reserve: true}\n"
    engine = make_engine(tmp_path, yaml, backend_url)
    assert engine.wants_input_estimate()
    with pytest.raises(BudgetExceededError, match="worst-case"):
        engine.precheck(facts(), worst_case_nanos=11 * CENT)
    first = engine.precheck(facts(), worst_case_nanos=6 * CENT)
    assert engine.status()[0].used == 6 * CENT  # held while the call runs
    with pytest.raises(BudgetExceededError):  # 6 held + 6 more would cross 10
        engine.precheck(facts(), worst_case_nanos=6 * CENT)
    engine.charge(facts(), priced(1 * CENT), first)
    assert engine.status()[0].used == 1 * CENT  # reconciled to the real cost
    second = engine.precheck(facts(), worst_case_nanos=6 * CENT)
    engine.release(second)  # the call failed before it was charged
    assert engine.status()[0].used == 1 * CENT
    engine.close()


def test_enforce_false_observes_only(tmp_path: Path, backend_url: str) -> None:  # noqa: F811
    yaml = (
        "budgets:\n  - {name: b, limit_usd: 0.01, window: day, enforce: true, reserve: true}\n"
        "quotas:\n  - {name: q, requests_per_day: 1, tokens_per_day: 10, enforce: true}\n"
    )
    engine = make_engine(tmp_path, yaml, backend_url, COSTSPAN_ENFORCE="false")
    assert not engine.wants_input_estimate()
    for _ in range(3):
        spend(engine, 5 * CENT)
    entries = by_name(engine)
    assert entries["b/USD/day"]["used"] == pytest.approx(0.15)
    assert entries["b/USD/day"]["status"] == "exceeded"
    assert entries["q/requests/day"]["used"] == 3
    assert entries["q/tokens/day"]["used"] == 45
    engine.close()


def test_request_quota_resets_with_its_minute(tmp_path: Path, backend_url: str) -> None:  # noqa: F811
    now = [time.time()]
    yaml = "quotas:\n  - {name: rpm, match: {provider: groq}, requests_per_minute: 2, enforce: true}\n"
    engine = make_engine(tmp_path, yaml, backend_url, clock=lambda: now[0])
    groq = facts(provider="groq")
    for _ in range(2):
        engine.charge(groq, priced(1), engine.precheck(groq))
    engine.precheck(facts(provider="openai"))  # not matched
    with pytest.raises(BudgetExceededError) as caught:
        engine.precheck(groq)
    assert (caught.value.kind, caught.value.unit, caught.value.limit) == ("quota", "requests", Decimal(2))
    assert "minute limit reached" in str(caught.value)
    now[0] += 60
    engine.precheck(groq)
    engine.close()


def test_token_quota_refuses_a_request_whose_input_would_cross_it(tmp_path: Path, backend_url: str) -> None:  # noqa: F811
    yaml = "quotas:\n  - {name: tpd, tokens_per_day: 100, enforce: true}\n"
    engine = make_engine(tmp_path, yaml, backend_url)
    assert engine.wants_input_estimate()
    call = facts(input_tokens=60, output_tokens=20)
    engine.charge(call, priced(1), engine.precheck(call))  # reserves 60, reconciles to 80
    assert engine.status()[0].used == 80
    with pytest.raises(BudgetExceededError, match="tokens would exceed"):
        engine.precheck(facts(input_tokens=30))
    engine.precheck(facts(input_tokens=20))
    engine.close()


def test_thresholds_cross_once_per_window_and_log_a_warning(
    tmp_path: Path,
    backend_url: str,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [time.time()]
    yaml = "budgets:\n  - {name: t, limit_usd: 0.10, window: day}\nalerts:\n  thresholds: [0.5, 0.9, 1.0]\n"
    engine = make_engine(tmp_path, yaml, backend_url, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="costspan")
    seen = []
    for cents in (4, 1, 3, 1, 5, 5):
        result = engine.charge(facts(), priced(cents * CENT))
        seen.append(result.crossings)
    assert seen == [
        (),
        (ThresholdCrossing("t", 0.5),),
        (),
        (ThresholdCrossing("t", 0.9),),
        (ThresholdCrossing("t", 1.0),),
        (),
    ]
    assert [r.levelname for r in caplog.records].count("WARNING") == 3
    assert "budget 't' crossed 90%" in caplog.text
    now[0] += 86400
    assert engine.charge(facts(), priced(20 * CENT)).crossings == (
        ThresholdCrossing("t", 0.5),
        ThresholdCrossing("t", 0.9),
        ThresholdCrossing("t", 1.0),
    )
    engine.close()


def test_charge_reports_the_most_used_budget(tmp_path: Path, backend_url: str) -> None:  # noqa: F811
    yaml = (
        "budgets:\n"
        "  - {name: big, limit_usd: 10, window: month}\n"
        "  - {name: small, limit_usd: 0.10, window: day, match: {project: p}}\n"
    )
    engine = make_engine(tmp_path, yaml, backend_url)
    result = engine.charge(facts(project="p"), priced(9 * CENT))
    assert result.most_used is not None
    assert (result.most_used.name, result.most_used.status) == ("small", "critical")
    assert result.most_used.utilization == pytest.approx(0.9)
    assert result.most_used.remaining_nanos == 1 * CENT
    assert engine.charge(facts(project="q"), priced(CENT)).most_used.name == "big"  # type: ignore[union-attr]
    engine.close()


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_a_span_charged_by_two_engines_on_one_store_counts_once(tmp_path: Path, backend: str) -> None:
    """A span's ids name its charge for every caller: two gateway replicas whose span claims the store
    could not answer, or a gateway behind an in-process caller, charge it once between them. Calls
    without span ids are distinct charges, even on a store that records no id for them."""
    url = f"sqlite:///{tmp_path / 'b.db'}" if backend == "sqlite" else fresh_redis()
    yaml = "budgets:\n  - {name: daily, limit_usd: 10, window: day}\n"
    replicas = [make_engine(tmp_path, yaml, url) for _ in range(2)]
    span = facts()
    span.trace_id, span.span_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    for engine in replicas:
        engine.charge(span, priced(CENT))
        engine.charge(facts(), priced(2 * CENT))
    assert [status.used for status in replicas[1].status()] == [5 * CENT]  # 1 + 2 + 2 cents
    for engine in replicas:
        engine.close()


def test_unpriced_calls_cost_nothing_but_count_requests_and_tokens(tmp_path: Path, backend_url: str) -> None:  # noqa: F811
    yaml = (
        "budgets:\n  - {name: b, limit_usd: 1, window: day}\n"
        "quotas:\n  - {name: q, requests_per_day: 100, tokens_per_day: 1000}\n"
    )
    engine = make_engine(tmp_path, yaml, backend_url)
    engine.charge(facts(input_tokens=7, output_tokens=3), Quote(UNPRICED, reason="unknown model"))
    blocked = facts()
    blocked.error_type = "BudgetExceededError"
    engine.charge(blocked, priced(CENT))  # refused before sending: nothing to count
    entries = by_name(engine)
    assert (entries["b/USD/day"]["used"], entries["q/requests/day"]["used"], entries["q/tokens/day"]["used"]) == (
        0.0,
        1,
        10,
    )
    engine.close()


def test_status_projects_the_window_pace(tmp_path: Path, backend_url: str) -> None:  # noqa: F811
    engine = make_engine(tmp_path, "budgets:\n  - {name: d, limit_usd: 1, window: day}\n", backend_url)
    spend(engine, 10 * CENT)
    (entry,) = engine.status()
    data = entry.as_dict()
    window_start = entry.resets_at.timestamp() - 86400
    elapsed = max(time.time() - window_start, 60)
    pace = 0.10 / elapsed
    assert data["projected"] == pytest.approx(0.10 + pace * (entry.resets_at.timestamp() - time.time()), rel=1e-3)
    assert data["exhaustion_seconds"] == pytest.approx(0.90 / pace, rel=1e-3)
    assert {"name", "kind", "window", "limit", "used", "utilization", "status", "resets_at"} <= set(data)
    engine.close()


def test_no_budgets_means_an_engine_that_does_nothing(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, "timezone: UTC\n", "redis://127.0.0.1:1/0")  # never connects
    assert engine.precheck(facts()) is None
    assert engine.charge(facts(), priced(CENT)).most_used is None
    assert engine.status() == []
    assert engine.backend is None
    engine.close()


# -- the store going away ----------------------------------------------------------------------


def test_redis_outage_fails_open_and_applies_the_spend_when_it_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(guard, "_RETRY_AFTER_S", 0.0)
    port = free_port()
    yaml = (
        "budgets:\n  - {name: b, limit_usd: 1, window: day, enforce: true}\n"
        "quotas:\n  - {name: q, requests_per_day: 100, enforce: true}\n"
    )
    engine = make_engine(tmp_path, yaml, f"redis://127.0.0.1:{port}/0")
    errors: list[str] = []
    engine.set_error_hook(errors.append)
    caplog.set_level(logging.WARNING, logger="costspan")
    for _ in range(3):
        spend(engine, 2 * CENT)  # precheck admits (fail-open), charge keeps the spend
    assert errors and set(errors) == {"redis"}
    assert caplog.text.count("budget store failed") == 1  # logged once a minute, not per call
    assert engine.status()[0].error is not None
    server = start_redis(port)
    try:
        deadline = time.monotonic() + 5
        while engine.status()[0].error is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        spend(engine, 1 * CENT)
        entries = by_name(engine)
        assert entries["b/USD/day"]["used_nanos"] == 7 * CENT
        assert entries["q/requests/day"]["used"] == 4
        assert "error" not in entries["b/USD/day"]
    finally:
        engine.close()
        server.terminate()
        server.wait()


def test_sqlite_failure_fails_open_or_closed_as_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guard, "_RETRY_AFTER_S", 0.0)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the store's directory should be")
    url = f"sqlite:///{blocker / 'budgets.db'}"
    budgets = "budgets:\n  - {name: b, limit_usd: 1, window: day, enforce: true}\n"
    engine = make_engine(tmp_path, budgets, url)
    spend(engine, 2 * CENT)  # fail-open: admitted and kept
    closed = make_engine(tmp_path, budgets + "fail_closed: true\n", url)
    with pytest.raises(BudgetExceededError, match="unreachable"):
        closed.precheck(facts())
    closed.close()
    blocker.unlink()
    engine.flush()
    assert engine.status()[0].used == 2 * CENT
    engine.close()
