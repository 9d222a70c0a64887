"""`incidentctl report --png`: the report as a chart a person would rather look at than the table.

Top: per group, bars of the p50 time to acknowledge / mitigate / resolve with whiskers up to the p90, and the
number of incidents above each group. Bottom: per group, steps run by actions vs by people, with the median
approval wait. matplotlib is imported here only (it costs a second), drawing on the Agg canvas without pyplot,
so no display and no global state is involved.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

MEASURES = (("mtta", "acknowledge", "#4c72b0"), ("mttm", "mitigate", "#dd8452"), ("mttr", "resolve", "#55a868"))
AUTOMATED_COLOUR, MANUAL_COLOUR = "#4c72b0", "#c44e52"
# (largest value below which the unit is used, divisor, label)
UNITS = ((120, 1, "seconds"), (2 * 3600, 60, "minutes"), (2 * 86400, 3600, "hours"), (float("inf"), 86400, "days"))


def _unit(report: dict[str, Any]) -> tuple[float, str]:
    largest = max((row.get(f"{short}_p90_s") or 0 for row in report["groups"] for short, _, _ in MEASURES), default=0)
    return next((divisor, label) for limit, divisor, label in UNITS if largest < limit)


def _period(report: dict[str, Any]) -> str:
    since, until = datetime.fromisoformat(report["since"]), datetime.fromisoformat(report["until"])
    days = (until - since).total_seconds() / 86400
    span = f"{days:.0f} days" if days >= 2 else f"{days * 24:.0f} hours"
    return f"{since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC ({span})"


def render_png(report: dict[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups = report["groups"]
    names = [row["group"] for row in groups]
    positions = list(range(len(groups)))
    width = 0.26
    divisor, unit = _unit(report)
    figure = Figure(figsize=(max(8.0, 1.9 * len(groups) + 3), 8.5), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    times, steps = figure.subplots(2, 1, height_ratios=(3, 2))
    by = f", by {report['by']}" if report.get("by") else ""
    figure.suptitle(f"Incident response, {_period(report)}{by}\n{report['incidents']} incidents",
                    fontsize=13, fontweight="bold")

    tallest = 0.0
    bars: list[tuple[list[float], list[float], list[dict[str, Any]], str]] = []
    for offset, (short, label, colour) in enumerate(MEASURES):
        p50 = [(row.get(f"{short}_p50_s") or 0) / divisor for row in groups]
        p90 = [(row.get(f"{short}_p90_s") or 0) / divisor for row in groups]
        xs = [p + (offset - 1) * width for p in positions]
        times.bar(xs, p50, width, color=colour, label=f"time to {label} (p50)")
        times.errorbar(xs, p50, yerr=[[0] * len(p50), [max(hi - lo, 0) for lo, hi in zip(p50, p90, strict=True)]],
                       fmt="none", ecolor="#333333", capsize=5, linewidth=1.2)
        bars.append((xs, p50, groups, short))
        tallest = max([tallest, *p50, *p90])
    headroom = tallest * 1.18 or 1.0
    times.set_ylim(0, headroom)
    for xs, heights, rows, short in bars:
        for x, height, row in zip(xs, heights, rows, strict=True):
            seconds = row.get(f"{short}_p50_s")
            if seconds is None:
                times.text(x, 0, "n/a", ha="center", va="bottom", fontsize=8, color="#777777", rotation=90)
            elif height > headroom * 0.08:  # the value inside its bar, where there is room for it
                times.text(x, height / 2, _short(seconds), ha="center", va="center", fontsize=8, color="white",
                           fontweight="bold", rotation=90)
    for position, row in zip(positions, groups, strict=True):
        times.text(position, headroom * 0.97, f"{row['incidents']} incident{'s' if row['incidents'] != 1 else ''}",
                   ha="center", va="top", fontsize=10, fontweight="bold")
    times.set_xticks(positions, names, fontsize=10)
    times.set_ylabel(f"{unit} (bar: p50, whisker: p90)")
    times.set_title("Time from opening to acknowledge, mitigate and resolve", fontsize=11)
    times.legend(loc="upper left", fontsize=9, frameon=False, bbox_to_anchor=(0, 0.9))
    times.grid(axis="y", alpha=0.3)

    automated = [row["automated_steps"] for row in groups]
    manual = [row["manual_steps"] for row in groups]
    steps.bar(positions, automated, 0.5, color=AUTOMATED_COLOUR, label="steps run by actions")
    steps.bar(positions, manual, 0.5, bottom=automated, color=MANUAL_COLOUR, label="approvals and people's commands")
    for position, row in zip(positions, groups, strict=True):
        total = row["automated_steps"] + row["manual_steps"]
        share = f"{row['automated_share'] * 100:.0f}% automated" if row.get("automated_share") is not None else ""
        wait = row.get("approval_wait_p50_s")
        waited = f"approval wait p50 {_short(wait)}" if wait is not None else "no approvals"
        steps.text(position, total, f"{share}\n{waited}", ha="center", va="bottom", fontsize=8.5)
    steps.set_ylim(0, max([a + m for a, m in zip(automated, manual, strict=True)] + [1]) * 1.45)
    steps.set_xticks(positions, names, fontsize=10)
    steps.set_ylabel("steps")
    steps.set_title("Who did the work", fontsize=11)
    steps.legend(loc="upper right", fontsize=9, frameon=False)
    steps.grid(axis="y", alpha=0.3)
    figure.savefig(path, format="png")


def _short(seconds: float) -> str:
    from incidentctl.dsl.durations import format_duration

    # Whole minutes past two hours: the seconds of a long wait are noise on a chart.
    return format_duration(seconds if seconds < 7200 else round(seconds / 60) * 60)
