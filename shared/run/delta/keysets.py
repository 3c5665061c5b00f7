"""Compact tables of 64-bit keys, for runs of ten million contacts in one instance.

A Python set or dict of ints costs about 100 bytes an entry (an int object for each key and
value, and the hash table's own slots), which at ten million contacts is more than an instance
has. These keep an entry in 8 to 16 bytes of an ``array``, with open addressing and linear
probing. Numbers of a chunk are looked up together where that pays, with ``map`` and
``compress`` doing the first probe of every number in C; only the few numbers whose first probe
lands on another entry are walked in Python.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, compress, islice, repeat
from operator import add, and_, eq, mod, ne, not_, truth
from typing import TypeVar

T = TypeVar("T")

# Slots per entry: at 2.2 (a load of 0.45) about four in five entries sit in the slot they hash to.
_SLOTS_PER_ENTRY = 2.2
MISSING = -1
# bytes.translate table: 1 for a byte 0 (an entry of a flag array not set), 0 for any other.
UNSET = bytes([1]) + bytes(255)


def exhaust(calls: Iterator[object]) -> None:
    """Make every call of a ``map()``: a deque of length 0 drains it in C, not in a Python loop."""
    deque(calls, maxlen=0)


def extend_ranges(out: array[int], source: array[int], ranges: Iterable[tuple[int, int]]) -> None:
    """Append ``source[start:stop]`` for each (start, stop), each copied as bytes, not as ints."""
    view, size = memoryview(source).cast("B"), source.itemsize
    try:
        for start, stop in ranges:
            out.frombytes(view[size * start : size * stop])
    finally:
        view.release()


def items_in_ranges(source: Sequence[T], ranges: Iterable[tuple[int, int]]) -> Iterator[T]:
    """The items of ``source[start:stop]`` for each (start, stop), one after the other (a list
    column, such as mirror mode's emails, gathered as :func:`extend_ranges` gathers an array)."""
    return chain.from_iterable(source[start:stop] for start, stop in ranges)


def ranges_of(source: array[int], ranges: Iterable[tuple[int, int]]) -> array[int]:
    """A new array of ``source[start:stop]`` for each (start, stop), one after the other."""
    out = array(source.typecode)
    extend_ranges(out, source, ranges)
    return out


class PositionIndex:
    """Where each number of an ``array('Q')`` is: number -> its position, without copying them.

    A slot holds a position (``array('I')``, 4 bytes; about 9 bytes an entry) and a lookup
    compares the number at that position. Position 0 is never stored, so that 0 can mean an
    empty slot: a lookup that meets an empty slot finds position 0 exactly when the number is
    ``values[0]``, which is the right answer. The numbers are meant to be distinct (a state's
    keys, its fingerprints); of a number that occurs twice, one position is found.
    """

    def __init__(self, values: array[int], *, check_distinct: bool = False):
        self._values = values
        count = len(values)
        self._size = size = max(7, int(count * _SLOTS_PER_ENTRY) | 1)
        self._table = table = array("I" if count < 2**32 else "Q", bytes((4 if count < 2**32 else 8) * size))
        # Whether no number occurs twice; only known when asked for (the check costs a compare
        # on each collision).
        self.distinct: bool | None = (not count or values.count(values[0]) == 1) if check_distinct else None
        # One visit to the table an entry: a table of millions is out of the CPU's caches, and a
        # visit costs a fetch from memory (placing the entries with map() in C, which visits
        # each slot three times, takes twice as long).
        for position, value, slot in zip(
            range(1, count), islice(values, 1, None), map(mod, islice(values, 1, None), repeat(size)), strict=True
        ):
            while there := table[slot]:
                # A number met twice is met here, on the second one's walk from the slot both
                # start from (position 0, never stored, was counted above).
                if check_distinct and values[there] == value:
                    self.distinct = False
                slot += 1
                if slot == size:
                    slot = 0
            table[slot] = position

    def __len__(self) -> int:
        return len(self._values)

    @property
    def nbytes(self) -> int:
        return self._table.itemsize * len(self._table)

    def find(self, value: int) -> int:
        """The position of ``value``, or ``MISSING``."""
        values = self._values
        if not values:
            return MISSING
        table, size = self._table, self._size
        slot = value % size
        while True:
            position = table[slot]
            if values[position] == value:
                return position
            if not position:
                return MISSING
            slot += 1
            if slot == size:
                slot = 0

    def find_many(self, numbers: Sequence[int]) -> list[int]:
        """The position of each number (``MISSING`` for those absent), a chunk at a time."""
        values = self._values
        if not values:
            return [MISSING] * len(numbers)
        size, get, value_at = self._size, self._table.__getitem__, values.__getitem__
        slots = list(map(mod, numbers, repeat(size)))
        found = list(map(get, slots))
        # Most are settled by their first slot: found there, or absent (an empty slot).
        missed = list(map(ne, map(value_at, found), numbers))
        if not any(missed):
            return found
        for at in compress(range(len(found)), map(and_, missed, map(not_, found))):
            found[at] = MISSING
        walking = list(compress(range(len(found)), map(and_, missed, map(truth, found))))
        if walking:
            # The second slot, in C too; the few that go on walk in Python.
            wanted = list(map(numbers.__getitem__, walking))
            there = list(map(get, map(mod, map(add, map(slots.__getitem__, walking), repeat(1)), repeat(size))))
            hits = list(map(eq, map(value_at, there), wanted))
            for at, position, hit, number in zip(walking, there, hits, wanted, strict=True):
                found[at] = position if hit else self.find(number) if position else MISSING
        return found


class KeySet:
    """A growing set of 64-bit numbers in an ``array('Q')``: 13 to 27 bytes a number (a load of
    0.3 to 0.6), and for a moment half as much again while it doubles; 13 bytes a number when
    room for all was reserved."""

    _MIN_SIZE = 1 << 12

    def __init__(self, numbers: Iterable[int] = ()) -> None:
        self._size = self._MIN_SIZE
        self._table = array("Q", bytes(8 * self._size))
        self._count = 0
        self._has_zero = False  # 0 marks an empty slot, so the number 0 is kept aside
        for number in numbers:
            self.add(number)

    def __len__(self) -> int:
        return self._count + self._has_zero

    def __bool__(self) -> bool:
        return len(self) > 0

    @property
    def nbytes(self) -> int:
        return 8 * self._size

    def __contains__(self, number: object) -> bool:
        if not isinstance(number, int):
            return False
        if not number:
            return self._has_zero
        table, size = self._table, self._size
        slot = number % size
        while True:
            there = table[slot]
            if there == number:
                return True
            if not there:
                return False
            slot += 1
            if slot == size:
                slot = 0

    def add(self, number: int) -> bool:
        """Add ``number``; whether it was new."""
        if not number:
            new = not self._has_zero
            self._has_zero = True
            return new
        if 5 * (self._count + 1) > 3 * self._size:
            self._grow()
        table, size = self._table, self._size
        slot = number % size
        while True:
            there = table[slot]
            if there == number:
                return False
            if not there:
                table[slot] = number
                self._count += 1
                return True
            slot += 1
            if slot == size:
                slot = 0

    def discard(self, number: int) -> None:
        """Take ``number`` out, if in (the slots after it that it kept from their own move back)."""
        if not number:
            self._has_zero = False
            return
        table, size = self._table, self._size
        slot = number % size
        while (there := table[slot]) != number:
            if not there:
                return
            slot = slot + 1 if slot + 1 < size else 0
        table[slot] = 0
        self._count -= 1
        hole, slot = slot, slot + 1 if slot + 1 < size else 0
        while there := table[slot]:
            home = there % size
            # It may fill the hole unless its own slot lies after the hole, up to where it is.
            stays = hole < home <= slot if hole <= slot else (home > hole or home <= slot)
            if not stays:
                table[hole], table[slot] = there, 0
                hole = slot
            slot = slot + 1 if slot + 1 < size else 0

    def reserve(self, count: int) -> None:
        """Make room for ``count`` numbers at once (a run that knows how many rows may come):
        one table of the final size, where doubling would hold the last table and one twice its
        size at once, near the end, when both are largest."""
        size = 5 * count // 3 + 1
        if size > self._size:
            self._grow(size)

    def _grow(self, size: int = 0) -> None:
        old = self._table
        self._size = size = size or 2 * self._size
        self._table = table = array("Q", bytes(8 * size))
        for number in compress(old, old):  # the numbers, in C: empty slots are 0
            slot = number % size
            while table[slot]:
                slot += 1
                if slot == size:
                    slot = 0
            table[slot] = number
