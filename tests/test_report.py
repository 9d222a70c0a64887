"""The period report's figures on a fixture of incident summaries with known times (every figure worked out by
hand below), and its PNG chart opened and checked."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from incidentctl.output import report_table
from incidentctl.report import (
    ReportError,
    build_report,
    group_figures,
    incident_figures,
    parse_since,
    percentile,
)
from incidentctl.report_chart import render_png

OPENED = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def at(seconds: float | None) -> str | None:
    return None if seconds is None else (OPENED + timedelta(seconds=seconds)).isoformat()


def summary(incident: str, severity: str, runbook: str, service: str, *, ack: float | None, mitigated: float | None,
            resolved: float | None, actions: int, approval: tuple[float, float, bool] | None = None,
            notes: int = 0, resolved_by: str = "alerts", closed_by: str | None = "dana") -> dict[str, Any]:
    """A summary as the lifecycle engine returns it; `approval` is (requested, decided, approved) in seconds."""
    steps: dict[str, Any] = {f"s{i}": {"kind": "action", "status": "succeeded", "seq": i} for i in range(actions)}
    steps["wait"] = {"kind": "sleep", "status": "succeeded", "seq": 90}  # not an action: not counted
    steps["skipped"] = {"kind": "action", "status": "skipped", "seq": 91}  # did not run: not counted
    approvals = []
    if approval:
        requested, decided, approved = approval
        steps["gate"] = {"kind": "approval", "status": "succeeded" if approved else "failed", "seq": 50,
                         "started_at": at(requested), "finished_at": at(decided)}
        approvals.append({"step": "gate", "approver": "alice", "approve": approved, "comment": "", "at": at(decided)})
    return {
        "incident_id": incident, "severity": severity, "runbook": runbook, "service": service,
        "status": "closed", "started_at": at(0), "steps": steps, "approvals": approvals,
        "roles": {"acknowledged_by": "bob" if ack is not None else None, "acknowledged_at": at(ack)},
        "times": {"opened_at": at(0), "acknowledged_at": at(ack), "mitigated_at": at(mitigated),
                  "resolved_at": at(resolved), "closed_at": at(4000)},
        "notes": [{"at": at(5), "by": "bob", "text": "looking"}] * notes,
        "severity_changes": [],
        "resolution": {"at": at(resolved), "by": resolved_by, "summary": ""} if resolved is not None else None,
        "closed_by": closed_by,
    }


# A: SEV1 crash/cart  ack 60  mitigated 300  resolved 900   3 actions, approval waited 60s, 1 note
# B: SEV1 crash/cart  ack 120 mitigated 600  resolved 1800  2 actions, approval waited 240s
# C: SEV2 oom/checkout ack 30 mitigated 200  resolved 400   4 actions
# D: SEV2 oom/checkout ack 90 never mitigated, resolved 3600 by a person; approval rejected after 30s
# E: SEV3 crash/cart  never acknowledged, mitigated 120, resolved 300  1 action, not closed by a person
# F: SEV4, recorded before lifecycle times: started 0, acked 45, runbook succeeded and ended at 500
FIXTURE = [
    summary("A", "SEV1", "crash", "cart", ack=60, mitigated=300, resolved=900, actions=3, approval=(100, 160, True),
            notes=1),
    summary("B", "SEV1", "crash", "cart", ack=120, mitigated=600, resolved=1800, actions=2,
            approval=(10, 250, True)),
    summary("C", "SEV2", "oom", "checkout", ack=30, mitigated=200, resolved=400, actions=4),
    summary("D", "SEV2", "oom", "checkout", ack=90, mitigated=None, resolved=3600, actions=1,
            approval=(20, 50, False), resolved_by="erin"),
    summary("E", "SEV3", "crash", "cart", ack=None, mitigated=120, resolved=300, actions=1, closed_by=None),
    {"incident_id": "F", "severity": "SEV4", "runbook": "crash", "service": "cart", "status": "resolved",
     "started_at": at(0), "finished_at": at(500), "approvals": [],
     "steps": {"a": {"kind": "check", "status": "succeeded"}, "b": {"kind": "wait_until", "status": "failed"}},
     "roles": {"acknowledged_by": "carl", "acknowledged_at": at(45)}},
]


def figures() -> list[Any]:
    return [incident_figures(s, {"incident_id": s["incident_id"]}) for s in FIXTURE]


def test_per_incident_durations_steps_and_waits() -> None:
    by_id = {f.incident_id: f for f in figures()}
    a, d, e, f = by_id["A"], by_id["D"], by_id["E"], by_id["F"]
    assert (a.time_to_acknowledge_s, a.time_to_mitigate_s, a.time_to_resolve_s) == (60, 300, 900)
    assert (d.time_to_mitigate_s, e.time_to_acknowledge_s) == (None, None)
    assert (f.time_to_acknowledge_s, f.time_to_mitigate_s, f.time_to_resolve_s) == (45, 500, 500), "legacy summary"
    # A: 3 actions ran (the sleep and the skipped one do not count); people: 1 vote + ack + 1 note + close = 4
    assert (a.automated_steps, a.manual_steps) == (3, 4)
    # D: 1 action; people: 1 vote + ack + resolved by erin + close = 4.  E: resolved by the alerts, nobody closed.
    assert (d.automated_steps, d.manual_steps) == (1, 4)
    assert (e.automated_steps, e.manual_steps) == (1, 0)
    assert (f.automated_steps, f.manual_steps) == (2, 1)
    assert (a.approval_waits_s, by_id["B"].approval_waits_s, d.approval_waits_s) == ([60], [240], [30])


def test_percentiles_interpolate_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([7], 90) == 7
    assert percentile([30, 45, 60, 90, 120], 50) == 60
    assert percentile([120, 30, 90, 45, 60], 90) == 108  # rank 3.6: 90 + 0.6 * (120 - 90)


def test_overall_figures_by_hand() -> None:
    (row,) = group_figures(figures(), None)
    assert row["group"] == "all" and row["incidents"] == 6
    # MTTA over A B C D F = [30, 45, 60, 90, 120]: p50 60, p90 at rank 3.6 = 90 + 0.6 * 30 = 108
    assert (row["mtta_n"], row["mtta_p50_s"], row["mtta_p90_s"]) == (5, 60, 108)
    # MTTM over A B C E F = [120, 200, 300, 500, 600]: p50 300, p90 = 500 + 0.6 * 100 = 560
    assert (row["mttm_n"], row["mttm_p50_s"], row["mttm_p90_s"]) == (5, 300, 560)
    # MTTR = [300, 400, 500, 900, 1800, 3600]: p50 at rank 2.5 = 700, p90 at rank 4.5 = 1800 + 0.5 * 1800 = 2700
    assert (row["mttr_n"], row["mttr_p50_s"], row["mttr_p90_s"]) == (6, 700, 2700)
    # automated 3+2+4+1+1+2 = 13; manual 4 + 3 (B: vote, ack, close) + 2 (C: ack, close) + 4 + 0 + 1 = 14
    assert (row["automated_steps"], row["manual_steps"], row["automated_share"]) == (13, 14, round(13 / 27, 3))
    # approval waits [30, 60, 240]: p50 60, p90 at rank 1.8 = 60 + 0.8 * 180 = 204
    assert (row["approvals"], row["approval_wait_p50_s"], row["approval_wait_p90_s"]) == (3, 60, 204)


def test_figures_by_severity_runbook_and_service() -> None:
    rows = {r["group"]: r for r in group_figures(figures(), "severity")}
    assert list(rows) == ["SEV1", "SEV2", "SEV3", "SEV4"]
    sev1 = rows["SEV1"]
    # MTTA [60, 120]: p50 90, p90 60 + 0.9 * 60 = 114; MTTR [900, 1800]: p50 1350, p90 900 + 0.9 * 900 = 1710
    assert (sev1["mtta_p50_s"], sev1["mtta_p90_s"], sev1["mttr_p50_s"], sev1["mttr_p90_s"]) == (90, 114, 1350, 1710)
    assert (rows["SEV2"]["mttm_n"], rows["SEV2"]["mttm_p50_s"]) == (1, 200)
    assert rows["SEV3"]["mtta_p50_s"] is None and rows["SEV3"]["mtta_n"] == 0
    runbooks = {r["group"]: r for r in group_figures(figures(), "runbook")}
    assert {k: v["incidents"] for k, v in runbooks.items()} == {"crash": 4, "oom": 2}
    # crash MTTR over A B E F = [300, 500, 900, 1800]: p50 at rank 1.5 = 700, p90 at rank 2.7 = 900 + 0.7 * 900
    assert (runbooks["crash"]["mttr_p50_s"], runbooks["crash"]["mttr_p90_s"]) == (700, 1530)
    services = {r["group"]: r["incidents"] for r in group_figures(figures(), "service")}
    assert services == {"cart": 4, "checkout": 2}
    with pytest.raises(ReportError, match="--by must be one of severity, runbook, service"):
        group_figures(figures(), "team")


def test_an_incident_without_summary_is_counted_not_measured() -> None:
    listed = {"incident_id": "G", "severity": "SEV1", "runbook": "crash", "service": "", "status": "mitigating"}
    blind = incident_figures(None, listed)
    assert blind.summary_source == "" and blind.time_to_resolve_s is None
    (row,) = group_figures([*figures(), blind], None)
    assert (row["incidents"], row["with_summary"], row["mtta_n"]) == (7, 6, 5)
    report = build_report([*figures(), blind], "service", OPENED, OPENED + timedelta(days=30))
    assert [g["group"] for g in report["groups"]] == ["(none)", "cart", "checkout"]
    assert report["without_summary"] == [{"incident_id": "G", "why": []}]
    text = report_table(report)
    assert "without a summary (no worker answered; counted, not measured): G" in text
    assert "11m40s / 45m" in text, "the all row's MTTR p50 / p90 (700 s, 2700 s)"


def test_a_period_without_incidents_is_a_report_of_none(tmp_path: Path) -> None:
    report = build_report([], "runbook", OPENED, OPENED + timedelta(days=1))
    assert (report["incidents"], report["groups"], report["total"]["mttr_p50_s"]) == (0, [], None)
    assert report_table(report).splitlines()[-1].split()[:2] == ["all", "0"]
    render_png(report, tmp_path / "none.png")
    assert png_size(tmp_path / "none.png")[0] > 0


def test_since_takes_a_duration_or_a_date() -> None:
    now = datetime(2024, 6, 1, tzinfo=UTC)
    assert parse_since("30d", now) == datetime(2024, 5, 2, tzinfo=UTC)
    assert parse_since("2024-05-01", now) == datetime(2024, 5, 1, tzinfo=UTC)
    assert parse_since("2024-05-01T12:30:00+02:00", now) == datetime(2024, 5, 1, 10, 30, tzinfo=UTC)
    with pytest.raises(ReportError, match="--since takes a duration before now"):
        parse_since("last tuesday", now)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "a PNG file"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_chart_is_a_png_with_bars_whiskers_and_labels(tmp_path: Path) -> None:
    from matplotlib.image import imread

    report = build_report(figures(), "severity", OPENED - timedelta(days=30), OPENED + timedelta(hours=2))
    path = tmp_path / "report.png"
    render_png(report, path)
    width, height = png_size(path)
    assert (width, height) == (round(max(8.0, 1.9 * 4 + 3) * 110), round(8.5 * 110))
    pixels = imread(str(path))[:, :, :3]
    not_white = (pixels < 0.95).any(axis=2).mean()
    assert 0.05 < not_white < 0.6, f"a drawn chart, not blank and not a solid block ({not_white:.2%} inked)"
    colours = {tuple(p) for p in (pixels.reshape(-1, 3) * 255).round().astype(int)[::7]}
    for bar in ((0x4C, 0x72, 0xB0), (0xDD, 0x84, 0x52), (0x55, 0xA8, 0x68), (0xC4, 0x4E, 0x52)):
        assert bar in colours, f"the bars of colour {bar} are drawn"


def test_the_chart_copes_with_groups_that_have_no_figures(tmp_path: Path) -> None:
    listed = {"incident_id": "G", "severity": "SEV1", "runbook": "crash", "service": "", "status": "open"}
    report = build_report([incident_figures(None, listed)], None, OPENED, OPENED + timedelta(days=1))
    path = tmp_path / "empty.png"
    render_png(report, path)
    assert png_size(path)[0] > 0
