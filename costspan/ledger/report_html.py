"""``costspan report --html FILE``: one self-contained page (inline CSS and SVG, no script, no
network), so it opens anywhere, can be mailed, and renders the same in a headless browser.

Charts are plain SVG drawn here rather than a JS chart library: nothing to download or bundle,
and the numbers in the page are the report's own, exact to the displayed precision.
"""

from __future__ import annotations

from html import escape

from costspan.ledger.report import Report, since_label, tokens
from costspan.money import Currency

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac")
STATUS_COLOURS = {"ok": "#59a14f", "warning": "#edc948", "critical": "#f28e2b", "exceeded": "#e15759"}

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px;margin:0 0 4px} h2{font-size:16px;margin:0 0 12px}
.sub{color:#666;margin-bottom:18px;font-size:13px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:18px}
.card{background:#fff;border:1px solid #e3e3e3;border-radius:8px;padding:10px 14px;min-width:130px}
.card .k{font-size:12px;color:#666}.card .v{font-size:20px;font-weight:600}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px}
.panel{background:#fff;border:1px solid #e3e3e3;border-radius:8px;padding:14px}
.wide{grid-column:1 / span 2}
table{border-collapse:collapse;font-size:13px;width:100%} td,th{padding:3px 8px;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums} tr:nth-child(even){background:#f5f5f5}
.legend span{display:inline-block;margin-right:12px;font-size:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
.note{font-size:12px;color:#666;margin-top:8px}
svg text{font-family:inherit}
"""


def _colours(names: list[str]) -> dict[str, str]:
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def stacked_days(report: Report, currency: Currency, width: int = 1100, height: int = 260) -> str:
    """Daily cost by provider, stacked, providers ordered by total cost."""
    totals: dict[str, int] = {}
    for parts in report.day_provider.values():
        for provider, nanos in parts.items():
            totals[provider] = totals.get(provider, 0) + nanos
    providers = sorted(totals, key=lambda p: -totals[p])
    colours = _colours(providers)
    days = [d for d, _ in report.days]
    largest = max((sum(report.day_provider.get(d, {}).values()) for d in days), default=0) or 1
    left, bottom, top = 70, 24, 10
    plot_w, plot_h = width - left - 10, height - bottom - top
    slot = plot_w / max(1, len(days))
    bar_w = max(1.0, slot * 0.8)
    out = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" style="max-width:100%;height:auto" '
           f'role="img" '
           f'aria-label="daily cost by provider">']
    for i in range(5):
        value = largest * i // 4
        y = top + plot_h - plot_h * i / 4
        out.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="#666">'
                   f'{escape(currency.format(value))}</text>')
    label_every = max(1, len(days) // 10)
    for i, day in enumerate(days):
        x = left + i * slot + (slot - bar_w) / 2
        y = top + plot_h
        for provider in providers:
            nanos = report.day_provider.get(day, {}).get(provider, 0)
            if nanos <= 0:
                continue
            h = plot_h * nanos / largest
            y -= h
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                       f'fill="{colours[provider]}"><title>{escape(day)} {escape(provider)}: '
                       f'{escape(currency.format(nanos))}</title></rect>')
        if i % label_every == 0:
            out.append(f'<text x="{x + bar_w / 2:.1f}" y="{height - 6}" font-size="11" text-anchor="middle" '
                       f'fill="#666">{escape(day[5:])}</text>')
    out.append("</svg>")
    legend = "".join(f'<span><i style="background:{colours[p]}"></i>{escape(p)}</span>' for p in providers)
    return "".join(out) + f'<div class="legend">{legend}</div>'


def hbars(items: list[tuple[str, int, str]], *, width: int = 520, colour: str = "#4e79a7",
          maximum: float | None = None, colours: list[str] | None = None) -> str:
    """Horizontal bars: (label, value, value text). ``maximum`` fixes the scale (utilization = 1.0)."""
    if not items:
        return '<p class="note">nothing to show for this period</p>'
    row_h, label_w, text_w = 22, 170, 110
    height = row_h * len(items) + 4
    largest = maximum or max(v for _, v, _ in items) or 1
    bar_space = width - label_w - text_w
    out = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}">']
    for i, (name, value, text) in enumerate(items):
        y = i * row_h + 2
        w = max(1.0, bar_space * min(value, largest) / largest) if value > 0 else 0
        fill = colours[i] if colours else colour
        short = name if len(name) <= 26 else name[:25] + "…"
        out.append(f'<text x="{label_w - 6}" y="{y + 15}" font-size="12" text-anchor="end">{escape(short)}</text>'
                   f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" rx="2" fill="{fill}">'
                   f'<title>{escape(name)}: {escape(text)}</title></rect>'
                   f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" font-size="12" fill="#444">{escape(text)}</text>')
    out.append("</svg>")
    return "".join(out)


def _model_bars(report: Report, currency: Currency) -> str:
    return hbars([(model, a.cost_nanos, currency.format(a.cost_nanos)) for model, a in report.models[:12]])


def _budget_bars(report: Report) -> str:
    if not report.budgets:
        return '<p class="note">no budgets configured (or the budget store is not reachable from here)</p>'
    items, colours = [], []
    for b in report.budgets:
        raw = b.get("utilization")
        utilization = float(raw) if isinstance(raw, (int, float)) else 0.0
        items.append((str(b.get("name")), int(utilization * 1000), f"{utilization * 100:.0f}% {b.get('status', '')}"))
        colours.append(STATUS_COLOURS.get(str(b.get("status")), "#4e79a7"))
    return hbars(items, maximum=1000, colours=colours)


def _table(report: Report, currency: Currency) -> str:
    rows = []
    for t in report.tables:
        for key, a in t.rows:
            rows.append(f"<tr><td>{escape(' x '.join(t.dimensions))}</td><td>{escape(' / '.join(key))}</td>"
                        f'<td class="n">{escape(currency.format(a.cost_nanos))}</td><td class="n">{a.calls:,}</td>'
                        f'<td class="n">{tokens(a.input_tokens)}</td><td class="n">{tokens(a.output_tokens)}</td></tr>')
    return ('<table><tr><th>by</th><th>group</th><th class="n">cost</th><th class="n">calls</th>'
            '<th class="n">input</th><th class="n">output</th></tr>' + "".join(rows) + "</table>")


def render(report: Report, currency: Currency) -> str:
    t = report.totals
    change = report.change()
    change_text = "n/a" if change is None else f"{'+' if change >= 0 else ''}{change * 100:.1f}%"
    proj = report.projection
    proj_text = currency.format(proj.projected_nanos) if proj and proj.projected_nanos is not None else "n/a"
    cards = [
        ("cost", currency.format(t.cost_nanos)),
        ("calls", f"{t.calls:,}"),
        ("success rate", f"{t.success_rate * 100:.1f}%" if t.success_rate is not None else "n/a"),
        ("tokens in / out", f"{tokens(t.input_tokens)} / {tokens(t.output_tokens)}"),
        ("vs previous period", change_text),
        (f"projected {proj.month if proj else 'month'}", proj_text),
    ]
    card_html = "".join(f'<div class="card"><div class="k">{escape(k)}</div><div class="v">{escape(v)}</div></div>'
                        for k, v in cards)
    users = hbars([(u, a.cost_nanos, currency.format(a.cost_nanos)) for u, a in report.top_users], colour="#59a14f")
    basis = escape(proj.basis) if proj else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>costspan report</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>
<body>
<h1>costspan report</h1>
<div class="sub">{escape(since_label(report.period, report.tz))} · money in {escape(currency.code)} ·
generated {escape(report.generated_at.astimezone(report.tz).strftime('%Y-%m-%d %H:%M %Z'))}</div>
<div class="cards">{card_html}</div>
<div class="grid">
<div class="panel wide"><h2>Daily cost by provider</h2>{stacked_days(report, currency)}</div>
<div class="panel"><h2>Cost by model</h2>{_model_bars(report, currency)}</div>
<div class="panel"><h2>Top users</h2>{users}</div>
<div class="panel"><h2>Budget utilization</h2>{_budget_bars(report)}</div>
<div class="panel"><h2>Breakdowns</h2>{_table(report, currency)}<p class="note">{basis}</p></div>
</div>
</body></html>
"""
