"""python -m shared: the same core and settings as the Functions app, from a shell.

Exit codes: 0 succeeded, 3 completed_with_errors or skipped, 1 failed, 2 bad usage or configuration,
130 interrupted (Ctrl-C), 143 stopped (SIGTERM).
Progress goes to stderr; the final run record (JSON) to stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from azure.core.exceptions import AzureError

from shared.adapters.storage import BlobNotFound
from shared.bootstrap import build_runtime
from shared.entrypoints.service import run_now
from shared.errors import ConfigError, ConsentError, ExportError, SettingsError
from shared.json_input import load_json
from shared.names import NAME_PATTERN, RUN_ID_PATTERN
from shared.privacy import SecretRedactingFilter, neutralise, neutralise_lines, redact
from shared.run.destinations import load_destinations
from shared.run.preflight import run_checks
from shared.run.progress import BarProgress, LogProgress
from shared.run.records import ExportOptions, RunRecord, rejects_blob_name
from shared.run.runtime import Runtime
from shared.settings import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM: kill, a container stopping, timeout(1)
STATUS_EXIT = {"succeeded": EXIT_OK, "completed_with_errors": EXIT_PARTIAL, "skipped": EXIT_PARTIAL}
MAX_RUNS_LIMIT = 100  # the HTTP API's bound too
LOCAL_SETTINGS = "local.settings.json"
# Only these read the SendGrid API key; the others must run without any Key Vault setting.
SECRET_COMMANDS = frozenset({"export", "check"})

EPILOG = """\
exit codes:
  0    succeeded (or nothing to report)
  1    failed
  2    bad usage or configuration (unknown destination, no consent, a bad setting)
  3    completed_with_errors or skipped
  130  interrupted (Ctrl-C); safe to run again
  143  stopped (SIGTERM), as Ctrl-C stops it; safe to run again

