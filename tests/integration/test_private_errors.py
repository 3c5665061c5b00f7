"""A file without a header row puts a person where column names belong: no message repeats it."""

from __future__ import annotations

import json
import logging
import re

import pytest

from shared.run.export import queue_run, run_export
from shared.run.preflight import Check, run_checks
from tests.conftest import SENTINEL_NAMES, destination, make_runtime

pytestmark = pytest.mark.integration

# Read with the default "header": true, this first row is taken for the column names.
HEADERLESS = (
    "zebedee.q@example.com,Zebedee,Quixotica,+47 912 34 567,Storgata 1\r\nb@example.com,Bo,Lee,+47 1,Gate 2\r\n"
)
PERSONAL = re.compile(r"example\.com|Zebedee|Quixotica|912 34 567|Storgata", re.IGNORECASE)


def test_a_headerless_file_fails_the_run_without_repeating_its_first_row(workspace, simulator, caplog):
    workspace.put_segment("people.csv", HEADERLESS)
    workspace.put_destinations(destination())
    runtime = make_runtime(workspace)
    record = run_export(runtime, queue_run(runtime, "newsletter", trigger="cli"))
    assert record.status == "failed"
    (error,) = record.errors
    assert "no email column found among its 5 columns" in error
    assert "looks like data, not column names (an address or a number in column 1, 4)" in error
    assert '"header": false' in error
    assert not PERSONAL.search(json.dumps(record.to_dict()))
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and not any(PERSONAL.search(m) for m in errors)


def test_check_names_columns_by_count_and_masks_addresses(workspace, simulator):
    workspace.put_segment("people.csv", HEADERLESS)
    mapping = {"email": "Email", "first_name": "FirstName"}
    workspace.put_destinations(destination(mapping=mapping))
    checks = run_checks(make_runtime(workspace), "newsletter")
    (segment,) = [c for c in checks if c.name.startswith("segment:")]
    assert not segment.ok
    assert "has no column 'Email' (mapped to email) among its 5 columns" in segment.detail
    for check in checks:
        assert not PERSONAL.search(check.detail), check
        assert not any(name in check.detail for name in SENTINEL_NAMES)


def test_every_check_detail_is_masked_wherever_it_comes_from():
    assert Check("sendgrid", False, "SendGrid refused zebedee.q@example.com: bad").detail == (
        "SendGrid refused <email>: bad"
    )
