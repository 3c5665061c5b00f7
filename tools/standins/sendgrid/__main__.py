"""``python -m tools.standins.sendgrid``: the simulator alone, on loopback, until interrupted.

It prints ``PORT=<n>`` (and the control key, when it made one). Keys come from files or the
environment, never from the command line, where ``ps`` shows them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys

from tools.standins import sendgrid
from tools.standins.sendgrid.control import CONTROL_KEY_HEADER
from tools.standins.sendgrid.handler import SimServer
from tools.standins.sendgrid.state import SimState

# The environment's form of the key files, for a container or a supervisor that has no files.
API_KEY_ENV, CONTROL_KEY_ENV = "SENDGRID_SIMULATOR_API_KEY", "SENDGRID_SIMULATOR_CONTROL_KEY"


def _key_from(path: str | None, variable: str) -> str:
    if path:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    return os.environ.get(variable, "").strip()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.standins.sendgrid", description=(sendgrid.__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key-file", help=f"a file holding the API key the simulator accepts (or ${API_KEY_ENV})")
    parser.add_argument(
        "--control-key-file",
        help=f"a file holding the key of the /__sim/ endpoints (or ${CONTROL_KEY_ENV}; else a random one, printed)",
    )
    parser.add_argument("--job-delay", type=float, default=0.2, help="seconds before an import job ends")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.host.startswith("127.") and args.host not in ("localhost", "::1"):
        parser.error("the simulator only listens on loopback")
    api_key = _key_from(args.api_key_file, API_KEY_ENV)
    if not api_key:
        parser.error(f"give the API key in a file (--api-key-file) or in ${API_KEY_ENV}")
    control_key = _key_from(args.control_key_file, CONTROL_KEY_ENV)
    state = SimState([api_key], args.job_delay, control_key=control_key or secrets.token_urlsafe(24))
    server = SimServer((args.host, args.port), state)
    state.base_url = server.base_url
    print(f"PORT={server.server_address[1]}", flush=True)
    if not control_key:  # the one who started it reads its own output; nobody else sees it
        print(f"{CONTROL_KEY_HEADER}: {state.control_key}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
