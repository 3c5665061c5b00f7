"""Fuzzed configuration and HTTP input: a clear error or a counted rejection, never a traceback."""

from __future__ import annotations

import gzip
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.adapters.downloads import DownloadError, HostPolicy, Limits, fetch
from shared.entrypoints.http_api import ApiRequest, check_destination, get_export, handle, list_exports, start_export
from shared.errors import ConfigError, SegmentError
from shared.inputs.config import _DESTINATION_KEYS, parse_destinations
from shared.inputs.segments import SegmentFile, open_segment_file
from shared.json_input import JsonDocumentError, load_json
from shared.privacy import neutralise, register_secret
from shared.run.send.import_errors import ErrorsFileUnreadable, parse_errors_file
from shared.settings import DEFAULT_MAX_RECORD_BYTES
from tests.fakes import InMemoryBlobStore, key_shaped
from tests.unit.test_export_core import setup

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
fields = st.sampled_from(sorted(_DESTINATION_KEYS | {"an_unknown_key"}))
GOOD = {"name": "newsletter", "data_privacy_consent": True, "list": {"name": "L"}, "segments": [{"path": "a.csv"}]}


@settings(max_examples=300, deadline=None)
@given(doc=json_values)
def test_any_json_document_parses_or_is_one_clear_error(doc):
    try:
        config = parse_destinations(json.dumps(doc))
    except ConfigError as exc:
        assert "destinations.json" in str(exc)
        return
    for name in config.names():
        try:
            config.get(name)
        except ConfigError as exc:
            assert exc.destination is not None and str(exc).startswith(f"destination '{exc.destination}'")


@settings(max_examples=400, deadline=None)
@given(changes=st.dictionaries(fields, json_values, min_size=1, max_size=4))
def test_any_bad_field_names_the_destination_and_the_field(changes):
    entry = {**GOOD, **changes}
    config = parse_destinations(json.dumps({"destinations": [entry]}))
    (name,) = config.names()
    try:
        config.get(name)
    except ConfigError as exc:
        assert exc.destination == name and exc.field is not None
        assert f"destination '{name}', field '{exc.field}'" in str(exc) or exc.field == ""


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.text(max_size=70),
    body=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()),
    run_id=st.text(max_size=40),
    limit=st.text(max_size=6),
)
def test_any_http_input_gets_json_and_a_4xx_or_success(name, body, run_id, limit):
    runtime, fake = setup()
    for handler, route, query in (
        (start_export, {"name": name}, {}),
        (list_exports, {"name": name}, {"limit": limit}),
        (get_export, {"name": name, "run_id": run_id}, {}),
        (check_destination, {"name": name}, {}),
    ):
        request = ApiRequest("POST", "https://h/api/x", route=route, query=query, body=body)
        response = handle(handler, lambda: runtime, request)
        json.loads(response.json_bytes())
        assert response.status in (200, 202, 400, 404, 409), (handler.__name__, response.body)
        if response.status >= 400:
            assert set(response.body) == {"error"} and response.body["error"]["code"]
    assert fake.bodies == []  # nothing is ever sent inside an HTTP request


segment_bytes = st.binary(max_size=300) | st.lists(
    st.sampled_from(
        [
            b"Email,Name",
            b"a@example.com,Ann",
            b'"',
            b",",
            b"\r\n",
            b"\n",
            b"\r",
            b"\x00",
            b"\xef\xbb\xbf",
            b"\xff\xfe",
            b'{"email": "a@example.com"}',
            b"[[[[",
            b"{",
            b"}",
            b"x" * 40,
        ]
    ),
    max_size=40,
).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(
    data=segment_bytes,
    name=st.sampled_from(["s.csv", "s.jsonl", "s.csv.gz"]),
    limit=st.sampled_from([16, 64, DEFAULT_MAX_RECORD_BYTES]),
    text_chunk=st.integers(1, 64),
)
def test_any_bytes_read_as_a_segment_give_rows_rejections_or_one_clear_error(data, name, limit, text_chunk):
    if name.endswith(".gz"):
        data = gzip.compress(data)
    file = SegmentFile(name, "jsonl" if name.endswith(".jsonl") else "csv")
    store = InMemoryBlobStore({name: data}, chunk_size=13)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("shared.inputs.record_split._TEXT_CHUNK_CHARS", text_chunk)
        try:
            table = open_segment_file(store, file, None, limit)
            for chunk in table.chunks:
                assert chunk.records, "an empty chunk"
                parsed, problems = table.parse(chunk.records)
                assert len(parsed) == len(chunk.records)
                assert all(problems.get(i) for i, fields in enumerate(parsed) if fields is None)
        except SegmentError as exc:
            assert f"'{name}'" in str(exc)


