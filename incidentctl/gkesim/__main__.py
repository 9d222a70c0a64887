"""`python -m incidentctl.gkesim`: serve the fake GKE API (seeded world) on a local port."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from incidentctl.gkesim.seed import build
from incidentctl.gkesim.server import make_app
from incidentctl.localhttp import serve
from incidentctl.process import stop_on_signals


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m incidentctl.gkesim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--operation-seconds", type=float, default=2.0,
                        help="how long each operation takes to finish (GKE: minutes)")
    parser.add_argument("--ready-file", type=Path, help="written with {url} once serving")
    return parser.parse_args(argv)


async def main(args: argparse.Namespace) -> None:
    stop = stop_on_signals()
    runner, url = await serve(make_app(build(args.operation_seconds)), args.host, args.port)
    if args.ready_file:
        args.ready_file.write_text(json.dumps({"url": url}))
    print(f"fake GKE API at {url}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
    sys.exit(0)
