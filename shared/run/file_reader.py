"""One file's records through the row rules into the spool: the hot loop of a run. Each chunk
of records is matched against the state first; only the records SendGrid does not have are
parsed, checked by the row rules, encoded and spooled."""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import eq

from shared.inputs.rows import RowRules
from shared.inputs.segments import RecordChunk, TabularFile
from shared.run.counts import RunCounts
from shared.run.delta import MISSING, InPlace, KnownRows, RowFingerprinter, RunKeys, email_key
from shared.run.records import RejectsWriter
from shared.run.send import BatchSpool, ContactNotEncodable, ContactTooLarge, encode_contact


class FileReader:
    """One file's records through the row rules into the spool: the hot loop of a run.

    A record whose fingerprint SendGrid already has costs one hash and, where it stands in the
    state, a comparison (:mod:`shared.run.delta.matching`): it is not parsed, mapped or encoded. The
    others are parsed a chunk at a time.
    """

    def __init__(
        self,
        table: TabularFile,
        rules: RowRules,
        fingerprinter: RowFingerprinter,
        counts: RunCounts,
        rejects: RejectsWriter,
        spool: BatchSpool,
    ):
        self.table, self.rules, self.fingerprinter = table, rules, fingerprinter
        self.counts, self.rejects, self.spool = counts, rejects, spool
        self.lines = 0  # the line the last record read starts on

    def read(self, known: KnownRows | None, seen: RunKeys, on_chunk: Callable[[int, int], None] | None = None) -> int:
        """Read the file's records; returns how many. ``on_chunk`` is told, before each chunk, the
        records and the lines read so far."""
        rows = 0
        for chunk in self.table.chunks:
            if on_chunk is not None:
                on_chunk(rows, self.lines)
            records = chunk.records
            rows += len(records)
            if records:
                self.lines = chunk.line_of(len(records) - 1)
            matched = self._match(chunk, known, seen)
            if matched.fresh:
                self._parse_and_add(matched, seen)
            if matched.entries is not None and seen.order is not None:
                seen.order.note(matched.entries)
        return rows

    def _match(self, chunk: RecordChunk, known: KnownRows | None, seen: RunKeys) -> _MatchedChunk:
        """The chunk's records matched against the state: those SendGrid has are counted here, and
        the others (``fresh``) are left to parse."""
        records = chunk.records
        fps, undecodable = self.fingerprinter.many(records)
        at: Sequence[int] = range(0)
        hints: dict[int, int] = {}
        if known is not None:
            at, hints = known.match(fps)
            fresh, claims = self._take_unchanged(at, seen)
        else:
            fresh, claims = range(len(records)), _Claims([], {})
        # Which state entry each row is, for the state's order (a delta run's: see run_order).
        entries = None if seen.order is None else at if not fresh else list(at)
        known_fps = known.fingerprints if known is not None else None
        return _MatchedChunk(chunk, fps, undecodable, hints, known_fps, fresh, claims, entries)

    def _parse_and_add(self, matched: _MatchedChunk, seen: RunKeys) -> None:
        """Parse the chunk's fresh records and settle them."""
        records, fresh, tally = matched.chunk.records, matched.fresh, self.table.tally
        before = tally.control_chars_stripped
        parsed, problems = self.table.parse(records if len(fresh) == len(records) else [records[i] for i in fresh])
        stripped = tally.control_chars_stripped > before
        self._add(matched, parsed, problems, seen)
        if matched.settled and stripped:
            self._not_parsed([records[i] for i in matched.settled])

    def _take_unchanged(self, positions: Sequence[int], seen: RunKeys) -> tuple[Sequence[int], _Claims]:
        """Count the records SendGrid already has (the very records it accepted last time: valid,
        and unchanged) and return the indexes of the others. In a delta run nearly every record
        is one of these, so the usual chunk is settled with a few whole-list operations.

        Such a record is known by its position in the state (``positions``), whose key is its email's:
        it is claimed there, without its key being made or looked up."""
        # Every record in place, and none of their emails claimed before.
        if isinstance(positions, range) and seen.claim_range(positions.start, positions.stop):
            self.counts.unchanged += len(positions)
            return [], _Claims(positions)
        if isinstance(positions, InPlace) and seen.claim_range(positions.start, positions.start + len(positions)):
            # A range claimed at once, its holes given back: a changed row claims its own.
            seen.unclaim(positions.start + hole for hole in positions.holes)
            self.counts.unchanged += len(positions) - len(positions.holes)
            return positions.holes, _Claims(positions)
        at = positions if isinstance(positions, list) else list(positions)
        missing = at.count(MISSING)
        if missing == len(at):
            return range(len(at)), _Claims(at, {})
        found = set(at)
        found.discard(MISSING)
        claimed = seen.claimed
        if len(found) == len(at) - missing and not any(map(claimed.__getitem__, found)):  # no email twice
            seen.claim_unclaimed(found)
            self.counts.unchanged += len(found)
            fresh = _indexes_of(at, MISSING) if missing else []
            return fresh, _Claims(at)
        fresh = []
        claims: dict[int, int] = {}
        for index, position in enumerate(at):
            if position == MISSING:
                fresh.append(index)
            elif claimed[position]:
                self.counts.duplicate += 1
            else:
                seen.claim_unclaimed({position})
                claims[position] = index
                self.counts.unchanged += 1
        return fresh, _Claims(at, claims)

    def _add(
        self, matched: _MatchedChunk, parsed: list[list[str] | None], problems: dict[int, str], seen: RunKeys
    ) -> None:
        """Settle the parsed records (``matched.fresh``, in order): to the spool, the rejects, or
        (found by their email) as duplicates or records SendGrid has (``matched.settled``)."""
        # Once a row: attribute lookups are bound to locals, rare outcomes go to methods.
        counts, apply, too_large, key_of = self.counts, self.rules.apply, self.spool.max_contact_bytes, email_key
        locate, claim_new, in_state, noting = seen.locate, seen.others.add, bool(seen.claimed), matched.noting
        chunk, fps, undecodable, hints = matched.chunk, matched.fps, matched.undecodable, matched.hints
        out = _Spooled()
        take_json, take_line, take_key, take_fp = out.encoded.append, out.lines.append, out.keys.append, out.fps.append
        for position, (index, fields) in enumerate(zip(matched.fresh, parsed, strict=True)):
            if fields is None:  # a record the reader could not make fields of
                self._invalid(chunk.line_of(index), "", problems.get(position, "unreadable record"))
                continue
            contact, reason, truncated, field_rejects = apply(fields, index in undecodable)
            if contact is None:
                self._invalid_contact(chunk.line_of(index), fields, reason)
                continue
            email = contact["email"]
            key = key_of(email)
            # A key new to the state is claimed at once (one walk of the set), given back if not sent.
            at = locate(key, hints.get(index, MISSING)) if in_state else MISSING
            if at == MISSING:
                if not claim_new(key):
                    counts.duplicate += 1
                    continue
            elif not self._may_take(matched, at, index, seen):
                continue
            line = chunk.line_of(index)
            try:
                contact_json = encode_contact(contact)
                if len(contact_json) > too_large:
                    raise ContactTooLarge.of(contact_json)
            except (ContactTooLarge, ContactNotEncodable) as exc:
                self._unencodable(exc, fields, line, email, key if at == MISSING else None, seen)
                continue
            if at != MISSING or noting:
                self._place(matched, at, index, key, seen)
            take_json(contact_json)
            take_line(line)
            take_key(key)
            take_fp(fps[index])
            if truncated:
                counts.truncated += 1
            if field_rejects:
                self._fields_rejected(line, email, field_rejects)
        self.spool.add_many(out.encoded, self.table.name, out.lines, out.keys, out.fps)
        counts.sent += len(out.encoded)

    def _may_take(self, matched: _MatchedChunk, at: int, index: int, seen: RunKeys) -> bool:
        """Whether a parsed record whose email the state holds (at ``at``) may be sent: not when
        it is the very record SendGrid has, out of place (settled as unchanged), nor when a record
        of its email came first (a duplicate). A later unchanged record of the chunk may have
        claimed the email: this one comes first, and takes it over once it is sent."""
        known_fps = matched.known_fps
        if known_fps is not None and known_fps[at] == matched.fps[index]:
            self._unchanged_out_of_place(at, index, matched, seen)
            return False
        if seen.claimed[at] and not matched.claims.later_than(at, index):
            self.counts.duplicate += 1
            return False
        return True

    def _place(self, matched: _MatchedChunk, at: int, index: int, key: int, seen: RunKeys) -> None:
        """A record to be sent claims its email's position in the state (``at``, unless it is a
        new contact), and is noted as that entry, or as a new contact, where the run notes its
        order (see run_order)."""
        if at != MISSING:
            if seen.claimed[at]:  # by a later unchanged record of the chunk, which is the duplicate now
                self._took_over(matched.claims, at)
            else:
                seen.claim(at)
        if isinstance(matched.entries, list) and seen.order is not None:
            matched.entries[index] = at if at != MISSING else seen.order.new_contact(key)

    def _not_parsed(self, records: list[str]) -> None:
        """Take back what parsing counted of records SendGrid has that were parsed only to find
        their email: one found in place is never parsed, and the counts must not depend on where
        a record stands. Parsing them again tells how many were counted."""
        tally = self.table.tally
        before = tally.control_chars_stripped
        self.table.parse(records)
        tally.control_chars_stripped = 2 * before - tally.control_chars_stripped

    def _invalid_contact(self, line: int, fields: list[str], reason: str) -> None:
        email_at = self.rules.email_at
        self._invalid(line, fields[email_at] if email_at < len(fields) else "", reason)

    def _unchanged_out_of_place(self, at: int, index: int, matched: _MatchedChunk, seen: RunKeys) -> None:
        """A record SendGrid has (the state holds this very record for its email), found by its
        email because it did not line up with the state: it is settled as an unchanged one."""
        if seen.claimed[at]:
            # Either a later record of the chunk, the same as this one, claimed it first (it is
            # the duplicate now, and this one the unchanged) or an earlier one did: one more
            # duplicate either way.
            if matched.claims.later_than(at, index):
                matched.claims.give_up(at)
            self.counts.duplicate += 1
        else:
            seen.claim(at)
            self.counts.unchanged += 1
        matched.settled.append(index)
        if isinstance(matched.entries, list):
            matched.entries[index] = at

    def _took_over(self, claims: _Claims, at: int) -> None:
        """A changed row claimed the email a later unchanged row had: that one is the duplicate."""
        claims.give_up(at)
        self.counts.unchanged -= 1
        self.counts.duplicate += 1

    def _invalid(self, line: int, email: str, reason: str) -> None:
        self.counts.invalid += 1
        self.rejects.add(self.table.name, line, email, "invalid", reason)

    def _unencodable(
        self, exc: ValueError, fields: list[str], line: int, email: str, claimed_key: int | None, seen: RunKeys
    ) -> None:
        # Undecodable text can also come from a JSON escape, which the record's raw text does not show.
        why = self.rules.undecodable(fields) if isinstance(exc, ContactNotEncodable) else ""
        self._invalid(line, email, why or str(exc))
        if claimed_key is not None:  # claimed above as a key new to the state: given back
            seen.others.discard(claimed_key)

    def _fields_rejected(self, line: int, email: str, field_rejects: list[tuple[str, str]]) -> None:
        self.counts.fields_rejected += len(field_rejects)
        for field_name, problem in field_rejects:
            self.rejects.add(self.table.name, line, email, "field_rejected", problem, field_name)


