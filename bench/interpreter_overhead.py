"""What the runbook interpreter costs over a hand-written Temporal workflow doing the same work.

Both run in the same process against the same embedded dev server: a baseline workflow calling three no-op
activities, and IncidentWorkflow interpreting a three-step runbook of `util.echo`. Prints serial latency
(p50/p99 per workflow) and concurrent throughput, and the interpreter/baseline ratios.

    .venv/bin/python bench/interpreter_overhead.py [--serial 30] [--concurrent 50] [--db-file F]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from baseline_workflow import Baseline, noop  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from incidentctl import client as incidents  # noqa: E402
from incidentctl.devserver import DevServer  # noqa: E402
from incidentctl.library import compile_text  # noqa: E402
from incidentctl.workers import build_worker  # noqa: E402

RUNBOOK = """
name: bench-three-steps
version: 1
steps:
  - {id: one, action: util.echo, params: {message: "1"}}
  - {id: two, action: util.echo, params: {message: "${{ steps.one.output.message }}"}}
  - {id: three, action: util.echo, params: {message: "${{ steps.two.output.message }}"}}
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def measure(client: Client, start_one, serial: int, concurrent: int) -> dict[str, float]:
    latencies = []
    for _ in range(serial):
        began = time.perf_counter()
        await start_one()
        latencies.append((time.perf_counter() - began) * 1000)
    began = time.perf_counter()
    await asyncio.gather(*(start_one() for _ in range(concurrent)))
    elapsed = time.perf_counter() - began
    return {"p50_ms": statistics.median(latencies), "p99_ms": pct(latencies, 0.99),
            "throughput_per_s": concurrent / elapsed}


async def run(args: argparse.Namespace, server: DevServer) -> None:
    client = await Client.connect(server.address)
    plan = compile_text(RUNBOOK, "bench.yaml")

    async def baseline() -> None:
        await client.execute_workflow(Baseline.run, "x", id=f"bench-{uuid.uuid4()}", task_queue="bench-baseline")

    async def interpreted() -> None:
        started = await incidents.start_incident(client, plan, key=str(uuid.uuid4()), task_queue="bench-interp")
        summary = await client.get_workflow_handle(started.incident_id).result()
        assert summary["status"] == "resolved", summary

    async with Worker(client, task_queue="bench-baseline", workflows=[Baseline], activities=[noop]), \
            build_worker(client, task_queue="bench-interp"):
        await baseline()
        await interpreted()  # warm both paths before measuring
        base = await measure(client, baseline, args.serial, args.concurrent)
        interp = await measure(client, interpreted, args.serial, args.concurrent)

    print(f"storage: {'file ' + args.db_file if args.db_file else 'in-memory'}; serial runs {args.serial}, "
          f"concurrent starts {args.concurrent}")
    print(f"{'':28}{'p50 ms':>10}{'p99 ms':>10}{'wf/s (concurrent)':>20}")
    for name, figures in (("baseline (hand-written)", base), ("IncidentWorkflow (runbook)", interp)):
        print(f"{name:28}{figures['p50_ms']:>10.1f}{figures['p99_ms']:>10.1f}{figures['throughput_per_s']:>20.1f}")
    print(f"ratio interpreter/baseline: p50 x{interp['p50_ms'] / base['p50_ms']:.2f}, "
          f"throughput x{interp['throughput_per_s'] / base['throughput_per_s']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serial", type=int, default=30)
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--db-file", help="SQLite file (default: in-memory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        server = DevServer(headless=True, db_file=args.db_file, log_file=Path(workdir) / "server.log")
        server.start()
        try:
            asyncio.run(run(args, server))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
