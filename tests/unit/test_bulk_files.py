"""The bulk paths' files, as hostile input: an export's files (gzip sniffed by its magic bytes,
an empty one not gzip, NDJSON, several gzip members, damaged ones), the import answer, the
import file's columns, and the settings that turn bulk import on and off."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

from shared.adapters.sendgrid_bulk import parse_import_answer
from shared.errors import SendGridError
from shared.run.send.batching import BatchSpool, encode_contact
from shared.run.send.import_file import ImportNotPossible, columns_for, keys_in, reserved_ids, write_import_file
from shared.run.send.list_export import ExportUnreadable, Members, MemberSelection, read_file
from shared.settings import SettingsError
from tests.unit.test_settings import BASE


def read(data: bytes, **kwargs) -> Members:
    members = Members()
    read_file(data, members, MemberSelection(kwargs.get("wanted"), kwargs.get("keep_fields", False)))
    return members


def test_an_empty_export_is_not_gzip_and_holds_nobody():
    assert read(b"").ids == {}


def test_a_gzipped_csv_export_is_read_by_its_magic_bytes_whatever_its_header_case():
    data = gzip.compress(b"EMAIL,FIRST_NAME,CONTACT_ID\r\nA@Example.com,Ada,id-1\r\nb@example.com,Bo,id-2\r\n")
    members = read(data, keep_fields=True)
    assert members.ids == {"a@example.com": "id-1", "b@example.com": "id-2"}
    assert members.other["a@example.com"] == {"first_name": "Ada"}


def test_ndjson_and_several_gzip_members_are_read_and_unusable_rows_counted():
    first = gzip.compress(json.dumps({"email": "a@example.com", "contact_id": "1"}).encode() + b"\n")
    second = gzip.compress(b'{"email": "not an address", "contact_id": "2"}\n{"email": "c@example.com", "id": "3"}\n')
    members = read(first + second)
    assert members.ids == {"a@example.com": "1", "c@example.com": "3"} and members.skipped == 1


def test_only_the_wanted_addresses_are_kept():
    data = b"email,contact_id\na@example.com,1\nb@example.com,2\n"
    assert read(data, wanted={"b@example.com"}.__contains__).ids == {"b@example.com": "2"}


@pytest.mark.parametrize(
    "data",
    [
        gzip.compress(b"email,contact_id\na@example.com,1\n")[:-6],  # truncated
        b"\x1f\x8b\x08\x00garbage",  # corrupt gzip
        b"name,city\nAda,Oslo\n",  # no email and id columns
        b'{"email": "a@example.com"\n',  # broken NDJSON
        b"email,contact_id\n" + b"x" * (300 * 1024) + b"\n",  # an over-long line
        b"email,contact_id\n\xff\xfe,1\n",  # not UTF-8
    ],
)
def test_a_damaged_export_file_is_refused_with_a_clear_error(data):
    with pytest.raises(ExportUnreadable):
        read(data)


def test_the_import_answer_must_name_a_job_a_link_and_clean_headers():
    answer = {
        "job_id": "j1",
        "upload_uri": "https://sendgrid-x.s3.us-west-2.amazonaws.com/f?X-Amz-Signature=s",
        "upload_headers": [{"header": "x-amz-server-side-encryption", "value": "aws:kms"}],
    }
    assert parse_import_answer(answer).headers == (("x-amz-server-side-encryption", "aws:kms"),)
    for broken in (
        {**answer, "job_id": None},
        {**answer, "upload_uri": ""},
        {**answer, "upload_headers": "x"},
        {**answer, "upload_headers": [{"header": "a\r\nb", "value": "c"}]},
        {**answer, "upload_headers": [{"header": "a"}]},
    ):
        with pytest.raises(SendGridError):
            parse_import_answer(broken)


def test_the_import_file_maps_its_columns_positionally_and_is_gzipped(tmp_path):
    spool = BatchSpool(["l1"], max_contacts=2)
    contacts: list[dict[str, Any]] = [
        {"email": "a@example.com", "first_name": "Ada", "custom_fields": {"w1": 3}},
        {"email": "b@example.com", "alternate_emails": ["c@example.com", "d@example.com"]},
        {"email": "e@example.com", "first_name": "=cmd"},
    ]
    for i, contact in enumerate(contacts):
        spool.add(encode_contact(contact), "s.csv", i)
    spool.finish()
    reserved = reserved_ids(
        {
            "reserved_fields": [
                {"id": "_rf2_T", "name": "email"},
                {"id": "_rf0_T", "name": "first_name"},
                {"id": "_rf3_T", "name": "alternate_emails"},
            ]
        }
    )
    columns = columns_for(*keys_in(spool, [0, 1]), reserved)
    assert columns.keys == ("email", "alternate_emails", "first_name", "custom_fields.w1")
    assert columns.mappings == ("_rf2_T", "_rf3_T", "_rf0_T", "w1")
    path = write_import_file(spool, [0, 1], columns, str(tmp_path))
    with open(path, "rb") as f:
        data = f.read()
    assert data[:2] == b"\x1f\x8b"
    assert gzip.decompress(data).decode() == (
        "email,alternate_emails,first_name,custom_fields.w1\r\n"
        "a@example.com,,Ada,3\r\n"
        'b@example.com,"c@example.com,d@example.com",,\r\n'
        "e@example.com,,=cmd,\r\n"
    )
    with pytest.raises(ImportNotPossible, match="first_name"):
        columns_for({"email", "first_name"}, set(), {"email": "_rf2_T"})


def test_bulk_import_settings_are_checked():
    from shared.settings import Settings

    settings = Settings.from_env(BASE)
    assert (settings.bulk_import, settings.bulk_import_threshold) == ("auto", 60_000)
    assert Settings.from_env({**BASE, "SENDGRID_BULK_IMPORT": "Never"}).bulk_import == "never"
    with pytest.raises(SettingsError, match="SENDGRID_BULK_IMPORT"):
        Settings.from_env({**BASE, "SENDGRID_BULK_IMPORT": "sometimes"})
    with pytest.raises(SettingsError, match="SENDGRID_BULK_IMPORT_THRESHOLD"):
        Settings.from_env({**BASE, "SENDGRID_BULK_IMPORT_THRESHOLD": "0"})


@pytest.mark.parametrize(
    ("region", "mode", "warned"), [("eu", "auto", True), ("global", "auto", False), ("eu", "never", False)]
)
def test_check_warns_where_an_eu_destination_s_contacts_would_go_to_the_upload_bucket(region, mode, warned):
    import dataclasses

    from shared.run.preflight import run_checks
    from tests.unit.test_export_core import setup

    runtime, _ = setup({"region": region})
    runtime.settings = dataclasses.replace(runtime.settings, bulk_import=mode)
    (check,) = [c for c in run_checks(runtime, "newsletter") if c.name == "bulk_import"]
    assert check.ok and check.detail.startswith("warning:") is warned
    assert ("outside the EU" in check.detail) is warned
