"""sendgrid-export (also python -m shared): the same core and settings as the Functions app, from a shell.

Exit codes: 0 succeeded, 1 failed, 2 bad usage or configuration (a missing secret too), 3
completed_with_errors, 4 skipped, 130 interrupted (Ctrl-C), 143 stopped (SIGTERM).
Progress and logs go to stderr (a bar on a terminal). On stdout: a short summary on a terminal, the
run record as JSON with --json or where stdout is not a terminal.
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from azure.core.exceptions import AzureError

from shared.adapters.secrets import SecretConfigError
from shared.adapters.storage import BlobNotFound
from shared.bootstrap import build_runtime
from shared.entrypoints import console
from shared.entrypoints.service import run_now
from shared.errors import ConfigError, ConsentError, ExportError, SettingsError
from shared.inputs.config import parse_destinations
from shared.json_input import load_json
from shared.names import NAME_PATTERN, RUN_ID_PATTERN
from shared.privacy import SecretRedactingFilter, neutralise, neutralise_lines, redact
from shared.run import verify
from shared.run.destinations import exportable_destination, load_destinations
from shared.run.preflight import run_checks
from shared.run.progress import BarProgress, LogProgress
from shared.run.records import ExportOptions, rejects_blob_name
from shared.run.runtime import Runtime
from shared.settings import Settings

PROG = console.PROG
DISTRIBUTION = "sendgrid-segment-export"  # pyproject.toml's [project] name
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL, EXIT_SKIPPED = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM: kill, a container stopping, timeout(1)
STATUS_EXIT = {"succeeded": EXIT_OK, "completed_with_errors": EXIT_PARTIAL, "skipped": EXIT_SKIPPED}
MAX_RUNS_LIMIT = 100  # the HTTP API's bound too
MAX_DESTINATIONS_BYTES = 1024 * 1024  # a destinations.json is a few kilobytes
LOCAL_SETTINGS = "local.settings.json"
# Where a checkout keeps its local.settings.json (make up writes it there): found from any directory.
PROJECT_DIR = Path(__file__).resolve().parent.parent.parent
# Only these read the SendGrid API key; the others must run without any Key Vault setting.
SECRET_COMMANDS = frozenset({"export", "check", "verify"})
# The local stack's CA for the Key Vault stand-in: given to the Key Vault client itself, so that a
# REQUESTS_CA_BUNDLE of the shell (corporate proxies, devcontainers) cannot take its place.
KEY_VAULT_CA_BUNDLE = "KEY_VAULT_CA_BUNDLE"

EXIT_CODES = """\
exit codes:
  0    succeeded (or nothing to report)
  1    failed
  2    bad usage or configuration (unknown destination, no consent, a bad setting, a missing secret)
  3    completed_with_errors: some rows were rejected (see: rejects NAME RUN_ID)
  4    skipped: another run of the destination was going
  130  interrupted (Ctrl-C); safe to run again
  143  stopped (SIGTERM), as Ctrl-C stops it; safe to run again
"""
EPILOG = (
    EXIT_CODES
    + """
