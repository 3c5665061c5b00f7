"""Hostile input: an over-long record, a decompression bomb, deep JSON, a model.json of any
size, text in the wrong encoding. Each is a clear error naming the file, or one rejected row with
its line, and the rest of the file is read."""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib

import pytest
import requests
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from shared.adapters.jobs import ExportJob
from shared.adapters.sendgrid_answers import answer_errors, answer_json
from shared.entrypoints.http_api import ApiRequest, check_destination, handle
from shared.entrypoints.service import on_job
from shared.errors import SegmentError, SendGridError, SettingsError
from shared.inputs import cdm
from shared.inputs.config import CsvOptions, SegmentRef
from shared.inputs.csv_reader import read_csv
from shared.inputs.jsonl_reader import MAX_JSON_DEPTH, read_jsonl
from shared.inputs.segments import SegmentFile, open_segment_file, resolve_segment, scan_segment_file
from shared.run.export import queue_run
from shared.run.records import ExportOptions
from shared.settings import DEFAULT_MAX_RECORD_BYTES, Settings
from tests.fakes import InMemoryBlobStore
from tests.unit.test_export_core import setup


def chunks(data: bytes, size: int = 4096):
    return [data[i : i + size] for i in range(0, len(data), size)]


def rows_of(table):
    out = []
    for line, fields in table.rows:
        out.append((line, fields, table.problem if fields is None else ""))
    return out


# -- one record's length ---------------------------------------------------------------------------


def test_an_over_long_line_is_rejected_with_its_line_and_the_next_line_is_read():
    data = b"Email,Note\na@example.com,ok\nb@example.com," + b"x" * 5000 + b"\nc@example.com,fine\n"
    got = rows_of(read_csv(chunks(data, 100), "s.csv", CsvOptions(), max_record_bytes=1024))
    assert [(line, fields) for line, fields, _ in got] == [
        (2, ["a@example.com", "ok"]),
        (3, None),
        (4, ["c@example.com", "fine"]),
    ]
    assert "longer than 1,024 characters (MAX_RECORD_BYTES)" in got[1][2]


def test_an_over_long_line_read_past_across_many_chunks(monkeypatch):
    monkeypatch.setattr("shared.inputs.record_split._TEXT_CHUNK_CHARS", 64)
    data = b"Email\na@example.com\n" + b"y" * 10_000 + b"\nc@example.com\n" + b"z" * 3000
    got = rows_of(read_csv(chunks(data, 33), "s.csv", CsvOptions(), max_record_bytes=1024))
    assert [(line, fields) for line, fields, _ in got] == [
        (2, ["a@example.com"]),
        (3, None),
        (4, ["c@example.com"]),
        (5, None),
    ]


def test_an_over_long_quoted_record_stops_the_file_naming_the_line_it_opened_on(monkeypatch):
    monkeypatch.setattr("shared.inputs.record_split._TEXT_CHUNK_CHARS", 64)
    data = b'Email,Note\na@example.com,"opens\n' + b"y" * 10_000 + b"\nmore\n"
    with pytest.raises(SegmentError, match=r"'s\.csv', line 2: a quoted field never ends"):
        list(read_csv(chunks(data), "s.csv", CsvOptions(), max_record_bytes=1024).rows)


def test_an_over_long_header_is_a_clear_error_not_an_index_error():
    # A first line longer than one read used to leave the reader with an empty chunk.
    data = b"Email," + b"c" * (1024 * 1024 + 10) + b"\na@example.com,x\n"
    with pytest.raises(SegmentError, match=r"'s\.csv': the header row \(line 1\) is longer than 1,048,576 characters"):
        read_csv(chunks(data, 1 << 20), "s.csv", CsvOptions())
    with pytest.raises(SegmentError, match=r"header row \(line 1\) is longer than 1,024 characters"):
        read_csv(chunks(data, 1 << 20), "s.csv", CsvOptions(), max_record_bytes=1024)


def test_a_headerless_first_row_longer_than_a_read_is_a_row():
    # A CDM partition has no header; a first row longer than one read (1 MiB) used to crash.
    big = b"a@example.com," + b"n" * (1536 * 1024) + b"\nb@example.com,short\n"
    options = CsvOptions(header=False, columns=("Email", "Note"), skip_repeated_header=True)
    got = rows_of(read_csv(chunks(big, 1 << 20), "p.csv", options))
    assert [(line, fields[0] if fields else None) for line, fields, _ in got] == [
        (1, "a@example.com"),
        (2, "b@example.com"),
    ]
    over = rows_of(read_csv(chunks(big, 1 << 20), "p.csv", options, max_record_bytes=1 << 20))
    assert over[0][:2] == (1, None)
    assert over[1][1] == ["b@example.com", "short"]


