"""A run's counts: what happened to every row read, and to every contact sent."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any


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
    truncated: int = 0
    fields_rejected: int = 0
    removed: int = 0
    control_chars_stripped: int = 0
    # Counts a newer version wrote that this one does not know: kept, so that re-saving a record
    # (the abandoned-run scan, after a rollback) does not lose them.
    unknown: dict[str, Any] = field(default_factory=dict, repr=False)

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

    def take_back_unsent(self) -> None:
        """Nothing reached SendGrid: what passed the row rules is what would have been sent."""
        self.would_send, self.sent = self.would_send + self.sent, 0

    def snapshot(self) -> RunCounts:
        return replace(self)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in COUNT_NAMES} | self.unknown

    def changed_since(self, before: RunCounts, names: tuple[str, ...]) -> dict[str, int]:
        """Of ``names``, those that changed since ``before``, with how much (a file's own counts)."""
        now = {name: getattr(self, name) for name in names}
        return {name: now[name] - getattr(before, name) for name in names if now[name] != getattr(before, name)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunCounts:
        """A record from before a count existed has it as 0."""
        known = {name: data[name] for name in COUNT_NAMES if name in data}
        return cls(**known, unknown={name: value for name, value in data.items() if name not in known})


COUNT_NAMES = tuple(f.name for f in fields(RunCounts) if f.name != "unknown")
# The counts each file of a segment reports in the record (those it changed).
FILE_COUNTS = ("invalid", "duplicate", "unchanged", "sent", "truncated", "fields_rejected", "control_chars_stripped")
