"""The web page's report: `incidentctl report` as a page, with the time to acknowledge / mitigate / resolve drawn
as an inline SVG bar chart (p50 bars, whiskers to the p90) per group. Plain SVG text built here: the receiver
loads no plotting library, and the page's Content-Security-Policy allows no script for it."""

from __future__ import annotations

import html
from typing import Any

MEASURES = (("mtta", "acknowledge", "#4c72b0"), ("mttm", "mitigate", "#dd8452"), ("mttr", "resolve", "#55a868"))
# (largest value below which the unit is used, divisor, label)
UNITS = ((120, 1, "s"), (2 * 3600, 60, "min"), (2 * 86400, 3600, "h"), (float("inf"), 86400, "d"))
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 760, 320, 60, 60, 30


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _unit(groups: list[dict[str, Any]]) -> tuple[float, str]:
    largest = max((row.get(f"{short}_p90_s") or 0 for row in groups for short, _, _ in MEASURES), default=0)
    return next((divisor, label) for limit, divisor, label in UNITS if largest < limit)


def chart_svg(report: dict[str, Any]) -> str:
    """The chart, or a sentence when no incident in the period has a time to draw."""
    groups = report["groups"]
    if not any(row.get(f"{short}_n") for row in groups for short, _, _ in MEASURES):
        return '<p id="mttr-chart">No incident in this period has a time to acknowledge, mitigate or resolve yet.</p>'
    divisor, unit = _unit(groups)
    tallest = max((row.get(f"{short}_p90_s") or 0) / divisor for row in groups for short, _, _ in MEASURES) or 1.0
    plot_h, plot_w = HEIGHT - BOTTOM - TOP, WIDTH - LEFT - 20
    slot = plot_w / max(len(groups), 1)
    bar = slot / (len(MEASURES) + 1)

    def y(value: float) -> float:
        return TOP + plot_h - plot_h * value / (tallest * 1.1)

    parts = [f'<svg id="mttr-chart" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="time to acknowledge, mitigate and resolve">',
             f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - 10}" y2="{TOP + plot_h}" stroke="#333"/>',
             f'<text x="6" y="{TOP - 10}" font-size="12">{unit} (p50, whisker to p90)</text>']
    for tick in range(5):
        value = tallest * 1.1 * tick / 4
        parts.append(f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" font-size="11" text-anchor="end">'
                     f'{value:.3g}</text>')
    for index, row in enumerate(groups):
        x0 = LEFT + index * slot + bar / 2
        for offset, (short, label, colour) in enumerate(MEASURES):
            p50, p90 = row.get(f"{short}_p50_s"), row.get(f"{short}_p90_s")
            if p50 is None:
                continue
            x = x0 + offset * bar
            top, whisker = y(p50 / divisor), y((p90 or p50) / divisor)
            parts.append(f'<rect class="bar {short}" x="{x:.1f}" y="{top:.1f}" width="{bar * 0.9:.1f}" '
                         f'height="{TOP + plot_h - top:.1f}" fill="{colour}"><title>{_e(row["group"])}: time to '
                         f'{label} p50 {p50 / divisor:.3g} {unit}, p90 {(p90 or p50) / divisor:.3g} {unit}</title>'
                         f'</rect>')
            middle = x + bar * 0.45
            parts.append(f'<line x1="{middle:.1f}" y1="{top:.1f}" x2="{middle:.1f}" y2="{whisker:.1f}" '
                         'stroke="#333"/>')
        parts.append(f'<text x="{x0 + bar * 1.4:.1f}" y="{TOP + plot_h + 18}" font-size="12" text-anchor="middle">'
                     f'{_e(row["group"])} ({row["incidents"]})</text>')
    for offset, (_, label, colour) in enumerate(MEASURES):
        x = LEFT + offset * 170
        parts.append(f'<rect x="{x}" y="{HEIGHT - 22}" width="12" height="12" fill="{colour}"/>'
                     f'<text x="{x + 18}" y="{HEIGHT - 12}" font-size="12">time to {label}</text>')
    parts.append("</svg>")
    return "".join(parts)


def report_table(report: dict[str, Any]) -> str:
    def cell(value: Any) -> str:
        return "-" if value is None else _e(value)

    rows = "".join(
        f'<tr><td>{_e(row["group"])}</td><td>{row["incidents"]}</td>'
        + "".join(f'<td>{cell(row.get(f"{short}_p50_s"))}</td><td>{cell(row.get(f"{short}_p90_s"))}</td>'
                  for short, _, _ in MEASURES)
        + f'<td>{cell(row.get("automated_share"))}</td></tr>' for row in report["groups"])
    heads = "".join(f"<th>{short} p50 s</th><th>{short} p90 s</th>" for short, _, _ in MEASURES)
    return (f'<table id="report"><tr><th>group</th><th>incidents</th>{heads}<th>automated share</th></tr>{rows}'
            "</table>")