def test_an_over_long_json_line_is_rejected_and_the_file_read_on(monkeypatch):
    monkeypatch.setattr("shared.inputs.record_split._TEXT_CHUNK_CHARS", 100)
    data = b'{"email": "a@example.com"}\n{"email": "' + b"q" * 4000 + b'"}\n{"email": "c@example.com"}\n'
    table = read_jsonl(chunks(data, 50), "s.jsonl", ["email"], max_record_bytes=1024)
    got = rows_of(table)
    assert [(line, fields) for line, fields, _ in got] == [(1, ["a@example.com"]), (2, None), (3, ["c@example.com"])]


lines_strategy = st.lists(st.text(alphabet="ab,é", max_size=60), max_size=25)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=lines_strategy, limit=st.integers(10, 40), text_chunk=st.integers(1, 50), byte_chunk=st.integers(1, 64))
def test_every_line_is_a_row_or_rejected_as_over_long_whatever_the_chunking(lines, limit, text_chunk, byte_chunk):
    data = ("Email,Name\n" + "\n".join(lines)).encode()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("shared.inputs.record_split._TEXT_CHUNK_CHARS", text_chunk)
        got = [
            (line, fields)
            for line, fields, _ in rows_of(
                read_csv(chunks(data, byte_chunk), "s.csv", CsvOptions(delimiter=","), max_record_bytes=limit)
            )
        ]
    expected = [
        (number, None if len(text) > limit else text.split(",")) for number, text in enumerate(lines, start=2) if text
    ]
    assert got == expected


# -- a decompression bomb, a model.json of any size -----------------------------------------------


