"""The `incidentctl` command as a user runs it: real processes, real dev server, exit codes and sentences."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from incidentctl.devserver import DevServer, free_port

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "incidentctl.cli"]

GATED = """\
name: cli-gated
version: 1
severity: SEV2
parameters:
  who: {type: string, required: true}
  times: {type: integer, default: 1}
steps:
  - id: hello
    action: util.echo
    params: {message: "hello ${{ params.who }} x${{ params.times }}"}
  - id: gate
    approval: {message: "ship it?", approvers: [alice]}
"""


def cli(*args: str, check_ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*CLI, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    if check_ok:
        assert done.returncode == 0, done.stderr
    return done


def test_validate_passes_shipped_runbooks_and_names_the_line_of_a_broken_one(tmp_path: Path) -> None:
    ok = cli("runbook", "validate", "runbooks/")
    assert "ok  " in ok.stdout and "demo-http-service" in ok.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: broken\nversion: 1\nsteps:\n  - id: a\n    action: k8s.rollout_undoo\n")
    failed = cli("runbook", "validate", str(broken), check_ok=False)
    assert failed.returncode == 1
    assert f"{broken}:5:13: $.steps[0].action: unknown action 'k8s.rollout_undoo'" in failed.stderr
    empty = cli("runbook", "validate", str(tmp_path / "nothing-here"), check_ok=False)
    assert empty.returncode == 1 and "nothing-here: $: cannot read: No such file or directory" in empty.stderr


def test_validate_loads_neither_temporal_nor_a_client_library() -> None:
    """`runbook validate` is a local check meant to answer in well under a second: temporalio (all its
    protobufs) would cost it 0.1-0.2 s, and it talks to no server. The command runs in a fresh interpreter, which
    then lists what it has loaded."""
    code = ("import json, sys; from incidentctl.cli import main; code = main(['runbook', 'validate', 'runbooks/']); "
            "print(json.dumps({'exit': code, 'modules': sorted(sys.modules)}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    *report, last = done.stdout.splitlines()
    assert any(line.startswith("ok  runbooks/") for line in report), done.stdout
    loaded = json.loads(last)
    assert loaded["exit"] == 0 and "activities.k8s.api" in loaded["modules"], "the actions were catalogued"
    heavy_roots = ("temporalio", "kubernetes", "aiohttp", "boto3")
    heavy = [name for name in loaded["modules"] if name.split(".")[0] in heavy_roots or name.startswith("google.cloud")]
    assert heavy == []


def test_plan_and_actions_list_in_both_formats() -> None:
    plan = json.loads(cli("runbook", "plan", "demo-http-service", "--output", "json").stdout)
    assert plan["runbook"]["name"] == "demo-http-service" and len(plan["hash"]) == 64
    assert "approve_restart [approval]" in cli("runbook", "plan", "runbooks/demo-http-service.yaml").stdout
    actions = json.loads(cli("actions", "list", "-o", "json").stdout)
    check = next(a for a in actions if a["name"] == "http.check")
    assert check["mutates"] is False and "url" in check["params"]["properties"]
    table = cli("actions", "list").stdout
    assert "http.request" in table and "url*:string" in table
    missing = cli("runbook", "plan", "no-such-runbook", check_ok=False)
    assert missing.returncode == 1 and "no runbook named 'no-such-runbook'" in missing.stderr


def test_incident_lifecycle_from_the_command_line(dev_server: DevServer, tmp_path: Path, unique: str) -> None:
    # This test blocks on subprocesses, so its worker is a process too (the in-process one would starve).
    task_queue = f"cli-{unique}"
    worker = subprocess.Popen([sys.executable, "worker.py", "--address", dev_server.address, "--task-queue",
                               task_queue], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        _lifecycle(dev_server, tmp_path, unique, task_queue)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=20)


def test_show_without_a_worker_says_it_read_the_history(dev_server: DevServer, tmp_path: Path, unique: str) -> None:
    runbook = tmp_path / "gated.yaml"
    runbook.write_text(GATED)
    started = json.loads(cli("incident", "start", "--runbook", str(runbook), "--param", "who=x", "--key", unique,
                             "--address", dev_server.address, "--task-queue", f"nobody-{unique}", "-o", "json").stdout)
    shown = cli("incident", "show", started["incident_id"], "--address", dev_server.address)
    assert f"note: no worker polls task queue 'nobody-{unique}'; from history as of " in shown.stderr
    assert "status     open  (workflow RUNNING)" in shown.stdout and "runbook    cli-gated v1" in shown.stdout
    cli("incident", "cancel", started["incident_id"], "--address", dev_server.address)


def _show_until(incident: str, address: list[str], status: str, timeout: float = 30) -> dict:
    """`incident show -o json` until the incident reaches `status` (or the last state seen)."""
    deadline = time.monotonic() + timeout
    while True:
        state = json.loads(cli("incident", "show", incident, *address, "-o", "json").stdout)
        if state["status"] == status or time.monotonic() > deadline:
            return state
        time.sleep(0.3)


def _lifecycle(dev_server: DevServer, tmp_path: Path, unique: str, task_queue: str) -> None:
    runbook = tmp_path / "gated.yaml"
    runbook.write_text(GATED)
    conn = ["--address", dev_server.address, "--task-queue", task_queue]

    missing = cli("incident", "start", "--runbook", str(runbook), *conn, check_ok=False)
    assert missing.returncode == 1 and "missing required parameter 'who'" in missing.stderr
    bad_type = cli("incident", "start", "--runbook", str(runbook), "--param", "who=x", "--param", "times=many",
                   *conn, check_ok=False)
    assert "parameter 'times' must be an integer, got 'many'" in bad_type.stderr

    alert = tmp_path / "alert.json"
    alert.write_text(json.dumps({"labels": {"alertname": "Test"}}))
    started = json.loads(cli("incident", "start", "--runbook", str(runbook), "--param", "who=bob",
                             "--param", "times=2", "--key", unique, "--alert", str(alert), *conn, "-o", "json").stdout)
    incident = started["incident_id"]
    assert started["created"] is True and incident == f"incident-cli-gated-{unique}"
    again = cli("incident", "start", "--runbook", str(runbook), "--param", "who=bob", "--key", unique, *conn)
    assert "is already running: not started again" in again.stdout

    state = _show_until(incident, conn[:2], "waiting_approval")
    assert state["steps"]["hello"]["output"]["message"] == "hello bob x2"
    shown = cli("incident", "show", incident, *conn[:2]).stdout
    assert "WAITING FOR APPROVAL  step gate: ship it?" in shown

    listed = json.loads(cli("incident", "list", "--status", "waiting_approval", "--runbook", "cli-gated",
                            *conn[:2], "-o", "json").stdout)
    assert incident in [row["incident_id"] for row in listed]

    refused = cli("incident", "approve", incident, "--as", "mallory", *conn[:2], check_ok=False)
    assert refused.returncode == 1
    assert "approval refused: 'mallory' may not approve step 'gate'" in refused.stderr
    approved = cli("incident", "approve", incident, "--as", "alice", "--comment", "go", *conn[:2])
    assert "approved step gate as alice: 1/1 approvals, outcome approved" in approved.stdout

    # No alerts: the runbook's success resolves the incident, which stays open until a person closes it.
    state = _show_until(incident, conn[:2], "resolved")
    assert state["workflow_status"] == "RUNNING" and state["resolution"]["by"] == "runbook"
    noted = cli("incident", "note", incident, "--as", "bob", "checked", "the", "dashboards", *conn[:2])
    assert "note: done" in noted.stdout
    cli("incident", "severity", incident, "SEV1", "--as", "bob", "--reason", "customers affected", *conn[:2])
    same = cli("incident", "severity", incident, "SEV1", "--as", "bob", *conn[:2], check_ok=False)
    assert same.returncode == 1 and "the incident is already SEV1" in same.stderr
    refused = cli("incident", "close", incident, "--as", "bob", *conn[:2], check_ok=False)
    assert refused.returncode == 1 and "a SEV1 incident is closed after its review" in refused.stderr
    closed = cli("incident", "close", incident, "--as", "bob", "--no-review", *conn[:2])
    assert f"close: done; incident {incident} is closed" in closed.stdout
    state = _show_until(incident, conn[:2], "closed")
    assert state["workflow_status"] == "COMPLETED" and state["severity"] == "SEV1"
    assert state["notes"][0]["text"] == "checked the dashboards" and state["closed_by"] == "bob"
    timeline = json.loads(cli("incident", "timeline", incident, *conn[:2], "-o", "json").stdout)
    kinds = [e["kind"] for e in timeline]
    assert kinds[-1] == "incident_closed" and "severity_changed" in kinds and "note_added" in kinds
    late = cli("incident", "note", incident, "--as", "bob", "too late", *conn[:2], check_ok=False)
    assert late.returncode == 1 and "is closed" in late.stderr

    unknown = cli("incident", "show", "incident-nope", *conn[:2], check_ok=False)
    assert unknown.returncode == 1 and "no incident 'incident-nope'" in unknown.stderr


def test_unreachable_server_is_one_sentence() -> None:
    port = free_port()
    done = cli("incident", "list", "--address", f"127.0.0.1:{port}", check_ok=False)
    assert done.returncode == 1
    assert f"error: cannot reach Temporal at 127.0.0.1:{port}" in done.stderr


def _lines_until_ready(process: subprocess.Popen[str], timeout: float) -> list[str]:
    """What `incidentctl dev` prints up to its `ready:` line (or until it exits or the time is up)."""
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("ready:"):
            break
    return lines


def test_dev_starts_server_and_worker_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    port, ui_port, receiver_port = free_port(), free_port(), free_port()
    process = subprocess.Popen(
        [*CLI, "dev", "--port", str(port), "--ui-port", str(ui_port), "--db-file", str(tmp_path / "dev.db"),
         "--receiver-port", str(receiver_port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        output = "".join(_lines_until_ready(process, 60))
        assert f"temporal server  127.0.0.1:{port}" in output
        assert f"temporal web UI  http://127.0.0.1:{ui_port}" in output
        assert "worker           polling task queue 'incidentctl'" in output
        assert f"alert receiver   http://127.0.0.1:{receiver_port}/alertmanager  (no auth (dev mode))" in output
        assert f"web page         http://127.0.0.1:{receiver_port}/ui" in output
        with urllib.request.urlopen(f"http://127.0.0.1:{receiver_port}/healthz", timeout=10) as health:
            assert json.loads(health.read())["status"] == "ok"
        os.kill(process.pid, signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, rest
    assert "temporal server stopped" in rest and "alert receiver stopped" in rest and "Traceback" not in rest
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "the server's port is closed after Ctrl-C"
    assert (tmp_path / "dev.db").exists()


def test_dev_with_a_simulated_cluster_handles_a_crash_loop_alert_end_to_end(tmp_path: Path) -> None:
    """The README's dev loop: the printed alert goes in, the incident asks, `approve` lets it roll back."""
    port, ui_port, receiver_port = free_port(), free_port(), free_port()
    process = subprocess.Popen(
        [*CLI, "dev", "--simulate-cluster", "--port", str(port), "--ui-port", str(ui_port), "--db-file",
         str(tmp_path / "dev.db"), "--receiver-port", str(receiver_port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    address = ["--address", f"127.0.0.1:{port}"]
    try:
        lines = _lines_until_ready(process, 90)
        output = "".join(lines)
        sim_url = next(line.split()[2] for line in lines if line.startswith("simulated k8s"))
        alert = json.loads(output.split("-d '", 1)[1].split("'", 1)[0])
        assert alert["labels"]["alertname"] == "KubePodCrashLooping" and alert["labels"]["namespace"] == "shop"
        request = urllib.request.Request(f"http://127.0.0.1:{receiver_port}/alerts", data=json.dumps(alert).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=30) as answer:
            [outcome] = json.loads(answer.read())["incidents"]
        assert (outcome["runbook"], outcome["result"]) == ("k8s-pod-crashlooping", "started")
        incident = outcome["incident_id"]
        pending: list = []
        deadline = time.monotonic() + 60
        while not pending and time.monotonic() < deadline:
            pending = json.loads(cli("incident", "pending", *address, "-o", "json").stdout)
            time.sleep(0.5)
        assert pending and pending[0]["incident_id"] == incident and pending[0]["step"] == "approve_rollback"
        cli("incident", "approve", incident, "--as", "alice", "--comment", "roll it back", *address)
        # Rolled back and rolled out; it then watches for restarts for the runbook's default 2m (the shipped runbooks'
        # full runs, with a short window, are in test_k8s_runbooks.py).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = json.loads(cli("incident", "show", incident, *address, "-o", "json").stdout)
            if state["steps"].get("verify_rollout", {}).get("status") == "succeeded":
                break
            time.sleep(0.5)
        assert state["steps"]["verify_rollout"]["status"] == "succeeded", state
        assert state["steps"]["rollback"]["output"]["after"]["images"] == {"cart": "shop/cart:1.4.2"}
        assert state["current_steps"] == ["remedy", "verify_stable"]
        os.kill(process.pid, signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, rest
    assert "simulated cluster stopped" in rest and "Traceback" not in rest
    sim_port = int(sim_url.rsplit(":", 1)[1])
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", sim_port)) != 0, "the simulator is stopped with dev"


def test_the_demo_resolves_the_kubernetes_incident() -> None:
    """`bash scripts/demo.sh` runs exactly this after setup."""
    done = subprocess.run([*CLI, "demo"], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "APPROVAL REQUESTED  step approve_rollback: Roll back shop/cart from revision 2 to 1?" in done.stdout
    assert "shop/cart:1.4.2 -> shop/cart:1.4.3" in done.stdout
    assert "demo incident finished: closed" in done.stdout


def _interrupt(process: subprocess.Popen[str]) -> None:
    """Stop `dev` as Ctrl-C does, so it stops the servers it started in their own sessions (a SIGKILL would
    orphan them); SIGKILL only if it does not exit."""
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGINT)
    try:
        process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.mark.skipif(shutil.which("prometheus") is None or shutil.which("prometheus-alertmanager") is None,
                    reason="prometheus/prometheus-alertmanager not installed (bash scripts/setup.sh installs them)")
def test_dev_with_prometheus_raises_the_crash_loop_incident_by_itself_and_stops_everything(tmp_path: Path) -> None:
    port, ui_port, receiver_port = free_port(), free_port(), free_port()
    prometheus_port, alertmanager_port = free_port(), free_port()
    process = subprocess.Popen(
        [*CLI, "dev", "--simulate-cluster", "--with-prometheus", "--port", str(port), "--ui-port", str(ui_port),
         "--db-file", str(tmp_path / "dev.db"), "--receiver-port", str(receiver_port),
         "--prometheus-port", str(prometheus_port), "--alertmanager-port", str(alertmanager_port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    address = ["--address", f"127.0.0.1:{port}"]
    try:
        output = "".join(_lines_until_ready(process, 90))
        assert f"prometheus       http://127.0.0.1:{prometheus_port}" in output, output
        assert (f"alertmanager     http://127.0.0.1:{alertmanager_port}   -> "
                f"http://127.0.0.1:{receiver_port}/alertmanager") in output
        # Nobody posts an alert: the shipped rule fires in Prometheus and Alertmanager delivers it.
        # The bad rollout fires several rules (crash loop, pods not ready, replicas mismatch...): the first to
        # arrive opens the incident for shop/cart and the others join it, so there is one incident, holding the
        # crash-loop alert whichever runbook it runs.
        rows: list = []
        crash_loop = False
        deadline = time.monotonic() + 120
        while not crash_loop and time.monotonic() < deadline:
            rows = [row for row in json.loads(cli("incident", "list", *address, "-o", "json").stdout)
                    if row["service"].startswith("shop/cart")]
            for row in rows:
                shown = json.loads(cli("incident", "show", row["incident_id"], *address, "-o", "json").stdout)
                crash_loop = crash_loop or any(a["labels"].get("alertname") == "KubePodCrashLooping"
                                               for a in shown["alerts"].values())
            time.sleep(1)
        with urllib.request.urlopen(f"http://127.0.0.1:{prometheus_port}/api/v1/targets", timeout=10) as answer:
            targets = json.loads(answer.read())["data"]["activeTargets"]
        assert {(t["labels"]["job"], t["health"]) for t in targets} == {("kube-state-metrics", "up"),
                                                                         ("kubelet", "up")}
        assert crash_loop and len(rows) == 1, rows
        os.kill(process.pid, signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    finally:
        _interrupt(process)
    assert process.returncode == 0, rest
    assert "prometheus and alertmanager stopped" in rest and "Traceback" not in rest
    for stopped in (prometheus_port, alertmanager_port, port):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", stopped)) != 0, f"port {stopped} is closed after Ctrl-C"


def test_dev_with_prometheus_needs_the_simulated_cluster() -> None:
    done = cli("dev", "--with-prometheus", check_ok=False)
    assert done.returncode == 1
    assert "error: --with-prometheus scrapes the simulated cluster: add --simulate-cluster" in done.stderr


def test_version_and_whole_incident_ids_in_tables() -> None:
    from incidentctl.output import table

    assert cli("--version").stdout.startswith("incidentctl 0.")
    long_id = "incident-k8s-deployment-replicas-mismatch-shop-cart-prod-eu-west-1-0123456789"
    shown = table([{"incident_id": long_id, "service": "x" * 100}], ["incident_id", "service"])
    assert long_id in shown and "…" in shown, "ids are whole (people copy them); other cells are cut"