Settings come from the environment; Values in local.settings.json (as 'func start' reads them)
fill in what the environment does not set. The file is looked for in the current directory, then
in the project's folder; stderr says which one was read, or that none was found.
"""
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    if args.local_settings and args.no_local_settings:
        print(f"{PROG}: error: --local-settings and --no-local-settings exclude each other", file=sys.stderr)
        return EXIT_USAGE
    _configure_logging(args.verbose)
    if args.command == "validate-destinations":  # offline: no settings, no storage
        return _validate_destinations(args)
    settings_note = ""
    try:
        with _stopped_by_sigterm():
            settings_note = _load_local_settings(args)
            runtime = _runtime(args.command in SECRET_COMMANDS)
            command = _COMMANDS.get(args.command)
            if command is not None:
                return command(runtime, args)
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        _quiet_stdout()
        return EXIT_OK
    except KeyboardInterrupt as exc:
        # The run has released its lock and recorded itself failed (interrupted) on the way out.
        logging.disable(logging.CRITICAL)  # a thread still winding down must not log after the last line
        print("interrupted; safe to run again", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(exc, _Terminated) else EXIT_INTERRUPTED
    # An error may quote outside text (a key of destinations.json, SendGrid's words): neutralised.
    except SettingsError as exc:
        print(f"error: {redact(str(exc))}{settings_note}", file=sys.stderr)
        return EXIT_USAGE
    except (ConfigError, ConsentError, SecretConfigError) as exc:
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


def _verify(runtime: Runtime, args: argparse.Namespace) -> int:
    report = verify.verify_destination(runtime, args.name, repair=args.repair)
    _print_json(report)
    drift = sum(n for category, n in report["counts"].items() if category != "missing_unsent")
    print(f"verified {args.name}: {report['counts']} (addresses in {report['addresses_blob']})", file=sys.stderr)
    return EXIT_OK if not drift else EXIT_PARTIAL


def _wants_json(args: argparse.Namespace) -> bool:
    return bool(args.json) or not sys.stdout.isatty()


def _validate_destinations(args: argparse.Namespace) -> int:
    """The file against the JSON schema (where the checkout has it) and the app's own rules."""
    path = Path(args.file)
    try:
        if path.stat().st_size > MAX_DESTINATIONS_BYTES:
            raise ConfigError(f"{path} is larger than {MAX_DESTINATIONS_BYTES:,} bytes: not a destinations.json.")
        text = path.read_bytes()
        problems = [f"schema: {p}" for p in schema_problems(text)]
        config = parse_destinations(text, source=str(path))
    except OSError as exc:
        print(f"error: {path}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:  # a fault of the whole document: no destination could be read
        print(f"FAIL {path}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    lines = [f"ok   {name}" for name in sorted(config.destinations)]
    lines += [f"FAIL {name}: {error}" for name, error in sorted(config.invalid.items())]
    lines += [f"FAIL {problem}" for problem in problems]
    valid = not config.invalid and not problems
    lines.append(f"{path}: {'valid' if valid else 'NOT valid'} ({len(config.destinations)} destination(s) usable)")
    _print_lines(lines)
    return EXIT_OK if valid else EXIT_USAGE


def schema_problems(text: bytes) -> list[str]:
    """Where the schema and jsonschema are at hand (a checkout with its dev tools): what the schema
    refuses, each with where in the document. The app's rules are checked in any case."""
    schema_path = PROJECT_DIR / "schemas" / "destinations.schema.json"
    try:
        import jsonschema
    except ImportError:
        return []
    if not schema_path.is_file():
        return []
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return []  # the rules say why, once
    validator = jsonschema.Draft202012Validator(json.loads(schema_path.read_text()))
    try:
        found = sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])[:20]
    except RecursionError:  # the rules refuse such a file too, saying why
        return ["(top): nested too deeply to check against the schema"]
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message[:200]}" for e in found]


def _destinations(runtime: Runtime, args: argparse.Namespace) -> int:
    config = load_destinations(runtime)
    out = [config.destinations[n].public_view() for n in sorted(config.destinations)]
    out += [{"name": n, "error": str(e)} for n, e in sorted(config.invalid.items())]
    _print_json({"destinations": out})
    return EXIT_OK


def _check(runtime: Runtime, args: argparse.Namespace) -> int:
    checks = [c.as_dict() for c in run_checks(runtime, args.name)]
    ok = all(c["ok"] for c in checks)
    if _wants_json(args):
        _print_json({"ok": ok, "checks": checks})
    else:
        _print_lines(console.check_lines(checks))
    return EXIT_OK if ok else EXIT_FAILED


def _runs(runtime: Runtime, args: argparse.Namespace) -> int:
    load_destinations(runtime).get(args.name)
    records = runtime.edges.records.recent(args.name, args.limit)
    if args.json:
        _print_json({"runs": [r.to_dict() for r in records]})
    elif not records:
        print("no runs yet", file=sys.stderr)
    else:
        _print_lines(console.runs_table(records, now=datetime.now(UTC)))
    return EXIT_OK


