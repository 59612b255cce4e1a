"""Grafana dashboard conventions, the shipped JSON against the generator, and the export command.

The conventions are the ones that break imports and provisioning when missed (ANCHORS.md):
a ``DS_PROMETHEUS`` datasource variable and no ``__inputs``, a stable uid and no id, stable panel
ids. The queries themselves run against a real Prometheus in test_prometheus_stack.py.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from costspan.cli import dashboards as cli
from costspan.dashboards import build

SHIPPED = build.GRAFANA_DIR
DASHBOARD_FILES = ("costspan-spend.json", "costspan-budgets.json", "costspan-providers.json")
COST_UNIT = "currencyUSD"


def shipped() -> dict[str, dict[str, Any]]:
    return {name: json.loads((SHIPPED / name).read_text(encoding="utf-8")) for name in DASHBOARD_FILES}


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return list(dashboard["panels"])


def exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in panels(dashboard) for t in p["targets"]]


def datasource_refs(node: Any) -> Iterator[Any]:
    """Every ``datasource`` value anywhere in the dashboard."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            else:
                yield from datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from datasource_refs(item)


def export(tmp_path: Path, *argv: str) -> tuple[int, Path]:
    parser = argparse.ArgumentParser(prog="costspan")
    cli.register(parser.add_subparsers(dest="command"))
    out = tmp_path / "out"
    args = parser.parse_args(["dashboards", "export", str(out), *argv])
    return int(args.func(args)), out


