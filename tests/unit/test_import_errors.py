"""Reading an import job's errors file, whose format SendGrid does not document."""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.run.import_errors import ErrorsFileUnreadable, parse_errors_file, split_by_errors


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
    bomb = gzip.compress(b"email,error\n" + b"x" * (80 * 1024 * 1024))
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
        (b'[{"email": ', "not well-formed JSON"),
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


def test_a_message_nested_deeper_than_any_encoder_takes_is_no_crash():
    deep = "[" * 300 + "]" * 300
    found = parse_errors_file(f'[{{"email": "p1@example.com", "error": {deep}}}]'.encode())
    assert found == {"p1@example.com": "errored in the import job"}


def test_the_message_column_is_preferred_to_a_code_column():
    assert parse_errors_file(b"email,error_code,message\np1@example.com,E42,bad address\n") == {
        "p1@example.com": "bad address"
    }
