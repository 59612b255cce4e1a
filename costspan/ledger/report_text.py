"""``costspan report`` in the terminal: aligned ``rich`` tables with bars, readable at a glance."""

from __future__ import annotations

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table as RichTable
from rich.text import Text

from costspan.ledger.query import Agg
from costspan.ledger.report import Report, since_label, tokens
from costspan.money import Currency
from costspan.terminal import markup

BAR_WIDTH = 24
NONE = "\u2013"  # en dash: "no value", distinct from a zero


def bar(value: int, largest: int, width: int = BAR_WIDTH) -> Text:
    """A proportional bar; any non-zero value gets at least a sliver so it is not read as zero."""
    if largest <= 0 or value <= 0:
        return Text("")
    cells = min(value / largest, 1.0) * width
    full = int(cells)
    text = "█" * full + ("▏" if cells - full > 0 and full < width else "")
    return Text(text or "▏", style="cyan")


def pct(value: float | None) -> str:
    return NONE if value is None else f"{value * 100:.1f}%"


def change(value: float | None) -> Text:
    """Change against the previous period; red when spend went up."""
    if value is None:
        return Text("(no previous period)", style="dim")
    arrow = "▲" if value > 0 else "▼" if value < 0 else "="
    return Text(f"{arrow} {abs(value) * 100:.1f}% vs previous", style="red" if value > 0 else "green")


def seconds(value: float | None) -> str:
    if value is None:
        return NONE
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _totals(report: Report, currency: Currency) -> Panel:
    t = report.totals
    grid = RichTable.grid(padding=(0, 4))
    for _ in range(3):
        grid.add_column()
    grid.add_row(
        Text.assemble(("cost ", "dim"), (currency.format(t.cost_nanos), "bold"), "  ", change(report.change())),
        Text.assemble(("calls ", "dim"), (f"{t.calls:,}", "bold"), ("  success ", "dim"), pct(t.success_rate)),
        Text.assemble(("latency avg ", "dim"), seconds(t.avg_latency_s), ("  p95 ", "dim"),
                      seconds(report.p95_latency_s)),
    )
    grid.add_row(
        Text.assemble(("input ", "dim"), tokens(t.input_tokens), ("  output ", "dim"), tokens(t.output_tokens)),
        Text.assemble(("cache read ", "dim"), tokens(t.cache_read_tokens), ("  write ", "dim"),
                      tokens(t.cache_write_tokens), ("  reasoning ", "dim"), tokens(t.reasoning_tokens)),
        Text.assemble(("errors ", "dim"), f"{t.errors:,}", ("  blocked ", "dim"), f"{t.blocked:,}",
                      ("  unpriced ", "dim"), (f"{t.unpriced:,}", "yellow" if t.unpriced else "")),
    )
    return Panel(grid, title=f"costspan report · {since_label(report.period, report.tz)}", title_align="left")


def _table(title: str, headers: tuple[str, ...], rows: list[tuple[tuple[str, ...], Agg]], total: Agg,
           currency: Currency, other: Agg | None = None) -> RichTable:
    table = RichTable(title=title, title_justify="left", title_style="bold", expand=False)
    for header in headers:
        table.add_column(header, overflow="fold")
    table.add_column("cost", justify="right")
    table.add_column("share", justify="right")
    table.add_column("", min_width=BAR_WIDTH)
    table.add_column("calls", justify="right")
    table.add_column("tokens in/out", justify="right")
    table.add_column("success", justify="right")
    largest = max((a.cost_nanos for _, a in rows), default=0)
    shown = list(rows) + ([(("(other)",) + ("",) * (len(headers) - 1), other)] if other else [])
    for key, agg in shown:
        share = agg.cost_nanos / total.cost_nanos if total.cost_nanos else None
        shown_bar = bar(agg.cost_nanos, largest) if agg is not other else Text("")
        table.add_row(*(markup(part) for part in key), currency.format(agg.cost_nanos), pct(share), shown_bar,
                      f"{agg.calls:,}", f"{tokens(agg.input_tokens)}/{tokens(agg.output_tokens)}",
                      pct(agg.success_rate))
    return table


def _daily(report: Report, currency: Currency) -> RichTable:
    table = RichTable(title="daily trend", title_justify="left", title_style="bold")
    table.add_column("day")
    table.add_column("cost", justify="right")
    table.add_column("", min_width=BAR_WIDTH)
    table.add_column("calls", justify="right")
    largest = max((a.cost_nanos for _, a in report.days), default=0)
    for day, agg in report.days[-31:]:
        table.add_row(day, currency.format(agg.cost_nanos), bar(agg.cost_nanos, largest), f"{agg.calls:,}")
    return table


def render(report: Report, currency: Currency, console: Console) -> None:
    parts: list[RenderableType] = [_totals(report, currency)]
    for t in report.tables:
        if t.dimensions == ("day",):
            continue
        parts.append(_table(f"by {' x '.join(t.dimensions)}", t.dimensions, t.rows, report.totals, currency, t.other))
    parts.append(_daily(report, currency))
    if report.top_users:
        parts.append(_table("top users", ("user",), [((u,), a) for u, a in report.top_users], report.totals, currency))
    proj = report.projection
    if proj is not None:
        figure = currency.format(proj.projected_nanos) if proj.projected_nanos is not None else NONE
        parts.append(Text.assemble(
            ("month-end projection ", "bold"), (proj.month + ": ", "dim"), (figure, "bold"),
            ("  (so far " + currency.format(proj.month_to_date_nanos) + ")", "dim"),
            ("\n" + proj.basis, "dim"),
        ))
    console.print(Group(*parts))
