"""``costspan report --json``: the report as plain data, money exact.

Every cost is given twice: ``*_nanos`` (integer USD nano-dollars, exact, what to compute with) and
``cost`` in the display currency as a decimal string (for reading).
"""

from __future__ import annotations

from typing import Any

from costspan.ledger.query import Agg
from costspan.ledger.report import Report
from costspan.money import Currency, usd_string


def _agg(agg: Agg, currency: Currency) -> dict[str, Any]:
    out = agg.as_dict()
    out["cost_usd"] = usd_string(agg.cost_nanos)
    if currency.code != "USD":
        out["cost"] = f"{currency.amount(agg.cost_nanos):.9f}"
    return out


def as_dict(report: Report, currency: Currency) -> dict[str, Any]:
    f = report.filters
    proj = report.projection
    return {
        "period": {
            "start": report.period.start(report.tz).isoformat(),
            "end": report.period.end(report.tz).isoformat(),
            "timezone": report.tz.key,
        },
        "filters": {"project": list(f.project), "user": list(f.user), "provider": list(f.provider),
                    "model": list(f.model)},
        "currency": {"code": currency.code, "per_usd": str(currency.per_usd)},
        "totals": {**_agg(report.totals, currency), "p95_latency_s": report.p95_latency_s},
        "previous_period": {
            **_agg(report.previous, currency),
            "cost_change": report.change("cost_nanos"),
            "calls_change": report.change("calls"),
        },
        "breakdowns": [
            {
                "by": list(t.dimensions),
                "rows": [{**dict(zip(t.dimensions, key, strict=True)), **_agg(a, currency)} for key, a in t.rows],
                "other": _agg(t.other, currency) if t.other else None,
            }
            for t in report.tables
        ],
        "daily": [{"day": day, **_agg(a, currency)} for day, a in report.days],
        "top_users": [{"user": user, **_agg(a, currency)} for user, a in report.top_users],
        "projection": None if proj is None else {
            "month": proj.month,
            "month_to_date_nanos": proj.month_to_date_nanos,
            "projected_nanos": proj.projected_nanos,
            "projected_usd": None if proj.projected_nanos is None else usd_string(proj.projected_nanos),
            "basis": proj.basis,
        },
        "generated_at": report.generated_at.isoformat(),
    }
