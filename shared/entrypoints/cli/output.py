"""What the command writes: lines and JSON on stdout (neutralised: this may be a terminal), and
the log on stderr (above the progress bar on a terminal, secrets redacted)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from shared.privacy import SecretRedactingFilter, neutralise


def wants_json(args: argparse.Namespace) -> bool:
    return bool(args.json) or not sys.stdout.isatty()


def print_lines(lines: list[str]) -> None:
    # Record fields (errors, list names) are outside text, and this may be a terminal.
    sys.stdout.write("".join(neutralise(line) + "\n" for line in lines))
    sys.stdout.flush()


def print_json(value: object) -> None:
    json.dump(value, sys.stdout, indent=2)
    sys.stdout.write("\n")
    sys.stdout.flush()


def quiet_stdout() -> None:
    """After a broken pipe: no second error when Python flushes stdout at exit."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class _AroundTheBar(logging.Handler):
    """On a terminal, log lines go above the progress bar (tqdm.write), never through it."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


def configure_logging(verbose: bool) -> None:
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
