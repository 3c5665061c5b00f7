"""The commands about runs: ``export`` (run one now), ``runs`` (the recent ones), ``rejects`` (a
run's rejects CSV)."""

from __future__ import annotations

import argparse
import itertools
import sys
from datetime import UTC, datetime
from pathlib import Path

from shared.adapters.storage import BlobNotFound
from shared.entrypoints import console
from shared.entrypoints.cli.exits import EXIT_FAILED, EXIT_OK, STATUS_EXIT
from shared.entrypoints.cli.output import print_json, print_lines, quiet_stdout, wants_json
from shared.entrypoints.service import run_now
from shared.privacy import neutralise_lines
from shared.run.destinations import exportable_destination, load_destinations
from shared.run.progress import BarProgress, LogProgress
from shared.run.records import ExportOptions, rejects_blob_name
from shared.run.runtime import Runtime

PROG = console.PROG


def export(runtime: Runtime, args: argparse.Namespace) -> int:
    options = ExportOptions(dry_run=args.dry_run, full=args.full, force_removals=args.force_removals)
    # Before any run is recorded: a key that cannot be read is a configuration fault (exit 2),
    # named as such, as an unknown destination or a missing consent is.
    destination = exportable_destination(runtime, args.name)
    runtime.edges.secrets.get_secret(destination.api_key_secret)
    # A bar on a terminal; plain lines every few seconds where stderr is a file or a pipe.
    runtime.edges.progress = BarProgress() if sys.stderr.isatty() else LogProgress()
    final = run_now(runtime, args.name, options=options, requested_by=_whoami())
    if wants_json(args):
        print_json(final.to_dict())
    else:
        print_lines(console.run_summary(final, invoked_as()))
    return STATUS_EXIT.get(final.status, EXIT_FAILED)


def runs(runtime: Runtime, args: argparse.Namespace) -> int:
    load_destinations(runtime).get(args.name)
    records = runtime.edges.records.recent(args.name, args.limit)
    if args.json:
        print_json({"runs": [r.to_dict() for r in records]})
    elif not records:
        print("no runs yet", file=sys.stderr)
    else:
        print_lines(console.runs_table(records, now=datetime.now(UTC)))
    return EXIT_OK


def rejects(runtime: Runtime, args: argparse.Namespace) -> int:
    """Stream the rejects CSV to stdout: it may be far larger than memory should hold."""
    name, run_id = args.name, args.run_id
    blob = rejects_blob_name(name, run_id)
    try:
        chunks = runtime.edges.exports.iter_chunks(blob)
        first = next(chunks, b"")
    except BlobNotFound:
        print(f"error: {_why_no_rejects(runtime, name, run_id)}", file=sys.stderr)
        return EXIT_FAILED
    out = sys.stdout.buffer
    try:
        # Cells are outside text, and this may be a terminal: neutralised again on the way out
        # (a file written by an older version, or edited, may hold a key or an escape sequence).
        for piece in neutralise_lines(itertools.chain([first], chunks)):
            out.write(piece)
        out.flush()
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        quiet_stdout()
    return EXIT_OK


def _why_no_rejects(runtime: Runtime, name: str, run_id: str) -> str:
    record = runtime.edges.records.load(name, run_id)
    if record is None:
        return f"no run {run_id} of destination '{name}' (see: {invoked_as()} runs {name})."
    if record.counts.rejected:
        # A run stopped (killed, recycled) after rows were refused but before the file was written.
        return (
            f"run {run_id} of destination '{name}' counted {record.counts.rejected} rejected rows but "
            f"has no rejects file: it ended ({record.status}) before writing it; a later run rejects them again."
        )
    return f"run {run_id} of destination '{name}' rejected no rows: it has no rejects file."


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


def _whoami() -> str | None:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in some containers
        return "cli"
