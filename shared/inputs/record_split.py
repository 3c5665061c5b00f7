"""A text stream split into records without parsing them: a record is a line, or several when a
quoted field holds line breaks. Each record keeps its raw text and the line it starts on, so a run
can recognise a record it sent before by its text alone, and reject one with its line."""

from __future__ import annotations

import functools
import io
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import repeat
from typing import IO

from shared.errors import SegmentError
from shared.settings import DEFAULT_MAX_RECORD_BYTES

_TEXT_CHUNK_CHARS = 1024 * 1024
# What a record longer than the limit (MAX_RECORD_BYTES) stands as: never its text. The lone
# surrogate makes any real record with this text undecodable, so it is never one SendGrid took.
OVERSIZED = "\udcff\x00record over the length limit\x00\udcff"
# Whether a count of quotes is odd, i.e. a record that may end inside a quoted field. A bound
# method, not a lambda: map() calls it once per line of every chunk, and this is the cheapest call.
_ODD = (1).__and__


@dataclass
class RecordChunk:
    """Consecutive records of a file, each its raw text without its line break."""

    first_line: int
    records: list[str]
    lines: list[int] | None = None  # where each record starts, when not simply first_line + index

    def line_of(self, index: int) -> int:
        return self.lines[index] if self.lines is not None else self.first_line + index


def drop_first(chunk: RecordChunk) -> RecordChunk:
    """The chunk without its first record (a header row)."""
    lines = chunk.lines[1:] if chunk.lines is not None else None
    return RecordChunk(chunk.first_line + 1, chunk.records[1:], lines)


@dataclass(frozen=True)
class RecordSyntax:
    """How a format's text splits into records: the line separator, whether a line ends inside
    a quoted field and its record goes on (None for a format without quoted fields), and which
    lines are blank (no record), asked of one line and of a whole read's lines."""

    separator: str
    ends_open: QuoteTest | None
    is_blank: Callable[[str], bool]
    has_blank: Callable[[list[str]], bool]


def split_records(
    text: IO[str], name: str, syntax: RecordSyntax, limit: int = DEFAULT_MAX_RECORD_BYTES
) -> Iterator[RecordChunk]:
    """The records of a text stream, a chunk at a time. A line that ends inside a quoted field
    (``syntax.ends_open``) continues on the next; blank lines are not records.

    No record longer than ``limit`` characters is ever held: a line that outgrows it is read past
    to its line break and stands as :data:`OVERSIZED`, rejected with its line. A quoted field that
    outgrows it stops the file: where its record ends cannot be known.
    """
    return _RecordSplitter(name, syntax, limit).records(text)