def _export(runtime: Runtime, args: argparse.Namespace) -> int:
    options = ExportOptions(dry_run=args.dry_run, full=args.full, force_removals=args.force_removals)
    # Before any run is recorded: a key that cannot be read is a configuration fault (exit 2),
    # named as such, as an unknown destination or a missing consent is.
    destination = exportable_destination(runtime, args.name)
    runtime.edges.secrets.get_secret(destination.api_key_secret)
    # A bar on a terminal; plain lines every few seconds where stderr is a file or a pipe.
    runtime.edges.progress = BarProgress() if sys.stderr.isatty() else LogProgress()
    final = run_now(runtime, args.name, options=options, requested_by=_whoami())
    if _wants_json(args):
        _print_json(final.to_dict())
    else:
        _print_lines(console.run_summary(final, invoked_as()))
    return STATUS_EXIT.get(final.status, EXIT_FAILED)


def invoked_as(argv0: str | None = None) -> str:
    """The command as typed: 'sendgrid-export' where that is on PATH, else the path typed
    (.venv/bin/sendgrid-export), else 'python -m shared'."""
    import shutil

    typed = sys.argv[0] if argv0 is None else argv0
    if Path(typed).name != PROG:
        return "python -m shared"
    on_path = shutil.which(PROG)
    if on_path and Path(on_path).resolve() == Path(typed).resolve():
        return PROG
    return typed


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
    ca_bundle = os.environ.get(KEY_VAULT_CA_BUNDLE, "").strip()
    if ca_bundle and not Path(ca_bundle).is_file():
        raise SettingsError(f"{KEY_VAULT_CA_BUNDLE}={ca_bundle}: no such file (make up writes it; run make up).")
    options = {"connection_verify": ca_bundle} if ca_bundle else {}
    return build_runtime(settings, fail_fast=True, key_vault_options=options)


def settings_file(args: argparse.Namespace) -> Path | None:
    """The local.settings.json to read: --local-settings, else the current directory's, else the project's."""
    if args.no_local_settings:
        return None
    if args.local_settings:
        return Path(args.local_settings)
    for folder in (Path.cwd(), PROJECT_DIR):
        if (folder / LOCAL_SETTINGS).is_file():
            return folder / LOCAL_SETTINGS
    return None


def _load_local_settings(args: argparse.Namespace) -> str:
    """Values of local.settings.json into the environment, under what the environment sets.

    Says on stderr which file it read. Returns what to add to a settings error: where no file
    was found, that it was looked for.
    """
    path = settings_file(args)
    if path is None:
        if args.no_local_settings:
            return ""
        places = " or ".join(dict.fromkeys(str(folder) for folder in (Path.cwd(), PROJECT_DIR)))
        print(f"settings: the environment only (no {LOCAL_SETTINGS} in {places})", file=sys.stderr)
        return (
            f" No {LOCAL_SETTINGS} was found in {places}: run 'make up' for the local stack, "
            "or give one with --local-settings PATH."
        )
    if not path.is_file():
        raise SettingsError(f"--local-settings {path}: no such file.")
    try:
        values = load_json(path.read_text(encoding="utf-8-sig"), str(path)).get("Values", {})
    except (OSError, ValueError, AttributeError) as exc:
        raise SettingsError(
            f"{path} is not a local.settings.json ({type(exc).__name__}): fix it, or run with --no-local-settings."
        ) from None
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise SettingsError(f"{path}: 'Values' must be an object of strings, as 'func start' reads it.")
    print(f"settings: {path.resolve()} (the environment wins where it sets a value)", file=sys.stderr)
    # The environment wins, as it does for 'func start'; and it wins for a whole setting: one that
    # spans several keys (EXPORT_STORAGE, EXPORT_STORAGE__blobServiceUri, ...) is taken from the
    # file only if the environment sets none of them, or a connection string from the file would
    # quietly beat the environment's identity-based form (or the other way round).
    set_in_environment = {_setting_family(key) for key in os.environ}
    for key, value in values.items():
        if _setting_family(key) not in set_in_environment:
            os.environ[key] = value
    return f" (settings read from {path})"


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
        record = runtime.edges.records.load(name, run_id)
        if record is None:
            why = f"no run {run_id} of destination '{name}' (see: {invoked_as()} runs {name})."
        elif record.counts.rejected:
            # A run stopped (killed, recycled) after rows were refused but before the file was written.
            why = (
                f"run {run_id} of destination '{name}' counted {record.counts.rejected} rejected rows but "
                f"has no rejects file: it ended ({record.status}) before writing it; a later run rejects them again."
            )
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


