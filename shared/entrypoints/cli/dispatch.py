"""``main``: a command line to an exit code. Parses it, reads the settings, runs the command, and
turns each way it can end (an error, Ctrl-C, SIGTERM, a closed pipe) into one line and its code."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from azure.core.exceptions import AzureError

from shared.adapters.secrets import SecretConfigError
from shared.entrypoints.cli import checks, destinations, runs
from shared.entrypoints.cli.configuration import SECRET_COMMANDS, cli_runtime, load_local_settings
from shared.entrypoints.cli.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, EXIT_USAGE
from shared.entrypoints.cli.interrupts import Terminated, stopped_by_sigterm
from shared.entrypoints.cli.output import configure_logging, quiet_stdout
from shared.entrypoints.cli.parser import PROG, build_parser
from shared.errors import ConfigError, ConsentError, ExportError, SettingsError
from shared.privacy import redact
from shared.run.runtime import Runtime

# The commands that read settings and storage (validate-destinations reads neither).
COMMANDS: dict[str, Callable[[Runtime, argparse.Namespace], int]] = {
    "export": runs.export,
    "destinations": destinations.destinations,
    "check": checks.check,
    "runs": runs.runs,
    "rejects": runs.rejects,
    "verify": checks.verify,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    if args.local_settings and args.no_local_settings:
        print(f"{PROG}: error: --local-settings and --no-local-settings exclude each other", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(args.verbose)
    if args.command == "validate-destinations":  # offline: no settings, no storage
        return destinations.validate_destinations(args)
    return _run_command(parser, args)


def _run_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    settings_note = ""
    try:
        with stopped_by_sigterm():
            settings_note = load_local_settings(args)
            runtime = cli_runtime(args.command in SECRET_COMMANDS)
            command = COMMANDS.get(args.command)
            if command is not None:
                return command(runtime, args)
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        quiet_stdout()
        return EXIT_OK
    except KeyboardInterrupt as exc:
        # The run has released its lock and recorded itself failed (interrupted) on the way out.
        logging.disable(logging.CRITICAL)  # a thread still winding down must not log after the last line
        print("interrupted; safe to run again", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
    except Exception as exc:
        code = _reported(exc, settings_note)
        if code is None:
            if args.verbose:
                raise
            print(
                f"error: unexpected {type(exc).__name__}: {redact(str(exc))[:300]} (run with -v for the traceback)",
                file=sys.stderr,
            )
            return EXIT_FAILED
        return code
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE


def _reported(exc: Exception, settings_note: str) -> int | None:
    """An error the command expects, said in a line on stderr: its exit code. None for any other."""
    # An error may quote outside text (a key of destinations.json, SendGrid's words): neutralised.
    if isinstance(exc, SettingsError):
        print(f"error: {redact(str(exc))}{settings_note}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(exc, ConfigError | ConsentError | SecretConfigError):
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(exc, ExportError):
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    if isinstance(exc, AzureError):
        # Storage unreachable or refusing this identity: say so in a line, not a traceback.
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        print(
            f"error: Azure Storage ({type(exc).__name__}): {redact(first)}. Check EXPORT_STORAGE and that "
            "this identity has the Storage Blob Data roles.",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return None


def run() -> None:
    """The console command's entry point ([project.scripts] in pyproject.toml)."""
    sys.exit(main())
