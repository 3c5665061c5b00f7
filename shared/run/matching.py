"""Which rows of a run SendGrid already has, found where the state keeps them.

The state keeps its contacts in the order their rows came (``SyncState.merged`` replaces a
contact where it stands and adds new ones after), and a segment export mostly keeps its order
from one run to the next. So a chunk's fingerprints are compared with the state's at a cursor,
a whole array at a time in C, instead of being looked up one by one: an unchanged row costs a
comparison, not a probe of a hash table of millions that must first be built. A row added or
gone shifts the rows after it; a small window of the state around the first row that no longer
lines up finds the shift.

Rows that still do not line up are found another way, so that what is sent never depends on
the order: a few in a chunk (a changed row, a row that moved) are parsed and found by their
email's key, and the reader checks whether the state holds that very row there; many (the
input's order changed) are looked up in a fingerprint index of the state, built the first time
a chunk needs it and used from then on.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Sequence
from itertools import compress, islice, repeat
from operator import eq, mul, sub

from shared.run.keysets import MISSING, PositionIndex

# State entries searched either side of the first row of a chunk that no longer lines up.
_WINDOW = 32
# Shifts looked for in one chunk; past these, the rest of the chunk is found the other ways.
_MAX_SHIFTS = 8
# Rows of a chunk that may be left to be found by their email, at least; a chunk with more rows
# out of place than this and a sixteenth of it has the fingerprint index built.
_FEW = 32


class KnownRows:
    """The state's fingerprints, matched against a run's chunks in the order they are read."""

    def __init__(self, fingerprints: array[int]):
        self.fingerprints = fingerprints
        self._cursor = 0  # the state position the next chunk's first row is expected at
        self._index: PositionIndex | None = None

    @property
    def indexed(self) -> bool:
        """Whether the fingerprint index had to be built (the rows came in another order)."""
        return self._index is not None

    def match(self, fps: list[int]) -> tuple[Sequence[int], dict[int, int]]:
        """For each fingerprint of a chunk, the state position of the very same row, or
        ``MISSING``; and, for the rows not found, the position the row would have if it changed
        in place (its email's entry, unless the email changed too): a hint for the reader."""
        state, count, start = self.fingerprints, len(fps), self._cursor
        wanted = array("Q", fps)
        if state[start : start + count] == wanted:  # a delta's usual chunk: every row in place
            self._cursor = start + count
            return range(start, start + count), {}
        at = [MISSING] * count
        stretches = self._line_up(wanted, at)
        missing = at.count(MISSING)
        if self._index is None and missing > max(_FEW, count // 16):
            self._index = PositionIndex(state)
        if self._index is not None and missing:
            rows = list(compress(range(count), map(eq, at, repeat(MISSING))))
            for row, position in zip(rows, self._index.find_many(list(map(wanted.__getitem__, rows))), strict=True):
                at[row] = position
        last = next((row for row in range(count - 1, -1, -1) if at[row] != MISSING), None)
        self._cursor = at[last] + count - last if last is not None else stretches[-1][1] + count
        return at, self._hints(at, stretches)

    def _line_up(self, wanted: array[int], at: list[int]) -> list[tuple[int, int]]:
        """Fill ``at`` with the rows found in place, shift after shift; returns each stretch's
        first row and the state position of row 0 that lines it up."""
        state, count = self.fingerprints, len(wanted)
        offset, row = self._cursor, 0
        stretches: list[tuple[int, int]] = []
        while row < count:
            # offset + row is never below 0: a stretch starts at a row found in the state.
            stretches.append((row, offset))
            same = list(map(eq, islice(wanted, row, None), state[offset + row : offset + count]))
            if True in same:
                # In C: position + 1 where the row is the same, 0 where not, less one.
                first = offset + row + 1
                at[row : row + len(same)] = map(sub, map(mul, same, range(first, first + len(same))), repeat(1))
                last = row + len(same) - 1 - same[::-1].index(True)
            else:
                last = row - 1
            if last == count - 1 or len(stretches) > _MAX_SHIFTS:
                break
            shifted = self._shift(wanted, last + 1, offset)
            if shifted is None:
                break
            row, offset = shifted
        return stretches

    def _shift(self, wanted: array[int], row: int, offset: int) -> tuple[int, int] | None:
        """The first row from ``row`` on found in the state near where it was expected, and the
        new offset that lines it up; None if none of the next rows is near."""
        state = self.fingerprints
        low, high = max(0, offset + row - _WINDOW), min(len(state), offset + row + _WINDOW)
        if low >= high:
            return None
        window = dict(zip(state[low:high], range(low, high), strict=True))
        for ahead in range(row, min(len(wanted), row + _WINDOW)):
            position = window.get(wanted[ahead])
            if position is not None:
                return ahead, position - ahead
        return None

    def _hints(self, at: list[int], stretches: list[tuple[int, int]]) -> dict[int, int]:
        size = len(self.fingerprints)
        firsts = [first for first, _ in stretches]
        hints: dict[int, int] = {}
        for row in compress(range(len(at)), map(eq, at, repeat(MISSING))):
            expected = stretches[bisect_right(firsts, row) - 1][1] + row
            if 0 <= expected < size:
                hints[row] = expected
        return hints