def test_shipped_json_equals_generated_output() -> None:
    generated = build.build_all()
    assert set(generated) == set(DASHBOARD_FILES)
    for name, dashboard in generated.items():
        assert (SHIPPED / name).read_text(encoding="utf-8") == build.render(dashboard), (
            f"{name} is stale: run python -m costspan.dashboards.build"
        )
    assert build.main(["--check"]) == 0


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_datasource_variable_uid_and_no_id_or_inputs(name: str) -> None:
    dashboard = shipped()[name]
    assert "__inputs" not in dashboard and "__requires" not in dashboard
    assert "id" not in dashboard
    assert dashboard["uid"] == name.removesuffix(".json")
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    refs = list(datasource_refs(dashboard))
    assert len(refs) > len(panels(dashboard))
    for ref in refs:
        assert ref in ({"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, {"type": "grafana", "uid": "-- Grafana --"})
    assert {"provider", "model"} <= set(variables)
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["includeAll"] and variable["allValue"] == ".*"


def test_spend_dashboard_has_provider_model_project_variables() -> None:
    variables = {v["name"] for v in shipped()["costspan-spend.json"]["templating"]["list"]}
    assert {"provider", "model", "project", "feature"} <= variables


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_panels_have_stable_unique_ids_units_and_rate_intervals(name: str) -> None:
    dashboard = shipped()[name]
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    assert all(isinstance(i, int) and i > 0 for i in ids)
    for panel in panels(dashboard):
        unit = panel["fieldConfig"]["defaults"].get("unit")
        assert unit, f"{panel['title']} has no unit"
        assert panel["description"], panel["title"]
        for target in panel["targets"]:
            for window in re.findall(r"(?:rate|increase)\([^\[]*\[([^\]]+)\]", target["expr"]):
                assert window in ("$__rate_interval", "$__range", "1d"), (panel["title"], target["expr"])
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"


def test_panel_ids_are_fixed_by_the_code_not_by_position() -> None:
    """Ids are part of the definition; reordering or inserting panels must not renumber them."""
    ids = {p.key: p.id for p in build.SPEND_PANELS}
    assert ids["today"] == 1 and ids["unpriced"] == 6
    all_ids = [p.id for panels_, _ in build.DASHBOARDS.values() for p in panels_]
    assert len(all_ids) == len(set(all_ids)), "panel ids are unique across dashboards too"


def test_units_are_currency_tokens_seconds_and_ratios() -> None:
    units = {p["fieldConfig"]["defaults"]["unit"] for d in shipped().values() for p in panels(d)}
    assert {COST_UNIT, "s", "percentunit", "suffix: tok/s"} <= units


def test_only_contract_metrics_are_queried() -> None:
    known = {
        "costspan_cost_usd_total", "costspan_tokens_total", "costspan_requests_total",
        "costspan_request_duration_seconds_bucket", "costspan_unpriced_requests_total",
        "costspan_budget_spend_usd", "costspan_budget_limit_usd", "costspan_budget_utilization_ratio",
        "costspan_quota_used", "costspan_quota_limit", "costspan_estimation_error_ratio_bucket",
        "costspan_time_to_first_chunk_seconds_bucket",
    }
    used = {m for d in shipped().values() for e in exprs(d) for m in re.findall(r"costspan_\w+", e)}
    assert used <= known, used - known
    assert used >= known - {"costspan_tokens"}, known - used


def test_dashboards_link_to_each_other() -> None:
    dashboards = shipped()
    uids = {d["uid"] for d in dashboards.values()}
    for dashboard in dashboards.values():
        targets = {link["url"].removeprefix("/d/") for link in dashboard["links"]}
        assert targets == uids - {dashboard["uid"]}
        assert all(link["keepTime"] and link["includeVars"] for link in dashboard["links"])


def test_error_panels_sum_error_type_away_where_not_shown() -> None:
    """costspan_requests_total also carries error_type; only the errors panel keeps it."""
    for dashboard in shipped().values():
        for panel in panels(dashboard):
            for target in panel["targets"]:
                if "costspan_requests_total" in target["expr"]:
                    assert "sum" in target["expr"]
                    if "error_type" in target["expr"]:
                        assert panel["title"] == "Errors by type"


@pytest.mark.parametrize("lang", ["es", "pt"])
def test_export_translates_titles_and_descriptions(tmp_path: Path, lang: str) -> None:
    code, out = export(tmp_path, "--lang", lang)
    assert code == 0
    english = shipped()
    for name in DASHBOARD_FILES:
        translated = json.loads((out / name).read_text(encoding="utf-8"))
        assert translated["uid"] == english[name]["uid"]
        assert translated["title"] != english[name]["title"]
        assert translated["description"] != english[name]["description"]
        for ours, theirs in zip(panels(translated), panels(english[name]), strict=True):
            assert ours["id"] == theirs["id"]
            assert ours["title"] != theirs["title"], ours["title"]
            assert ours["description"] != theirs["description"]
            assert ours["targets"] == theirs["targets"]
    spend = json.loads((out / "costspan-spend.json").read_text(encoding="utf-8"))
    assert spend["panels"][0]["title"] == {"es": "Gasto de hoy (USD)", "pt": "Gasto de hoje (USD)"}[lang]


def test_translations_cover_every_key() -> None:
    english = set(json.loads((build.I18N_DIR / "en.json").read_text(encoding="utf-8")))
    for lang in ("es", "pt"):
        assert set(json.loads((build.I18N_DIR / f"{lang}.json").read_text(encoding="utf-8"))) == english


def test_export_in_euros_scales_cost_panels_with_a_labelled_unit(tmp_path: Path) -> None:
    code, out = export(tmp_path, "--currency", "EUR", "--per-usd", "0.92")
    assert code == 0
    english = shipped()
    scaled = 0
    for name in DASHBOARD_FILES:
        eur = json.loads((out / name).read_text(encoding="utf-8"))
        for ours, theirs in zip(panels(eur), panels(english[name]), strict=True):
            if theirs["fieldConfig"]["defaults"]["unit"] == COST_UNIT:
                scaled += 1
                assert ours["fieldConfig"]["defaults"]["unit"] == "currencyEUR"
                assert "(EUR" in ours["title"] and "(USD" in theirs["title"]
                for a, b in zip(ours["targets"], theirs["targets"], strict=True):
                    assert a["expr"] == f"({b['expr']}) * 0.92"
            else:
                assert ours["targets"] == theirs["targets"], ours["title"]
                assert ours["fieldConfig"] == theirs["fieldConfig"]
    assert scaled >= 10


def test_export_other_currency_uses_a_suffix_unit(tmp_path: Path) -> None:
    code, out = export(tmp_path, "--currency", "mxn", "--per-usd", "18.5", "--lang", "es")
    assert code == 0
    spend = json.loads((out / "costspan-spend.json").read_text(encoding="utf-8"))
    assert spend["panels"][0]["fieldConfig"]["defaults"]["unit"] == "suffix: MXN"
    assert spend["panels"][0]["title"] == "Gasto de hoy (MXN)"
    assert spend["panels"][0]["targets"][0]["expr"].endswith(" * 18.5")


@pytest.mark.parametrize(
    "argv",
    [("--currency", "EUR"), ("--currency", "EUR", "--per-usd", "0"), ("--currency", "EURO", "--per-usd", "1"),
     ("--per-usd", "0.9")],
)
def test_export_refuses_bad_currency_options(tmp_path: Path, argv: tuple[str, ...],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out = export(tmp_path, *argv)
    assert code == 2
    assert "costspan:" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_export_all_writes_rules_alertmanager_and_provisioning(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out = export(tmp_path, "--all", "--json")
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    files = {str(Path(p).relative_to(out)) for p in report["files"]}
    assert files == {
        *DASHBOARD_FILES, "prometheus/costspan-rules.yml", "alertmanager/alertmanager.yml",
        "prometheus/costspan-rules.test.yml", "prometheus/costspan-rules-spike.test.yml",
        "provisioning/datasource.yaml", "provisioning/dashboards.yaml",
    }
    assert (out / "prometheus" / "costspan-rules.yml").read_text() == (
        build.HERE / "prometheus" / "costspan-rules.yml").read_text()
    # The rule tests run where they were exported, as the README tells users to run them.
    promtool = shutil.which("promtool")
    if promtool is not None:
        result = subprocess.run(
            [promtool, "test", "rules", "costspan-rules.test.yml", "costspan-rules-spike.test.yml"],
            cwd=out / "prometheus", capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_export_reports_unwritable_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("a file, not a directory")
    code, _ = export(tmp_path)
    assert code == 1
    assert "cannot write" in capsys.readouterr().err
