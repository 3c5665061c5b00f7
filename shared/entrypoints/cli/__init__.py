"""sendgrid-export (also python -m shared): the same core and settings as the Functions app, from a shell.

Exit codes: 0 succeeded, 1 failed, 2 bad usage or configuration (a missing secret too), 3
completed_with_errors, 4 skipped, 130 interrupted (Ctrl-C), 143 stopped (SIGTERM).
Progress and logs go to stderr (a bar on a terminal). On stdout: a short summary on a terminal, the
run record as JSON with --json or where stdout is not a terminal.

Its rooms: ``dispatch`` (main: a command line to an exit code), ``parser`` (the arguments and the
help), ``exits`` (the exit codes), ``configuration`` (local.settings.json and the runtime),
``interrupts`` (Ctrl-C and SIGTERM), ``output`` (stdout, stderr and the log), and the commands:
``runs`` (export, runs, rejects), ``checks`` (check, verify), ``destinations`` (destinations,
validate-destinations).
"""

from shared.entrypoints.cli.dispatch import main, run

__all__ = ["main", "run"]
