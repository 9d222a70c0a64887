"""`incidentctl incident review` and `incidentctl report` as a user runs them: processes, exit codes, files.

The report covers every incident on its server, so this module runs a Temporal dev server of its own: the
figures are then exactly those of the incidents started here.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from incidentctl.devserver import DevServer
from tests.test_cli import cli

ROOT = Path(__file__).resolve().parents[1]

RUNBOOK = """\
name: cli-review
version: 1
severity: SEV2
service: shop
steps:
  - id: hello
    action: util.echo
    params: {message: hello}
  - id: gate
    approval: {message: "ship it?", approvers: [alice]}
  - id: broken
    action: util.fail
    params: {times: -1, error_type: Boom, message: always broken}
    retry: {max_attempts: 1}
    on_failure: continue
"""


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    log_dir = tmp_path_factory.mktemp("review-temporal")
    server = DevServer(headless=True, db_file=str(log_dir / "temporal.db"), log_file=log_dir / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _state(incident: str, address: list[str]) -> dict:
    return json.loads(cli("incident", "show", incident, *address, "-o", "json").stdout)


def _until(incident: str, address: list[str], check: object, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        state = _state(incident, address)
        if check(state) or time.monotonic() > deadline:  # type: ignore[operator]
            return state
        time.sleep(0.3)


def _incident(runbook: Path, key: str, severity: str, conn: list[str]) -> str:
    """Start one incident, approve its gate as alice, close it once resolved, and wait for its end."""
    started = json.loads(cli("incident", "start", "--runbook", str(runbook), "--key", key, "--severity", severity,
                             *conn, "-o", "json").stdout)
    incident = started["incident_id"]
    address = conn[:2]
    _until(incident, address, lambda s: s["pending_approvals"])
    cli("incident", "approve", incident, "--as", "alice", "--comment", "ship it", *address)
    # No alerts: the runbook's success resolves it; a person closes it (without the review, here).
    _until(incident, address, lambda s: s["status"] == "resolved")
    cli("incident", "close", incident, "--as", "alice", "--no-review", *address)
    state = _until(incident, address, lambda s: s["workflow_status"] == "COMPLETED")
    assert state["status"] == "closed", state
    return incident


def test_review_and_report_from_the_command_line(own_server: DevServer, tmp_path: Path) -> None:
    runbook = tmp_path / "cli-review.yaml"
    runbook.write_text(RUNBOOK)
    task_queue = "cli-review"
    conn = ["--address", own_server.address, "--task-queue", task_queue]
    address = conn[:2]
    worker = subprocess.Popen([sys.executable, "worker.py", "--address", own_server.address, "--task-queue",
                               task_queue], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        first = _incident(runbook, "one", "SEV2", conn)
        second = _incident(runbook, "two", "SEV1", conn)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=20)
    # No worker from here on: a closed incident's review and the report need none.

    markdown = cli("incident", "review", first, *address).stdout
    assert markdown.startswith(f"# Post-incident review: {first}\n")
    assert "alice approved `gate` (“ship it”) → approved" in markdown
    assert "Failure: step `broken`: Boom: always broken" in markdown
    assert "| Service(s) | shop |" in markdown

    review = json.loads(cli("incident", "review", first, *address, "--format", "json").stdout)
    assert [s["step"] for s in review["steps"]] == ["hello", "gate", "broken"]
    assert [v["approver"] for v in review["approvals"][0]["votes"]] == ["alice"]
    assert review["sources"]["summary"] == "workflow result" and review["missing"] == []

    written = tmp_path / "review.md"
    done = cli("incident", "review", second, *address, "-o", str(written))
    assert done.stdout == f"wrote the review of {second} to {written} (md)\n"
    assert written.read_text().startswith(f"# Post-incident review: {second}\n")
    assert "| Severity | SEV1 |" in written.read_text()

    report = json.loads(cli("report", "--since", "1h", *address, "--output", "json").stdout)
    assert report["incidents"] == 2 and {i["incident_id"] for i in report["per_incident"]} == {first, second}
    (everything,) = report["groups"]
    assert (everything["group"], everything["mttr_n"], everything["approvals"]) == ("all", 2, 2)
    # 2 actions each; a vote and the close by a person each
    assert everything["automated_steps"] == 4 and everything["manual_steps"] == 4

    table = cli("report", "--since", "1h", "--by", "severity", *address).stdout
    lines = table.splitlines()
    assert lines[0].startswith("incidents opened ") and lines[0].endswith(": 2")
    assert [line.split()[0] for line in lines[3:]] == ["SEV1", "SEV2", "all"]

    png = tmp_path / "report.png"
    done = cli("report", "--since", "1h", "--by", "severity", "--png", str(png), *address, "--output", "json")
    assert json.loads(done.stdout)["incidents"] == 2 and f"wrote the chart to {png}" in done.stderr
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 800 and height >= 800


def test_review_refusals_are_one_sentence(own_server: DevServer) -> None:
    address = ["--address", own_server.address]
    unknown = cli("incident", "review", "incident-nope", *address, check_ok=False)
    assert unknown.returncode == 1 and "error: no incident 'incident-nope'" in unknown.stderr
    bad_field = cli("incident", "review", "incident-nope", "--set", "rootcause=x", "--as", "alice", *address,
                    check_ok=False)
    assert bad_field.returncode == 1 and "error: the review has no field 'rootcause'" in bad_field.stderr
    nobody = cli("incident", "review", "incident-nope", "--set", "root_cause=x", "--as", " ", *address,
                 check_ok=False)
    assert nobody.returncode == 1 and "error: say who edits the review (--as NAME)" in nobody.stderr
    since = cli("report", "--since", "last tuesday", *address, check_ok=False)
    assert since.returncode == 1 and "error: --since takes a duration before now" in since.stderr
