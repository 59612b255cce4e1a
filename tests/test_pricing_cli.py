"""``costspan prices quote|show|list|import`` through the real command line entry point."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from costspan.cli import main as cli
from costspan.errors import ConfigError
from costspan.money import configured_currency
from costspan.settings import Settings

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    """``run(*argv) -> (status, stdout, stderr)`` with a settings file in ``tmp_path``."""
    config = tmp_path / "costspan.yaml"
    config.write_text(f"pricing:\n  import_dir: {tmp_path / 'imports'}\ncurrency: {{code: EUR, per_usd: 0.92}}\n")
    monkeypatch.setenv("COSTSPAN_CONFIG", str(config))
    modules = tuple(dict.fromkeys((*cli.COMMAND_MODULES, "costspan.cli.prices")))
    monkeypatch.setattr(cli, "COMMAND_MODULES", modules)

    def invoke(*argv: str) -> tuple[int, str, str]:
        status = cli.main(["prices", *argv])
        out, err = capsys.readouterr()
        return status, out, err

    return invoke


def test_quote_json(run: Run) -> None:
    status, out, _ = run(
        "quote", "gpt-4o-mini", "--provider", "openai", "--input-tokens", "10000", "--output-tokens", "2000",
        "--cached-input-tokens", "4000", "--json",
    )
    data = json.loads(out)
    assert status == 0
    assert data["status"] == "priced"
    assert data["key"] == "openai/gpt-4o-mini"
    assert data["source"].startswith("genai-prices ")
    assert data["input_usd"] == "0.000900000"
    assert data["cache_read_usd"] == "0.000300000"
    assert data["output_usd"] == "0.001200000"
    assert data["total_usd"] == "0.002400000"
    assert data["currency"] == {"code": "EUR", "per_usd": "0.92", "total": "0.002208000"}


def test_quote_text_with_the_brief_flags(run: Run) -> None:
    status, out, _ = run("quote", "--provider", "openai", "--model", "o3", "--input", "5000", "--output", "12000",
                         "--reasoning", "10000", "--service-tier", "batch")
    assert status == 0
    assert "openai/o3" in out and "(reasoning 10,000 included)" in out
    assert "$0.053000000" in out  # batch: 5,000 x $1 + 12,000 x $4 per million
    assert "EUR" in out


def test_quote_rejects_inconsistent_usage(run: Run) -> None:
    status, _, err = run("quote", "gpt-4o-mini", "--input", "10", "--cached", "20")
    assert status == 2 and "cannot exceed" in err


def test_quote_unknown_and_local(run: Run) -> None:
    _, out, _ = run("quote", "no-such-model", "--provider", "openai", "--input", "10", "--json")
    assert json.loads(out)["status"] == "unpriced"
    _, out, _ = run("quote", "llama3.2", "--provider", "ollama", "--input", "10", "--json")
    assert json.loads(out)["status"] == "free"


def test_show(run: Run) -> None:
    status, out, _ = run("show", "claude-sonnet-4-5", "--json")
    data = json.loads(out)
    assert status == 0
    assert data["key"] == "anthropic/claude-sonnet-4-5"
    assert data["prices"]["input"] == "3" and data["prices"]["tiers"][0] == {
        "above": 200000, "input": "6", "cached_input": "0.6", "cache_write": "7.5", "cache_write_1h": "12",
        "output": "22.5",
    }
    assert data["service_tiers"]["batch"]["input"] == "1.5"
    status, out, _ = run("show", "gemini-2.5-pro", "--provider", "gcp.gemini")
    assert status == 0 and "above 200,000 input tokens, the whole request" in out
    status, _, err = run("show", "no-such-model", "--provider", "openai")
    assert status == 1 and "unpriced" in err


def test_list(run: Run) -> None:
    _, out, _ = run("list", "--provider", "anthropic", "--json")
    rows = json.loads(out)
    keys = {row["key"] for row in rows}
    assert "anthropic/claude-opus-4-1" in keys
    assert all(row["provider"] == "anthropic" for row in rows)
    _, out, _ = run("list", "--provider", "x_ai")
    assert "litellm-snapshot" in out and "genai-prices" in out


def test_import_then_quote(run: Run, tmp_path: Path) -> None:
    source = tmp_path / "litellm.json"
    source.write_text(json.dumps({"acme-chat": {"litellm_provider": "openai", "mode": "chat",
                                                "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}}))
    status, out, _ = run("import", str(source), "--json")
    assert status == 0 and json.loads(out)["models"] == 1
    _, out, _ = run("quote", "acme-chat", "--provider", "openai", "--input", "1000000", "--json")
    assert json.loads(out)["total_usd"] == "1.000000000"
    source.write_text(json.dumps({"acme-chat": {"litellm_provider": "openai", "output_cost_per_token": -1}}))
    status, _, err = run("import", str(source))
    assert status == 2
    assert f"{source}: acme-chat.output_cost_per_token: expected a non-negative number" in err


def test_display_currency_validation(tmp_path: Path) -> None:
    def settings(section: object) -> Settings:
        return Settings(source="costspan.yaml", raw={"currency": section})

    assert configured_currency(settings({"code": "eur", "per_usd": "0.92"})).label() == "EUR at 0.92 per USD"
    assert configured_currency(Settings(source="env")).is_usd
    with pytest.raises(ConfigError, match=r"currency\.per_usd"):
        configured_currency(settings({"code": "EUR"}))
    with pytest.raises(ConfigError, match=r"currency\.code"):
        configured_currency(settings({"code": "euros", "per_usd": 1}))
