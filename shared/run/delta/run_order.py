"""The order of a run's rows, told in terms of the state, so that the state the run writes is in
the order of its input and the next run finds its unchanged rows in place
(:mod:`shared.run.delta.matching`).

A state merged in place keeps its own order: contacts confirmed again stay where they stand and
new ones go after the rest. That is the input's order as long as the input keeps its own and
contacts only change; a contact added in the middle, or an input whose order changed, leaves the
state out of step, and every later run would pay for it. So a run notes, for each row that ends
in the state, which entry it is (4 bytes a row), and the merge writes the state in that order
when it differs from the state's own.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence, Set
from dataclasses import dataclass
from itertools import compress, islice, repeat
from operator import add, and_, ge, lt, ne, sub
from typing import Any, Protocol

from shared.run.delta.journal import StateUpdates
from shared.run.delta.keysets import MISSING, UNSET, exhaust, extend_ranges, items_in_ranges

# A new contact (one the state does not hold) is noted as NEW - k, k its number in the run.
NEW = MISSING - 1


class RunOrder:
    """Which state entry, or which new contact, each row of the run that ends in the state is."""

    def __init__(self) -> None:
        self.log = array("i")  # a state position, or NEW - k for the run's k-th new contact
        self.new_keys = array("Q")  # the keys of the new contacts, by k
        self.news = 0  # new contacts noted
        # Whether the entries noted so far ascend, with no new contact before any of them: then
        # the state's own order is the run's. Kept as chunks come, each looked at in C.
        self._follows = True
        self._last = -1

    def note(self, entries: Sequence[int]) -> None:
        """The entries of a chunk's rows, in their order; ``MISSING`` for a row that is not noted."""
        if isinstance(entries, range):
            if entries:
                self._follows = self._follows and not self.news and entries.start > self._last
                self._last = max(self._last, entries[-1])
            self.log.extend(entries)
            return
        # The usual chunk notes every row, and holds no new contact: one C pass each, no more.
        noted = array("i", entries if MISSING not in entries else compress(entries, map(ne, entries, repeat(MISSING))))
        positions = noted if not noted or min(noted) >= 0 else array("i", compress(noted, map(ge, noted, repeat(0))))
        news = len(noted) - len(positions)
        if self._follows and positions:
            self._follows = (
                not self.news
                and positions[0] > self._last
                and all(map(lt, positions, islice(positions, 1, None)))
                and all(map(lt, islice(noted, len(positions), None), repeat(MISSING)))  # new ones last
            )
        if positions:
            self._last = max(self._last, positions[-1])
        self.news += news
        self.log.extend(noted)

    def new_contact(self, key: int) -> int:
        """The entry to note for a new contact with this key."""
        self.new_keys.append(key)
        return NEW - (len(self.new_keys) - 1)

    def follows_the_state(self) -> bool:
        """Whether the state's own order is already the run's: the entries noted ascending, and
        the new contacts, if any, after them all."""
        return self._follows


@dataclass(frozen=True)
class ConfirmedUpdates:
    """What a run confirmed, as a merge takes it: the updates, one byte an update saying whether
    the state did not hold its contact (1: new), and the updates' groups in input order."""

    updates: StateUpdates
    is_new: bytearray
    groups: list[tuple[int, int]]


def gathered(
    order: RunOrder, state: _Columns, confirmed: ConfirmedUpdates, removed: Set[int], *, in_place: bool
) -> tuple[array[int], array[int], list[str] | None]:
    """The merged state's columns in the run's order: the entries and new contacts the run noted,
    in its order (each once, where first noted); then the entries it did not note (contacts not
    in this input), in the state's order; then any confirmed new contact not noted. ``state``'s
    fingerprints and emails already hold what the run confirmed again. No entry whose key is in
    ``removed`` is kept.

    The keys are gathered first and then the rest, in the same order: with ``in_place`` the old
    keys are let go in between (``state.keys`` is emptied), so the merge holds one column more
    than the state, not a second state."""
    keys, count, log = state.keys, len(state.keys), order.log
    dropped = bytearray(count)
    if removed:
        exhaust(map(dropped.__setitem__, compress(range(count), map(removed.__contains__, keys)), repeat(1)))
    noted = bytearray(count)
    exhaust(map(noted.__setitem__, compress(log, map(ge, log, repeat(0))), repeat(1)))
    if noted.count(1) != len(log) - order.news or (removed and any(map(and_, noted, dropped))):
        # An entry noted twice (rows of one email: the first row's place wins) or dropped.
        log, noted = _first_of_each(log, dropped)
    rest = noted.translate(UNSET)
    if any(dropped):
        rest = bytearray(map(and_, rest, dropped.translate(UNSET)))
    del noted, dropped
    plan = _Plan(order, log, rest, confirmed)
    updates = confirmed.updates
    gathering = _Column(keys, updates.keys)
    plan.gather(gathering)
    new_keys = gathering.values
    if in_place:
        state.keys = array("Q")
    del keys, gathering
    fps = _Column(state.fps, updates.fingerprints)
    emails = None if state.emails is None else _Emails(state.emails, updates.emails)
    plan.gather(fps, emails)
    return new_keys, fps.values, None if emails is None else emails.values


