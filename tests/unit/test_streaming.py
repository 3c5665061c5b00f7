"""Memory does not grow with a file's size: a few hundred MB streamed through the reader and rules."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.inputs.config import CsvOptions
from shared.inputs.csv_reader import read_csv
from shared.inputs.jsonl_reader import read_jsonl
from shared.inputs.mapping import plan_columns
from shared.inputs.rows import RowRules

ROW = (
    b'C%08d,person.%d@example.com,"Mar\xc3\xada Jos\xc3\xa9","Garc\xc3\xada L\xc3\xb3pez, Jr.",'
    b"S\xc3\xa3o Paulo,S\xc3\xa3o Paulo,Brazil,01310-100,%s\r\n"
)
FILLER = b"x" * 40  # a free-text column, so that rows are realistic in size


def generated(megabytes: int) -> Iterator[bytes]:
    """A CSV of about ``megabytes`` MB, made chunk by chunk: never held whole anywhere."""
    yield b"CustomerId,PrimaryEmail,FirstName,LastName,City,StateOrProvince,Country,PostalCode,Notes\r\n"
    produced, i = 0, 0
    while produced < megabytes * 1_000_000:
        chunk = b"".join(ROW % (n, n, FILLER) for n in range(i, i + 5000))
        i += 5000
        produced += len(chunk)
        yield chunk


def resident_mb() -> float:
    """This process's resident memory now (Linux), sampled as the rows stream past."""
    status = Path("/proc/self/status")
    if not status.exists():
        pytest.skip("no /proc/self/status on this system")
    line = next(line for line in status.read_text().splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


@pytest.mark.slow
def test_a_300_mb_file_streams_in_bounded_memory():
    table = read_csv(generated(300), "huge.csv", CsvOptions())
    rules = RowRules(plan_columns(None, table.columns, "huge.csv"))
    rows = valid = 0
    samples: list[float] = []
    for _, fields in table.rows:
        rows += 1
        assert fields is not None  # a record over the size bound would be None: none is here
        valid += rules.apply(fields)[0] is not None
        if rows % 100_000 == 0:
            samples.append(resident_mb())
    assert rows == valid > 1_900_000  # about 300 MB of rows, every one read and mapped
    settled = samples[1]  # after the first 200,000 rows every buffer has its size
    assert max(samples) - settled < 16, f"resident memory grew from {settled:.0f} to {max(samples):.0f} MB"


def newline_less(megabytes: int, head: bytes, tail: bytes) -> Iterator[bytes]:
    """``head``, then ``megabytes`` MB with no line break, then ``tail``: made chunk by chunk."""
    yield head
    block = b"z" * 1_000_000
    for _ in range(megabytes):
        yield block
    yield tail


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_a_50_mb_line_is_read_past_without_being_held(kind):
    # Before the record cap, this line was held whole and copied for every MiB read: 200 MB.
    if kind == "csv":
        head, tail = b"Email,Note\r\na@example.com,", b"\r\nb@example.com,after\r\n"
        table = read_csv(newline_less(50, head, tail), "long.csv", CsvOptions())
    else:
        head, tail = b'{"Email": "a@example.com", "Note": "', b'"}\n{"Email": "b@example.com"}\n'
        table = read_jsonl(newline_less(50, head, tail), "long.jsonl", ["Email"])
    tracemalloc.start()
    try:
        got = [(line, fields is None, table.problem if fields is None else fields[0]) for line, fields in table.rows]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    first_line = 2 if kind == "csv" else 1
    assert got[0][:2] == (first_line, True) and "MAX_RECORD_BYTES" in got[0][2]
    assert got[1] == (first_line + 1, False, "b@example.com")
    assert peak < 20_000_000, f"peak {peak / 1e6:.1f} MB while reading past a 50 MB line"


def test_a_download_is_read_ahead_in_order_and_its_error_comes_where_it_happened():
    import threading

    from shared.adapters.storage import prefetched

    def download(fail_after=None):
        for index in range(10):
            if index == fail_after:
                raise OSError("connection reset")
            yield bytes([index]) * 3

    assert list(prefetched(download())) == [bytes([i]) * 3 for i in range(10)]
    got = []
    with pytest.raises(OSError, match="connection reset"):
        for chunk in prefetched(download(fail_after=4)):
            got.append(chunk)
    assert got == [bytes([i]) * 3 for i in range(4)]
    # A reader that stops early stops the download's thread too.
    early = prefetched(download())
    assert next(early) == b"\x00" * 3
    early.close()
    for _ in range(50):
        if not any(t.name == "blob-prefetch" for t in threading.enumerate()):
            break
        threading.Event().wait(0.05)
    assert not any(t.name == "blob-prefetch" for t in threading.enumerate())
