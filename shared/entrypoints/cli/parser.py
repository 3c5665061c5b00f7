"""The command line the command takes: its commands, their arguments, the checks on each value,
and the words of --help."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NamedTuple

from shared.entrypoints import console
from shared.entrypoints.cli.configuration import LOCAL_SETTINGS
from shared.entrypoints.cli.exits import EXIT_CODES
from shared.names import NAME_PATTERN, RUN_ID_PATTERN

PROG = console.PROG
DISTRIBUTION = "sendgrid-segment-export"  # pyproject.toml's [project] name
MAX_RUNS_LIMIT = 100  # the HTTP API's bound too

EPILOG = (
    EXIT_CODES
    + """
Settings come from the environment; Values in local.settings.json (as 'func start' reads them)
fill in what the environment does not set. The file is looked for in the current directory, then
in the project's folder; stderr says which one was read, or that none was found.
"""
)


def _limit(raw: str) -> int:
    # ASCII digits only: int() would also take "+5", " 5" and "5_0".
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_RUNS_LIMIT:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_RUNS_LIMIT}, not '{raw[:20]}'")
    return int(raw)


def _destination_name(raw: str) -> str:
    if not NAME_PATTERN.match(raw):
        raise argparse.ArgumentTypeError("destination names match ^[a-z0-9][a-z0-9-]{0,62}$")
    return raw


def _run_id(raw: str) -> str:
    if not RUN_ID_PATTERN.match(raw):
        raise argparse.ArgumentTypeError(f"run ids look like 20261123T031500Z-1a2b3c4d ({PROG} runs NAME)")
    return raw


def _export_arguments(export: argparse.ArgumentParser) -> None:
    export.add_argument("name", help="destination name in destinations.json")
    export.add_argument("--dry-run", action="store_true", help="read and check everything, send nothing")
    export.add_argument("--full", action="store_true", help="send every contact, changed or not")
    export.add_argument("--force-removals", action="store_true", help="mirror mode: override the removal guard")


def _check_arguments(check: argparse.ArgumentParser) -> None:
    check.add_argument("name", help="destination name in destinations.json")


def _no_arguments(command: argparse.ArgumentParser) -> None:
    pass


def _runs_arguments(runs: argparse.ArgumentParser) -> None:
    runs.add_argument("name")
    runs.add_argument("--limit", type=_limit, default=20, help=f"how many runs, 1 to {MAX_RUNS_LIMIT} (default 20)")


def _verify_arguments(verify: argparse.ArgumentParser) -> None:
    verify.add_argument("name", type=_destination_name)
    verify.add_argument("--repair", action="store_true", help="make the next run resend what is missing")


def _validate_arguments(validate: argparse.ArgumentParser) -> None:
    validate.add_argument("file", help="path of the destinations.json to check")


def _rejects_arguments(rejects: argparse.ArgumentParser) -> None:
    rejects.add_argument("name", type=_destination_name, help="destination name")
    rejects.add_argument("run_id", type=_run_id, help="run id, as 'runs' lists them")


class _Command(NamedTuple):
    name: str
    summary: str  # its line in the command list of --help
    description: str  # the head of its own --help
    arguments: Callable[[argparse.ArgumentParser], None]


# In the order --help lists them.
_COMMANDS = (
    _Command(
        "export",
        "run one export now",
        "Run one export now. A progress bar on a terminal, then a short summary; the run record as JSON with\n"
        "--json or where stdout is not a terminal.",
        _export_arguments,
    ),
    _Command(
        "check",
        "preflight: can this destination export now? (sends nothing)",
        "Preflight for one destination, sending nothing: its settings, the SendGrid key and its scopes,\n"
        "its lists and custom fields, its segment files and their columns. A checklist on a terminal,\n"
        "JSON with --json or where stdout is not a terminal. Exit 0 when everything is ready, 1 when a\n"
        "check fails (each FAIL says what to fix), 2 when the configuration itself is unusable.",
        _check_arguments,
    ),
    _Command(
        "destinations",
        "list the configured destinations",
        "The destinations of destinations.json, as JSON.",
        _no_arguments,
    ),
    _Command(
        "runs",
        "recent runs of a destination, newest first",
        "Recent runs of a destination, newest first: a table (rejected = invalid + errored rows, those in\n"
        "the rejects file; a running run's stage, % and ETA; a failed run's reason), or the run records\n"
        "with --json.",
        _runs_arguments,
    ),
    _Command(
        "verify",
        "compare a destination's list(s) with the sync state and the segment",
        "Compare the list's members (one export) with the sync state and the segment: missing, extra\n"
        "(never ours, ours and departed), stale. Counts on stdout; the addresses in a CSV in storage.\n"
        "Exit 0 when the list matches, 3 on drift.",
        _verify_arguments,
    ),
    _Command(
        "validate-destinations",
        "check a destinations.json file (schema and rules; offline)",
        "Check a destinations.json file before it is uploaded: against schemas/destinations.schema.json\n"
        "and the app's own rules. Reads no settings and no storage, so CI can run it. Exit 0 when valid,\n"
        "2 when not (each FAIL names the destination and field).",
        _validate_arguments,
    ),
    _Command(
        "rejects",
        "print a run's rejects CSV",
        "Print a run's rejects CSV (source, line, email, category, field, reason) to stdout, streamed.",
        _rejects_arguments,
    ),
)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{PROG} {version(DISTRIBUTION)}"
    except PackageNotFoundError:  # run from a checkout that was never installed
        return f"{PROG} (not installed: run make install)"


def _global_options(defaults: bool) -> argparse.ArgumentParser:
    """Options taken before or after the command. After it, an option left out must not reset
    what was given before it: there, every default is SUPPRESS."""
    given: dict[str, Any] = {} if defaults else {"default": argparse.SUPPRESS}
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("options (before or after the command)")
    group.add_argument("-v", "--verbose", action="store_true", help="log debug detail to stderr", **given)
    group.add_argument(
        "--json", action="store_true", help="print JSON on stdout (the default where stdout is not a terminal)", **given
    )
    group.add_argument(
        "--local-settings", metavar="PATH", help=f"read Values from PATH instead of {LOCAL_SETTINGS}", **given
    )
    group.add_argument(
        "--no-local-settings", action="store_true", help="read settings from the environment only", **given
    )
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Export customer-profile segments to SendGrid Marketing lists, with the Functions\n"
        "app's core and settings.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_global_options(defaults=True)],
    )
    parser.add_argument("--version", action="version", version=_version())
    late = [_global_options(defaults=False)]
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _COMMANDS:
        command.arguments(
            commands.add_parser(
                command.name,
                help=command.summary,
                description=command.description,
                epilog=EXIT_CODES,
                parents=late,
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
        )
    return parser
