"""`python -m incidentctl.k8ssim`: serve a seeded simulated cluster and write a kubeconfig pointing at it."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from incidentctl.k8ssim.kubeconfig import write_kubeconfig
from incidentctl.k8ssim.kubelet import Timing
from incidentctl.k8ssim.scenarios import SCENARIOS, build
from incidentctl.k8ssim.server import make_app
from incidentctl.localhttp import serve_until_stopped


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m incidentctl.k8ssim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), default=[],
                        help="incident(s) to seed on top of the healthy base; repeatable")
    parser.add_argument("--kubeconfig", type=Path, required=True, help="kubeconfig to write (contexts sim, "
                                                                      "sim-readonly)")
    parser.add_argument("--ready-file", type=Path, help="written with {url, pid} once serving")
    parser.add_argument("--metrics-server", action="store_true", help="serve metrics.k8s.io (top)")
    parser.add_argument("--backoff-base", type=float, default=Timing.backoff_base_s,
                        help="first CrashLoopBackOff delay in seconds (real clusters: 10)")
    return parser.parse_args(argv)


async def main(args: argparse.Namespace) -> None:
    cluster = build(args.scenario)
    cluster.controllers.timing.backoff_base_s = args.backoff_base
    cluster.metrics_server = args.metrics_server

    def serving(url: str) -> dict[str, str]:
        write_kubeconfig(args.kubeconfig, url)
        print(f"simulated cluster at {url} (kubeconfig {args.kubeconfig})", flush=True)
        return {"url": url, "kubeconfig": str(args.kubeconfig)}

    await serve_until_stopped(make_app(cluster), args.host, args.port, args.ready_file, serving)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
    sys.exit(0)
