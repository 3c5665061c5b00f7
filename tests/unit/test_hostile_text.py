"""Outside text (an errors file, a stored rejects file) never carries the API key or a terminal
escape sequence into rejects.csv, the run record, a log line, or the ``rejects`` output (CLI, HTTP)."""

from __future__ import annotations

import argparse
import gzip
import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.adapters.sendgrid_jobs import JobResult
from shared.entrypoints import cli, console
from shared.entrypoints.cli import dispatch, exits, runs
from shared.entrypoints.cli.output import print_lines
from shared.entrypoints.http_api import ApiRequest, get_rejects, handle
from shared.privacy import (
    _EMAIL_LIKE,
    SecretRedactingFilter,
    mask_emails,
    neutralise,
    neutralise_lines,
    redact,
    register_secret,
)
from shared.run.records import rejects_blob_name
from tests.fakes import FakeSendGrid, key_shaped
from tests.unit.test_export_core import run, setup

KEY = "k" * 20  # the key setup()'s secret store holds: registered as the real store registers it
SHAPED = key_shaped("ngeVfQFY", "TwL2iGAB-09k")  # a key no one registered
ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x1b[1;1H\x9b31m\u202e"
HOSTILE = f"invalid {KEY} {SHAPED} {ESCAPES}address"


class ErroredJobs(FakeSendGrid):
    """Every job ends ``errored`` for its first contact, whom ``errors_file`` names."""

    def __init__(self, errors_file: bytes) -> None:
        super().__init__()
        self.errors_file = errors_file

    def import_status(self, job_id: str) -> JobResult:
        # Jobs are followed one by one as they are accepted (the run's job follower).
        count = len(self.bodies[int(job_id.split("-")[1])]["contacts"])
        result = JobResult(job_id, "errored", requested=count, created=count - 1, errored=1)
        result.errors_url = "https://sendgrid-imports.s3.amazonaws.com/e.csv?X-Amz-Signature=x"
        return result

    def download_errors_file(self, url: str) -> bytes:
        return self.errors_file


VARIANTS = {
    "csv": f'email,error\na@example.com,"{HOSTILE}"\n'.encode(),
    "json": json.dumps([{"email": "a@example.com", "error_message": HOSTILE}]).encode(),
    "nested-json": json.dumps({"errors": [{"email": "a@example.com", "errors": [HOSTILE, KEY]}]}).encode(),
    "gzip-csv": gzip.compress(f'email,error\na@example.com,"{HOSTILE}"\n'.encode()),
}


def assert_clean(text: str) -> None:
    assert KEY not in text and SHAPED not in text
    assert not any(c in text for c in "\x1b\x07\x9b\u202e"), repr(text)


def rejects_output(runtime, name: str, run_id: str, capsysbinary) -> tuple[bytes, bytes]:
    request = ApiRequest("GET", "https://h/api/x", route={"name": name, "run_id": run_id})
    response = handle(get_rejects, lambda: runtime, request)
    assert response.status == 200
    assert runs.rejects(runtime, argparse.Namespace(name=name, run_id=run_id)) == 0
    return response.body, capsysbinary.readouterr().out


@pytest.mark.parametrize("errors_file", VARIANTS.values(), ids=VARIANTS.keys())
def test_the_key_and_escape_sequences_in_an_errors_file_reach_no_record_csv_log_or_output(
    errors_file, caplog, capsysbinary
):
    register_secret(KEY)
    runtime, _ = setup(sendgrid=ErroredJobs(errors_file))
    with caplog.at_level(logging.DEBUG):
        record = run(runtime)
    assert record.counts.errored == 1, record.errors
    stored = runtime.edges.exports.read_bytes(record.rejects_blob).decode()
    assert "errored" in stored and "address" in stored and "***" in stored
    assert_clean(stored)
    assert_clean(json.dumps(record.to_dict(), ensure_ascii=False))
    assert_clean(caplog.text)
    for output in rejects_output(runtime, "newsletter", record.run_id, capsysbinary):
        assert_clean(output.decode())


def test_a_stored_rejects_file_is_neutralised_on_its_way_to_a_terminal_or_a_client(capsysbinary):
    """A file written before cells were neutralised (or edited since) holds the key raw."""
    register_secret(KEY)
    runtime, _ = setup()
    record = run(runtime)
    raw = f'source,line,email,category,field,reason\r\ns.csv,2,a@example.com,errored,,"{HOSTILE}\r\nsecond line"\r\n'
    runtime.edges.exports.write_bytes(rejects_blob_name("newsletter", record.run_id), raw.encode(), content_type="")
    for output in rejects_output(runtime, "newsletter", record.run_id, capsysbinary):
        text = output.decode()
        assert_clean(text)
        assert text.startswith("source,line,") and "invalid *** *** address\r\nsecond line" in text


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_a_sequence_or_a_key_split_across_chunks_is_still_caught(size):
    data = f"a,{HOSTILE}\r\nb,{ESCAPES}{SHAPED}\n".encode()
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    register_secret(KEY)
    assert b"".join(neutralise_lines(pieces)) == b"a,invalid *** *** address\r\nb,***\n"


def test_one_path_for_every_kind_of_sequence_and_control():
    link = "\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\"
    text = f"a\x1b[31mred\x1b[0m{link} \x1bc\x1bPq#0\x1b\\b\x90dcs\x9c\x00\x7f\u2066z\rover\tx\n"
    assert neutralise(text) == "aredlink bz over x "
    assert neutralise(text, keep_line_breaks=True) == "aredlink bz over\tx\n"
    assert redact("mail a@example.com \x1b[2J") == "mail <email> "
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "got %s", ("\x1b]0;title\x07x\ny",), None)
    SecretRedactingFilter().filter(record)
    assert record.getMessage() == "got x\ny"