class _Plan:
    """The order the merged state's entries are gathered in, worked out once and followed for one
    column after another: runs of consecutive entries (copied as bytes), entries one by one, and
    the updates of new contacts."""

    def __init__(self, order: RunOrder, log: array[int], rest: bytearray, confirmed: ConfirmedUpdates):
        updates, is_new = confirmed.updates, confirmed.is_new
        self.log = log
        self.steps: list[tuple[int, Any]] = []
        new_at = dict(zip(compress(updates.keys, is_new), compress(range(len(updates.keys)), is_new), strict=True))
        placed = bytearray(len(updates.keys))
        start = 0
        # Stretches of entries lie between the new contacts.
        for at in compress(range(len(log)), map(lt, log, repeat(MISSING))) if order.news else ():
            self._stretch(start, at)
            update = new_at.get(order.new_keys[NEW - log[at]])
            if update is not None and not placed[update]:
                placed[update] = 1
                self.steps.append((_UPDATES, [update]))
            start = at + 1
        self._stretch(start, len(log))
        self.steps.append((_ENTRIES, array("i", compress(range(len(rest)), rest))))
        for begin, stop in confirmed.groups:
            unplaced = map(and_, is_new[begin:stop], placed[begin:stop].translate(UNSET))
            self.steps.append((_UPDATES, list(compress(range(begin, stop), unplaced))))

    def _stretch(self, start: int, stop: int) -> None:
        """Entries noted one after the other: where they are consecutive in the state too (the
        usual case), as runs copied as bytes."""
        at = self.log[start:stop]
        if not at:
            return
        # Counted before they are listed: a list of a million breaks would cost 36 MB.
        if sum(map(ne, map(sub, islice(at, 1, None), at), repeat(1))) > len(at) // 32:
            self.steps.append((_LOGGED, (start, stop)))
            return
        # Where each run starts in ``at``, then (start, stop) of each in the state, as arrays:
        # kept until every column is gathered, 8 bytes a run.
        starts = array("i", [0])
        starts.extend(compress(range(1, len(at)), map(ne, map(sub, islice(at, 1, None), at), repeat(1))))
        firsts = array("i", map(at.__getitem__, starts))
        lengths = map(sub, [*islice(starts, 1, None), len(at)], starts)
        self.steps.append((_RUNS, (firsts, array("i", map(add, firsts, lengths)))))

    def gather(self, *sinks: _Sink | None) -> None:
        targets = [sink for sink in sinks if sink is not None]
        for kind, what in self.steps:
            for target in targets:
                if kind == _RUNS:
                    target.add_runs(what)
                elif kind == _LOGGED:
                    target.add_entries(self.log[what[0] : what[1]])
                elif kind == _ENTRIES:
                    target.add_entries(what)
                else:
                    target.add_updates(what)


# The steps of a plan: runs of consecutive state entries; a stretch of the log taken entry by
# entry; state entries by position; updates by index.
_RUNS, _LOGGED, _ENTRIES, _UPDATES = range(4)


def _first_of_each(log: array[int], dropped: bytearray) -> tuple[array[int], bytearray]:
    """The log without entries noted before or dropped, and which entries it or ``dropped`` holds."""
    seen = bytearray(dropped)
    firsts = array("i")
    append = firsts.append
    for entry in log:
        if entry < 0:
            append(entry)
        elif not seen[entry]:
            seen[entry] = 1
            append(entry)
    return firsts, seen


class _Columns(Protocol):
    """The state's columns, as the merge has them."""

    keys: array[int]
    fps: array[int]
    emails: list[str] | None


class _Sink(Protocol):
    def add_runs(self, runs: tuple[array[int], array[int]]) -> None: ...

    def add_entries(self, at: array[int]) -> None: ...

    def add_updates(self, at: list[int]) -> None: ...


class _Column:
    """One merged column, gathered from the state's and the updates' values of it."""

    def __init__(self, source: array[int], updated: array[int]):
        self.source, self.updated, self.values = source, updated, array(source.typecode)

    def add_entries(self, at: array[int]) -> None:
        self.values.extend(map(self.source.__getitem__, at))

    def add_runs(self, runs: tuple[array[int], array[int]]) -> None:
        extend_ranges(self.values, self.source, zip(*runs, strict=True))

    def add_updates(self, at: list[int]) -> None:
        self.values.extend(map(self.updated.__getitem__, at))


class _Emails:
    """Mirror mode's emails, gathered as the columns are."""

    def __init__(self, source: list[str], updated: list[str] | None):
        self.source, self.updated, self.values = source, updated, list[str]()

    def add_entries(self, at: array[int]) -> None:
        self.values.extend(map(self.source.__getitem__, at))

    def add_runs(self, runs: tuple[array[int], array[int]]) -> None:
        self.values.extend(items_in_ranges(self.source, zip(*runs, strict=True)))

    def add_updates(self, at: list[int]) -> None:
        updated = self.updated
        self.values.extend(map(updated.__getitem__, at) if updated is not None else repeat("", len(at)))
