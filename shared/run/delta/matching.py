"""Which rows of a run SendGrid already has, found where the state keeps them.

The state keeps its contacts in the order their rows came (``SyncState.merged`` replaces a
contact where it stands and adds new ones after), and a segment export mostly keeps its order
from one run to the next. So a chunk's fingerprints are compared with the state's at a cursor,
a whole array at a time in C, instead of being looked up one by one: an unchanged row costs a
comparison, not a probe of a hash table of millions that must first be built. A chunk with a
few rows changed in place (a delta's usual chunk) is matched in one more pass, and the reader
claims it as one range. A row added or gone shifts the rows after it; a walk along the state,
with a small window around the first row that no longer lines up, finds the shift.

Rows that still do not line up are found another way, so that what is sent never depends on
the order: a few in a chunk (a changed row, a row that moved) are parsed and found by their
email's key, and the reader checks whether the state holds that very row there; many (the
input's order changed) are looked up in a fingerprint index of the state, built the first time
a chunk needs it and used from then on.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from itertools import compress, islice, repeat
from operator import eq, ne

from shared.run.delta.keysets import MISSING, PositionIndex

# State entries searched either side of the first row of a chunk that no longer lines up.
_WINDOW = 32
# Shifts looked for in one chunk (each costs about 15 us); past these, the rest of the chunk is
# found the other ways.
_MAX_SEARCHES = 128
# Rows of a chunk that may be left to be found by their email, at least; a chunk with more rows
# out of place than this and a sixteenth of it has the fingerprint index built.
_FEW = 32
# Rows in a row no shift lines up before the walk stops: the rest of the chunk is out of step.
_MAX_MISSES = 32
# Stretches of rows side by side out of place, and rows in one, that a chunk may hold and still
# be matched in one pass (each costs a look at the state around it; the walk's searches and
# misses stay well within their bounds, so both find the same).
_MAX_STRETCHES = 16
_MAX_STRETCH = 8


class InPlace(list[int]):
    """A chunk's state positions when every row is where the state has it but a few that changed
    in place: ``start`` + index, ``MISSING`` at the ``holes``. The reader claims such a chunk as
    one range, then gives back the holes."""

    def __init__(self, start: int, count: int, holes: list[int]):
        super().__init__(range(start, start + count))
        for hole in holes:
            self[hole] = MISSING
        self.start, self.holes = start, holes


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
        wanted, here = array("Q", fps), state[start : start + count]
        if here == wanted:  # a delta's usual chunk: every row in place
            self._cursor = start + count
            return range(start, start + count), {}
        in_place = self._in_place(wanted, here, start) if self._index is None else None
        if in_place is not None:  # a delta's next most usual chunk: a few rows changed
            self._cursor = start + count
            return in_place, {hole: start + hole for hole in in_place.holes}
        at = [MISSING] * count
        hints, offset = self._line_up(wanted, at)
        missing = at.count(MISSING)
        if self._index is None and missing > max(_FEW, count // 16):
            self._index = PositionIndex(state)
        if self._index is not None and missing == count:
            at = self._index.find_many(fps)
            hints = {row: hint for row, hint in hints.items() if at[row] == MISSING}
        elif self._index is not None and missing:
            rows = list(compress(range(count), map(eq, at, repeat(MISSING))))
            for row, position in zip(rows, self._index.find_many(list(map(wanted.__getitem__, rows))), strict=True):
                at[row] = position
                if position != MISSING:
                    hints.pop(row, None)
        last = next((row for row in range(count - 1, -1, -1) if at[row] != MISSING), None)
        self._cursor = at[last] + count - last if last is not None else offset + count
        return at, hints

    def _in_place(self, wanted: array[int], state: array[int], start: int) -> InPlace | None:
        """The chunk's positions if its rows are in place but a few changed ones: what
        :meth:`_line_up` would find, in a few passes in C; else None. Asked only before the
        fingerprint index is built: after, the index looks up the rows out of place too. ``state``
        is the state's fingerprints from ``start`` on, as many as the chunk's where it has them."""
        count = len(wanted)
        if len(state) < count:
            return None
        bound = max(_FEW, count // 16)  # more: the walk builds the fingerprint index
        holes = list(islice(compress(range(count), map(ne, wanted, state)), bound + 1))
        if not holes or len(holes) > bound:
            return None
        # A row out of place between two in place changed in place. Rows out of place side by
        # side, or at the chunk's end, may be rows added or gone (a shift): they changed in
        # place if none of them is in the state nearby, as the walk would find; else it looks.
        stretches = 0
        for first, last in _stretches(holes):
            if first == last < count - 1:
                continue
            stretches += 1
            if stretches > _MAX_STRETCHES or last - first >= _MAX_STRETCH:
                return None
            near = self.fingerprints[max(0, start + first - _WINDOW) : start + last + _WINDOW]
            if not set(near).isdisjoint(wanted[first : last + 1]):
                return None
        return InPlace(start, count, holes)

    def _line_up(self, wanted: array[int], at: list[int]) -> tuple[dict[int, int], int]:
        """Walk the chunk along the state from the cursor, filling ``at`` with the stretches in
        place. A row changed in place is stepped over; a row added or gone shifts the rest, and
        a window of the state finds by how much. Returns the hints (where each row not found
        would stand, were it changed in place) and the offset the walk ended on."""
        state, count, size = self.fingerprints, len(wanted), len(self.fingerprints)
        offset, row, searches, misses = self._cursor, 0, 0, 0
        hints: dict[int, int] = {}
        while row < count:
            # offset + row is never below 0: a shift lines up a row found in the state.
            stop = _same_until(wanted, state, row, offset)
            if stop > row:
                at[row:stop] = range(offset + row, offset + stop)
                misses = 0
            if stop == count:
                break
            if offset + stop < size:
                hints[stop] = offset + stop
            row = stop + 1
            if row < count and offset + row < size and wanted[row] == state[offset + row]:
                continue  # changed in place: the rows after it are where they were
            searches += 1
            shifted = self._shift(wanted, stop, offset) if searches <= _MAX_SEARCHES else None
            if shifted is not None:
                ahead, new_offset = shifted
                hints.update((skipped, offset + skipped) for skipped in range(row, ahead) if offset + skipped < size)
                row, offset = ahead, new_offset
                continue
            misses += 1
            if misses > _MAX_MISSES or searches > _MAX_SEARCHES:
                break  # out of step here: the rest is found the other ways, without hints
        # A row first missed may have been found by the shift after it.
        return {row: hint for row, hint in hints.items() if at[row] == MISSING}, offset

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


def _stretches(holes: list[int]) -> Iterator[tuple[int, int]]:
    """The first and last of each stretch of consecutive numbers in ``holes`` (ascending)."""
    first = last = holes[0]
    for hole in islice(holes, 1, None):
        if hole != last + 1:
            yield first, last
            first = hole
        last = hole
    yield first, last


def _same_until(wanted: array[int], state: array[int], row: int, offset: int) -> int:
    """The first row from ``row`` on that is not where the state has it (at ``offset`` + row),
    or the chunk's length. Compares stretches of doubling length, each in C."""
    limit = min(len(wanted), len(state) - offset)  # rows past the state's end are not in it
    step = 16
    while row < limit:
        end = min(limit, row + step)
        if state[offset + row : offset + end] == wanted[row:end]:
            row, step = end, 2 * step
            continue
        return row + list(map(eq, wanted[row:end], state[offset + row : offset + end])).index(False)
    return row