def test_the_runs_table_shows_a_stored_record_without_its_escape_sequences(capsys):
    runtime, _ = setup()
    record = run(runtime)
    record.status = "\x1b]0;owned\x07\x1b[2Jcompleted"  # a record blob edited by someone with write access
    record.trigger = "cli\x1b[1;1H"
    print_lines(console.runs_table([record]))  # what `runs` prints on a terminal
    out = capsys.readouterr().out
    assert "completed" in out and not any(c in out for c in "\x1b\x07")


def test_the_runs_table_shows_a_record_whose_times_mix_zones(capsys):
    runtime, _ = setup()
    record = run(runtime)
    record.started_at, record.finished_at = "2026-12-07T06:00:00", "2026-12-07T06:01:00Z"  # one without its zone
    print_lines(console.runs_table([record]))  # was a TypeError: every `runs` listing of the destination failed
    assert "-" in capsys.readouterr().out


def test_an_error_quoting_destinations_json_reaches_the_terminal_without_its_escape_sequences(monkeypatch, capsys):
    runtime, _ = setup()
    doc = {"destinations": [], "\x1b]0;owned\x07\x1b[2Jextra": 1}  # a key of a file anyone with write access edits
    runtime.edges.exports.write_bytes("destinations.json", json.dumps(doc).encode(), content_type="application/json")
    monkeypatch.setattr(dispatch, "cli_runtime", lambda needs_secret: runtime)
    assert cli.main(["--no-local-settings", "destinations"]) == exits.EXIT_USAGE
    err = capsys.readouterr().err
    assert "unknown top-level keys" in err and "extra" in err and not any(c in err for c in "\x1b\x07")


def test_a_rejects_file_replaced_after_its_size_was_checked_is_not_served(monkeypatch):
    """The size came from the listing and the bytes from whatever the blob was by then: a file
    swapped for a huge one in between was read whole into the answer."""
    runtime, _ = setup()
    name = rejects_blob_name("newsletter", "20261207T060000Z-00000000")
    exports = runtime.edges.exports
    exports.write_bytes(name, b"source,line\n", content_type="text/csv")
    listing = exports.list_blobs

    def list_then_replace(prefix, **kwargs):
        listed = listing(prefix, **kwargs)
        exports.blobs[name] = b"x" * 5000  # past the bound set below
        return listed

    monkeypatch.setattr(exports, "list_blobs", list_then_replace)
    monkeypatch.setattr("shared.entrypoints.http_api.MAX_REJECTS_HTTP_BYTES", 1000)
    route = {"name": "newsletter", "run_id": "20261207T060000Z-00000000"}
    response = handle(get_rejects, lambda: runtime, ApiRequest("GET", "https://h/api/x", route=route))
    assert response.status != 200 and "changed since it was first read" in json.dumps(response.body)


@pytest.mark.timeout(20)  # a hang guard: 40 KB took 3 s, quadratic; these would take hours
@pytest.mark.parametrize("text", ["a" * 1_000_000, "a" * 1_000_000 + "@", "a." * 500_000, "x@" * 500_000])
def test_masking_addresses_is_linear_in_a_long_outside_text(text):
    assert redact(text + " mail a@example.com").endswith(" mail <email>")


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet="ab.@ 1x,", max_size=40))
def test_masking_addresses_masks_what_the_address_pattern_matches(text):
    assert mask_emails(text) == _EMAIL_LIKE.sub("<email>", text)
