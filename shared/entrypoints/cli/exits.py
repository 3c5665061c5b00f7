"""The command's exit codes, and the words --help gives them."""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL, EXIT_SKIPPED = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM: kill, a container stopping, timeout(1)
# A run's exit code by its status; any other status (failed, ...) is EXIT_FAILED.
STATUS_EXIT = {"succeeded": EXIT_OK, "completed_with_errors": EXIT_PARTIAL, "skipped": EXIT_SKIPPED}

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