Settings come from the environment; Values in ./local.settings.json (as 'func start' reads them)
fill in what the environment does not set.
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    _configure_logging(args.verbose)
    try:
        with _stopped_by_sigterm():
            _load_local_settings(args)
            runtime = _runtime(args.command in SECRET_COMMANDS)
            command = _COMMANDS.get(args.command)
            if command is not None:
                return command(runtime, args)
    except KeyboardInterrupt as exc:
        # The run has released its lock and recorded itself failed (interrupted) on the way out.
        logging.disable(logging.CRITICAL)  # a thread still winding down must not log after the last line
        print("interrupted; safe to run again", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(exc, _Terminated) else EXIT_INTERRUPTED
    # An error may quote outside text (a key of destinations.json, SendGrid's words): neutralised.
    except (SettingsError, ConfigError, ConsentError) as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except ExportError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    except AzureError as exc:
        # Storage unreachable or refusing this identity: say so in a line, not a traceback.
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        print(
            f"error: Azure Storage ({type(exc).__name__}): {redact(first)}. Check EXPORT_STORAGE and that "
            "this identity has the Storage Blob Data roles.",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except Exception as exc:
        if args.verbose:
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {redact(str(exc))[:300]} (run with -v for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE


def _destinations(runtime: Runtime, args: argparse.Namespace) -> int:
    config = load_destinations(runtime)
    out = [config.destinations[n].public_view() for n in sorted(config.destinations)]
    out += [{"name": n, "error": str(e)} for n, e in sorted(config.invalid.items())]
    _print_json({"destinations": out})
    return EXIT_OK


def _check(runtime: Runtime, args: argparse.Namespace) -> int:
    checks = run_checks(runtime, args.name)
    ok = all(c.ok for c in checks)
    _print_json({"ok": ok, "checks": [c.as_dict() for c in checks]})
    for c in checks:
        print(f"{'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}", file=sys.stderr)
    return EXIT_OK if ok else EXIT_FAILED


def _runs(runtime: Runtime, args: argparse.Namespace) -> int:
    load_destinations(runtime).get(args.name)
    records = runtime.edges.records.recent(args.name, args.limit)
    if args.json:
        _print_json({"runs": [r.to_dict() for r in records]})
    else:
        _print_runs_table(records)
    return EXIT_OK


def _export(runtime: Runtime, args: argparse.Namespace) -> int:
    options = ExportOptions(dry_run=args.dry_run, full=args.full, force_removals=args.force_removals)
    # A bar on a terminal; plain lines every few seconds where stderr is a file or a pipe.
    runtime.edges.progress = BarProgress() if sys.stderr.isatty() else LogProgress()
    final = run_now(runtime, args.name, options=options, requested_by=_whoami())
    _print_json(final.to_dict())
    print(f"run {final.run_id}: {final.status}", file=sys.stderr)
    return STATUS_EXIT.get(final.status, EXIT_FAILED)


class _NoKeyVaultSetting:
    """Stands in for the Key Vault provider where a command reads no secret and none is set."""

    def get_secret(self, name: str) -> str:
        raise SettingsError(f"KEY_VAULT_URL is not set, and reading secret '{name}' needs it.")


def _runtime(needs_secrets: bool) -> Runtime:
    settings = Settings.from_env(require_key_vault=needs_secrets)
    if settings.secrets_source == "keyvault" and settings.key_vault_url is None:
        # Build no Key Vault client at all (there is no URL to build it with) and fail loudly if
        # anything asks for a secret after all.
        runtime = build_runtime(dataclasses.replace(settings, secrets_source="environment"), fail_fast=True)
        runtime.edges.secrets = _NoKeyVaultSetting()
        return runtime
    return build_runtime(settings, fail_fast=True)


def _load_local_settings(args: argparse.Namespace) -> None:
    """Values of local.settings.json into the environment, under what the environment sets."""
    if args.no_local_settings:
        return
    path = Path(args.local_settings) if args.local_settings else Path.cwd() / LOCAL_SETTINGS
    if not path.is_file():
        if args.local_settings:
            raise SettingsError(f"--local-settings {path}: no such file.")
        return
    try:
        values = load_json(path.read_text(encoding="utf-8-sig"), str(path)).get("Values", {})
    except (OSError, ValueError, AttributeError) as exc:
        raise SettingsError(
            f"{path} is not a local.settings.json ({type(exc).__name__}): fix it, or run with --no-local-settings."
        ) from None
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise SettingsError(f"{path}: 'Values' must be an object of strings, as 'func start' reads it.")
    # The environment wins, as it does for 'func start'; and it wins for a whole setting: one that
    # spans several keys (EXPORT_STORAGE, EXPORT_STORAGE__blobServiceUri, ...) is taken from the
    # file only if the environment sets none of them, or a connection string from the file would
    # quietly beat the environment's identity-based form (or the other way round).
    set_in_environment = {_setting_family(key) for key in os.environ}
    for key, value in values.items():
        if _setting_family(key) not in set_in_environment:
            os.environ[key] = value


def _setting_family(key: str) -> str:
    return key.split("__", 1)[0].lower()


def _rejects(runtime: Runtime, args: argparse.Namespace) -> int:
    """Stream the rejects CSV to stdout: it may be far larger than memory should hold."""
    name, run_id = args.name, args.run_id
    blob = rejects_blob_name(name, run_id)
    try:
        chunks = runtime.edges.exports.iter_chunks(blob)
        first = next(chunks, b"")
    except BlobNotFound:
        if runtime.edges.records.load(name, run_id) is None:
            why = f"no run {run_id} of destination '{name}' (see: python -m shared runs {name})."
        else:
            why = f"run {run_id} of destination '{name}' rejected no rows: it has no rejects file."
        print(f"error: {why}", file=sys.stderr)
        return EXIT_FAILED
    out = sys.stdout.buffer
    try:
        # Cells are outside text, and this may be a terminal: neutralised again on the way out
        # (a file written by an older version, or edited, may hold a key or an escape sequence).
        for piece in neutralise_lines(itertools.chain([first], chunks)):
            out.write(piece)
        out.flush()
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
    return EXIT_OK


RUNS_COLUMNS = ("run id", "status", "trigger", "read", "sent", "rejected", "duration")


def _print_runs_table(records: list[RunRecord]) -> None:
    if not records:
        print("no runs yet", file=sys.stderr)
        return
    rows = [RUNS_COLUMNS] + [_run_row(r) for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(RUNS_COLUMNS))]
    numeric = {3, 4, 5, 6}
    for row in rows:
        cells = [c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        print(neutralise("  ".join(cells).rstrip()))  # a stored record is outside text too
    sys.stdout.flush()


def _run_row(record: RunRecord) -> tuple[str, ...]:
    counts = record.counts
    # Rows in the rejects file: refused by the row rules, or refused by SendGrid.
    return (
        record.run_id,
        str(record.status),
        record.trigger,
        str(counts.read),
        str(counts.sent),
        str(counts.rejected),
        _duration(record.started_at, record.finished_at),
    )


def _duration(started: str | None, finished: str | None) -> str:
    if not started or not finished:
        return "-"
    try:
        seconds = (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()
    except (ValueError, TypeError):  # a stored record is outside text: a time may lack its zone
        return "-"
    return f"{seconds:.1f}s" if seconds < 60 else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


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
        raise argparse.ArgumentTypeError("run ids look like 20261123T031500Z-1a2b3c4d (python -m shared runs NAME)")
    return raw


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m shared",
        description="Export customer-profile segments to SendGrid Marketing lists, with the Functions\n"
        "app's core and settings.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail to stderr")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--local-settings", metavar="PATH", help=f"read Values from PATH instead of ./{LOCAL_SETTINGS}")
    where.add_argument("--no-local-settings", action="store_true", help="read settings from the environment only")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    export = commands.add_parser(
        "export", help="run one export now; the final run record on stdout", description="Run one export now."
    )
    export.add_argument("name", help="destination name in destinations.json")
    export.add_argument("--dry-run", action="store_true", help="read and check everything, send nothing")
    export.add_argument("--full", action="store_true", help="send every contact, changed or not")
    export.add_argument("--force-removals", action="store_true", help="mirror mode: override the removal guard")
    check = commands.add_parser("check", help="preflight: can this destination export now? (sends nothing)")
    check.add_argument("name")
    commands.add_parser("destinations", help="list the configured destinations")
    runs = commands.add_parser(
        "runs",
        help="recent runs of a destination, newest first",
        description="Recent runs of a destination, newest first: a table (rejected = invalid + errored "
        "rows, those in the rejects file), or the run records with --json.",
    )
    runs.add_argument("name")
    runs.add_argument("--limit", type=_limit, default=20, help=f"how many runs, 1 to {MAX_RUNS_LIMIT} (default 20)")
    runs.add_argument("--json", action="store_true", help="print the run records as JSON instead of a table")
    rejects = commands.add_parser(
        "rejects",
        help="print a run's rejects CSV",
        description="Print a run's rejects CSV (source, line, email, category, field, reason) to stdout, streamed.",
    )
    rejects.add_argument("name", type=_destination_name, help="destination name")
    rejects.add_argument("run_id", type=_run_id, help="run id, as 'runs' lists them")
    return parser


class _Terminated(KeyboardInterrupt):
    """SIGTERM, taken as Ctrl-C is: the run releases its lock and records itself interrupted."""


@contextmanager
def _stopped_by_sigterm() -> Iterator[None]:
    """Without this, SIGTERM ends the process where it stands: the run stays "running" in its
    record and its lock held until the lease runs out."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return

    def stop(signum: int, frame: object) -> None:
        # Once: a second SIGTERM (a supervisor insisting) must not cut short the release of the
        # lock and the save of the record that the first one set going. SIGKILL still can.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(SecretRedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # The SDKs log every HTTP request at INFO; keep stderr to the export's own progress.
    for noisy in ("azure", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger("shared").setLevel(logging.DEBUG if verbose else logging.INFO)


def _print_json(value: object) -> None:
    json.dump(value, sys.stdout, indent=2)
    sys.stdout.write("\n")
    sys.stdout.flush()


def _whoami() -> str | None:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in some containers
        return "cli"


_COMMANDS: dict[str, Callable[[Runtime, argparse.Namespace], int]] = {
    "export": _export,
    "destinations": _destinations,
    "check": _check,
    "runs": _runs,
    "rejects": _rejects,
}
