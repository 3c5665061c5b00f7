"""``python -m tools.local_stack``: up, down, status, the uploads, and the vault's own process.

``make down`` and ``make status`` run this with the system Python, without the venv: only the
commands that need the venv's packages (Azure's SDK, certifi, trustme) import the modules that use
them, once the command is known.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tools.local_stack.paths import DEFAULT_DATA, DEFAULT_SETTINGS, DEFAULT_STATE, SAMPLE_SEGMENT
from tools.local_stack.stack import down, status
from tools.local_stack.state import locked


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.local_stack", description="The local stack: up, down, status."
    )
    parser.add_argument(
        "--state", type=Path, default=DEFAULT_STATE, help="pids, ports, logs, CA (default .localstack/)"
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Azurite's data (default .azurite/)")
    parser.add_argument("--settings-file", type=Path, default=DEFAULT_SETTINGS, help="default ./local.settings.json")
    parser.add_argument(
        "--free-ports", action="store_true", help="up: any free ports, not the fixed ones (tests; beside another stack)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start (or reuse) the stack, provision it, write the settings")
    commands.add_parser("down", help="stop what up started; nothing to do is not an error")
    commands.add_parser("status", help="exit 0 if the whole stack runs")
    segment = commands.add_parser("upload-segment", help="put a segment file into the running stack")
    segment.add_argument("file", type=Path)
    segment.add_argument("--as", dest="blob", default=SAMPLE_SEGMENT, help=f"blob name (default {SAMPLE_SEGMENT})")
    config = commands.add_parser("upload-destinations", help="check a destinations.json, then put it into the stack")
    config.add_argument("file", type=Path)
    vault = commands.add_parser("serve-vault", help=argparse.SUPPRESS)
    vault.add_argument("--port", type=int, required=True)
    vault.add_argument("--token-port", type=int, required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    state = args.state.resolve()
    if args.command == "serve-vault":
        from tools.local_stack.vault import serve_vault

        return serve_vault(state, args.port, args.token_port)
    if args.command in ("upload-segment", "upload-destinations"):
        from tools.local_stack.uploads import upload_destinations, upload_segment

        if args.command == "upload-segment":
            return upload_segment(state, args.file, args.blob)
        return upload_destinations(state, args.file)
    with locked(state):
        if args.command == "up":
            from tools.local_stack.start import up

            return up(state, args.data.resolve(), args.settings_file.resolve(), args.free_ports)
        if args.command == "down":
            return down(state)
        return status(state)


if __name__ == "__main__":
    sys.exit(main())
