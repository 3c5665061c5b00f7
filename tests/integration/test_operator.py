"""What a person at a shell sees and relies on: the mapping checked before any list exists, the
CLI's exit codes, summary, runs table and pipes, and an offline check of destinations.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.run.export import queue_run, run_export
from tests.conftest import REPO, destination, make_runtime

pytestmark = pytest.mark.integration


def cli(workspace, *args: str, cwd: Path = REPO, env_overrides: dict[str, str] | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENDGRID_", "EXPORT_", "KEY_VAULT"))}
    env.update(workspace.env)
    env.update(env_overrides or {})
    return subprocess.run(
        [sys.executable, "-m", "shared", *args, "--no-local-settings"],  # a global option after the command
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_mapping_that_names_a_missing_column_fails_before_any_list_is_created(workspace, simulator):
    workspace.put_segment("people.csv", "Mail,FirstName\na@example.com,Ann\n")
    workspace.put_destinations(destination(mapping={"email": "Email"}))
    record = run_export(make_runtime(workspace), queue_run(make_runtime(workspace), "newsletter", trigger="cli"))
    assert record.status == "failed" and "has no column 'Email'" in record.errors[0]
    assert simulator.snapshot()["lists"] == []  # no empty list left behind
    assert not [r for r in simulator.state.requests if r["method"] != "GET"]
