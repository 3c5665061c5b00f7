"""Real-world inputs in the storage emulator: CDM folders, snapshots, JSON Lines, bad files."""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from dataclasses import replace

import pytest

from shared.run.export import queue_run, run_export
from shared.run.records import ExportOptions
from shared.settings import Settings
from tests.conftest import destination, make_runtime

pytestmark = pytest.mark.integration

ATTRIBUTES = ["CustomerId", "PrimaryEmail", "FirstName", "LastName", "City", "StateOrProvince", "Country", "PostalCode"]


def run(workspace, **overrides):
    runtime = make_runtime(workspace, **overrides)
    return run_export(runtime, queue_run(runtime, "newsletter", trigger="cli"))


def rejects_of(workspace, record) -> list[dict[str, str]]:
    if not record.rejects_blob:
        return []
    return list(csv.DictReader(io.StringIO(workspace.read_export(record.rejects_blob).decode("utf-8"))))


def headerless(rows: list[list[str]], *, repeat_header: bool = False) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if repeat_header:
        writer.writerow(ATTRIBUTES)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def profile(i: int, city: str = "Oslo") -> list[str]:
    return [f"C{i}", f"p{i}@example.com", f"First{i}", f"Last{i}", city, "", "Norway", "0150"]


# A partition of a model.json: its file, and its fileFormatSettings if any.
Partitions = dict[str, tuple[str, dict[str, str] | None]]


def model_json(workspace, folder: str, partitions: Partitions, entity: str = "NewsletterSegment") -> bytes:
    """A model.json as Customer Insights writes it: attributes in order, absolute partition URLs."""
    base = workspace.segments.url
    return json.dumps(
        {
            "name": "CustomerInsights",
            "version": "1.0",
            "entities": [
                {
                    "$type": "LocalEntity",
                    "name": entity,
                    "attributes": [{"name": a, "dataType": "string"} for a in ATTRIBUTES],
                    "partitions": [
                        {
                            "name": name,
                            "location": f"{base}/{folder}{path}",
                            **({"fileFormatSettings": fmt} if fmt else {}),
                        }
                        for name, (path, fmt) in partitions.items()
                    ],
                }
            ],
        }
    ).encode()


def test_a_customer_insights_folder_exports_its_newest_snapshot_with_default_mapping(workspace, simulator):
    folder = "ci/CustomerInsights_1/Newsletter/"
    old, new = "NewsletterSegment/2024/01/01/0300/", "NewsletterSegment/2024/01/02/0300/"
    workspace.put_segment(f"{folder}{old}NewsletterSegment_1.csv", headerless([profile(i) for i in range(5)]))
    workspace.put_segment(
        f"{folder}{new}NewsletterSegment_1.csv",
        headerless([profile(i, "Bergen") for i in range(3, 8)], repeat_header=True),
    )
    workspace.put_segment(
        f"{folder}{new}NewsletterSegment_2.csv", headerless([profile(i, "Bergen") for i in range(8, 10)])
    )
    workspace.put_segment(
        f"{folder}model.json",
        model_json(
            workspace,
            folder,
            {
                "p1-old": (f"{old}NewsletterSegment_1.csv", None),
                "p1": (
                    f"{new}NewsletterSegment_1.csv",
                    {"$type": "CsvFormatSettings", "columnHeaders": "false", "delimiter": ","},
                ),
                "p2": (f"{new}NewsletterSegment_2.csv", None),
            },
        ),
    )
    workspace.put_destinations(destination(segments=[{"path": folder, "table": "NewsletterSegment"}]))
    record = run(workspace)
    assert record.status == "succeeded", record.errors
    [segment] = record.segments
    assert (segment["path"], segment["files"], segment["rows"]) == (folder, 2, 7)  # the repeated header is no row
    assert [f["rows"] for f in segment["by_file"]] == [5, 2]
    assert simulator.members("Newsletter") == sorted(f"p{i}@example.com" for i in range(3, 10))
    contact = simulator.snapshot()["contacts"]["p9@example.com"]
    assert (contact["first_name"], contact["city"], contact["country"], contact["postal_code"]) == (
        "First9",
        "Bergen",
        "Norway",
        "0150",
    )


