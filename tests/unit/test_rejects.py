"""rejects.csv is opened by marketers in Excel: no cell of it may run as a formula."""

from __future__ import annotations

import csv
import io
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.privacy import neutralise, register_secret
from shared.run.records import RejectsWriter
from shared.run.send.import_errors import parse_errors_file
from tests.fakes import InMemoryBlobStore

DANGEROUS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def written(*rows: tuple[str, int, str, str, str, str]) -> list[list[str]]:
    writer = RejectsWriter()
    for source, line, email, category, reason, field_name in rows:
        writer.add(source, line, email, category, reason, field_name)
    store = InMemoryBlobStore()
    writer.upload(store, "r.csv")
    writer.close()
    return list(csv.reader(io.StringIO(store.read_bytes("r.csv").decode("utf-8"), newline="")))[1:]


def test_a_formula_in_any_column_is_written_as_text():
    (row,) = written(("=cmd.csv", 3, '=HYPERLINK("http://x")@a.com', "+inv", "-1 is bad", "@field"))
    assert row == ["'=cmd.csv", "3", '\'=HYPERLINK("http://x")@a.com', "'+inv", "'@field", "'-1 is bad"]


def test_ordinary_cells_are_left_as_they_are():
    (row,) = written(("s.csv", 2, "a@example.com", "invalid", "missing email", ""))
    assert row == ["s.csv", "2", "a@example.com", "invalid", "", "missing email"]


@settings(max_examples=300, deadline=None)
@given(
    cells=st.lists(
        st.text(st.characters(exclude_categories=()), max_size=12)
        | st.sampled_from(DANGEROUS).map(lambda c: c + "1+1"),
        min_size=5,
        max_size=5,
    )
)
def test_no_cell_ever_starts_like_a_formula_or_holds_a_control_and_none_loses_its_printable_text(cells):
    source, email, category, reason, field_name = cells
    (row,) = written((source, 7, email, category, reason, field_name))
    expected = [source, "7", email, category, field_name, reason]
    for got, original in zip(row, expected, strict=True):
        assert not got.startswith(DANGEROUS) and not CONTROLS.search(got)
        cleaned = neutralise(original)
        got.encode("utf-8")  # writable as UTF-8: no lone surrogate left (raises otherwise)
        assert got == cleaned or (got == "'" + cleaned and cleaned.lstrip().startswith(DANGEROUS))
        if original.isprintable():
            assert cleaned == original


def test_a_formula_behind_any_blank_or_in_full_width_is_written_as_text():
    starts = [" =1+1", "\t=1+1", "\r=1+1", "\u00a0=1+1", "\u3000+1", "\uff1d1+1", "\uff0b1", "\uff0d1", "\uff20SUM(A1)"]
    for reason in starts:
        (row,) = written(("s.csv", 2, "a@example.com", "errored", reason, ""))
        assert row[5].startswith("'"), reason


def test_a_lone_surrogate_from_an_errors_file_is_written_not_a_failed_run():
    """A JSON escape "\\ud800" in SendGrid's message: the rejects file could not be written."""
    found = parse_errors_file(b'[{"email": "a@example.com", "error": "bad \\ud800 value \\udcff"}]')
    (row,) = written(("s.csv", 2, "a@example.com", "errored", found["a@example.com"], ""))
    assert row[5] == "bad \ufffd value \ufffd"


def test_escape_sequences_and_the_api_key_never_reach_a_cell():
    register_secret("any-shape-key-9876543210")
    (row,) = written(("s.csv", 2, "a@example.com\x1b]0;title\x07", "errored", "any-shape-key-9876543210 \x1b[2J=x", ""))
    assert row == ["s.csv", "2", "a@example.com", "errored", "", "*** =x"]
