"""The one bounded gunzip behind the errors file and the list export: a bound on what a small
file may inflate to, no silent truncation, and the member rule each caller asks for."""

from __future__ import annotations

import gzip
from typing import Literal

import pytest

from shared.bounded_gzip import inflated


class Unreadable(Exception):
    pass


def _read(data: bytes, *, members: Literal["one", "many"] = "one", limit: int = 1 << 20) -> bytes:
    return b"".join(inflated(data, what="the file", limit=limit, members=members, fault=Unreadable))


def test_plain_bytes_pass_through_unchanged() -> None:
    assert _read(b"email\nx@example.com\n") == b"email\nx@example.com\n"


def test_a_gzip_is_inflated_in_pieces_no_larger_than_asked() -> None:
    body = b"a" * 5000
    pieces = list(
        inflated(gzip.compress(body), what="f", limit=10_000, members="one", fault=Unreadable, piece_bytes=1024)
    )
    assert b"".join(pieces) == body
    assert max(len(piece) for piece in pieces) <= 1024


def test_a_bomb_stops_at_the_bound_naming_the_file() -> None:
    bomb = gzip.compress(b"\0" * 10_000_000)
    with pytest.raises(Unreadable, match="the file inflates past 65536 bytes"):
        _read(bomb, limit=65536)


def test_a_truncated_gzip_is_refused_even_where_its_start_inflates() -> None:
    whole = gzip.compress(b"row\n" * 1000)
    with pytest.raises(Unreadable, match="the file is a truncated gzip"):
        _read(whole[: len(whole) - 12])


def test_a_corrupt_gzip_is_refused() -> None:
    with pytest.raises(Unreadable, match="the file is a corrupt gzip"):
        _read(b"\x1f\x8b\x08\x00garbage-that-is-no-deflate-stream")


def test_a_second_member_is_refused_where_one_is_expected_and_read_where_many_are() -> None:
    two = gzip.compress(b"first\n") + gzip.compress(b"second\n")
    with pytest.raises(Unreadable, match="multi-part"):
        _read(two, members="one")
    assert _read(two, members="many") == b"first\nsecond\n"


def test_the_bound_counts_every_member_together() -> None:
    two = gzip.compress(b"x" * 600) + gzip.compress(b"y" * 600)
    with pytest.raises(Unreadable, match="inflates past 1000 bytes"):
        _read(two, members="many", limit=1000)
