"""The line-count scan: at least as many as the records a segment file holds, found by counting
its line breaks, without parsing a record. The profile limit is checked against it before a run
sends anything."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator

from shared.adapters.storage import BlobNotFound, BlobStore
from shared.errors import SegmentError
from shared.inputs.blob_stream import BUFFER_BYTES, open_binary
from shared.inputs.segment_blobs import SegmentFile, read_chunks
from shared.inputs.tabular import TabularFile


def scan_plain(
    store: BlobStore, file: SegmentFile, open_table: Callable[[Iterable[bytes]], TabularFile]
) -> tuple[list[str], int]:
    """An uncompressed file opened by ``open_table`` and read to its end in one download, its line
    breaks counted as its bytes pass: its column names, and its bound."""
    counter = _LineBreaks()
    try:
        chunks = counter.count(read_chunks(store, file))
        table = open_table(chunks)
        for _ in chunks:  # the rest of the file, past what opening it read
            pass
    except BlobNotFound as exc:
        raise SegmentError(f"segment file '{file.name}': {exc}") from None
    except OSError as exc:
        raise SegmentError(f"segment file '{file.name}' cannot be read: {exc}") from None
    return table.columns, _bound(counter.breaks, counter.ends_with_break, file)


def record_bound(store: BlobStore, file: SegmentFile) -> int:
    """At least as many as the records the file holds, without parsing it: its line breaks.

    Reads the whole file (decompressed), so a file that cannot be read fails here too.
    """
    counter = _LineBreaks()
    try:
        binary, _ = open_binary(read_chunks(store, file), file.name)
        for _ in counter.count(iter(lambda: binary.read(BUFFER_BYTES), b"")):
            pass
    except BlobNotFound as exc:
        raise SegmentError(f"segment file '{file.name}': {exc}") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise SegmentError(f"segment file '{file.name}' cannot be read: {exc}") from None
    return _bound(counter.breaks, counter.ends_with_break, file)


class _LineBreaks:
    """Counts the line breaks of bytes passing through: "\n", "\r\n" or "\r", one each, also
    where a chunk boundary cuts a "\r\n" in two (a bound one high a time would send a file of
    exactly max_profiles rows to the slow count by the row rules)."""

    def __init__(self) -> None:
        self.breaks = 0
        self.ends_with_break = False
        self._ended_with_cr = False

    def count(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            if chunk:
                self.breaks += chunk.count(b"\n") + chunk.count(b"\r") - chunk.count(b"\r\n")
                if self._ended_with_cr and chunk.startswith(b"\n"):
                    self.breaks -= 1  # the "\n" of a "\r\n" counted with the chunk before
                self._ended_with_cr = chunk.endswith(b"\r")
                self.ends_with_break = chunk.endswith((b"\n", b"\r"))
            yield chunk


def _bound(breaks: int, ends_with_break: bool, file: SegmentFile) -> int:
    # A last line with no break after it is a record too; a header row is not.
    bound = breaks + (0 if ends_with_break else 1)
    return max(0, bound - (1 if file.format == "csv" and file.csv.header else 0))
