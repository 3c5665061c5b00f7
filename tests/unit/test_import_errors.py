"""Reading an import job's errors file, whose format SendGrid does not document."""

from __future__ import annotations

import csv
import gzip
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.privacy import register_secret
from shared.run.send import import_errors
from shared.run.send.import_errors import ErrorsFileUnreadable, parse_errors_file, split_by_errors
from tests.fakes import key_shaped


def test_a_csv_with_an_email_and_an_error_column_in_any_order_and_case():
    data = (
        b'\xef\xbb\xbfline,Error Message,Email Address\r\n2,"bad, very bad",P1@Example.com\r\n'
        b"3,worse,p2@example.com\r\n"
    )
    assert parse_errors_file(data) == {"p1@example.com": "bad, very bad", "p2@example.com": "worse"}


@pytest.mark.parametrize(
    "doc",
    [
        [{"email": "p1@example.com", "error_message": "bad"}],
        {"errors": [{"Email": "p1@example.com", "message": "bad"}]},
        [{"email": "p1@example.com", "errors": ["bad"]}],
    ],
)
def test_json_as_an_array_or_an_object_holding_one(doc):
    found = parse_errors_file(json.dumps(doc).encode())
    assert list(found) == ["p1@example.com"] and "bad" in found["p1@example.com"]


def test_a_gzipped_file_is_read_and_a_gzip_bomb_is_refused():
    assert parse_errors_file(gzip.compress(b"email,error\np1@example.com,bad\n")) == {"p1@example.com": "bad"}
    bomb = gzip.compress(b"email,error\n" + (b"p1@example.com," + b" " * 60_000 + b"\n") * 1400)  # 80 MiB
    with pytest.raises(ErrorsFileUnreadable, match="inflates past"):
        parse_errors_file(bomb)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty"),
        (b"\x00\x01PK binary", "binary"),
        (b"id,when\n1,2\n", "names no email column"),
        (b"[1, 2]", "not an array of objects"),
        (b'{"a": [], "b": []}', "no single array"),
        (b'[{"email": "p1@example.com"}]', "names no email and error"),
        (b"email,error\nnot-an-address,bad\n", "no email address"),
        (b"\xff\xfe\x00garbage", "binary"),
        (b'[{"email": ', "not valid JSON"),
    ],
)
def test_what_cannot_be_read_with_certainty_is_refused_with_the_reason(data, why):
    with pytest.raises(ErrorsFileUnreadable, match=why):
        parse_errors_file(data)


def test_messages_are_bounded_and_never_empty():
    found = parse_errors_file(b"email,error\np1@example.com,\np2@example.com," + b"x" * 5000 + b"\n")
    assert found["p1@example.com"] == "errored in the import job" and len(found["p2@example.com"]) == 500


@given(st.binary(max_size=2000))
def test_any_bytes_give_a_mapping_or_a_clear_refusal(data):
    try:
        found = parse_errors_file(data)
    except ErrorsFileUnreadable:
        return
    assert all("@" in email and email == email.lower() for email in found)


def test_split_confirms_what_the_file_does_not_name():
    confirmed, failed = split_by_errors({0: "a@x.io", 1: "b@x.io", 2: "c@x.io"}, {"b@x.io": "bad", "z@x.io": "n/a"})
    assert confirmed == [0, 2] and failed == {1: "bad"}


def test_a_truncated_gzip_is_refused_though_what_it_holds_would_parse():
    whole = gzip.compress(b"email,error\nalice@example.com,bad\nbob@example.com,bad\n")
    with pytest.raises(ErrorsFileUnreadable, match="truncated"):
        parse_errors_file(whole[:-9])


def test_a_message_nested_deeper_than_the_bound_is_refused_not_recursed_into():
    assert parse_errors_file(b'[{"email": "p1@example.com", "error": [[[]]]}]') == {
        "p1@example.com": "errored in the import job"
    }
    for depth in (300, 100_000):
        deep = "[" * depth + "]" * depth
        with pytest.raises(ErrorsFileUnreadable, match="nests arrays or objects more than 64 levels"):
            parse_errors_file(f'[{{"email": "p1@example.com", "error": {deep}}}]'.encode())


def test_the_message_column_is_preferred_to_a_code_column():
    assert parse_errors_file(b"email,error_code,message\np1@example.com,E42,bad address\n") == {
        "p1@example.com": "bad address"
    }


