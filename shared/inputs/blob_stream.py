"""A segment blob's bytes as one buffered stream: downloaded in chunks, decompressed when the name
ends in ``.gz`` (with a guard against decompression bombs), and its first bytes checked for an
encoding that cannot be what the segment says."""

from __future__ import annotations

import codecs
import gzip
import io
import itertools
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import IO

from shared.adapters.storage import ChunkStream
from shared.errors import SegmentError

# How much of a file's start is looked at to detect its delimiter (and JSON Lines' keys).
SNIFF_BYTES = 64 * 1024
BUFFER_BYTES = 1024 * 1024
# Contact rows compress 3 to 20 times; a gzip inflating past this ratio (beyond the floor) is a
# decompression bomb: 5 MB of gzip can hold 5 GB of rows.
MAX_GZIP_RATIO = 100
GZIP_RATIO_FLOOR = 64 * 1024 * 1024


def open_binary(chunks: Iterable[bytes], name: str) -> tuple[IO[bytes], bytes]:
    """A streamed, decompressed byte stream of the file, and its first bytes (already in it)."""
    compressed = _Counted(chunks)
    source: IO[bytes] = io.BufferedReader(ChunkStream(compressed), buffer_size=BUFFER_BYTES)
    read: Callable[[int], bytes] = source.read
    if name.lower().endswith(".gz"):
        read = _inflate_guarded(gzip.GzipFile(fileobj=source, mode="rb"), compressed, name)
    try:
        head = read(SNIFF_BYTES)
    except (OSError, EOFError, zlib.error) as exc:
        raise SegmentError(f"segment file '{name}' cannot be read: {exc}") from None
    if not head.strip():
        raise SegmentError(f"segment file '{name}' is empty.")
    # The head was read to look at; put it back in front of the rest of the stream.
    rest = iter(lambda: read(BUFFER_BYTES), b"")
    return io.BufferedReader(ChunkStream(itertools.chain([head], rest)), buffer_size=BUFFER_BYTES), head


class _Counted:
    """The bytes of a download as they pass, counted."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)
        self.bytes = 0

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        chunk = next(self._chunks)
        self.bytes += len(chunk)
        return chunk


def _inflate_guarded(gz: gzip.GzipFile, compressed: _Counted, name: str) -> Callable[[int], bytes]:
    """``gz.read``, stopped with a clear error once the file inflates past what real rows do."""
    inflated = 0

    def read(size: int) -> bytes:
        nonlocal inflated
        data = gz.read(size)
        inflated += len(data)
        if inflated > GZIP_RATIO_FLOOR and inflated > MAX_GZIP_RATIO * compressed.bytes:
            raise SegmentError(
                f"segment file '{name}' inflates to over {MAX_GZIP_RATIO} times its compressed size "
                f"({inflated:,} bytes from {compressed.bytes:,} so far): no file of contact rows does; "
                "it is refused as a decompression bomb. If it is genuine, store it uncompressed."
            )
        return data

    return read


def check_encoding(head: bytes, encoding: str, name: str) -> None:
    """A clear error for UTF-16 text read without knowing its byte order, or read as 8-bit."""
    bom = head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if encoding == "utf-16" and not bom:
        raise SegmentError(
            f"segment file '{name}' is set to encoding utf-16 but does not start with a byte-order "
            "mark (FF FE or FE FF), so its byte order is unknown: save it as UTF-16 with a BOM, or as UTF-8."
        )
    if encoding != "utf-16" and (bom or _looks_like_utf16(head)):
        raise SegmentError(
            f"segment file '{name}' looks like UTF-16 text (a byte-order mark, or a zero byte beside "
            f'every character), not {encoding}: set "encoding": "utf-16" for the segment (the file '
            "needs its byte-order mark), or save it as UTF-8."
        )


def _looks_like_utf16(head: bytes) -> bool:
    # Latin text in UTF-16 has a zero byte on one side of nearly every pair, and on the other side
    # of almost none; 8-bit text almost never holds a zero byte.
    sample = head[:4096]
    pairs = len(sample) // 2
    zeros = sorted((sample[0::2].count(0), sample[1::2].count(0)))
    return pairs >= 4 and zeros[1] * 2 >= pairs and zeros[0] * 8 < zeros[1]
