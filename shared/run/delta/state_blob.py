"""Reading a sync state's blob: its sections in order as they download, and its emails inflated
no further than the contacts it holds can reach."""

from __future__ import annotations

import io
import zlib
from array import array
from collections.abc import Iterator

from shared.adapters.storage import ChunkStream
from shared.inputs.rows import EMAIL_MAX
from shared.run.delta.journal import corrupt

# The most bytes one email takes in UTF-8 (the row rules' limit is in characters).
EMAIL_MAX_BYTES = 4 * EMAIL_MAX


class BlobReader:
    """A blob's sections read in order from its chunks, as they download; a blob that ends
    early is a truncated state."""

    _PIECE = 1 << 22  # bytes a column takes at a time

    def __init__(self, chunks: Iterator[bytes], source: str):
        self._chunks, self._source = chunks, source
        self._stream = io.BufferedReader(ChunkStream(chunks))

    def read(self, size: int) -> bytes:
        data = self._stream.read(size)
        if len(data) != size:
            raise corrupt(self._source, "it is truncated")
        return data

    def column(self, count: int) -> array[int]:
        """``count`` 64-bit numbers, appended a piece at a time: memory follows what was read."""
        column = array("Q")
        left = 8 * count
        while left:
            piece = self.read(min(left, self._PIECE))
            column.frombytes(piece)
            left -= len(piece)
        return column

    def rest(self) -> bytes:
        return self._stream.read()

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()  # a download stopped early (a corrupt state) stops its read-ahead too


def read_emails(compressed: bytes, count: int, source: str) -> list[str]:
    """The emails of a mirror state, decompressed no further than ``count`` of them can reach:
    a damaged or hostile section that inflates to more is refused, not held in memory."""
    limit = count * (EMAIL_MAX_BYTES + 1)
    inflate = zlib.decompressobj(wbits=31)  # one gzip member, as to_bytes writes it
    try:
        data = inflate.decompress(compressed, limit + 1)
        if len(data) > limit or inflate.unconsumed_tail:
            raise corrupt(source, f"its emails inflate past the {limit:,} bytes its {count:,} contact(s) can hold")
        if not inflate.eof:
            raise corrupt(source, "its emails do not decompress (the stream stops short)")
        text = data.decode("utf-8")
    except (zlib.error, UnicodeDecodeError) as exc:
        raise corrupt(source, f"its emails do not decompress ({type(exc).__name__})") from None
    emails = text.split("\n") if count else []
    if len(emails) != count:
        raise corrupt(source, f"it holds {len(emails)} emails for {count} contacts")
    return emails
