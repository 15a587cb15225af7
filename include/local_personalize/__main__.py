"""`python -m include.local_personalize serve --host 127.0.0.1 --port 8765 --state-dir DIR`."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from include.local_personalize.models import PersonalizeBackend
from include.local_personalize.server import bind, build_app, uvicorn_server


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.local_personalize")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the Personalize APIs on one URL")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    serve.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one (printed)")
    serve.add_argument(
        "--state-dir", type=Path, required=True, help="where resources, data and models persist"
    )
    serve.add_argument(
        "--transition-delay",
        type=float,
        default=0.2,
        help="seconds between status transitions, so pollers see CREATE PENDING and CREATE IN_PROGRESS",
    )
    serve.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    args = parser.parse_args(argv)

    backend = PersonalizeBackend(args.state_dir, region=args.region, transition_delay=args.transition_delay)
    sock = bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    print(f"local Personalize listening on http://{host}:{port} (state in {args.state_dir})", flush=True)
    # uvicorn re-raises a captured SIGTERM once it has shut down; with the default handler that kills
    # the process before `finally` runs, and close() (which saves the last issued recommendation IDs)
    # would be skipped. This handler turns it into an orderly exit.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        uvicorn_server(build_app(backend)).run(sockets=[sock])
    finally:
        backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