# -- memory bounds: what parsing holds never grows with the file ---------------------------------


@pytest.mark.parametrize("process_wide_limit", [None, 64 * 1024 * 1024])
def test_an_over_long_record_is_refused_before_csv_holds_it_whatever_the_process_wide_field_limit(process_wide_limit):
    before = csv.field_size_limit()
    try:
        if process_wide_limit:
            csv.field_size_limit(process_wide_limit)  # as the segment reader sets it for the process
        for data in (
            b"email,error\np1@example.com," + b"x" * 200_000 + b"\n",  # one line
            b'email,error\np1@example.com,"' + b"x\n" * 100_000 + b'"\n',  # a quoted record over many lines
            gzip.compress(b"email,error\np1@example.com," + b"x" * (60 * 1024 * 1024)),  # a bomb of 60 KB
        ):
            with pytest.raises(ErrorsFileUnreadable, match="longer than 65536 characters"):
                parse_errors_file(data)
        assert csv.field_size_limit() == (process_wide_limit or before)  # and left as it was
    finally:
        csv.field_size_limit(before)


def test_json_with_more_values_than_any_errors_file_holds_is_refused_before_it_is_built():
    data = b'[{"email": "p1@example.com", "error": "e", "x": [' + b",".join([b"{}"] * 600_000) + b"]}]"
    with pytest.raises(ErrorsFileUnreadable, match="holds over 500,000 values"):
        parse_errors_file(data)


def test_more_contacts_than_a_job_holds_is_refused_and_repeats_are_one_contact():
    many = b"email,error\n" + b"".join(b"p%d@ex.io,bad\n" % i for i in range(30_001))
    with pytest.raises(ErrorsFileUnreadable, match="over 30000 contacts"):
        parse_errors_file(many)
    assert len(parse_errors_file(b"email,error\n" + b"p1@ex.io,bad\n" * 40_000)) == 1


def test_a_message_of_megabytes_is_cut_before_it_is_split():
    data = b'[{"email": "p1@example.com", "error": "' + b"a " * 2_000_000 + b'"}]'
    assert parse_errors_file(data)["p1@example.com"] == "a " * 250


# -- the API key and escape sequences never come out of an errors file -----------------------------

SECRET = "a-key-of-any-shape-0123456789"
SHAPED = key_shaped("ngeVfQFY", "TwL2iGAB-09k")
ESCAPES = "\x1b]0;pwned\x07\x1b[2J"
HOSTILE = f"key {SECRET} and {SHAPED} {ESCAPES}bad"


@pytest.mark.parametrize(
    "data",
    [
        f"email,error\np1@example.com,key {SECRET} and {SHAPED} \x1b]0;pwned\x07\x1b[2Jbad\n".encode(),
        json.dumps(
            [{"email": "p1@example.com", "error": f"key {SECRET} and {SHAPED} \x1b]0;pwned\x07\x1b[2Jbad"}]
        ).encode(),
        json.dumps(
            {"errors": [{"email": "p1@example.com", "errors": [f"key {SECRET}", f"{SHAPED} \x1b[2Jbad"]}]}
        ).encode(),
        gzip.compress(f"email,error\np1@example.com,key {SECRET} and {SHAPED} \x1b[2Jbad\n".encode()),
    ],
    ids=["csv", "json", "nested-json", "gzip-csv"],
)
def test_the_api_key_and_escape_sequences_in_an_errors_file_never_reach_a_message(data):
    register_secret(SECRET)
    message = parse_errors_file(data)["p1@example.com"]
    assert SECRET not in message and SHAPED not in message and "***" in message
    assert "\x1b" not in message and "pwned" not in message and message.endswith("bad")


def test_a_file_of_more_rows_than_any_job_has_is_refused_not_parsed_to_its_end(monkeypatch):
    # 64 MiB of one short row repeated took 25 s of parsing, all of it for one contact.
    monkeypatch.setattr(import_errors, "MAX_ROWS", 1000)
    data = gzip.compress(b"email,error\n" + b"a@example.com,bad\n" * 1001)
    with pytest.raises(ErrorsFileUnreadable, match="over 1,000 rows"):
        parse_errors_file(data)
    at_the_bound = gzip.compress(b"email,error\n" + b"a@example.com,bad\n" * 1000)
    assert parse_errors_file(at_the_bound) == {"a@example.com": "bad"}
