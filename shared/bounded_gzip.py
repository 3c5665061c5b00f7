"""A gzip held in memory, inflated piece by piece up to a bound, for the files SendGrid hands us
(an import job's errors file, a list's export): a small file may inflate without end (a gzip
bomb), and one cut short can still look whole.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import Literal

GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WINDOW = 16 + zlib.MAX_WBITS  # zlib's way of saying "a gzip header and trailer"


def inflated(
    data: bytes,
    *,
    what: str,
    limit: int,
    members: Literal["one", "many"],
    fault: Callable[[str], Exception],
    piece_bytes: int = 1 << 20,
) -> Iterator[bytes]:
    """``data`` inflated, ``piece_bytes`` at most a piece; ``data`` as it is if it is no gzip.

    Raises ``fault(message)``, the message naming ``what``, once the output passes ``limit``
    bytes, on a corrupt or truncated gzip, and on a second member where ``members`` is "one".
    """
    if not data.startswith(GZIP_MAGIC):
        yield data
        return
    inflater = zlib.decompressobj(_GZIP_WINDOW)
    total, rest = 0, data
    try:
        while rest:
            out = inflater.decompress(rest, piece_bytes)
            rest = inflater.unconsumed_tail
            total += len(out)
            if total > limit:
                raise fault(f"{what} inflates past {limit} bytes")
            if out:
                yield out
            if inflater.eof:
                if members == "many" and inflater.unused_data:  # another member follows
                    rest = inflater.unused_data
                    inflater = zlib.decompressobj(_GZIP_WINDOW)
                    continue
                break
    except zlib.error:
        raise fault(f"{what} is a corrupt gzip") from None
    if not inflater.eof:
        raise fault(f"{what} is a truncated gzip")
    if inflater.unused_data:  # members == "one": a second part could name other contacts
        raise fault(f"{what} is a multi-part gzip")
