"""What the runbook interpreter costs over a hand-written Temporal workflow doing the same work.

Both run in the same process against the same embedded dev server: a baseline workflow calling three no-op
activities, and IncidentWorkflow interpreting a three-step runbook of `util.echo` until the runbook has
finished (the incident then waits for a person to close it, as incidents do). Prints serial latency
(p50/p99 per workflow) and concurrent throughput, and the interpreter/baseline ratios. Throughput is measured
in rounds that alternate baseline and interpreter, so a machine that speeds up or slows down during the run
affects both; the ratio quoted is the median of the rounds' ratios.

    .venv/bin/python bench/interpreter_overhead.py [--serial 30] [--concurrent 50] [--rounds 5] [--db-file F]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from baseline_workflow import Baseline, admit, noop  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from incidentctl import client as incidents  # noqa: E402
from incidentctl.devserver import DevServer  # noqa: E402
from incidentctl.library import compile_text  # noqa: E402
from incidentctl.payload_codec import new_key  # noqa: E402
from incidentctl.workers import build_worker  # noqa: E402

# As a deployment runs: plans signed by whoever compiles them and checked by the worker (the default). Starts
# come straight from this client, which proves no one: the worker takes them as given (identity is not measured).
os.environ.setdefault("INCIDENTCTL_PLAN_KEYS", new_key("bench"))
os.environ.setdefault("INCIDENTCTL_IDENTITY", "open")

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


async def serial(start_one, runs: int) -> list[float]:
    latencies = []
    for _ in range(runs):
        began = time.perf_counter()
        await start_one()
        latencies.append((time.perf_counter() - began) * 1000)
    return latencies


async def throughput(start_one, concurrent: int) -> float:
    began = time.perf_counter()
    await asyncio.gather(*(start_one() for _ in range(concurrent)))
    return concurrent / (time.perf_counter() - began)


async def run(args: argparse.Namespace, server: DevServer) -> None:
    client = await Client.connect(server.address)
    plan = compile_text(RUNBOOK, "bench.yaml")

    async def baseline() -> None:
        await client.execute_workflow(Baseline.run, "x", id=f"bench-{uuid.uuid4()}", task_queue="bench-baseline")

    def interpreter(eager: bool):  # noqa: ANN202
        async def one() -> None:
            started = await incidents.start_incident(client, plan, key=str(uuid.uuid4()), task_queue="bench-interp",
                                                     eager_start=eager)
            # The incident stays open for people after its runbook; what is measured is the runbook, as
            # `incident start --wait` waits for it (an update answered when the runbook has finished).
            summary = await incidents.wait_for_runbook(client, started.incident_id)
            assert summary["outcome"] == "succeeded", summary
        return one

    # Like for like first: the baseline starts without eager start, so does the interpreter here.
    variants = {"baseline (hand-written)": baseline, "IncidentWorkflow (runbook)": interpreter(False),
                "  ... with eager start": interpreter(True)}
    async with Worker(client, task_queue="bench-baseline", workflows=[Baseline], activities=[noop, admit]), \
            build_worker(client, task_queue="bench-interp"):
        for start_one in variants.values():
            await start_one()  # warm every path before measuring
        latencies = {name: await serial(start_one, args.serial) for name, start_one in variants.items()}
        rounds: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, start_one in variants.items():
                rounds[name].append(await throughput(start_one, args.concurrent))

    print(f"storage: {'file ' + args.db_file if args.db_file else 'in-memory'}; serial runs {args.serial}, "
          f"{args.rounds} rounds of {args.concurrent} concurrent starts")
    print(f"{'':28}{'p50 ms':>10}{'p99 ms':>10}{'wf/s (median round)':>22}")
    for name in variants:
        print(f"{name:28}{statistics.median(latencies[name]):>10.1f}{pct(latencies[name], 0.99):>10.1f}"
              f"{statistics.median(rounds[name]):>22.1f}")
    base_name = next(iter(variants))
    for name in list(variants)[1:]:
        ratios = sorted(i / b for b, i in zip(rounds[base_name], rounds[name], strict=True))
        p50 = statistics.median(latencies[name]) / statistics.median(latencies[base_name])
        print(f"ratio {name.strip(' .')}/baseline: p50 x{p50:.2f}, throughput x{statistics.median(ratios):.2f} "
              f"(rounds {', '.join(f'x{r:.2f}' for r in ratios)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serial", type=int, default=30)
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
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
