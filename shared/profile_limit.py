"""``max_profiles``, checked before any list is created or any contact is read for sending.

A first pass reads every file through without parsing it (each must open, carry the mapping and
decompress to the end) and counts its line breaks: at least as many as the records it holds. If
that bound is within ``max_profiles`` the run may send as soon as batches fill. If it is not, the
files may still hold few enough valid profiles (rows rejected, duplicates), so a second pass
counts the distinct valid emails by the row rules, and a run past the limit fails then: nothing
sent, no list created. The bound is also the total the run's progress is measured against.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from .config import Destination, SegmentRef
from .errors import ExportError, ProfileLimitError
from .mapping import plan_columns
from .rows import RowRules
from .segments import SegmentFile, open_segment_file, scan_segment_file
from .storage import BlobStore
from .sync_state import email_key

log = logging.getLogger(__name__)

Plan = Sequence[tuple[SegmentRef, list[SegmentFile]]]


def record_bound(store: BlobStore, plan: Plan, destination: Destination, max_record_bytes: int) -> int | None:
    """At least as many records as the files hold; None when a file does not scan (the read
    meets the same fault and reports it, naming the file)."""
    bound = 0
    try:
        for _, files in plan:
            for file in files:
                columns, rows = scan_segment_file(store, file, destination.mapping, max_record_bytes)
                plan_columns(destination.mapping, columns, file.name)
                bound += rows
    except ExportError as exc:
        log.info("a segment file did not scan (%s): sending waits for the whole read", type(exc).__name__)
        return None
    return bound


def require_within_limit(store: BlobStore, plan: Plan, destination: Destination, max_record_bytes: int) -> int:
    """Count the distinct valid emails, and fail past ``max_profiles`` (as soon as it is passed)."""
    limit = destination.max_profiles
    keys: set[int] = set()
    for _, files in plan:
        for file in files:
            table = open_segment_file(store, file, destination.mapping, max_record_bytes)
            rules = RowRules(plan_columns(destination.mapping, table.columns, file.name))
            for _, fields in table.rows:
                if fields is None:
                    continue
                contact = rules.apply(fields)[0]
                if contact is not None:
                    keys.add(email_key(contact["email"]))
                    if len(keys) > limit:
                        raise ProfileLimitError(
                            f"the segments hold more than max_profiles ({limit}) valid profiles for destination "
                            f"'{destination.name}'; nothing was sent and no list was created. Raise max_profiles "
                            "in destinations.json if this is expected."
                        )
    return len(keys)
