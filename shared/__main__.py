"""python -m shared: the same as the sendgrid-export command."""

from shared.entrypoints.cli import run

run()
