"""The real alert pipeline as local processes: Debian's `prometheus` and `prometheus-alertmanager`.

Prometheus scrapes the simulated cluster's kube-state-metrics and cAdvisor endpoints and evaluates copies of
the shipped rule files (deploy/prometheus/*.yaml), with `for:` shortened when asked (the copies change, never
the shipped files). Alertmanager runs the shipped config (deploy/alertmanager/alertmanager.yml, the one
docs/alerts.md gives users) with only the receiver's URL, the token file and the grouping timers filled in.
Both listen on 127.0.0.1 with their own data dirs, run in their own sessions and are stopped by PID.
"""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from incidentctl.devserver import free_port
from incidentctl.process import log_tail, stop_process

ROOT = Path(__file__).resolve().parents[1]
RULES_DIR = ROOT / "deploy" / "prometheus"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
START_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0
# The job names the kube-prometheus rules select on (job="kube-state-metrics"; job="kubelet" with
# metrics_path="/metrics/cadvisor" for the cAdvisor series).
STATE_METRICS_JOB = "kube-state-metrics"
CADVISOR_JOB = "kubelet"
CADVISOR_PATH = "/metrics/cadvisor"


class PromStackError(RuntimeError):
    """The pipeline could not be set up or started; the message says why."""


@dataclass(frozen=True)
class Timings:
    """How fast the pipeline reacts. The shipped rules wait 15 minutes to an hour (`for:`); tests and the dev
    loop replace every `for:` with `rule_for` and use short Alertmanager timers."""

    rule_for: str | None  # None keeps each rule's own `for:`
    group_wait: str
    group_interval: str
    repeat_interval: str
    scrape_interval: str = "1s"
    evaluation_interval: str = "1s"


TEST_TIMINGS = Timings(rule_for="1s", group_wait="1s", group_interval="1s", repeat_interval="1m")
DEV_TIMINGS = Timings(rule_for="15s", group_wait="5s", group_interval="10s", repeat_interval="1h")


def find_binary(name: str) -> Path:
    found = shutil.which(name)
    if found is None:
        raise PromStackError(f"`{name}` is not installed: `bash scripts/setup.sh` installs Debian's prometheus and "
                             "prometheus-alertmanager (or: apt-get install prometheus prometheus-alertmanager)")
    return Path(found)


def _host_port(url: str) -> str:
    return url.split("://", 1)[-1].rstrip("/")


# -- configuration -------------------------------------------------------------------------------------------

def rule_copies(directory: Path, rule_for: str | None) -> list[Path]:
    """Copies of the shipped rule files with every alert's `for:` replaced by `rule_for` (when given)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sorted(RULES_DIR.glob("*.yaml")):
        data = yaml.safe_load(source.read_text())
        for group in data.get("groups", []):
            for rule in group.get("rules", []):
                if rule_for is not None and "for" in rule:
                    rule["for"] = rule_for
        target = directory / source.name
        target.write_text(yaml.safe_dump(data, sort_keys=False))
        written.append(target)
    return written


def prometheus_config(simulator_url: str, alertmanager_url: str, rule_files: list[Path],
                      timings: Timings) -> dict[str, Any]:
    target = {"targets": [_host_port(simulator_url)]}
    return {
        "global": {"scrape_interval": timings.scrape_interval, "evaluation_interval": timings.evaluation_interval},
        "rule_files": [str(path) for path in rule_files],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [_host_port(alertmanager_url)]}]}]},
        "scrape_configs": [
            # honor_labels as kube-prometheus' ServiceMonitors do: the exported namespace/pod labels are the
            # objects', not the scrape target's.
            {"job_name": STATE_METRICS_JOB, "honor_labels": True, "static_configs": [target]},
            {"job_name": CADVISOR_JOB, "honor_labels": True, "metrics_path": CADVISOR_PATH,
             "static_configs": [target],
             "relabel_configs": [{"source_labels": ["__metrics_path__"], "target_label": "metrics_path"}]},
        ],
    }


def alertmanager_config(receiver_url: str, credentials_file: Path, timings: Timings) -> dict[str, Any]:
    """The shipped config with this receiver's URL, token file and timers; nothing else changes."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    route = config["route"]
    route.update(group_wait=timings.group_wait, group_interval=timings.group_interval,
                 repeat_interval=timings.repeat_interval)
    receiver = next(r for r in config["receivers"] if r["name"] == route["receiver"])
    webhook = receiver["webhook_configs"][0]
    webhook["url"] = f"{receiver_url.rstrip('/')}/alertmanager"
    webhook["http_config"]["authorization"]["credentials_file"] = str(credentials_file)
    return config


