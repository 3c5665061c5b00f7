"""A stored run record's JSON shape is a contract (stored records are read back by later runs and
served by the HTTP API): this is its shape, key for key and in order, for one ordinary run.
A change here is a change of the contract; make it on purpose, and say so in README's "Runs"."""

from __future__ import annotations

import json
import pathlib
import re
from typing import Any

from tests.unit.test_export_core import run, setup, stored

SNAPSHOT = pathlib.Path(__file__).parent / "snapshots" / "run_record.json"
_MOMENT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _steady(value: Any, run_id: str) -> Any:
    """The record with what changes from run to run (its id, moments, seconds) put as placeholders."""
    if isinstance(value, dict):
        return {key: _steady_field(key, item, run_id) for key, item in value.items()}
    if isinstance(value, list):
        return [_steady(item, run_id) for item in value]
    if isinstance(value, str):
        return "<moment>" if _MOMENT.match(value) else value.replace(run_id, "<run_id>")
    return value


def _steady_field(key: str, item: Any, run_id: str) -> Any:
    if key == "timings":
        return {stage: "<seconds>" for stage in item}
    if key == "elapsed_seconds":
        return "<seconds>"
    return _steady(item, run_id)


def test_a_stored_run_record_keeps_its_json_shape():
    runtime, _ = setup()
    record = run(runtime)
    document = _steady(stored(runtime, record), record.run_id)
    assert json.dumps(document, indent=2) + "\n" == SNAPSHOT.read_text(encoding="utf-8")
