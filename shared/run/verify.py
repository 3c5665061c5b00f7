"""``verify NAME``: a list we can prove. The list's members (one contact export) compared with the
sync state (what this app believes SendGrid holds) and the latest segment (what it should hold).

- missing: in the segment, not on the list. ``confirmed`` ones were confirmed by SendGrid and
  have gone since (removed by hand); the others were never confirmed (a delta run sends them).
- extra: on the list, not in the segment. ``never ours``: this app never sent them (added by
  hand, or by another tool); ``ours, departed``: sent once, left the segment since (mirror mode
  takes them off; append mode keeps them).
- stale: on the list and in the segment, a field differing from what the segment says (changed
  in SendGrid by hand). Only the reserved fields an export carries are compared.

The counts go in a record (``verify/{name}/{id}.json``), the addresses in a CSV beside it
(``verify/{name}/{id}.csv``, cells neutralised), never in a log line or an answer. ``repair``
takes the missing-but-confirmed and stale contacts out of the sync state, so that the next run
sends them again.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from typing import Any

import orjson

from shared.inputs.segments import resolve_segment
from shared.privacy import csv_cell
from shared.run.delta.identity import email_key
from shared.run.delta.journal import StateUpdates
from shared.run.delta.sync_state import SyncState
from shared.run.destinations import exportable_destination, load_destinations, require_lists, resolve_custom_fields
from shared.run.ports import SendGridApi
from shared.run.progress import NoProgress, RunProgress
from shared.run.reader import ContactShape, SegmentsReading
from shared.run.records import RejectsWriter, RunRecord, iso, new_run_id, utc_now
from shared.run.runtime import Runtime
from shared.run.send.batching import BatchSpool
from shared.run.send.list_export import Members, MemberSelection, export_members

log = logging.getLogger(__name__)
VERIFY_PREFIX = "verify/"
COMPARED_FIELDS = ("first_name", "last_name", "city", "country", "postal_code", "state_province_region")
CSV_COLUMNS = ("category", "email", "detail")


def _members(client: SendGridApi, list_ids: list[str], wait_seconds: float) -> Members:
    """Who is on the lists, each with their fields, from one export (nobody, without a list)."""
    if not list_ids:
        return Members()
    deadline = time.time() + wait_seconds
    return export_members(client, list_ids, deadline=deadline, selection=MemberSelection(keep_fields=True))


def verify_destination(runtime: Runtime, name: str, *, repair: bool = False) -> dict[str, Any]:
    """Compare, store the record and the CSV, repair if asked; returns the record (counts only)."""
    edges, settings = runtime.edges, runtime.settings
    destination = exportable_destination(runtime, name, load_destinations(runtime))
    plan = [(segment, resolve_segment(edges.segments, segment)) for segment in destination.segments]
    api_key = edges.secrets.get_secret(destination.api_key_secret)
    client = edges.sendgrid(destination.api_base_url(settings.sendgrid_api_base_url), api_key)
    del api_key
    verify_id = new_run_id()
    report: dict[str, Any] = {"verify_id": verify_id, "destination": name, "started_at": iso(utc_now())}
    try:
        lists = [item for item in require_lists(client, destination) if item is not None]
        list_ids = [str(item["id"]) for item in lists]
        custom_fields = resolve_custom_fields(client, destination)
        record = RunRecord(verify_id, name, "verify")
        spool = BatchSpool(list_ids)
        try:
            progress = RunProgress(NoProgress(), lambda _: None)
            reading = SegmentsReading(record, RejectsWriter(), progress, spool, runtime)
            mirror = destination.mode == "mirror"
            shape = ContactShape(destination.mapping, custom_fields, list_ids)
            reading.read(shape, plan, SyncState(), full=True, mirror=False)
            spool.finish()
            state = SyncState.load(edges.exports, name, with_emails=mirror)
            members = _members(client, list_ids, runtime.tuning.job_wait_seconds)
            found = _compare(spool, state, members)
        finally:
            spool.close()
    finally:
        client.close()
    report["lists"] = len(list_ids)
    report["members"] = len(members.ids)
    report["segment_contacts"] = spool.count
    report["counts"] = {category: len(rows) for category, rows in found.items()}
    csv_name = f"{VERIFY_PREFIX}{name}/{verify_id}.csv"
    edges.exports.write_bytes(csv_name, _csv(found), content_type="text/csv; charset=utf-8")
    report["addresses_blob"] = csv_name
    if repair:  # under the destination's lock: a run that holds it would overwrite the state
        with edges.lock.hold(name, verify_id):
            report["repaired"] = _repair(runtime, name, found, with_emails=mirror)
    report["finished_at"] = iso(utc_now())
    edges.exports.write_bytes(
        f"{VERIFY_PREFIX}{name}/{verify_id}.json",
        json.dumps(report, indent=1).encode(),
        content_type="application/json",
    )
    log.info("verified %s: %s", name, report["counts"])
    return report


def _compare(spool: BatchSpool, state: SyncState, members: Members) -> dict[str, list[tuple[str, str, int]]]:
    """Per category, the (email, detail, key) of each contact in it."""
    ours = set(state.keys)
    found: dict[str, list[tuple[str, str, int]]] = {
        "missing_confirmed": [],
        "missing_unsent": [],
        "extra_never_ours": [],
        "extra_ours_departed": [],
        "stale": [],
    }
    in_segment: set[str] = set()
    for batch in spool.batches():
        keys = batch.columns["keys"]
        for position in range(batch.count):
            contact = orjson.loads(batch.encoded(position))
            email = str(contact["email"]).lower()
            in_segment.add(email)
            key = int(keys[position])
            if email not in members.ids:
                found["missing_confirmed" if key in ours else "missing_unsent"].append((email, "", key))
                continue
            there = members.other.get(email, {})
            differs = [f for f in COMPARED_FIELDS if f in there and str(contact.get(f) or "") != str(there[f] or "")]
            if differs:
                found["stale"].append((email, "differs in " + ", ".join(differs), key))
    for email in members.ids:
        if email not in in_segment:
            key = email_key(email)
            found["extra_ours_departed" if key in ours else "extra_never_ours"].append((email, "", key))
    return found


def _csv(found: dict[str, list[tuple[str, str, int]]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for category, rows in found.items():
        for email, detail, _ in rows:
            writer.writerow((category, csv_cell(email), csv_cell(detail)))
    return out.getvalue().encode("utf-8")


def _repair(runtime: Runtime, name: str, found: dict[str, list[tuple[str, str, int]]], *, with_emails: bool) -> int:
    """Take the missing-but-confirmed and stale contacts out of the sync state: the next run
    sends them again. The state is written whole or not at all."""
    forget = {key for category in ("missing_confirmed", "stale") for _, _, key in found[category]}
    if not forget:
        return 0
    state = SyncState.load(runtime.edges.exports, name, with_emails=with_emails)
    held = sum(1 for key in state.keys if key in forget)
    state.merged(StateUpdates(), removed=forget, keep_emails=with_emails, in_place=True).save(
        runtime.edges.exports, name
    )
    return held