def bomb(megabytes: int, line: bytes = b"") -> bytes:
    """A gzip of ``megabytes`` MB of one repeated byte, made without holding the inflated data."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = line + b"a" * (1 << 20 - len(line))
    out = [packer.compress(b"Email\n")]
    out += [packer.compress(block) for _ in range(megabytes)]
    return b"".join(out) + packer.flush()


def test_a_gzip_that_inflates_past_the_ratio_of_real_rows_is_refused():
    data = bomb(300)  # 300 MB with no line break, in about 300 KB
    assert len(data) < 400_000
    with pytest.raises(SegmentError, match=r"'s\.csv\.gz' inflates to over 100 times its compressed size"):
        list(read_csv(chunks(data, 4 << 20), "s.csv.gz", CsvOptions()).rows)
    store = InMemoryBlobStore({"s.csv.gz": data}, chunk_size=4 << 20)
    with pytest.raises(SegmentError, match="decompression bomb"):
        scan_segment_file(store, SegmentFile("s.csv.gz", "csv"))


def test_a_gzip_of_ordinary_rows_reads_whole():
    rows = b"".join(b"p%d@example.com,Name %d\n" % (i, i) for i in range(200_000))
    table = read_csv(chunks(gzip.compress(b"Email,Name\n" + rows), 1 << 20), "s.csv.gz", CsvOptions())
    assert sum(fields is not None for _, fields in table.rows) == 200_000


def test_a_model_json_over_its_cap_is_refused_before_it_is_read_whole(monkeypatch):
    monkeypatch.setattr(cdm, "MAX_MODEL_BYTES", 2000)
    model = json.dumps({"entities": [{"name": "S", "attributes": [{"name": "a" * 100}] * 30}]}).encode()
    store = InMemoryBlobStore({"ci/model.json": model}, chunk_size=256)
    with pytest.raises(SegmentError, match=r"ci/model\.json is over 2,000 bytes"):
        resolve_segment(store, SegmentRef("ci/"))


# -- JSON Lines that break a parser ------------------------------------------------------------------


def test_json_nested_100000_deep_and_huge_integers_reject_their_line_only():
    deep = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    lines = [
        b'{"email": "a@example.com"}',
        deep,
        b"[" * 100_000 + b"]" * 100_000,
        b'{"email": "b@example.com", "n": 1' + b"0" * 5000 + b"}",
        json.dumps({"x": _nested(MAX_JSON_DEPTH + 1), "email": "c@example.com"}).encode(),
        json.dumps({"x": _nested(MAX_JSON_DEPTH - 1), "email": "d@example.com"}).encode(),
    ]
    table = read_jsonl(chunks(b"\n".join(lines)), "s.jsonl", ["email"])
    got = rows_of(table)
    assert [(line, fields and fields[0]) for line, fields, _ in got] == [
        (1, "a@example.com"),
        (2, None),
        (3, None),
        (4, None),
        (5, None),
        (6, "d@example.com"),
    ]
    assert "nested deeper than 32 levels" in got[1][2] and "nested deeper" in got[2][2]
    assert "4300" in got[3][2] and "nested deeper" in got[4][2]


def _nested(depth: int):
    value: object = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=15,
)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(
        json_values.map(json.dumps)
        | st.integers(1, 3000).map(lambda n: '{"a":' * n + "1" + "}" * n)
        | st.integers(4290, 4400).map(lambda n: '{"n": ' + "9" * n + "}")
        | st.text(st.characters(blacklist_characters="\x00"), max_size=20),
        max_size=12,
    )
)
def test_any_json_line_is_a_row_or_one_rejection(values):
    lines = [v.replace("\n", " ").replace("\r", " ") for v in values]
    assume(any(line.strip() for line in lines))
    table = read_jsonl(chunks("\n".join(lines).encode("utf-8", "surrogatepass") or b"{}"), "s.jsonl", ["email"])
    got = rows_of(table)
    assert [line for line, _, _ in got] == [n for n, line in enumerate(lines, start=1) if line.strip()]
    assert all(problem for _, fields, problem in got if fields is None)


# -- encodings ---------------------------------------------------------------------------------------

TEXT = "Email,Name\na@example.com,Zoë\n"


def test_utf16_without_a_byte_order_mark_is_a_clear_error():
    for data in (TEXT.encode("utf-16-le"), TEXT.encode("utf-16-be")):
        with pytest.raises(
            SegmentError, match=r"'s\.csv' is set to encoding utf-16 but does not start with a byte-order mark"
        ):
            read_csv(chunks(data), "s.csv", CsvOptions(encoding="utf-16"))
        with pytest.raises(SegmentError, match=r"'s\.csv' looks like UTF-16 text .* not utf-8"):
            read_csv(chunks(data), "s.csv", CsvOptions())
    with pytest.raises(SegmentError, match=r"'s\.jsonl' looks like UTF-16"):
        read_jsonl(chunks('{"email": "a@example.com"}\n'.encode("utf-16")), "s.jsonl", ["email"])


def test_utf16_with_its_byte_order_mark_reads():
    table = read_csv(chunks(TEXT.encode("utf-16")), "s.csv", CsvOptions(encoding="utf-16"))
    assert [fields for _, fields in table.rows] == [["a@example.com", "Zoë"]]


# -- the setting -------------------------------------------------------------------------------------

BASE = {"EXPORT_STORAGE": "UseDevelopmentStorage=true", "SECRETS_SOURCE": "environment"}


def test_max_record_bytes_setting():
    assert Settings.from_env(BASE).max_record_bytes == DEFAULT_MAX_RECORD_BYTES == 4 * 1024 * 1024
    assert Settings.from_env({**BASE, "MAX_RECORD_BYTES": "65536"}).max_record_bytes == 65536
    for bad in ("-1", "4MB", "12", str(2**40)):
        with pytest.raises(SettingsError, match="MAX_RECORD_BYTES must be a whole number from 1024"):
            Settings.from_env({**BASE, "MAX_RECORD_BYTES": bad})


def test_open_segment_file_applies_the_limit_it_is_given():
    store = InMemoryBlobStore({"s.csv": b"Email\n" + b"a" * 2000 + b"@example.com\nb@example.com\n"}, chunk_size=512)
    table = open_segment_file(store, SegmentFile("s.csv", "csv"), None, max_record_bytes=1024)
    assert [fields for _, fields in table.rows] == [None, ["b@example.com"]]


# -- control characters ------------------------------------------------------------------------------

CONTROL_CHARACTERS = [chr(c) for c in (*range(0, 9), 11, 12, *range(14, 32), *range(127, 160))] + ["\ufeff"]


def test_control_characters_are_removed_from_csv_values_and_counted():
    data = (
        "Email,Name,Note\r\n"
        "a@exa\x00mple.com,Ann\ufeff,tab\there\r\n"
        'b@example.com,"Bo\x1f\x85","two\r\nlines"\r\n'
        "c@example.com,Cy,plain\r\n"
    ).encode()
    table = read_csv(chunks(data, 7), "s.csv", CsvOptions())
    assert [fields for _, fields in table.rows] == [
        ["a@example.com", "Ann", "tab\there"],
        ["b@example.com", "Bo", "two\r\nlines"],
        ["c@example.com", "Cy", "plain"],
    ]
    assert table.control_chars_stripped == 2


def test_control_characters_are_removed_from_json_values_raw_or_escaped():
    lines = [
        '{"email": "a@example.com", "name": "A\\u0000nn\\uFEFF"}',
        '{"email": "b@example.com", "name": "B\ufeffo\x85"}',
        '{"email": "c@example.com", "name": "\\u00e9 not a control \\\\u0000"}',
    ]
    table = read_jsonl(chunks("\n".join(lines).encode()), "s.jsonl", ["email", "name"])
    assert [fields for _, fields in table.rows] == [
        ["a@example.com", "Ann"],
        ["b@example.com", "Bo"],
        ["c@example.com", "é not a control \\u0000"],
    ]
    assert table.control_chars_stripped == 2


WITHOUT_CONTROLS = dict.fromkeys(map(ord, CONTROL_CHARACTERS))
value_text = st.text(st.sampled_from([*CONTROL_CHARACTERS, "a", "é", ",", '"', "\t", " ", "\r", "\n"]), max_size=8)


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.lists(value_text, min_size=2, max_size=2), min_size=1, max_size=8))
def test_no_value_read_holds_a_control_character(rows):
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([["Email", "Name"], *rows])
    table = read_csv(chunks(out.getvalue().encode(), 5), "s.csv", CsvOptions(delimiter=","))
    got = [fields for _, fields in table.rows]
    assert got == [[value.translate(WITHOUT_CONTROLS) for value in row] for row in rows]
    assert table.control_chars_stripped == sum("".join(row) != "".join(row).translate(WITHOUT_CONTROLS) for row in rows)


# -- JSON documents nested past any recursion limit -------------------------------------------------

DEEP_MODEL = b'{"entities": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}"


def _cdm_runtime():
    runtime, fake = setup(destination_overrides={"segments": [{"path": "ci/"}]})
    runtime.edges.segments.blobs["ci/model.json"] = DEEP_MODEL
    return runtime, fake


def test_a_model_json_nested_100000_deep_is_a_clear_error_naming_it():
    with pytest.raises(SegmentError, match=r"ci/model\.json nests arrays or objects more than 64 levels deep"):
        resolve_segment(InMemoryBlobStore({"ci/model.json": DEEP_MODEL}), SegmentRef("ci/"))


def test_check_over_http_of_a_model_json_nested_100000_deep_answers_a_failed_check_not_500():
    runtime, _ = _cdm_runtime()
    request = ApiRequest("GET", "https://h/api/destinations/newsletter/check", route={"name": "newsletter"})
    response = handle(check_destination, lambda: runtime, request)
    assert response.status == 200 and response.body["ok"] is False, response.body
    failed = [c for c in response.body["checks"] if not c["ok"]]
    assert any("model.json nests" in c["detail"] for c in failed), failed


def test_a_queued_job_with_a_model_json_nested_100000_deep_fails_once_with_the_reason():
    runtime, fake = _cdm_runtime()
    record = queue_run(runtime, "newsletter", trigger="on_demand", options=ExportOptions())
    job = ExportJob(record.run_id, "newsletter", "on_demand", "test", {})
    ended = on_job(runtime, job.to_json(), dequeue_count=1)  # raising here would have the host retry it
    assert ended is not None and ended.status == "failed"
    assert any("model.json nests arrays or objects more than 64 levels deep" in e for e in ended.errors)
    assert fake.bodies == []


@pytest.mark.parametrize("depth", [65, 100_000])
def test_a_sendgrid_answer_nested_past_the_bound_is_a_clear_error(depth):
    response = requests.Response()
    response.status_code, response._content = 200, b'{"result": ' + b"[" * depth + b"]" * depth + b"}"
    with pytest.raises(SendGridError, match="SendGrid's answer \\(200\\) nests"):
        answer_json(response)
    response.status_code = 400
    assert answer_errors(response) == []
