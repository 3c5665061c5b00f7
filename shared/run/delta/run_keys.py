"""A run's email keys: de-duplication within the read and, in mirror mode, who is still present
(:class:`RunKeys`), and so which of the state's contacts departed (:func:`departed_indexes`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Set
from itertools import compress, repeat

from shared.run.delta.keysets import MISSING, UNSET, KeySet, exhaust
from shared.run.delta.run_order import RunOrder
from shared.run.delta.sync_state import SyncState


def departed_indexes(state: SyncState, present: Set[int] | RunKeys) -> Iterator[int]:
    """Indexes of the state's entries whose key is not in ``present`` (mirror mode's removal candidates)."""
    if isinstance(present, RunKeys) and present.state is state:
        return present.unclaimed()
    return (index for index, key in enumerate(state.keys) if key not in present)


class RunKeys:
    """The email keys of a run's valid contacts: de-duplication (the first row wins) and, in
    mirror mode, who is still present.

    A key the state holds is one byte, at its position in the state (``claimed``); any other key
    is in a :class:`KeySet`. A delta run of a million unchanged rows so costs a megabyte where a
    set of ints cost a hundred, and claims its rows a chunk at a time by position, without
    making their keys. Without a state (a ``--full`` run in upsert mode), every key is in the set.
    """

    def __init__(self, state: SyncState | None = None):
        self.state = state
        # The run's order, in terms of the state (a delta run notes it: see shared.run.delta.run_order).
        self.order: RunOrder | None = None
        self.claimed = bytearray(len(state.keys) if state is not None else 0)
        self.claimed_count = 0
        self.others = KeySet()

    def __len__(self) -> int:
        return self.claimed_count + len(self.others)

    def __bool__(self) -> bool:
        return len(self) > 0

    def expect(self, lines: int, read: int) -> None:
        """The files hold at most ``lines`` lines, ``read`` of them read so far. Where every key
        goes to the set (no state to claim positions in), it makes room at once for as many
        keys as the lines read so far promise, and a twentieth more: lines that made no key
        (blank, invalid, duplicates, the inside of a record) reserve nothing. Lines after them
        that make fewer keys than these did leave room unused: at most about 14 bytes a line."""
        if not self.claimed and read:
            self.others.reserve(min(lines, len(self.others) * lines // read * 21 // 20))

    def locate(self, key: int, hint: int = MISSING) -> int:
        """The key's position in the state, or ``MISSING``; ``hint`` is where it likely is (a
        row changed in place), which spares building the state's key index."""
        if self.state is None or not self.claimed:
            return MISSING
        keys = self.state.keys
        if 0 <= hint < len(keys) and keys[hint] == key:
            return hint
        return self.state.key_index().find(key)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, int):
            return False
        at = self.locate(key)
        return bool(self.claimed[at]) if at != MISSING else key in self.others

    def add(self, key: int, at: int | None = None) -> None:
        """Add ``key``; ``at`` is its position in the state if already located."""
        if at is None:
            at = self.locate(key)
        if at == MISSING:
            self.others.add(key)
        elif not self.claimed[at]:
            self.claimed[at] = 1
            self.claimed_count += 1

    def claim(self, position: int) -> None:
        """Claim the state position of a key located with :meth:`locate`."""
        if not self.claimed[position]:
            self.claimed[position] = 1
            self.claimed_count += 1

    def claim_range(self, start: int, stop: int) -> bool:
        """Claim the positions from ``start`` to ``stop`` if none is claimed yet; whether it did."""
        if self.claimed.find(1, start, stop) >= 0:
            return False
        self.claimed[start:stop] = bytes([1]) * (stop - start)
        self.claimed_count += stop - start
        return True

    def unclaim(self, positions: Iterable[int]) -> None:
        """Give back claimed state positions."""
        claimed = self.claimed
        for position in positions:
            if claimed[position]:
                claimed[position] = 0
                self.claimed_count -= 1

    def claim_unclaimed(self, positions: Set[int]) -> None:
        """Claim state positions none of which is claimed yet (the caller has checked)."""
        exhaust(map(self.claimed.__setitem__, positions, repeat(1)))
        self.claimed_count += len(positions)

    def unclaimed(self) -> Iterator[int]:
        """The positions in the state of the keys no row of the run holds."""
        return compress(range(len(self.claimed)), self.claimed.translate(UNSET))
