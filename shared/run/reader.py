"""One file's records through the row rules into the spool: the hot loop of a run."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from itertools import compress, repeat
from operator import eq
from typing import cast

from shared.adapters.storage import BlobStore
from shared.inputs.config import Destination
from shared.inputs.mapping import plan_columns
from shared.inputs.rows import CustomFieldDef, RowRules
from shared.inputs.segments import RecordChunk, SegmentFile, SegmentPlan, TabularFile, open_segment_file
from shared.run.counts import FILE_COUNTS, RunCounts
from shared.run.delta import MISSING, InPlace, KnownRows, RowFingerprinter, RunKeys, RunOrder, SyncState, email_key
from shared.run.progress import RunProgress
from shared.run.record_parts import FileEntry, SegmentEntry
from shared.run.records import RejectsWriter, RunRecord
from shared.run.runtime import Tuning
from shared.run.send import BatchSpool, ContactNotEncodable, ContactTooLarge, encode_contact
from shared.settings import Settings

log = logging.getLogger(__name__)

# Lines read (at least this many, and a tenth of all) before the share of them that made keys
# is taken to promise how many keys come.
_LINES_BEFORE_RESERVING = 50_000


class SegmentsReading:
    """Every file of every segment through a :class:`FileReader`; each file's own counts go to
    its segment's summary in the record."""

    def __init__(
        self,
        record: RunRecord,
        rejects: RejectsWriter,
        progress: RunProgress,
        spool: BatchSpool,
        store: BlobStore,
        settings: Settings,
        tuning: Tuning,
    ):
        self.record, self.rejects, self.progress, self.spool = record, rejects, progress, spool
        self.store, self.max_record_bytes, self.release_memory = store, settings.max_record_bytes, tuning.release_memory
        self._seen: RunKeys | None = None  # the keys of the read under way, until told how many lines come
        self._lines_done = 0  # lines of the files read to the end
        self._file_rows = 0  # rows of the file under way already in counts.read

    def read(
        self,
        destination: Destination,
        plan: SegmentPlan,
        custom_fields: dict[str, CustomFieldDef],
        state: SyncState,
        list_ids: list[str],
        *,
        full: bool,
        mirror: bool,
    ) -> RunKeys:
        """Read every record into the spool. Returns the keys of every valid contact (mirror
        mode needs them to find who left)."""
        # The records SendGrid already has, found in the state; --full knows none.
        known = None if full or not len(state) else KnownRows(state.fingerprints)
        # Email keys of this run's valid contacts: de-duplication, first wins. Those the state
        # holds are kept by position; a --full run in upsert mode needs no positions.
        seen = RunKeys(state if known is not None or mirror else None)
        if known is not None:
            seen.order = RunOrder()
        self._seen = seen
        salt = (",".join(sorted(list_ids)), ";".join(f"{d.name}:{d.id}:{d.field_type}" for d in custom_fields.values()))
        for segment, files in plan:
            summary: SegmentEntry = {"path": segment.path, "files": len(files), "rows": 0, "by_file": []}
            self.record.segments.append(summary)
            for file in files:
                by_file = self._read_file(file, destination, custom_fields, salt, known, seen)
                summary["rows"] += by_file["rows"]
                summary["by_file"].append(by_file)
                self.release_memory()
        self._seen = None
        return seen

    def _read_file(
        self,
        file: SegmentFile,
        destination: Destination,
        custom_fields: dict[str, CustomFieldDef],
        salt: tuple[str, str],
        known: KnownRows | None,
        seen: RunKeys,
    ) -> FileEntry:
        counts, lists, customs = self.record.counts, salt[0], salt[1]
        table = open_segment_file(self.store, file, destination.mapping, self.max_record_bytes)
        columns = plan_columns(destination.mapping, table.columns, file.name)
        reader = FileReader(
            table,
            RowRules(columns, custom_fields, encoding=file.csv.encoding.upper()),
            RowFingerprinter(lists, repr(columns), customs, "\x1f".join(table.columns)),
            columns.email,
            counts,
            self.rejects,
            self.spool,
        )
        before = counts.snapshot()
        self._file_rows = 0
        try:
            rows = reader.read(known, seen, self._on_chunk)
        except BaseException:
            # Stopped inside a chunk: the rows it got to were read (each is counted once already).
            counts.read = counts.invalid + counts.duplicate + counts.unchanged + counts.sent + counts.would_send
            raise
        counts.read += rows - self._file_rows
        self._lines_done += reader.lines
        counts.control_chars_stripped += table.control_chars_stripped
        log.info("read %s: %d rows (%d to send so far)", file.name, rows, self.spool.count)
        changed = cast(FileEntry, counts.changed_since(before, FILE_COUNTS))  # only FILE_COUNTS keys
        return {"name": file.name, "rows": rows, **changed}

    def _on_chunk(self, rows_in_file: int, lines_in_file: int) -> None:
        progress = self.progress
        # Counted as each chunk is done, so that a record saved meanwhile adds up.
        self.record.counts.read += rows_in_file - self._file_rows
        self._file_rows = rows_in_file
        progress.rows_read = self.record.counts.read
        lines, total = self._lines_done + lines_in_file, progress.rows_total
        if self._seen is not None and total and lines >= max(_LINES_BEFORE_RESERVING, total // 10):
            # The scan has counted the lines (rows_total, at least as many as the rows): here,
            # in the reading thread, the run's keys make room once for as many as the lines
            # read so far promise.
            self._seen.expect(total, lines)
            self._seen = None
        progress.batches_spooled = self.spool.batch_count
        progress.tick()


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
        email_at: int,
        counts: RunCounts,
        rejects: RejectsWriter,
        spool: BatchSpool,
    ):
        self.table, self.rules, self.fingerprinter, self.email_at = table, rules, fingerprinter, email_at
        self.counts, self.rejects, self.spool = counts, rejects, spool
        self.lines = 0  # the line the last record read starts on

    def read(self, known: KnownRows | None, seen: RunKeys, on_chunk: Callable[[int, int], None] | None = None) -> int:
        """Read the file's records; returns how many. ``on_chunk`` is told, before each chunk, the
        records and the lines read so far."""
        parse, tally = self.table.parse, self.table.tally
        rows = 0
        hints: dict[int, int] = {}
        for chunk in self.table.chunks:
            if on_chunk is not None:
                on_chunk(rows, self.lines)
            records = chunk.records
            rows += len(records)
            if records:
                self.lines = chunk.line_of(len(records) - 1)
            fps, undecodable = self.fingerprinter.many(records)
            at: Sequence[int] = range(0)
            if known is not None:
                at, hints = known.match(fps)
                fresh, claims = self._take_unchanged(at, seen)
            else:
                fresh, claims = range(len(records)), _Claims([], {})
            # Which state entry each row is, for the state's order (a delta run's: see run_order).
            entries = None if seen.order is None else at if not fresh else list(at)
            if fresh:
                before = tally.control_chars_stripped
                parsed, problems = parse(records if len(fresh) == len(records) else [records[i] for i in fresh])
                stripped = tally.control_chars_stripped > before
                settled = self._add(
                    chunk, fresh, fps, undecodable, parsed, problems, seen, claims, hints, known, entries
                )
                if settled and stripped:
                    self._not_parsed([records[i] for i in settled])
            if entries is not None and seen.order is not None:
                seen.order.note(entries)
        return rows

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
        self,
        chunk: RecordChunk,
        indexes: Sequence[int],
        fps: list[int],
        undecodable: set[int],
        parsed: list[list[str] | None],
        problems: dict[int, str],
        seen: RunKeys,
        claims: _Claims,
        hints: dict[int, int],
        known: KnownRows | None,
        entries: Sequence[int] | None = None,
    ) -> list[int]:
        """Settle the parsed records; returns the indexes of those settled as records SendGrid
        has (found by their email: they did not line up with the state). ``entries`` (a list)
        gets the state entry, or new contact, each record settled is (see run_order)."""
        # Once a row: attribute lookups are bound to locals, rare outcomes go to methods.
        counts, apply, too_large, key_of = self.counts, self.rules.apply, self.spool.max_contact_bytes, email_key
        locate, claimed, claim_new = seen.locate, seen.claimed, seen.others.add
        in_state = bool(claimed)
        known_fps = known.fingerprints if known is not None else None
        encoded: list[bytes] = []
        lines: list[int] = []
        keys: list[int] = []
        chosen: list[int] = []
        settled: list[int] = []
        for position, (index, fields) in enumerate(zip(indexes, parsed, strict=True)):
            if fields is None:  # a record the reader could not make fields of
                self._invalid(chunk.line_of(index), "", problems.get(position, "unreadable record"))
                continue
            contact, reason, truncated, field_rejects = apply(fields, index in undecodable)
            if contact is None:
                self._invalid_contact(chunk.line_of(index), fields, reason)
                continue
            email = contact["email"]
            key = key_of(email)
            # A later unchanged row of the chunk may have claimed this email: this row wins. A key
            # new to the state is claimed at once (one walk of the set), given back if not sent.
            at = locate(key, hints.get(index, MISSING)) if in_state else MISSING
            if at != MISSING and known_fps is not None and known_fps[at] == fps[index]:
                self._unchanged_out_of_place(at, index, claims, seen)
                settled.append(index)
                if isinstance(entries, list):
                    entries[index] = at
                continue
            taken = claimed[at] if at != MISSING else not claim_new(key)
            takes_over = taken and at != MISSING and claims.later_than(at, index)
            if taken and not takes_over:
                counts.duplicate += 1
                continue
            line = chunk.line_of(index)
            try:
                contact_json = encode_contact(contact)
                if len(contact_json) > too_large:
                    raise ContactTooLarge.of(contact_json)
            except (ContactTooLarge, ContactNotEncodable) as exc:
                self._unencodable(exc, fields, line, email, key if at == MISSING else None, seen)
                continue
            if takes_over:
                claims.give_up(at)
                self._took_over()
            elif at != MISSING:
                seen.claim(at)
            if isinstance(entries, list) and seen.order is not None:
                entries[index] = at if at != MISSING else seen.order.new_contact(key)
            encoded.append(contact_json)
            lines.append(line)
            keys.append(key)
            chosen.append(fps[index])
            if truncated:
                counts.truncated += 1
            if field_rejects:
                self._fields_rejected(line, email, field_rejects)
        self.spool.add_many(encoded, self.table.name, lines, keys, chosen)
        counts.sent += len(encoded)
        return settled

    def _not_parsed(self, records: list[str]) -> None:
        """Take back what parsing counted of records SendGrid has that were parsed only to find
        their email: one found in place is never parsed, and the counts must not depend on where
        a record stands. Parsing them again tells how many were counted."""
        tally = self.table.tally
        before = tally.control_chars_stripped
        self.table.parse(records)
        tally.control_chars_stripped = 2 * before - tally.control_chars_stripped

    def _invalid_contact(self, line: int, fields: list[str], reason: str) -> None:
        self._invalid(line, fields[self.email_at] if self.email_at < len(fields) else "", reason)

    def _unchanged_out_of_place(self, at: int, index: int, claims: _Claims, seen: RunKeys) -> None:
        """A record SendGrid has (the state holds this very record for its email), found by its
        email because it did not line up with the state: it is settled as an unchanged one."""
        if seen.claimed[at]:
            # Either a later record of the chunk, the same as this one, claimed it first (it is
            # the duplicate now, and this one the unchanged) or an earlier one did: one more
            # duplicate either way.
            if claims.later_than(at, index):
                claims.give_up(at)
            self.counts.duplicate += 1
        else:
            seen.claim(at)
            self.counts.unchanged += 1

    def _took_over(self) -> None:
        """A changed row claimed the email a later unchanged row had: that one is the duplicate."""
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