def test_an_entity_without_partitions_is_read_from_its_snapshot_folders(workspace, simulator):
    folder = "ci/Export/"
    workspace.put_segment(f"{folder}Seg/2024/03/01/0900/Seg_1.csv.gz", gzip.compress(headerless([profile(1)])))
    workspace.put_segment(f"{folder}Seg/2024/03/02/0900/Seg_1.csv", headerless([profile(2), profile(3)]))
    workspace.put_segment(
        f"{folder}model.json",
        json.dumps(
            {"entities": [{"$type": "LocalEntity", "name": "Seg", "attributes": [{"name": a} for a in ATTRIBUTES]}]}
        ),
    )
    workspace.put_destinations(destination(segments=[{"path": folder}]))
    record = run(workspace)
    assert record.status == "succeeded", record.errors
    assert simulator.members("Newsletter") == ["p2@example.com", "p3@example.com"]


def test_mirror_mode_removes_nobody_on_a_read_that_cannot_be_proven_complete(workspace, simulator):
    # An entity without partitions is read from its newest snapshot folder; nothing says that
    # folder holds every partition, so what is missing from it may only be missing so far.
    folder = "ci/Export/"
    model = {"entities": [{"$type": "LocalEntity", "name": "Seg", "attributes": [{"name": a} for a in ATTRIBUTES]}]}
    workspace.put_segment(f"{folder}model.json", json.dumps(model))
    workspace.put_segment(f"{folder}Seg/2024/03/01/0900/Seg_1.csv", headerless([profile(1), profile(2)]))
    workspace.put_segment(f"{folder}Seg/2024/03/01/0900/Seg_2.csv", headerless([profile(3), profile(4)]))
    workspace.put_destinations(destination(segments=[{"path": folder}], mode="mirror", max_removal_fraction=1.0))
    assert run(workspace).counts.accepted == 4
    workspace.put_segment(
        f"{folder}Seg/2024/03/02/0900/Seg_1.csv", headerless([profile(1), profile(2)])
    )  # 1 of 2 so far
    record = run(workspace)
    assert record.removals["refused"] and "cannot be proven complete" in record.removals["reason"]
    assert len(simulator.members("Newsletter")) == 4
    runtime = make_runtime(workspace)
    forced = run_export(
        runtime, queue_run(runtime, "newsletter", trigger="cli", options=ExportOptions(force_removals=True))
    )
    assert forced.removals["done"] == 2 and len(simulator.members("Newsletter")) == 2


@pytest.mark.parametrize(
    ("partitions", "table", "message"),
    [
        ({"p": ("Seg_1.csv", None)}, "Other", "has no entity 'Other' (entities: NewsletterSegment)"),
        ({"p": ("Seg_missing.csv", None)}, None, "partition ci/x/Seg_missing.csv is missing"),
        (
            {"p": ("Seg_1.csv", {"$type": "CsvFormatSettings", "delimiter": "#"})},
            None,
            "delimiter '#' is not supported",
        ),
    ],
)
def test_bad_cdm_folders_fail_before_anything_is_sent(workspace, simulator, partitions, table, message):
    folder = "ci/x/"
    workspace.put_segment(f"{folder}Seg_1.csv", headerless([profile(1)]))
    workspace.put_segment(f"{folder}model.json", model_json(workspace, folder, partitions))
    workspace.put_destinations(destination(segments=[{"path": folder, **({"table": table} if table else {})}]))
    record = run(workspace)
    assert record.status == "failed" and message in record.errors[0], record.errors
    assert simulator.snapshot()["upserted_contacts"] == 0 and record.counts.read == 0


def test_a_partition_outside_the_segments_container_is_refused(workspace, simulator, blob_service):
    other = blob_service.create_container(f"other-{workspace.segments.container_name}")
    try:
        other.upload_blob("Seg_1.csv", headerless([profile(1)]))
        model = json.dumps(
            {
                "entities": [
                    {
                        "$type": "LocalEntity",
                        "name": "Seg",
                        "attributes": [{"name": a} for a in ATTRIBUTES],
                        "partitions": [{"name": "p", "location": f"{other.url}/Seg_1.csv"}],
                    }
                ]
            }
        )
        workspace.put_segment("ci/model.json", model)
        workspace.put_destinations(destination(segments=[{"path": "ci/"}]))
        record = run(workspace)
        assert record.status == "failed" and "not a blob in the segments container" in record.errors[0]
        assert simulator.snapshot()["upserted_contacts"] == 0
    finally:
        other.delete_container()


def test_a_malformed_model_json_fails_naming_it(workspace, simulator):
    workspace.put_segment("ci/model.json", b'{"entities": [ oops')
    workspace.put_destinations(destination(segments=[{"path": "ci/"}]))
    record = run(workspace)
    assert record.status == "failed" and "ci/model.json is not valid JSON" in record.errors[0]