@dataclass(frozen=True)
class _MatchedChunk:
    """One chunk's records as matched against the state, for the rows left to parse: the
    records' fingerprints, which of them may hold undecodable bytes, where the state likely holds
    each (``hints``), the state's fingerprints (None when no record is known), the indexes of the
    records to parse (``fresh``), the positions the chunk's unchanged records claimed, and which
    state entry each record is (None when the run notes no order)."""

    chunk: RecordChunk
    fps: list[int]
    undecodable: set[int]
    hints: dict[int, int]
    known_fps: array[int] | None
    fresh: Sequence[int]
    claims: _Claims
    entries: Sequence[int] | None
    settled: list[int] = field(default_factory=list)  # fresh rows found to be records SendGrid has

    @property
    def noting(self) -> bool:
        """Whether each record sent is noted as the state entry, or new contact, it is."""
        return isinstance(self.entries, list)


class _Spooled:
    """The contacts a chunk sends, in the columns one :meth:`BatchSpool.add_many` takes."""

    def __init__(self) -> None:
        self.encoded: list[bytes] = []
        self.lines: list[int] = []
        self.keys: list[int] = []
        self.fps: list[int] = []


class _Claims:
    """The state positions (emails) a chunk's unchanged records claimed, and where in the chunk.
    A changed record earlier in the chunk with the same email still comes first, so it wins, as
    the first row does."""

    def __init__(self, positions: Sequence[int], claimed: dict[int, int] | None = None):
        self._positions = positions  # MISSING for a record the state does not know
        self._claimed = claimed  # None: every position in positions, at its index (built when first asked)

    def later_than(self, position: int, index: int) -> bool:
        """Whether an unchanged record after ``index`` claimed ``position``."""
        if self._claimed is None:
            self._claimed = {p: i for i, p in enumerate(self._positions) if p != MISSING}
        at = self._claimed.get(position)
        return at is not None and at > index

    def give_up(self, position: int) -> None:
        """The later record gives ``position`` up to an earlier one, once that one is taken: a
        row that turns out unencodable takes nothing, and the next row of the email may."""
        assert self._claimed is not None  # later_than() said so first
        del self._claimed[position]


def _indexes_of(values: list[int], wanted: int) -> list[int]:
    """Where ``wanted`` is in ``values``: compress and map walk the list in C, not a loop a row."""
    return list(compress(range(len(values)), map(eq, values, repeat(wanted))))