# -- what comes from SendGrid's side: errors files, links to them, JSON answers, their words ------------

KEY = "fuzz-registered-key-0123456789"
hostile_text = st.lists(
    st.sampled_from(
        [
            "email,error\n",
            "p1@example.com,",
            "P2@Example.com,",
            '"',
            ",",
            "\r\n",
            KEY,
            key_shaped("abcdefghijklmnopqrstuv", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"),
            "\x1b]0;title\x07",
            "\x1b[2J",
            "\x9b1m",
            "\u202e",
            "\x00",
            "[",
            "]",
            "{",
            '{"email": "p1@example.com", "error": "',
            '"}',
            "x" * 70_000,
        ]
    ),
    max_size=12,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=hostile_text, gzipped=st.booleans(), cut=st.integers(0, 8))
def test_any_errors_file_gives_neutralised_messages_or_one_clear_refusal(text, gzipped, cut):
    register_secret(KEY)
    data = text.encode("utf-8")
    data = gzip.compress(data)[: -cut or None] if gzipped else data
    try:
        found = parse_errors_file(data)
    except ErrorsFileUnreadable:
        return
    for email, message in found.items():
        assert "@" in email and email == email.strip().lower()
        assert KEY not in message and "SG.abcdefgh" not in message and not _UNSAFE.search(message)
        assert len(message) <= 500


_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@settings(max_examples=300, deadline=None)
@given(text=hostile_text | st.integers(0, 3000).map(lambda n: "[" * n + "]" * (n // 2)))
def test_any_text_neutralised_holds_no_secret_control_or_escape_and_stays_so(text):
    register_secret(KEY)
    cleaned = neutralise(text)
    assert KEY not in cleaned and not _UNSAFE.search(cleaned)
    assert neutralise(cleaned) == cleaned
    try:
        load_json(text, "the document")
    except JsonDocumentError as exc:
        assert str(exc).startswith("the document ")


urls = st.builds(
    "{}://{}{}/{}".format,
    st.sampled_from(["https", "http", "file", "ftp", "HTTPS", ""]),
    st.sampled_from(
        [
            "files.sendgrid.net",
            "sendgrid-x.s3.amazonaws.com",
            "sendgrid-x.s3.eu-west-1.amazonaws.com",
            "evil.example.com",
            "169.254.169.254",
            "[::1]",
            "user:pw@files.sendgrid.net",
            "files.sendgrid.net.evil.test",
            "",
        ]
    ),
    st.sampled_from(["", ":443", ":1", ":99999", ":x"]),
    st.text(max_size=10),
)
private_addresses = st.sampled_from(
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.5",
        "192.168.1.1",
        "169.254.169.254",
        "168.63.129.16",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104 - an address a link may resolve to, never bound
        "::1",
        "fe80::1",
        "fd00:ec2::254",
        "::ffff:10.0.0.1",
        "224.0.0.1",
        "240.0.0.1",
    ]
)


@settings(max_examples=400, deadline=None)
@given(url=urls, address=private_addresses)
def test_no_link_reaches_a_private_or_metadata_address_or_an_unlisted_host(url, address):
    seen: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        seen.append(host)
        return [address]

    with pytest.raises(DownloadError):
        fetch(url, HostPolicy(), Limits(1000, 1.0), resolver=resolver)
    assert all(host.endswith((".sendgrid.net", ".amazonaws.com")) for host in seen)