class _RecordSplitter:
    """One file's split, and what it carries from one read of the text to the next."""

    def __init__(self, name: str, syntax: RecordSyntax, limit: int):
        self.name, self.limit = name, limit
        # The syntax's parts as attributes of their own: the loops over lines bind them to locals.
        self.separator, self.ends_open = syntax.separator, syntax.ends_open
        self.is_blank, self.has_blank = syntax.is_blank, syntax.has_blank
        self.carry = ""  # the text after the last line break read: a line not yet ended
        self.line = 1  # the line the next piece is on
        # The lines so far of a record whose quoted field is still open. Written to a buffer, not kept
        # in a list: a record of a million short lines would cost fifty bytes a line as strings.
        self.pending: io.StringIO | None = None
        self.pending_line = self.pending_chars = self.pending_quotes = 0
        self.skipping = 0  # the line of an over-long line being read past to its end; 0 when none
        self.skipped_quotes = 0

    def records(self, text: IO[str]) -> Iterator[RecordChunk]:
        while True:
            chunk = self._read(text)
            if self.skipping:
                rest = self._read_past_long_line(chunk)
                if rest is None:
                    continue
                yield RecordChunk(self.skipping, [OVERSIZED])
                self.line, self.skipping = self.skipping + 1, 0
                if not chunk:
                    return
                if not rest:
                    continue
                chunk = rest
            split = self._pieces(chunk)
            if split is None:
                return
            pieces, long_piece = split
            if self.pending is None and not long_piece and self._each_a_record(pieces):
                if pieces:
                    yield RecordChunk(self.line, pieces)
                    self.line += len(pieces)
            elif (joined := self._join(pieces, ended=not chunk)) is not None:
                yield joined
            self._let_go_of_long_line()

    def _read(self, text: IO[str]) -> str:
        try:
            return text.read(_TEXT_CHUNK_CHARS)
        except (OSError, EOFError, zlib.error) as exc:
            raise SegmentError(f"segment file '{self.name}', line {self.line}: {exc}") from None

    def _read_past_long_line(self, chunk: str) -> str | None:
        """None while the over-long line goes on past ``chunk``; once it ends, the text after it."""
        at = chunk.find(self.separator) if chunk else 0
        if at < 0:
            self.skipped_quotes += chunk.count('"')
            return None
        self.skipped_quotes += chunk.count('"', 0, at)
        if chunk and self.ends_open is not None and _ODD(self.skipped_quotes):
            # Odd quotes: its record most likely goes on inside a quoted field.
            raise _endless_quote(self.name, self.skipping, self.limit)
        return chunk[at + 1 :]

    def _pieces(self, chunk: str) -> tuple[list[str], bool] | None:
        """The whole lines read so far, and whether one may be over-long; None at the very end."""
        if chunk:
            pieces = (self.carry + chunk).split(self.separator)
            # Only a read that makes the text past the limit can hold an over-long piece.
            limit = self.limit
            long_piece = len(self.carry) + len(chunk) > limit and max(map(len, pieces[:-1]), default=0) > limit
            self.carry = pieces.pop()
            return pieces, long_piece
        if self.carry:
            pieces, self.carry = [self.carry], ""
            return pieces, False
        return ([], False) if self.pending is not None else None

    def _each_a_record(self, pieces: list[str]) -> bool:
        """The common case, passed on as it is: no blank line, no record spanning lines."""
        if self.has_blank(pieces):
            return False
        # Parity of each line's quotes by map(): C loops, where a Python one would cost the read.
        return self.ends_open is None or not any(map(_ODD, map(str.count, pieces, repeat('"'))))

    def _join(self, pieces: list[str], ended: bool) -> RecordChunk | None:
        """The records of lines that need a look each: blank, over-long, or spanning lines."""
        # Locals, not attributes, in the loop: it runs once a line.
        separator, ends_open, limit, is_blank = self.separator, self.ends_open, self.limit, self.is_blank
        pending, pending_line = self.pending, self.pending_line
        pending_chars, pending_quotes = self.pending_chars, self.pending_quotes
        records: list[str] = []
        lines: list[int] = []
        for number, piece in enumerate(pieces, start=self.line):
            if pending is not None:
                pending.write(separator)
                pending.write(piece)
                pending_chars += len(piece) + 1
                # Only the new line is looked at, never the record so far: a record of many
                # lines costs what its length does, not its length squared.
                quotes = piece.count('"')
                pending_quotes += quotes
                if ends_open is not None and (not quotes or ends_open.goes_on(piece, pending_quotes)):
                    if pending_chars > limit:
                        raise _endless_quote(self.name, pending_line, limit)
                    continue
                records.append(pending.getvalue() if pending_chars <= limit else OVERSIZED)
                lines.append(pending_line)
                pending = None
                continue
            if is_blank(piece):
                continue
            if ends_open is not None and '"' in piece and ends_open(piece):
                if len(piece) > limit:
                    raise _endless_quote(self.name, number, limit)
                pending, pending_line, pending_chars = io.StringIO(piece), number, len(piece)
                pending.seek(0, io.SEEK_END)
                pending_quotes = piece.count('"')
                continue
            records.append(piece if len(piece) <= limit else OVERSIZED)
            lines.append(number)
        if ended and pending is not None:  # ended inside a quoted field: the csv module decides
            records.append(pending.getvalue())
            lines.append(pending_line)
            pending = None
        self.pending, self.pending_line = pending, pending_line
        self.pending_chars, self.pending_quotes = pending_chars, pending_quotes
        self.line += len(pieces)
        return RecordChunk(lines[0], records, lines) if records else None

    def _let_go_of_long_line(self) -> None:
        if len(self.carry) > self.limit:
            if self.pending is not None:
                raise _endless_quote(self.name, self.pending_line, self.limit)
            # A line with no break in sight: its text is let go as it is read.
            self.skipping, self.skipped_quotes, self.carry = self.line, self.carry.count('"'), ""


def _endless_quote(name: str, line: int, limit: int) -> SegmentError:
    return SegmentError(
        f"segment file '{name}', line {line}: a quoted field never ends (its record runs past "
        f"{limit:,} characters, MAX_RECORD_BYTES); close the quote, or raise MAX_RECORD_BYTES if "
        "a field really is that long."
    )


class QuoteTest:
    """Whether text ends inside a quoted field, as the csv module reads it (``strict=False``).

    A quote opens a quoted field only at a field's start, ``""`` inside one is a quote, and after
    the closing quote the field goes on unquoted. An even number of quotes cannot leave a field
    open unless a quote also stands inside an unquoted field: rare, so parity is asked first and
    the full pattern only for odd counts.
    """

    def __init__(self, delimiter: str):
        self._complete, self._rest = _quote_patterns(delimiter)

    def __call__(self, text: str) -> bool:
        return text.count('"') % 2 == 1 and self._complete.fullmatch(text) is None

    def goes_on(self, line: str, quotes: int) -> bool:
        """Whether a record still ends inside a quoted field once ``line`` is added to it, when it
        did before, and ``quotes`` is its count of quotes with the line's."""
        return quotes % 2 == 1 and self._rest.fullmatch(line) is None


@functools.lru_cache(maxsize=16)
def _quote_patterns(delimiter: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Complete fields, and the end of a quoted field then complete fields."""
    d = re.escape(delimiter)
    unquoted = rf'[^"{d}\r\n][^{d}\r\n]*+'
    field = rf'(?:"(?:[^"]|"")*+"(?:{unquoted})?|{unquoted}|)'
    complete = re.compile(rf"{field}(?:{d}{field})*+\r?")
    rest = re.compile(rf'(?:[^"]|"")*+"(?:{unquoted})?(?:{d}{field})*+\r?')
    return complete, rest