def check_config(command: list[str]) -> str:
    """Run `promtool check ...` / `amtool check-config ...`; the output, or PromStackError with it."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        raise PromStackError(f"{' '.join(command)} failed:\n{output}")
    return output


# -- processes -------------------------------------------------------------------------------------------------

@dataclass
class ServerProcess:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_file: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 20) -> str:
        return log_tail(self.log_file, lines)

    def stop(self) -> None:
        """SIGTERM by PID, SIGKILL after STOP_GRACE_S; reaped, so nothing holds its port afterwards."""
        atexit.unregister(self.stop)
        stop_process(self.process, STOP_GRACE_S)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _start(name: str, command: list[str], port: int, log_file: Path) -> ServerProcess:
    if not _port_free(port):
        raise PromStackError(f"port {port} for {name} is already in use (is a system {name} running?)")
    with log_file.open("ab") as log:
        # Own session: Ctrl-C in a terminal reaches `incidentctl dev`, which then stops this in order.
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    server = ServerProcess(name, f"http://127.0.0.1:{port}", process, log_file)
    atexit.register(server.stop)  # a crashed test or command must not leave it holding the port
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _ready(server.url):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise PromStackError(f"{name} did not start (exit code {process.returncode}); its log ends with:\n"
                                 f"{server.log_tail()}")
        time.sleep(0.1)
    return server


def start_alertmanager(directory: Path, receiver_url: str, token: str, timings: Timings = TEST_TIMINGS,
                       port: int = 0) -> ServerProcess:
    """Alertmanager posting every notification to `receiver_url` with `token` (from a credentials file)."""
    binary = find_binary("prometheus-alertmanager")
    directory.mkdir(parents=True, exist_ok=True)
    token_file = directory / "incidentctl-token"
    token_file.touch(mode=0o600)
    token_file.write_text(token)
    config_file = directory / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(alertmanager_config(receiver_url, token_file, timings), sort_keys=False))
    port = port or free_port()
    return _start("alertmanager", [
        str(binary), f"--config.file={config_file}", f"--storage.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        # No HA gossip: it would bind :9094 on all interfaces and join any other instance it finds.
        "--cluster.listen-address=", "--log.level=warn",
    ], port, directory / "alertmanager.log")


def write_prometheus_config(directory: Path, simulator_url: str, alertmanager_url: str, timings: Timings) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    rules = rule_copies(directory / "rules", timings.rule_for)
    config_file = directory / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(prometheus_config(simulator_url, alertmanager_url, rules, timings),
                                          sort_keys=False))
    return config_file


def start_prometheus(directory: Path, simulator_url: str, alertmanager_url: str, timings: Timings = TEST_TIMINGS,
                     port: int = 0) -> ServerProcess:
    binary = find_binary("prometheus")
    config_file = write_prometheus_config(directory, simulator_url, alertmanager_url, timings)
    port = port or free_port()
    return _start("prometheus", [
        str(binary), f"--config.file={config_file}", f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
    ], port, directory / "prometheus.log")


@dataclass
class PromStack:
    """Alertmanager (started first, so no alert finds it missing) and Prometheus; `with` stops both."""

    directory: Path
    simulator_url: str
    receiver_url: str
    token: str
    timings: Timings = TEST_TIMINGS
    prometheus_port: int = 0
    alertmanager_port: int = 0
    alertmanager: ServerProcess | None = None
    prometheus: ServerProcess | None = None

    def start(self) -> PromStack:
        self.alertmanager = start_alertmanager(self.directory / "alertmanager", self.receiver_url, self.token,
                                               self.timings, self.alertmanager_port)
        try:
            self.prometheus = start_prometheus(self.directory / "prometheus", self.simulator_url,
                                               self.alertmanager.url, self.timings, self.prometheus_port)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for server in (self.prometheus, self.alertmanager):
            if server is not None:
                server.stop()

    def __enter__(self) -> PromStack:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
