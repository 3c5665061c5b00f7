"""The order of a run's rows, told in terms of the state, so that the state the run writes is in
the order of its input and the next run finds its unchanged rows in place
(:mod:`shared.run.matching`).

A state merged in place keeps its own order: contacts confirmed again stay where they stand and
new ones go after the rest. That is the input's order as long as the input keeps its own and
contacts only change; a contact added in the middle, or an input whose order changed, leaves the
state out of step, and every later run would pay for it. So a run notes, for each row that ends
in the state, which entry it is (4 bytes a row), and the merge writes the state in that order
when it differs from the state's own.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence, Set
from itertools import compress, islice, repeat
from operator import and_, ge, lt, ne, sub

from shared.run.journal import StateUpdates
from shared.run.keysets import MISSING, UNSET, exhaust

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
        noted = array("i", compress(entries, map(ne, entries, repeat(MISSING))))
        positions = array("i", compress(noted, map(ge, noted, repeat(0))))
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


def gathered(
    order: RunOrder,
    keys: array[int],
    fps: array[int],
    emails: list[str] | None,
    updates: StateUpdates,
    is_new: bytearray,
    removed: Set[int],
    groups: list[tuple[int, int]],
) -> tuple[array[int], array[int], list[str] | None]:
    """The merged state's columns in the run's order: the entries and new contacts the run noted,
    in its order (each once, where first noted); then the entries it did not note (contacts not
    in this input), in the state's order; then any confirmed new contact not noted. ``fps`` and
    ``emails`` already hold what the run confirmed again; ``is_new`` marks the updates the state
    did not hold; ``groups`` are the updates' groups in input order. No entry whose key is in
    ``removed`` is kept."""
    count, log = len(keys), order.log
    dropped = bytearray(count)
    if removed:
        exhaust(map(dropped.__setitem__, compress(range(count), map(removed.__contains__, keys)), repeat(1)))
    new_at = dict(zip(compress(updates.keys, is_new), compress(range(len(updates.keys)), is_new), strict=True))
    out = _Columns(emails is not None)
    placed = bytearray(len(updates.keys))

    def add_new(entry: int) -> None:
        at = new_at.get(order.new_keys[NEW - entry])
        if at is not None and not placed[at]:
            placed[at] = 1
            out.add_update(updates, at)

    noted = bytearray(count)
    exhaust(map(noted.__setitem__, compress(log, map(ge, log, repeat(0))), repeat(1)))
    if noted.count(1) != len(log) - order.news or (removed and any(map(and_, noted, dropped))):
        # An entry noted twice (rows of one email: the first row's place wins) or dropped.
        log, noted = _first_of_each(log, dropped)
    # Stretches between new contacts, gathered in C.
    start = 0
    for at in compress(range(len(log)), map(lt, log, repeat(MISSING))) if order.news else ():
        out.add_stretch(keys, fps, emails, log[start:at])
        add_new(log[at])
        start = at + 1
    out.add_stretch(keys, fps, emails, log[start:])
    rest = noted.translate(UNSET)
    if any(dropped):
        rest = bytearray(map(and_, rest, dropped.translate(UNSET)))
    out.add_entries(keys, fps, emails, compress(range(count), rest))
    for start, stop in groups:
        for at in compress(range(start, stop), map(and_, is_new[start:stop], placed[start:stop].translate(UNSET))):
            out.add_update(updates, at)
    return out.keys, out.fps, out.emails


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


class _Columns:
    def __init__(self, with_emails: bool):
        self.keys, self.fps = array("Q"), array("Q")
        self.emails: list[str] | None = [] if with_emails else None

    def add_entries(self, keys: array[int], fps: array[int], emails: list[str] | None, at: Iterable[int]) -> None:
        positions = at if isinstance(at, (array, tuple)) else array("i", at)
        self.keys.extend(map(keys.__getitem__, positions))
        self.fps.extend(map(fps.__getitem__, positions))
        if self.emails is not None:
            self.emails.extend(map(emails.__getitem__, positions) if emails is not None else repeat("", len(positions)))

    def add_stretch(self, keys: array[int], fps: array[int], emails: list[str] | None, at: array[int]) -> None:
        """Entries noted one after the other: where they are consecutive in the state too (the
        usual case), each run of them is copied as bytes."""
        if not at:
            return
        # Counted before they are listed: a list of a million breaks would cost 36 MB.
        if sum(map(ne, map(sub, islice(at, 1, None), at), repeat(1))) > len(at) // 32:
            self.add_entries(keys, fps, emails, at)
            return
        breaks = list(compress(range(1, len(at)), map(ne, map(sub, islice(at, 1, None), at), repeat(1))))
        key_bytes, fp_bytes = memoryview(keys).cast("B"), memoryview(fps).cast("B")
        for start, stop in zip([0, *breaks], [*breaks, len(at)], strict=True):
            first, last = at[start], at[start] + stop - start
            self.keys.frombytes(key_bytes[8 * first : 8 * last])
            self.fps.frombytes(fp_bytes[8 * first : 8 * last])
            if self.emails is not None:
                self.emails.extend(emails[first:last] if emails is not None else repeat("", last - first))
        key_bytes.release()
        fp_bytes.release()

    def add_update(self, updates: StateUpdates, at: int) -> None:
        self.keys.append(updates.keys[at])
        self.fps.append(updates.fingerprints[at])
        if self.emails is not None:
            self.emails.append(updates.emails[at] if updates.emails is not None else "")