def _parser() -> argparse.ArgumentParser:
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

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=summary,
            description=description,
            epilog=EXIT_CODES,
            parents=late,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    export = command(
        "export",
        "run one export now",
        "Run one export now. A progress bar on a terminal, then a short summary; the run record as JSON with\n"
        "--json or where stdout is not a terminal.",
    )
    export.add_argument("name", help="destination name in destinations.json")
    export.add_argument("--dry-run", action="store_true", help="read and check everything, send nothing")
    export.add_argument("--full", action="store_true", help="send every contact, changed or not")
    export.add_argument("--force-removals", action="store_true", help="mirror mode: override the removal guard")
    check = command(
        "check",
        "preflight: can this destination export now? (sends nothing)",
        "Preflight for one destination, sending nothing: its settings, the SendGrid key and its scopes,\n"
        "its lists and custom fields, its segment files and their columns. A checklist on a terminal,\n"
        "JSON with --json or where stdout is not a terminal. Exit 0 when everything is ready, 1 when a\n"
        "check fails (each FAIL says what to fix), 2 when the configuration itself is unusable.",
    )
    check.add_argument("name", help="destination name in destinations.json")
    command("destinations", "list the configured destinations", "The destinations of destinations.json, as JSON.")
    runs = command(
        "runs",
        "recent runs of a destination, newest first",
        "Recent runs of a destination, newest first: a table (rejected = invalid + errored rows, those in\n"
        "the rejects file; a running run's stage, % and ETA; a failed run's reason), or the run records\n"
        "with --json.",
    )
    runs.add_argument("name")
    runs.add_argument("--limit", type=_limit, default=20, help=f"how many runs, 1 to {MAX_RUNS_LIMIT} (default 20)")
    verify_command = command(
        "verify",
        "compare a destination's list(s) with the sync state and the segment",
        "Compare the list's members (one export) with the sync state and the segment: missing, extra\n"
        "(never ours, ours and departed), stale. Counts on stdout; the addresses in a CSV in storage.\n"
        "Exit 0 when the list matches, 3 on drift.",
    )
    verify_command.add_argument("name", type=_destination_name)
    verify_command.add_argument("--repair", action="store_true", help="make the next run resend what is missing")
    validate = command(
        "validate-destinations",
        "check a destinations.json file (schema and rules; offline)",
        "Check a destinations.json file before it is uploaded: against schemas/destinations.schema.json\n"
        "and the app's own rules. Reads no settings and no storage, so CI can run it. Exit 0 when valid,\n"
        "2 when not (each FAIL names the destination and field).",
    )
    validate.add_argument("file", help="path of the destinations.json to check")
    rejects = command(
        "rejects",
        "print a run's rejects CSV",
        "Print a run's rejects CSV (source, line, email, category, field, reason) to stdout, streamed.",
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


class _AroundTheBar(logging.Handler):
    """On a terminal, log lines go above the progress bar (tqdm.write), never through it."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


def _configure_logging(verbose: bool) -> None:
    terminal = sys.stderr.isatty()
    handler = _AroundTheBar() if terminal else logging.StreamHandler(sys.stderr)
    handler.addFilter(SecretRedactingFilter())
    # A person at a terminal needs the time of day, not the date and the module.
    fmt = "%(asctime)s %(levelname)s %(message)s" if terminal else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt, "%H:%M:%S" if terminal else None))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # The SDKs log every HTTP request at INFO; keep stderr to the export's own progress.
    for noisy in ("azure", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger("shared").setLevel(logging.DEBUG if verbose else logging.INFO)


def _print_lines(lines: list[str]) -> None:
    # Record fields (errors, list names) are outside text, and this may be a terminal.
    sys.stdout.write("".join(neutralise(line) + "\n" for line in lines))
    sys.stdout.flush()


def _quiet_stdout() -> None:
    """After a broken pipe: no second error when Python flushes stdout at exit."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


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
    "verify": _verify,
}


def run() -> None:
    """The console command's entry point ([project.scripts] in pyproject.toml)."""
    sys.exit(main())
