"""The README's "Using it" walkthrough, run as a reader would paste it: the block marked `walkthrough: dev` is
started as a process (on free ports), and the blocks marked `walkthrough` run in order in one bash, against it,
failing on the first command that fails."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from incidentctl.devserver import free_port

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!-- walkthrough(?P<dev>: dev)? -->\n```bash\n(?P<body>.*?)```", re.S)
VENV_BIN = ".venv/bin/"
WALKTHROUGH_TIMEOUT_S = 420


def walkthrough() -> tuple[str, list[str]]:
    """The `dev` command line and the shell blocks of the "Using it" section, in order."""
    section = (ROOT / "README.md").read_text().split("\n## Using it\n", 1)[1].split("\n## ", 1)[0]
    blocks = list(BLOCK.finditer(section))
    [dev] = [m["body"] for m in blocks if m["dev"]]
    return dev.split("#", 1)[0].strip(), [m["body"] for m in blocks if not m["dev"]]


@pytest.fixture
def dev_stack(tmp_path: Path) -> Iterator[dict[str, int]]:
    """`incidentctl dev ...` as the README says, with free ports and its files in tmp_path; stopped by its PID."""
    ports = {"temporal": free_port(), "ui": free_port(), "receiver": free_port(), "metrics": free_port()}
    command, _ = walkthrough()
    args = command.split()[1:]
    assert args[:1] == ["dev"], command
    log = tmp_path / "dev.log"
    env = {k: v for k, v in os.environ.items() if k != "TEMPORAL_ADDRESS"}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "incidentctl"), *args, "--port", str(ports["temporal"]),
         "--ui-port", str(ports["ui"]), "--receiver-port", str(ports["receiver"]),
         # Not in the README's line: the same run also shows dev's worker metrics (docs/install.md "Metrics").
         "--metrics-address", f"127.0.0.1:{ports['metrics']}",
         "--db-file", str(tmp_path / "dev" / "temporal.db")],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for(lambda: "ready:" in log.read_text(errors="replace") or process.poll() is not None, 180)
        assert process.poll() is None, log.read_text(errors="replace")
        yield ports
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # dev stops its server, worker, receiver and cluster
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def _wait_for(done: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError("dev did not say it was ready")
        time.sleep(0.5)


def substituted(block: str, ports: dict[str, int]) -> str:
    """The reader's defaults replaced by this test's ports and virtualenv."""
    return (block.replace("127.0.0.1:7233", f"127.0.0.1:{ports['temporal']}")
            .replace(":9095", f":{ports['receiver']}")
            .replace(VENV_BIN, str(Path(sys.executable).parent) + "/"))


def test_the_readme_walkthrough_works_when_pasted(dev_stack: dict[str, int], tmp_path: Path) -> None:
    _, blocks = walkthrough()
    assert len(blocks) >= 2, "the walkthrough's blocks are marked"
    script = "set -euo pipefail\n" + "\n".join(substituted(block, dev_stack) for block in blocks)
    env = {k: v for k, v in os.environ.items() if k != "TEMPORAL_ADDRESS"}
    try:
        run = subprocess.run(["bash", "-x", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=WALKTHROUGH_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the walkthrough did not finish in {WALKTHROUGH_TIMEOUT_S}s:\n{exc.stdout}\n{exc.stderr}")
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "approved step approve_rollback as alice" in output
    assert "k8s.rollout_undo" in output and "is closed" in output
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{dev_stack['metrics']}/metrics", timeout=10).read().decode()
    runbook = 'runbook="k8s-deployment-rollout-stuck"'
    assert re.search(rf'^incidentctl_incidents_closed_total{{[^}}]*{runbook}[^}}]*}} 1$', metrics, re.M), metrics
    assert re.search(r'^incidentctl_action_attempts_total\{action="k8s.rollout_undo"[^}]*outcome="succeeded"', metrics,
                     re.M), "dev's worker metrics count the rollback"


def test_the_dev_block_and_the_substitutions_are_what_the_readme_says() -> None:
    command, blocks = walkthrough()
    assert command == ".venv/bin/incidentctl dev --simulate-cluster"
    text = "\n".join(blocks)
    assert "export TEMPORAL_ADDRESS=127.0.0.1:7233" in text, "the reader is told where Temporal is"
