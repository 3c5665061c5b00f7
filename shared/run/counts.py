"""A run's counts: what happened to every row read, and to every contact sent."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from shared.json_input import JsonObject


@dataclass(slots=True)
class RunCounts:
    """Updated in the hot row loop: attributes of a slots class cost what a dict's keys cost.

    The fields' order is the order of the record's ``counts`` object.
    """

    read: int = 0
    invalid: int = 0
    duplicate: int = 0
    unchanged: int = 0
    sent: int = 0
    would_send: int = 0  # passed the row rules, but nothing reached SendGrid (a dry run, a run stopped first)
    accepted: int = 0
    created: int = 0
    updated: int = 0
    errored: int = 0
    # Sent in a request SendGrid accepted, whose import job has not been settled: a job still
    # running (the next run settles it by its id), or one whose outcome per contact is unknown.
    unconfirmed: int = 0
    truncated: int = 0
    fields_rejected: int = 0
    removed: int = 0
    control_chars_stripped: int = 0
    # Counts a newer version wrote that this one does not know: kept, so that re-saving a record
    # (the abandoned-run scan, after a rollback) does not lose them.
    unknown: JsonObject = field(default_factory=dict, repr=False)

    def conserved(self) -> bool:
        """Every row read is accounted for once: rejected, a duplicate, unchanged, or sent (or
        would have been)."""
        return self.read == self.invalid + self.duplicate + self.unchanged + self.sent + self.would_send

    def well_formed(self) -> bool:
        """Every known count a whole number (a record read back may say anything)."""
        return all(type(getattr(self, name)) is int for name in COUNT_NAMES)

    @property
    def rejected(self) -> int:
        """Rows the row rules refused and contacts SendGrid refused."""
        return self.invalid + self.errored

    @property
    def handed(self) -> int:
        """Contacts whose request reached SendGrid: settled either way, or waiting on their job."""
        return self.accepted + self.errored + self.unconfirmed

    def take_back_unsent(self) -> None:
        """The run has ended: what passed the row rules but never reached SendGrid (a dry run, a
        run stopped before sending all) is what would have been sent."""
        unsent = self.sent - self.handed
        if unsent > 0:
            self.would_send, self.sent = self.would_send + unsent, self.sent - unsent

    def snapshot(self) -> RunCounts:
        return replace(self)

    def as_dict(self) -> JsonObject:
        return {name: getattr(self, name) for name in COUNT_NAMES} | self.unknown

    def changed_since(self, before: RunCounts, names: tuple[str, ...]) -> dict[str, int]:
        """Of ``names``, those that changed since ``before``, with how much (a file's own counts)."""
        now = {name: getattr(self, name) for name in names}
        return {name: now[name] - getattr(before, name) for name in names if now[name] != getattr(before, name)}

    @classmethod
    def from_dict(cls, data: JsonObject) -> RunCounts:
        """A record from before a count existed has it as 0."""
        known = {name: data[name] for name in COUNT_NAMES if name in data}
        return cls(**known, unknown={name: value for name, value in data.items() if name not in known})


def conservation_faults(counts: RunCounts, *, final: bool) -> list[str]:
    """How ``counts`` break the conservation law (none: they keep it). The one check of it.

    Every row read is invalid, a duplicate, unchanged, sent or would-be-sent; every contact
    sent is accepted, errored or unconfirmed, or (while the run goes) not handed to SendGrid
    yet; once the run has ended, none is left in that last state.
    """
    faults = []
    named = {name: getattr(counts, name) for name in COUNT_NAMES}
    negative = [name for name, value in named.items() if value < 0]
    if negative:
        faults.append(f"negative counts: {', '.join(negative)}")
    rows = counts.invalid + counts.duplicate + counts.unchanged + counts.sent + counts.would_send
    if counts.read != rows:
        faults.append(f"read={counts.read} but invalid + duplicate + unchanged + sent + would_send = {rows}")
    if counts.handed > counts.sent or (final and counts.handed != counts.sent):
        faults.append(f"sent={counts.sent} but accepted + errored + unconfirmed = {counts.handed}")
    return faults


COUNT_NAMES = tuple(f.name for f in fields(RunCounts) if f.name != "unknown")
# The counts each file of a segment reports in the record (those it changed).
FILE_COUNTS = ("invalid", "duplicate", "unchanged", "sent", "truncated", "fields_rejected", "control_chars_stripped")
