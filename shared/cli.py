"""``python -m shared``: the same core and settings as the Functions app, from a shell.

Exit codes: 0 succeeded, 3 completed_with_errors or skipped, 1 failed, 2 bad usage or configuration,
130 interrupted (Ctrl-C).
Progress goes to stderr; the final run record (JSON) to stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from azure.core.exceptions import AzureError

from .bootstrap import build_edges
from .errors import ConfigError, ConsentError, ExportError, SettingsError
from .export import Edges, ExportOptions, load_destinations
from .preflight import run_checks
from .privacy import SecretRedactingFilter, redact
from .progress import BarProgress, LogProgress
from .service import run_now
from .settings import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C
STATUS_EXIT = {"succeeded": EXIT_OK, "completed_with_errors": EXIT_PARTIAL, "skipped": EXIT_PARTIAL}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    _configure_logging(args.verbose)
    try:
        settings = Settings.from_env()
        edges = build_edges(settings, fail_fast=True)
        if args.command == "export":
            return _export(edges, args)
        if args.command == "destinations":
            config = load_destinations(edges)
            out = [config.destinations[n].public_view() for n in sorted(config.destinations)]
            out += [{"name": n, "error": str(e)} for n, e in sorted(config.invalid.items())]
            _print_json({"destinations": out})
            return EXIT_OK
        if args.command == "check":
            checks = run_checks(edges, args.name)
            ok = all(c.ok for c in checks)
            _print_json({"ok": ok, "checks": [c.as_dict() for c in checks]})
            for c in checks:
                print(f"{'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}", file=sys.stderr)
            return EXIT_OK if ok else EXIT_FAILED
        if args.command == "runs":
            load_destinations(edges).get(args.name)
            records = edges.records.recent(args.name, args.limit)
            _print_json({"runs": [r.to_dict() for r in records]})
            return EXIT_OK
    except KeyboardInterrupt:
        # The run has released its lock and recorded itself failed (interrupted) on the way out.
        logging.disable(logging.CRITICAL)  # a thread still winding down must not log after the last line
        print("interrupted; safe to run again", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (SettingsError, ConfigError, ConsentError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
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


def _export(edges: Edges, args: argparse.Namespace) -> int:
    options = ExportOptions(dry_run=args.dry_run, full=args.full, force_removals=args.force_removals)
    # A bar on a terminal; plain lines every few seconds where stderr is a file or a pipe.
    edges.progress = BarProgress() if sys.stderr.isatty() else LogProgress()
    final = run_now(edges, args.name, options=options, requested_by=_whoami())
    _print_json(final.to_dict())
    print(f"run {final.run_id}: {final.status}", file=sys.stderr)
    return STATUS_EXIT.get(final.status, EXIT_FAILED)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shared", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail to stderr")
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="run one export now")
    export.add_argument("name", help="destination name in destinations.json")
    export.add_argument("--dry-run", action="store_true", help="read and check everything, send nothing")
    export.add_argument("--full", action="store_true", help="send every contact, changed or not")
    export.add_argument("--force-removals", action="store_true", help="mirror mode: override the removal guard")
    check = commands.add_parser("check", help="preflight: can this destination export now? (sends nothing)")
    check.add_argument("name")
    commands.add_parser("destinations", help="list the configured destinations")
    runs = commands.add_parser("runs", help="recent run records of a destination, newest first")
    runs.add_argument("name")
    runs.add_argument("--limit", type=int, default=20)
    return parser


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
