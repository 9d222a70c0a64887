"""`python -m incidentctl.gkesim`: serve the fake GKE API (seeded world) on a local port."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from incidentctl.gkesim.seed import DEFAULT_ACCESS_TOKEN, DEFAULT_OPERATION_S, build
from incidentctl.gkesim.server import make_app
from incidentctl.localhttp import serve_until_stopped


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m incidentctl.gkesim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--operation-seconds", type=float, default=DEFAULT_OPERATION_S,
                        help="how long each operation takes to finish (GKE: minutes)")
    parser.add_argument("--ready-file", type=Path, help="written with {url} once serving")
    parser.add_argument("--access-token", default=DEFAULT_ACCESS_TOKEN,
                        help="what POST /token hands out (a test makes it a token its Kubernetes API accepts)")
    return parser.parse_args(argv)


async def main(args: argparse.Namespace) -> None:
    def serving(url: str) -> dict[str, str]:
        print(f"fake GKE API at {url}", flush=True)
        return {"url": url}

    await serve_until_stopped(make_app(build(args.operation_seconds), args.access_token), args.host, args.port,
                              args.ready_file, serving)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
    sys.exit(0)
