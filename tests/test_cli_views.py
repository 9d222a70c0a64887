"""The CLI's views of incidents as a user runs them, on the real dev server with real worker processes: show and
timeline with the worker gone, watch and `start --wait` progress, `list -w`, short ids, YAML, completion, help."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import Client
from temporalio.worker import Worker

from incidentctl.devserver import DevServer
from tests.conftest import TEST_TASK_QUEUE, eventually
from tests.test_cli import CLI, GATED, ROOT, cli
from workflows.model import Closure

LIVE = """\
name: cli-live
version: 1
severity: SEV3
parameters:
  seconds: {type: number, default: 4}
steps:
  - id: hello
    action: util.echo
    params: {message: hi}
  - id: nap
    action: util.sleep
    params: {seconds: "${{ params.seconds }}"}
"""


@contextmanager
def worker_process(address: str, task_queue: str) -> Iterator[subprocess.Popen[bytes]]:
    worker = subprocess.Popen([sys.executable, "worker.py", "--address", address, "--task-queue", task_queue],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        yield worker
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)


class Lines:
    """A process's stdout, read by a thread, so a test can wait for a line with a deadline; its stderr is read
    by another, so the process never blocks on a full pipe nobody reads (it then could not even stop)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process, self.lines, self.errors = process, [], []
        self._thread = threading.Thread(target=self._read, args=(process.stdout, self.lines), daemon=True)
        self._errors = threading.Thread(target=self._read, args=(process.stderr, self.errors), daemon=True)
        self._thread.start()
        self._errors.start()

    @staticmethod
    def _read(stream: Any, into: list[str]) -> None:
        assert stream is not None
        for line in stream:
            into.append(line)

    def wait_for(self, check: Callable[[str], bool], timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((line for line in list(self.lines) if check(line)), None)
            if found is not None:
                return found
            if self.process.poll() is not None and not self._thread.is_alive():
                break
            time.sleep(0.2)
        raise AssertionError(f"no such line within {timeout}s; output so far:\n{''.join(self.lines)}")

    def text(self) -> str:
        self._thread.join(timeout=10)
        return "".join(self.lines)


def popen(command: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def popen_cli(*args: str) -> subprocess.Popen[str]:
    return popen([*CLI, *args])


def _signal_state(pid: int) -> str:
    """The kernel's view of a process that did not stop: its state, what it waits in, its signal masks."""
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError as exc:
        return f"no /proc view: {exc}"
    kept = [line for line in status if line.split(":")[0] in ("State", "SigBlk", "SigIgn", "SigCgt", "Threads")]
    return "; ".join(kept) + f"; wchan {wchan}"


def interrupt(lines: Lines) -> tuple[int, str]:
    """Ctrl-C, as a terminal sends it; the exit code and stderr."""
    process = lines.process
    os.kill(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        seen = _signal_state(process.pid)  # ignored or blocked SIGINT, or stuck in a write? (seen once in CI)
        os.killpg(process.pid, signal.SIGKILL)
        raise AssertionError(f"Ctrl-C did not stop {process.args} ({seen}); its stderr ends with:\n"
                             f"{''.join(lines.errors)[-3000:]}") from None
    lines._errors.join(timeout=10)
    return process.returncode, "".join(lines.errors)


def show_json(incident: str, address: list[str], *extra: str) -> dict:
    return json.loads(cli("incident", "show", incident, *address, "-o", "json", *extra).stdout)


def until_status(incident: str, address: list[str], status: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        state = show_json(incident, address)
        if state["status"] == status or time.monotonic() > deadline:
            assert state["status"] == status, state
            return state
        time.sleep(0.3)


def test_watch_wait_short_ids_and_yaml_with_a_worker_then_views_of_the_closed_incident_without_one(
        dev_server: DevServer, tmp_path: Path, unique: str) -> None:
    runbook = tmp_path / "live.yaml"
    runbook.write_text(LIVE)
    task_queue = f"views-{unique}"
    address = ["--address", dev_server.address]
    start = ["incident", "start", "--runbook", str(runbook), *address, "--task-queue", task_queue]
    with worker_process(dev_server.address, task_queue):
        # `start --wait` says what happens while it waits, then shows the incident.
        waited = cli(*start, "--key", f"{unique}-wait", "--param", "seconds=3", "--wait", "--interval", "0.5")
        assert "step_started hello" in waited.stdout and "step_started nap" in waited.stdout, waited.stdout
        assert "step_succeeded nap" in waited.stdout and "runbook outcome succeeded" in waited.stdout
        assert waited.stdout.index("step_started nap") < waited.stdout.index("runbook outcome succeeded")

        # A second incident of the same runbook: now a prefix of both ids is ambiguous, of one it is not.
        watched = f"incident-cli-live-{unique}-watch"
        # Long enough for a CLI on a loaded machine to see the nap's heartbeat (8 s was missed with 5 suites at once).
        cli(*start, "--key", f"{unique}-watch", "--param", "seconds=15")
        ambiguous = cli("incident", "show", f"incident-cli-live-{unique}", *address, check_ok=False)
        assert ambiguous.returncode == 1
        assert f"'incident-cli-live-{unique}' is ambiguous: it begins 2 incident ids" in ambiguous.stderr
        assert watched in ambiguous.stderr and f"incident-cli-live-{unique}-wait" in ambiguous.stderr

        # `watch` by a short id (without the `incident-` prefix): steps, heartbeat progress, until it closes.
        watch = popen_cli("incident", "watch", f"cli-live-{unique}-wat", *address, "--interval", "0.5")
        lines = Lines(watch)
        try:
            assert lines.wait_for(lambda line: line.startswith("watching ")) == f"watching {watched} (Ctrl-C to stop)\n"
            progress = lines.wait_for(lambda line: "step nap (util.sleep) started" in line)
            assert "attempt 1" in progress and "remaining_s" in progress, progress
            shown = cli("incident", "show", watched, *address).stdout
            assert re.search(r"progress   step nap \(util.sleep\) started for 0:00:\d\d", shown), shown
            assert "remaining_s" in shown, shown
            lines.wait_for(lambda line: "status resolved" in line)
            cli("incident", "close", f"cli-live-{unique}-watc", "--as", "bob", *address)
            watch.wait(timeout=60)
        finally:
            if watch.poll() is None:
                os.killpg(watch.pid, signal.SIGKILL)
        output = lines.text()
        assert watch.returncode == 0, output
        assert "step_succeeded nap" in output and f"incident {watched} ended: closed (workflow completed)" in output
        # Every line says how long after the incident opened it happened.
        assert all(line.startswith("[0:0") for line in output.splitlines()[1:]), output

        shown = yaml.safe_load(cli("incident", "show", watched, *address, "-o", "yaml").stdout)
        assert shown["status"] == "closed" and shown["source"] == "workflow result" and shown["source_note"] is None
        listed = yaml.safe_load(cli("incident", "list", "--runbook", "cli-live", *address, "-o", "yaml").stdout)
        assert {row["incident_id"] for row in listed} >= {watched, f"incident-cli-live-{unique}-wait"}

    # The worker is gone: a closed incident's state is its result, its timeline its history.
    shown = cli("incident", "show", watched, *address)
    assert "status     closed  (workflow COMPLETED)" in shown.stdout and "note:" not in shown.stderr
    timeline = cli("incident", "timeline", watched, *address, "--query-timeout", "1", "-o", "json")
    assert "note: no worker" in timeline.stderr and "; from history as of 20" in timeline.stderr, timeline.stderr
    events = json.loads(timeline.stdout)
    steps = {e.get("step"): e["detail"]["outcome"] for e in events if e["kind"] == "step"}
    assert steps == {"hello": "succeeded", "nap": "succeeded"}
    assert events[-1]["kind"] == "workflow_closed" and events[-1]["detail"]["how"] == "completed"


async def test_show_timeline_and_watch_of_a_running_incident_whose_worker_died_then_terminated(
        dev_server: DevServer, client: Client, tmp_path: Path, unique: str) -> None:
    runbook = tmp_path / "gated.yaml"
    runbook.write_text(GATED)
    task_queue = f"dies-{unique}"
    address = ["--address", dev_server.address]
    with worker_process(dev_server.address, task_queue) as worker:
        started = json.loads(cli("incident", "start", "--runbook", str(runbook), "--param", "who=x", "--key", unique,
                                 *address, "--task-queue", task_queue, "-o", "json").stdout)
        incident = started["incident_id"]
        until_status(incident, address, "waiting_approval")
        os.killpg(worker.pid, signal.SIGKILL)  # no goodbye: the server still counts it as polling for a while
        worker.wait(timeout=30)

    shown = cli("incident", "show", incident, *address, "--query-timeout", "2")
    assert "note: no worker answered; from history as of 20" in shown.stderr, shown.stderr
    assert "status     waiting_approval  (workflow RUNNING)" in shown.stdout
    assert "(no worker answered; from history as of" in shown.stdout
    state = show_json(incident, address, "--query-timeout", "2")
    assert state["source"] == "history" and state["steps"]["hello"]["status"] == "succeeded"
    assert state["steps"]["hello"]["output"]["message"] == "hello x x1"  # the action's result, from history
    assert "not known  which approvals wait" in shown.stdout
    assert state["runbook"] == "cli-gated" and state["severity"] == "SEV2" and state["params"] == {"who": "x",
                                                                                                    "times": 1}
    events = json.loads(cli("incident", "timeline", incident, *address, "--query-timeout", "2", "-o", "json").stdout)
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "incident_opened" and "step" in kinds and "status_changed" in kinds

    # `list -w` refreshes; Ctrl-C ends it without a traceback, as it does `watch`.
    listing = popen_cli("incident", "list", "-w", "--interval", "0.5", "--runbook", "cli-gated", *address)
    lines = Lines(listing)
    lines.wait_for(lambda line: incident in line and "waiting_approval" in line)
    time.sleep(1.5)
    code, stderr = interrupt(lines)
    assert code == 130 and "Traceback" not in stderr, stderr
    assert sum(1 for line in lines.text().splitlines() if "every 0.5s (Ctrl-C to stop)" in line) >= 2
    watch = popen_cli("incident", "watch", incident, *address, "--query-timeout", "1", "--interval", "0.5")
    lines = Lines(watch)
    lines.wait_for(lambda line: "status waiting_approval" in line)
    code, stderr = interrupt(lines)
    assert code == 130 and "Traceback" not in stderr, stderr
    assert "no worker answered; from history as of" in lines.text()

    # Ended from outside: never listed (or shown) as open again.
    await client.get_workflow_handle(incident).terminate("test: worker gone for good")
    rows = json.loads(cli("incident", "list", "--runbook", "cli-gated", *address, "-o", "json").stdout)
    assert next(r for r in rows if r["incident_id"] == incident)["status"] == "terminated"
    waiting = json.loads(cli("incident", "list", "--status", "waiting_approval", *address, "-o", "json").stdout)
    assert incident not in [r["incident_id"] for r in waiting]
    terminated = json.loads(cli("incident", "list", "--status", "terminated", *address, "-o", "json").stdout)
    assert incident in [r["incident_id"] for r in terminated]
    ended = show_json(incident, address)
    assert ended["status"] == "terminated" and ended["workflow_status"] == "TERMINATED"
    pending = cli("incident", "pending", *address, "-o", "json", check_ok=False)
    assert incident not in pending.stdout and incident not in pending.stderr, "nothing waits in a terminated incident"


def test_ctrl_c_stops_list_w_started_with_sigint_ignored(dev_server: DevServer) -> None:
    # A script's background job (`cmd &`, nohup) starts with SIGINT ignored; asyncio alone then never sees Ctrl-C.
    def ignoring_sigint(*command: str) -> list[str]:
        return ["bash", "-c", f"trap '' INT; exec {shlex.join(command)}"]

    probe = "import signal; print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)"
    seen = subprocess.run(ignoring_sigint(sys.executable, "-c", probe), capture_output=True, text=True, timeout=30)
    assert seen.stdout.strip() == "True", seen  # the process starts as such a job does
    listing = popen(ignoring_sigint(*CLI, "incident", "list", "-w", "--interval", "0.5", "--address",
                                    dev_server.address))
    lines = Lines(listing)
    lines.wait_for(lambda line: "every 0.5s (Ctrl-C to stop)" in line)
    code, stderr = interrupt(lines)
    assert code == 130 and "Traceback" not in stderr, stderr


def test_completion_scripts_complete_commands_options_and_choices() -> None:
    script = cli("completion", "bash").stdout

    def complete(*words: str) -> list[str]:
        line = " ".join(f"'{w}'" for w in words)
        probe = (f"{script}\nCOMP_WORDS=(incidentctl {line}); COMP_CWORD={len(words)}; _incidentctl; "
                 'printf "%s\\n" "${COMPREPLY[@]}"')
        done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert complete("inc") == ["incident"]
    assert set(complete("incident", "")) >= {"start", "show", "timeline", "watch", "list", "pending", "approve"}
    assert complete("incident", "list", "--sev") == ["--severity"]
    assert complete("incident", "list", "--severity", "") == ["SEV1", "SEV2", "SEV3", "SEV4"]
    assert complete("incident", "show", "-o", "y") == ["yaml"]
    assert complete("completion", "") == ["bash", "zsh"]
    zsh = cli("completion", "zsh").stdout
    assert "bashcompinit" in zsh and "complete -F _incidentctl" in zsh
    if shutil.which("zsh"):
        # zsh indexes arrays from 1 and filters by the typed prefix itself (compadd): the candidates are what counts.
        probe = (f"{zsh}\nCOMP_WORDS=(incidentctl incident list --severity ''); COMP_CWORD=4; _incidentctl; "
                 "print -l -- $COMPREPLY; COMP_WORDS=(incidentctl incident wat); COMP_CWORD=2; _incidentctl; "
                 "print -l -- $COMPREPLY")
        done = subprocess.run(["zsh", "-f", "-c", probe], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        offered = done.stdout.split()
        assert offered[:4] == ["SEV1", "SEV2", "SEV3", "SEV4"]
        assert "watch" in offered[4:] and "--severity" not in offered
    bad = cli("completion", "fish", check_ok=False)
    assert bad.returncode == 2 and "invalid choice: 'fish'" in bad.stderr


def test_main_commands_show_examples_in_their_help() -> None:
    for command in (["--help"], ["incident", "start", "--help"], ["incident", "show", "--help"],
                    ["incident", "list", "--help"], ["incident", "watch", "--help"], ["incident", "approve", "--help"]):
        shown = cli(*command).stdout
        examples = shown.split("examples:\n", 1)[1]
        assert examples.startswith("  incidentctl "), (command, shown)


def test_yaml_output_of_a_local_command() -> None:
    actions = yaml.safe_load(cli("actions", "list", "-o", "yaml").stdout)
    assert next(a for a in actions if a["name"] == "util.sleep")["mutates"] is False
    plan = yaml.safe_load(cli("runbook", "plan", "demo-http-service", "-o", "yaml").stdout)
    assert plan["runbook"]["name"] == "demo-http-service"


async def test_the_temporal_ui_shows_the_incident_its_status_and_its_steps_by_name(
        client: Client, worker: Worker, unique: str) -> None:
    """Static summary and details (set at start), current details (the status, as it moves) and each activity's
    summary (its step), read back from the server as the Temporal UI reads them."""
    from temporalio.api.enums.v1 import EventType
    from temporalio.api.sdk.v1 import WorkflowMetadata

    from incidentctl import client as incidents
    from incidentctl.library import compile_text

    plan = compile_text(LIVE, "live.yaml")
    started = await incidents.start_incident(client, plan, params={"seconds": 0.2}, key=unique,
                                             task_queue=TEST_TASK_QUEUE)
    handle = client.get_workflow_handle(started.incident_id)
    await eventually(lambda: incidents.show_incident(client, started.incident_id),
                     lambda s: s["status"] == "resolved")
    description = await handle.describe()
    assert await description.static_summary() == "SEV3 incident: runbook cli-live"
    details = await description.static_details()
    assert "**Runbook** cli-live v1" in details and "- hello: util.echo\n- nap: util.sleep" in details
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert metadata.current_details == "**resolved** · SEV3 · runbook cli-live"
    history = await handle.fetch_history()
    summaries = [
        await client.data_converter.decode([e.user_metadata.summary])
        for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.user_metadata.HasField("summary")]
    assert [s[0] for s in summaries] == ["step hello: util.echo", "step nap: util.sleep"]
    await incidents.close_incident(client, started.incident_id, Closure(by="bob"))
