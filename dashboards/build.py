"""costspan's Grafana dashboards as code: one definition, many languages and currencies.

Why code and not hand-edited JSON: three dashboards share variables, units, thresholds, links
and query filters; writing them once keeps them consistent, and the language and currency options
of ``costspan dashboards export`` become a parameter instead of nine copies to keep in step.
Plain dicts (no grafana-foundation-sdk) keep the runtime free of an extra dependency whose
version would pin a Grafana schema.

Conventions every dashboard follows (tests/test_dashboards.py checks them):

* the datasource is a template variable named ``DS_PROMETHEUS`` and there are no ``__inputs``:
  Grafana's file provisioning cannot resolve ``__inputs``, while a datasource variable works
  for import, provisioning and the API alike;
* a stable ``uid`` and no ``id``, so links and provisioning survive re-imports;
* panel ids are written here by hand, not counted, so adding a panel never renumbers another
  (Grafana keys panel links, library panels and user annotations by panel id);
* rate windows are ``$__rate_interval`` (always at least four scrapes, whatever the scrape interval);
* queries use only the metric names of DESIGN.md, not recording rules, so the dashboards work
  where only the dashboards were imported.

``python -m costspan.dashboards.build`` regenerates the shipped JSON (English, USD);
``--check`` exits 1 when the shipped files differ from what the code generates.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
GRAFANA_DIR = HERE / "grafana"
I18N_DIR = HERE / "i18n"

LANGUAGES = ("en", "es", "pt")
DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
SCHEMA_VERSION = 39
UIDS = {"spend": "costspan-spend", "budgets": "costspan-budgets", "providers": "costspan-providers"}

# Grafana's own currency units (they place the symbol correctly); other codes get a suffix unit.
GRAFANA_CURRENCY_UNITS = {
    "USD": "currencyUSD",
    "EUR": "currencyEUR",
    "GBP": "currencyGBP",
    "JPY": "currencyJPY",
    "BRL": "currencyBRL",
    "CHF": "currencyCHF",
    "INR": "currencyINR",
    "SEK": "currencySEK",
    "NOK": "currencyNOK",
    "DKK": "currencyDKK",
    "PLN": "currencyPLN",
    "CZK": "currencyCZK",
    "ZAR": "currencyZAR",
    "KRW": "currencyKRW",
}

# Budget thresholds: the defaults of costspan's alert levels and of the shipped alert rules.
BUDGET_STEPS = ((None, "green"), (0.75, "yellow"), (0.9, "orange"), (1.0, "red"))
QUOTA_STEPS = ((None, "green"), (0.75, "yellow"), (0.9, "red"))

# Label filters: the dashboards' variables applied to each metric's own labels.
PM = 'provider=~"$provider", model=~"$model"'
PMO = PM + ', operation=~"$operation"'
COST = 'costspan_cost_usd_total{' + PM + ', project=~"$project", feature=~"$feature"}'
BUDGET = '{budget=~"$budget"}'
QUOTA = '{quota=~"$quota"}'
# Seconds left in the current calendar month (UTC), for the month-end projection.
MONTH_LEFT = "scalar(days_in_month() * 86400 - (day_of_month() - 1) * 86400 - time() % 86400)"


@dataclass(frozen=True)
class Options:
    """What varies between exports: the language of the texts and the currency of cost panels."""

    lang: str = "en"
    currency: str = "USD"
    per_usd: float = 1.0

    def __post_init__(self) -> None:
        if self.lang not in LANGUAGES:
            raise ValueError(f"unknown language {self.lang!r}; choose one of {', '.join(LANGUAGES)}")
        if len(self.currency) != 3 or not self.currency.isalpha() or not self.currency.isupper():
            raise ValueError(f"currency must be a 3-letter ISO 4217 code such as EUR, not {self.currency!r}")
        if not self.per_usd > 0:
            raise ValueError("--per-usd must be a positive number (units of the currency per US dollar)")
        if self.currency == "USD" and self.per_usd != 1.0:
            raise ValueError("USD is costspan's own currency: --per-usd must be 1 (or omitted)")


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    cost: bool = False  # in USD: scaled to the export currency


@dataclass(frozen=True)
class Panel:
    """One panel: its id is fixed here forever; its texts come from i18n under ``key``."""

    id: int
    key: str
    kind: str  # timeseries | stat | bargauge | table
    queries: tuple[Query, ...]
    unit: str  # a Grafana unit id, or "currency" for the export currency
    pos: tuple[int, int, int, int]  # x, y, w, h
    instant: bool = False
    time_from: str | None = None
    steps: tuple[tuple[float | None, str], ...] = ((None, "green"),)
    threshold_lines: bool = False
    decimals: int | None = None
    minimum: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

def load_texts(lang: str) -> dict[str, str]:
    """The titles and descriptions in ``lang``; English fills any key a translation lacks."""
    texts: dict[str, str] = json.loads((I18N_DIR / "en.json").read_text(encoding="utf-8"))
    if lang != "en":
        texts.update(json.loads((I18N_DIR / f"{lang}.json").read_text(encoding="utf-8")))
    return texts


def currency_unit(currency: str) -> str:
    return GRAFANA_CURRENCY_UNITS.get(currency, f"suffix: {currency}")


def q(expr: str, legend: str = "", cost: bool = False) -> Query:
    return Query(expr, legend, cost)


# ---------------------------------------------------------------------------------------------
# The three dashboards.

SPEND_PANELS = (
    Panel(1, "today", "stat", (q(f"sum(increase({COST}[$__range]))", cost=True),), "currency", (0, 0, 4, 4),
          instant=True, time_from="now/d", decimals=2),
    Panel(2, "month", "stat", (q(f"sum(increase({COST}[$__range]))", cost=True),), "currency", (4, 0, 4, 4),
          instant=True, time_from="now/M", decimals=2),
    Panel(3, "rate", "stat", (q(f"sum(rate({COST}[$__rate_interval])) * 3600", cost=True),), "currency",
          (8, 0, 4, 4), instant=True, decimals=2),
    Panel(4, "projection", "stat",
          (q(f"sum(increase({COST}[$__range])) + sum(rate({COST}[1d])) * {MONTH_LEFT}", cost=True),),
          "currency", (12, 0, 4, 4), instant=True, time_from="now/M", decimals=2),
    Panel(5, "per_request", "stat",
          (q(f"sum(rate({COST}[$__rate_interval])) / sum(rate(costspan_requests_total{{{PM}, "
             f'outcome="success"}}[$__rate_interval]))', cost=True),),
          "currency", (16, 0, 4, 4), instant=True, decimals=4),
    Panel(6, "unpriced", "stat",
          (q(f"sum(increase(costspan_unpriced_requests_total{{{PM}}}[$__range]))"),), "short", (20, 0, 4, 4),
          instant=True, steps=((None, "green"), (1, "orange")), decimals=0),
    Panel(7, "by_provider", "timeseries",
          (q(f"sum by (provider) (rate({COST}[$__rate_interval])) * 3600", "{{provider}}", cost=True),),
          "currency", (0, 4, 12, 8)),
    Panel(8, "by_model", "timeseries",
          (q(f"sum by (provider, model) (rate({COST}[$__rate_interval])) * 3600", "{{provider}} {{model}}",
             cost=True),),
          "currency", (12, 4, 12, 8)),
    Panel(9, "by_project", "bargauge",
          (q(f"sort_desc(sum by (project) (increase({COST}[$__range])))", "{{project}}", cost=True),),
          "currency", (0, 12, 8, 8), instant=True, decimals=2),
    Panel(10, "by_feature", "bargauge",
          (q(f"sort_desc(sum by (feature) (increase({COST}[$__range])))", "{{feature}}", cost=True),),
          "currency", (8, 12, 8, 8), instant=True, decimals=2),
    Panel(11, "per_request_by_model", "bargauge",
          (q(f"sum by (provider, model) (rate({COST}[$__rate_interval])) / sum by (provider, model) "
             f'(rate(costspan_requests_total{{{PM}, outcome="success"}}[$__rate_interval]))',
             "{{provider}} {{model}}", cost=True),),
          "currency", (16, 12, 8, 8), instant=True, decimals=4),
    Panel(12, "unpriced_by_model", "timeseries",
          (q(f"sum by (provider, model) (increase(costspan_unpriced_requests_total{{{PM}}}[$__rate_interval]))",
             "{{provider}} {{model}}"),),
          "short", (0, 20, 24, 7), decimals=0),
)

BUDGET_PANELS = (
    Panel(21, "utilization", "bargauge",
          (q(f"max by (budget, window) (costspan_budget_utilization_ratio{BUDGET})", "{{budget}} ({{window}})"),),
          "percentunit", (0, 0, 12, 8), instant=True, steps=BUDGET_STEPS, minimum=0,
          extra={"max": 1}),
    Panel(22, "time_to_exhaustion", "bargauge",
          (q(f"max by (budget, window) (clamp_min(costspan_budget_limit_usd{BUDGET} - costspan_budget_spend_usd"
             f"{BUDGET}, 0) / (deriv(costspan_budget_spend_usd{BUDGET}[1h]) > 0))", "{{budget}} ({{window}})"),),
          "s", (12, 0, 12, 8), instant=True,
          steps=((None, "red"), (3600, "orange"), (86400, "green"))),
    Panel(23, "utilization_over_time", "timeseries",
          (q(f"max by (budget, window) (costspan_budget_utilization_ratio{BUDGET})", "{{budget}} ({{window}})"),),
          "percentunit", (0, 8, 12, 8), steps=BUDGET_STEPS, threshold_lines=True, minimum=0),
    Panel(24, "spend_vs_limit", "timeseries",
          (q(f"max by (budget, window) (costspan_budget_spend_usd{BUDGET})", "{{budget}} spend", cost=True),
           q(f"max by (budget, window) (costspan_budget_limit_usd{BUDGET})", "{{budget}} limit", cost=True)),
          "currency", (12, 8, 12, 8), minimum=0),
    Panel(25, "quota_utilization", "bargauge",
          (q(f"max by (quota, unit, window) (costspan_quota_used{QUOTA} / costspan_quota_limit{QUOTA})",
             "{{quota}} {{unit}}/{{window}}"),),
          "percentunit", (0, 16, 12, 8), instant=True, steps=QUOTA_STEPS, minimum=0, extra={"max": 1}),
    Panel(26, "quota_used", "timeseries",
          (q(f"max by (quota, unit, window) (costspan_quota_used{QUOTA})", "{{quota}} {{unit}}/{{window}} used"),
           q(f"max by (quota, unit, window) (costspan_quota_limit{QUOTA})", "{{quota}} {{unit}}/{{window}} limit")),
          "short", (12, 16, 12, 8), minimum=0),
    Panel(27, "blocked_total", "stat",
          (q(f'sum(increase(costspan_requests_total{{{PM}, outcome="blocked"}}[$__range]))'),),
          "short", (0, 24, 6, 7), instant=True, steps=((None, "green"), (1, "red")), decimals=0),
    Panel(28, "blocked", "timeseries",
          (q(f'sum by (provider, model) (increase(costspan_requests_total{{{PM}, outcome="blocked"}}'
             f"[$__rate_interval]))", "{{provider}} {{model}}"),),
          "short", (6, 24, 18, 7), decimals=0),
)

REQ = "costspan_requests_total{" + PMO
PROVIDER_PANELS = (
    Panel(31, "requests", "timeseries",
          (q(f"sum by (outcome) (rate({REQ}}}[$__rate_interval]))", "{{outcome}}"),),
          "reqps", (0, 0, 12, 8)),
    Panel(32, "errors", "timeseries",
          (q(f'sum by (provider, error_type) (rate({REQ}, outcome="error"}}[$__rate_interval]))',
             "{{provider}} {{error_type}}"),),
          "reqps", (12, 0, 8, 8)),
    Panel(33, "error_ratio", "stat",
          (q(f'sum(rate({REQ}, outcome="error"}}[$__rate_interval])) / '
             f'sum(rate({REQ}, outcome=~"success|error"}}[$__rate_interval]))'),),
          "percentunit", (20, 0, 4, 8), instant=True, steps=((None, "green"), (0.05, "orange"), (0.1, "red")),
          decimals=1),
    Panel(34, "latency", "timeseries",
          tuple(q(f"histogram_quantile({p}, sum by (le) (rate(costspan_request_duration_seconds_bucket{{{PMO}}}"
                  f"[$__rate_interval])))", f"p{round(p * 100)}") for p in (0.5, 0.95, 0.99)),
          "s", (0, 8, 12, 8)),
    Panel(35, "latency_by_model", "timeseries",
          (q(f"histogram_quantile(0.95, sum by (le, provider, model) (rate(costspan_request_duration_seconds_bucket"
             f"{{{PMO}}}[$__rate_interval])))", "{{provider}} {{model}}"),),
          "s", (12, 8, 12, 8)),
    Panel(36, "ttfc", "timeseries",
          tuple(q(f"histogram_quantile({p}, sum by (le) (rate(costspan_time_to_first_chunk_seconds_bucket"
                  f"{{{PMO}}}[$__rate_interval])))", f"p{round(p * 100)}") for p in (0.5, 0.95)),
          "s", (0, 16, 12, 8)),
    Panel(37, "tokens", "timeseries",
          (q(f"sum by (type) (rate(costspan_tokens_total{{{PM}}}[$__rate_interval]))", "{{type}}"),),
          "suffix: tok/s", (12, 16, 12, 8)),
    Panel(38, "cache_share", "stat",
          (q(f'sum(rate(costspan_tokens_total{{{PM}, type="cache_read"}}[$__rate_interval])) / '
             f'sum(rate(costspan_tokens_total{{{PM}, type="input"}}[$__rate_interval]))'),),
          "percentunit", (0, 24, 6, 6), instant=True, decimals=1),
    Panel(39, "reasoning_share", "stat",
          (q(f'sum(rate(costspan_tokens_total{{{PM}, type="reasoning"}}[$__rate_interval])) / '
             f'sum(rate(costspan_tokens_total{{{PM}, type="output"}}[$__rate_interval]))'),),
          "percentunit", (6, 24, 6, 6), instant=True, decimals=1),
    Panel(40, "estimation_error", "timeseries",
          tuple(q(f"histogram_quantile({p}, sum by (le) (rate(costspan_estimation_error_ratio_bucket{{{PM}}}"
                  f"[$__rate_interval])))", f"p{round(p * 100)}") for p in (0.5, 0.95)),
          "percentunit", (12, 24, 12, 6)),
)


@dataclass(frozen=True)
class Variable:
    name: str
    query: str = ""  # label_values(...) for query variables; empty for the datasource


SPEND_VARS = (
    Variable("provider", "label_values(costspan_requests_total, provider)"),
    Variable("model", 'label_values(costspan_requests_total{provider=~"$provider"}, model)'),
    Variable("project", "label_values(costspan_cost_usd_total, project)"),
    Variable("feature", 'label_values(costspan_cost_usd_total{project=~"$project"}, feature)'),
)
BUDGET_VARS = (
    Variable("budget", "label_values(costspan_budget_utilization_ratio, budget)"),
    Variable("quota", "label_values(costspan_quota_limit, quota)"),
    Variable("provider", "label_values(costspan_requests_total, provider)"),
    Variable("model", 'label_values(costspan_requests_total{provider=~"$provider"}, model)'),
    Variable("project", "label_values(costspan_cost_usd_total, project)"),
)
PROVIDER_VARS = (
    Variable("provider", "label_values(costspan_requests_total, provider)"),
    Variable("model", 'label_values(costspan_requests_total{provider=~"$provider"}, model)'),
    Variable("operation", "label_values(costspan_requests_total, operation)"),
    Variable("project", "label_values(costspan_cost_usd_total, project)"),
)

DASHBOARDS: dict[str, tuple[tuple[Panel, ...], tuple[Variable, ...]]] = {
    "spend": (SPEND_PANELS, SPEND_VARS),
    "budgets": (BUDGET_PANELS, BUDGET_VARS),
    "providers": (PROVIDER_PANELS, PROVIDER_VARS),
}


# ---------------------------------------------------------------------------------------------
# Rendering to Grafana's JSON model.


class _Renderer:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.texts = load_texts(options.lang)

    def text(self, key: str) -> str:
        return self.texts[key].format(currency=self.options.currency, per_usd=f"{self.options.per_usd:g}")

    def expr(self, query: Query) -> str:
        if query.cost and self.options.per_usd != 1.0:
            return f"({query.expr}) * {self.options.per_usd:g}"
        return query.expr

    def unit(self, panel: Panel) -> str:
        return currency_unit(self.options.currency) if panel.unit == "currency" else panel.unit

    def panel(self, board: str, panel: Panel) -> dict[str, Any]:
        targets = []
        for index, query in enumerate(panel.queries):
            target: dict[str, Any] = {
                "datasource": DATASOURCE,
                "editorMode": "code",
                "expr": self.expr(query),
                "legendFormat": query.legend or "__auto",
                "range": not panel.instant,
                "instant": panel.instant,
                "refId": chr(ord("A") + index),
            }
            if panel.kind == "table":
                target["format"] = "table"
            targets.append(target)
        defaults: dict[str, Any] = {
            "unit": self.unit(panel),
            "color": {"mode": "thresholds" if panel.kind in ("stat", "bargauge") else "palette-classic"},
            "thresholds": {
                "mode": "absolute",
                "steps": [{"color": color, "value": value} for value, color in panel.steps],
            },
        }
        if panel.decimals is not None:
            defaults["decimals"] = panel.decimals
        if panel.minimum is not None:
            defaults["min"] = panel.minimum
        defaults.update(panel.extra)
        if panel.kind == "timeseries":
            defaults["custom"] = {
                "drawStyle": "line",
                "lineWidth": 1,
                "fillOpacity": 10,
                "showPoints": "never",
                "spanNulls": False,
                "thresholdsStyle": {"mode": "line" if panel.threshold_lines else "off"},
            }
        x, y, w, h = panel.pos
        out: dict[str, Any] = {
            "id": panel.id,
            "type": panel.kind,
            "title": self.text(f"{board}.{panel.key}.title"),
            "description": self.text(f"{board}.{panel.key}.description"),
            "datasource": DATASOURCE,
            "gridPos": {"x": x, "y": y, "w": w, "h": h},
            "targets": targets,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": self.panel_options(panel),
        }
        if panel.time_from:
            out["timeFrom"] = panel.time_from
            out["hideTimeOverride"] = False
        return out

    @staticmethod
    def panel_options(panel: Panel) -> dict[str, Any]:
        reduce = {"calcs": ["lastNotNull"], "fields": "", "values": False}
        if panel.kind == "stat":
            return {"reduceOptions": reduce, "colorMode": "value", "graphMode": "none", "textMode": "auto",
                    "justifyMode": "auto", "orientation": "auto"}
        if panel.kind == "bargauge":
            return {"reduceOptions": reduce, "displayMode": "gradient", "orientation": "horizontal",
                    "showUnfilled": True}
        if panel.kind == "table":
            return {"showHeader": True}
        return {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                "tooltip": {"mode": "multi", "sort": "desc"}}

    def variable(self, variable: Variable) -> dict[str, Any]:
        return {
            "name": variable.name,
            "label": self.text(f"var.{variable.name}"),
            "type": "query",
            "datasource": DATASOURCE,
            "definition": variable.query,
            "query": {"query": variable.query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
            "refresh": 2,
            "includeAll": True,
            "allValue": ".*",
            "multi": True,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "options": [],
            "regex": "",
            "sort": 1,
            "hide": 0,
        }

    def datasource_variable(self) -> dict[str, Any]:
        return {
            "name": "DS_PROMETHEUS",
            "label": self.text("var.DS_PROMETHEUS"),
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "options": [],
            "refresh": 1,
            "regex": "",
            "includeAll": False,
            "multi": False,
            "hide": 0,
        }

    def links(self, board: str) -> list[dict[str, Any]]:
        return [
            {
                "type": "link",
                "title": self.text(f"{other}.title"),
                "tooltip": self.text(f"{other}.description"),
                "url": f"/d/{UIDS[other]}",
                "icon": "dashboard",
                "includeVars": True,
                "keepTime": True,
                "targetBlank": False,
                "asDropdown": False,
                "tags": [],
            }
            for other in DASHBOARDS
            if other != board
        ]

    def dashboard(self, board: str) -> dict[str, Any]:
        panels, variables = DASHBOARDS[board]
        return {
            "uid": UIDS[board],
            "title": self.text(f"{board}.title"),
            "description": self.text(f"{board}.description"),
            "tags": ["costspan", "llm", "opentelemetry"],
            "editable": True,
            "graphTooltip": 1,
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "timezone": "",
            "time": {"from": "now-6h", "to": "now"},
            "refresh": "1m",
            "fiscalYearStartMonth": 0,
            "liveNow": False,
            "annotations": {
                "list": [
                    {
                        "builtIn": 1,
                        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                        "enable": True,
                        "hide": True,
                        "iconColor": "rgba(0, 211, 255, 1)",
                        "name": "Annotations & Alerts",
                        "type": "dashboard",
                    }
                ]
            },
            "links": self.links(board),
            "templating": {"list": [self.datasource_variable(), *(self.variable(v) for v in variables)]},
            "panels": [self.panel(board, p) for p in panels],
        }


def build_all(options: Options | None = None) -> dict[str, dict[str, Any]]:
    """Every dashboard, by file name (``costspan-spend.json`` ...), for these options."""
    renderer = _Renderer(options or Options())
    return {f"{UIDS[board]}.json": renderer.dashboard(board) for board in DASHBOARDS}


def render(dashboard: dict[str, Any]) -> str:
    """The JSON text as shipped: stable key order, two-space indent, UTF-8 (accents kept)."""
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def write_all(directory: Path, options: Options | None = None) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, dashboard in build_all(options).items():
        path = directory / name
        path.write_text(render(dashboard), encoding="utf-8")
        written.append(path)
    return written


def _shipped(name: str) -> str | None:
    path = GRAFANA_DIR / name
    return path.read_text(encoding="utf-8") if path.is_file() else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m costspan.dashboards.build", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare the shipped JSON with the generated one")
    args = parser.parse_args(argv)
    if args.check:
        stale = [name for name, dashboard in build_all().items() if _shipped(name) != render(dashboard)]
        for name in stale:
            print(f"stale: dashboards/grafana/{name} (run python -m costspan.dashboards.build)", file=sys.stderr)
        return 1 if stale else 0
    for path in write_all(GRAFANA_DIR):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