def test_json_lines_flattened_with_bad_lines_rejected_and_counted(workspace, simulator):
    lines = [
        json.dumps({"contact": {"email": "a@example.com", "name": {"first": "Ann"}}, "alts": ["a2@example.com"]}),
        "",
        json.dumps({"contact": {"email": "b@example.com", "name": {"first": "Bo"}}, "points": 3}),
        "[1, 2]",
        "{broken",
        json.dumps({"contact": {"email": "c@example.com"}, "late_column": "x"}),
    ]
    workspace.put_segment("people.jsonl.gz", gzip.compress("\n".join(lines).encode()))
    mapping = {"email": "contact.email", "first_name": "contact.name.first", "alternate_emails": "alts"}
    workspace.put_destinations(destination(segments=[{"path": "people.jsonl.gz"}], mapping=mapping))
    record = run(workspace)
    c = record.counts
    assert (c.read, c.invalid, c.sent) == (5, 2, 3) and record.counts.conserved()
    contacts = simulator.snapshot()["contacts"]
    assert contacts["a@example.com"]["first_name"] == "Ann"
    assert contacts["a@example.com"]["alternate_emails"] == ["a2@example.com"]
    assert [(r["line"], r["reason"]) for r in rejects_of(workspace, record)] == [
        ("4", "not a JSON object"),
        ("5", "not valid JSON (Expecting property name enclosed in double quotes at column 2)"),
    ]


def test_json_lines_with_the_default_mapping(workspace, simulator):
    workspace.put_segment("p.ndjson", '{"EmailAddress": "a@example.com", "FirstName": "Ann", "City": "Oslo"}\n')
    workspace.put_destinations(destination(segments=[{"path": "p.ndjson"}]))
    record = run(workspace)
    assert record.status == "succeeded" and simulator.snapshot()["contacts"]["a@example.com"]["city"] == "Oslo"


def test_ragged_and_undecodable_rows_are_rejected_with_their_lines(workspace, simulator):
    data = (
        b"Email,FirstName,City\r\n"
        b"a@example.com,Ann,Oslo\r\n"
        b"b@example.com,Bo\r\n"  # too few fields
        b"c@example.com,Cy,Oslo,extra\r\n"  # too many
        b"d@example.com,J\xe9r\xf4me,Lyon\r\n"  # Latin-1 in a UTF-8 file
        b'e@example.com,"Multi\r\nline",Oslo\r\n'
        b"f@example.com,Fay,Oslo\r\n"
    )
    workspace.put_segment("people.csv", data)
    workspace.put_destinations(destination())
    record = run(workspace)
    assert (record.counts.read, record.counts.invalid, record.counts.sent) == (6, 3, 3)
    assert record.counts.conserved()
    assert [(r["line"], r["reason"]) for r in rejects_of(workspace, record)] == [
        ("3", "ragged row: 2 fields where the header has 3"),
        ("4", "ragged row: 4 fields where the header has 3"),
        ("5", "undecodable bytes (not UTF-8) in column 2"),
    ]
    assert simulator.members("Newsletter") == ["a@example.com", "e@example.com", "f@example.com"]


def test_a_declared_encoding_is_honoured(workspace, simulator):
    workspace.put_segment("latin.csv", "Email;FirstName\na@example.com;Jérôme\n".encode("cp1252"))
    workspace.put_destinations(destination(segments=[{"path": "latin.csv", "csv": {"encoding": "cp1252"}}]))
    record = run(workspace)
    assert record.status == "succeeded"
    assert simulator.snapshot()["contacts"]["a@example.com"]["first_name"] == "Jérôme"


@pytest.mark.parametrize(
    ("blobs", "segment", "message"),
    [
        ({"empty.csv": b""}, "empty.csv", "segment file 'empty.csv' is empty"),
        ({"blank.csv": b"\r\n\r\n"}, "blank.csv", "segment file 'blank.csv' is empty"),
        ({"only/notes.md": b"x"}, "only/", "no .csv"),
        ({"bad.csv.gz": b"not gzip at all"}, "bad.csv.gz", "segment file 'bad.csv.gz' cannot be read"),
    ],
)
def test_unreadable_segments_fail_the_run_before_anything_is_sent(workspace, simulator, blobs, segment, message):
    for name, data in blobs.items():
        workspace.put_segment(name, data)
    workspace.put_destinations(destination(segments=[{"path": segment}]))
    record = run(workspace)
    assert record.status == "failed" and message in record.errors[0], record.errors
    assert simulator.snapshot()["upserted_contacts"] == 0


