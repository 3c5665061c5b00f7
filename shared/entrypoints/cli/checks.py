"""The operator's checks of a destination: ``check`` (can it export now? sends nothing) and
``verify`` (does its list match the sync state and the segment?)."""

from __future__ import annotations

import argparse
import sys

from shared.entrypoints import console
from shared.entrypoints.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL
from shared.entrypoints.cli.output import print_json, print_lines, wants_json
from shared.run import verify as verifying
from shared.run.preflight import run_checks
from shared.run.runtime import Runtime


def check(runtime: Runtime, args: argparse.Namespace) -> int:
    checks = [c.as_dict() for c in run_checks(runtime, args.name)]
    ok = all(c["ok"] for c in checks)
    if wants_json(args):
        print_json({"ok": ok, "checks": checks})
    else:
        print_lines(console.check_lines(checks))
    return EXIT_OK if ok else EXIT_FAILED


def verify(runtime: Runtime, args: argparse.Namespace) -> int:
    report = verifying.verify_destination(runtime, args.name, repair=args.repair)
    print_json(report)
    drift = sum(n for category, n in report["counts"].items() if category != "missing_unsent")
    counts = ", ".join(f"{kind}={count:,}" for kind, count in report["counts"].items())
    print(f"verified {args.name}: {counts} (addresses in {report['addresses_blob']})", file=sys.stderr)
    return EXIT_OK if not drift else EXIT_PARTIAL