@pytest.mark.parametrize(
    ("second", "message"),
    [
        (gzip.compress(b"PrimaryEmail\r\np9@example.com\r\n")[:-12], "segment file 'ci/b.csv.gz' cannot be read"),
        (b"Name,City\r\nAnn,Oslo\r\n", "segment file 'ci/b.csv.gz': no email column"),
    ],
)
def test_a_bad_later_file_fails_the_run_before_the_good_earlier_one_is_sent(workspace, simulator, second, message):
    # Sending may start while reading, but only once every file has been read through once.
    good = "PrimaryEmail,FirstName\r\n" + "".join(f"p{i}@example.com,N{i}\r\n" for i in range(300))
    workspace.put_segment("ci/a.csv", good.encode())
    workspace.put_segment("ci/b.csv.gz", second if second.startswith(b"\x1f\x8b") else gzip.compress(second))
    workspace.put_destinations(destination(segments=[{"path": "ci/"}]))
    record = run(workspace, max_batch_contacts=50)
    assert record.status == "failed" and message in record.errors[0], record.errors
    assert simulator.snapshot()["upserted_contacts"] == 0


def test_hostile_rows_are_each_rejected_with_their_line_and_the_counts_add_up(workspace, simulator):
    data = (
        b"Email,FirstName,City\r\n"
        b"a@example.com,Ann,Oslo\r\n"
        b"b@example.com," + b"x" * 5000 + b",Oslo\r\n"  # over MAX_RECORD_BYTES
        b"c@example.com,C\x00y\xef\xbb\xbf,Oslo\r\n"  # NUL and a BOM inside a value
        b'=HYPERLINK("http://evil"),Dee,Oslo\r\n'  # not an address; a formula in Excel
        b"e@example.com,Eve,Oslo\r\n"
    )
    workspace.put_segment("people.csv", data)
    workspace.put_destinations(destination())
    settings = replace(Settings.from_env(workspace.env), max_record_bytes=1024)
    record = run(workspace, settings=settings)
    c = record.counts
    assert (c.read, c.invalid, c.sent, c.control_chars_stripped) == (5, 2, 3, 1)
    assert record.counts.conserved() and record.status == "completed_with_errors"
    assert simulator.snapshot()["contacts"]["c@example.com"]["first_name"] == "Cy"
    rejects = [(r["line"], r["email"], r["reason"]) for r in rejects_of(workspace, record)]
    assert rejects[0][:2] == ("3", "") and "longer than 1,024 characters (MAX_RECORD_BYTES)" in rejects[0][2]
    assert rejects[1] == ("5", '\'=HYPERLINK("http://evil")', "invalid email address")


def test_json_lines_that_break_a_parser_reject_their_line_only(workspace, simulator):
    lines = [
        json.dumps({"email": "a@example.com"}),
        '{"a":' * 100_000 + "1" + "}" * 100_000,
        '{"email": "b@example.com", "n": 1' + "0" * 5000 + "}",
        json.dumps({"email": "c@example.com", "FirstName": "C\u0000y"}),
    ]
    workspace.put_segment("people.jsonl", "\n".join(lines))
    workspace.put_destinations(
        destination(segments=[{"path": "people.jsonl"}], mapping={"email": "email", "first_name": "FirstName"})
    )
    record = run(workspace)
    c = record.counts
    assert (c.read, c.invalid, c.sent, c.control_chars_stripped) == (4, 2, 2, 1)
    assert record.counts.conserved()
    reasons = [(r["line"], r["reason"]) for r in rejects_of(workspace, record)]
    assert [line for line, _ in reasons] == ["2", "3"]
    assert "nested deeper than 32 levels" in reasons[0][1] and "4300" in reasons[1][1]
    assert simulator.snapshot()["contacts"]["c@example.com"]["first_name"] == "Cy"


def test_a_gzip_bomb_fails_the_run_before_anything_is_sent(workspace, simulator):
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    body = [packer.compress(b"Email\r\na@example.com\r\n")] + [packer.compress(b"\n" * (1 << 20)) for _ in range(200)]
    workspace.put_segment("people.csv.gz", b"".join(body) + packer.flush())
    workspace.put_destinations(destination(segments=[{"path": "people.csv.gz"}]))
    record = run(workspace)
    assert record.status == "failed" and "decompression bomb" in record.errors[0], record.errors
    assert simulator.snapshot()["upserted_contacts"] == 0
