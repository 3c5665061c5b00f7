"""Mirror mode's removals: take off the destination's lists the contacts this app added that no
segment holds any more. Contacts themselves are never deleted.

SendGrid makes this harder than it looks, and each step here answers one of its ways:

- search/emails takes at most 100 addresses of at most 100 characters each, and answers 400 for
  the whole request if any address is invalid: longer addresses are found one at a time through
  SGQL (``POST /v3/marketing/contacts/search``), and a 400 is isolated to the address at fault by
  halving the request (within a budget); an address SendGrid calls invalid is reported
  ``unfindable`` and let go.
- Search lags the import by minutes: a contact search cannot find yet stays in the state as
  ``pending`` and is looked for again by the next run; after ``PENDING_GIVE_UP_SECONDS`` it is
  taken as deleted from SendGrid and let go (``not_found``).
- Removing from a list is a job (202 with ``job_id``): each is followed to its end against the
  run's deadline; contacts whose job did not complete stay in the state for the next run.
- A DELETE naming a contact id that no longer exists answers 404 for the whole request: it is
  isolated by halving; an id that alone answers 404 is gone, so nothing is left to remove.
- Every stored email is checked against its key before it is used: a corrupt or shifted state
  never takes the wrong person off a list.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence, Set
from dataclasses import dataclass
from typing import Any, Protocol

from shared.adapters.sendgrid import SEARCH_EMAIL_MAX_LENGTH
from shared.adapters.sendgrid_errors import (
    InvalidRequest,
    MalformedAnswer,
    NotFound,
    RateLimited,
    RequestTimeout,
    SendGridRefusal,
)
from shared.errors import SendGridAuthError, SendGridError
from shared.run.delta.identity import email_key
from shared.run.delta.run_keys import RunKeys, departed_indexes
from shared.run.delta.sync_state import SyncState
from shared.run.ports import SendGridApi
from shared.run.records import RunRecord
from shared.run.runtime import JobWaits
from shared.run.send.list_export import ids_by_export

log = logging.getLogger(__name__)

SEARCH_BATCH = 100  # emails per search/emails request, ids per list removal: SendGrid's limits
PENDING_GIVE_UP_SECONDS = 7 * 24 * 3600
# Requests a run may spend beyond one per chunk on isolating 400s and 404s.
MAX_ISOLATION_REQUESTS = 400


class _Options(Protocol):
    @property
    def dry_run(self) -> bool: ...

    @property
    def force_removals(self) -> bool: ...


@dataclass(frozen=True)
class RemovalRules:
    """What decides whether this run may remove the contacts that left its segments, and how long
    it waits for SendGrid's removal jobs."""

    options: _Options
    failed: bool  # the run failed: nobody is removed
    max_fraction: float  # the destination's max_removal_fraction
    waits: JobWaits
    unproven: str = ""  # why the read may be incomplete (removals are then refused unless forced)
    now: float | None = None  # epoch seconds; None: the clock's
    # Find the departed contacts' ids in one export of the lists (more than 100 of them), searching
    # only where the export fails (see shared.run.send.list_export).
    by_export: bool = False


def remove_departed(
    client: SendGridApi,
    list_ids: list[str],
    state: SyncState,
    present: Set[int] | RunKeys,
    record: RunRecord,
    rules: RemovalRules,
) -> tuple[set[int], dict[int, int] | None]:
    """The keys to drop from the state (removed, gone, or let go) and the new pending map
    (key -> epoch second of the first search that missed it); None keeps the old one."""
    options, failed, max_fraction, unproven = rules.options, rules.failed, rules.max_fraction, rules.unproven
    removals = record.removals
    previous = len(state)
    departed = list(departed_indexes(state, present))
    removals["planned"] = len(departed)
    if not departed:
        return set(), {}
    if failed:
        removals["refused"], removals["reason"] = True, "the run failed; removals wait for a run that does not."
        return set(), None
    refusal = None
    if unproven:
        refusal = (
            f"the read cannot be proven complete ({unproven}): a contact missing from it may only be "
            "missing from a snapshot still being written"
        )
    elif not present:
        refusal = "the segments hold no valid contacts; an empty input never empties the list(s)"
    elif len(departed) > max_fraction * previous:
        refusal = (
            f"{len(departed)} of {previous} contacts ({len(departed) / previous:.0%}) would be removed, "
            f"more than max_removal_fraction ({max_fraction:.0%})"
        )
    if refusal and not options.force_removals:
        removals["refused"], removals["reason"] = True, refusal + "; nobody was removed (force_removals overrides)."
        log.warning("run %s: removals refused: %s", record.run_id, refusal)
        return set(), None
    if options.dry_run:
        removals["reason"] = "dry run: nothing was removed"
        return set(), None
    removal = _Removal(client, list_ids, state, record, rules.now or time.time())
    removal.by_export = rules.by_export
    return removal.run(departed, rules.waits)


class _Removal:
    def __init__(self, client: SendGridApi, list_ids: list[str], state: SyncState, record: RunRecord, now: float):
        self.client, self.list_ids, self.state, self.now = client, list_ids, state, now
        self.record, self.removals = record, record.removals
        self.budget = MAX_ISOLATION_REQUESTS
        self.notes: list[str] = []
        self.by_export = False  # find ids in one export of the lists first (search where it fails)

    def run(self, departed: list[int], waits: JobWaits) -> tuple[set[int], dict[int, int]]:
        removals = self.removals
        by_email = self._checked_emails(departed)
        ids, unfindable, unsearched = self._find(list(by_email))
        done: set[int] = {by_email[e] for e in unfindable}
        if unfindable:
            removals["unfindable"] = len(unfindable)
            self.notes.append(
                f"{len(unfindable)} address(es) SendGrid's search refuses as invalid could not be found to "
                "be removed; they stay on the list(s)"
            )
        removed_ids, gone_ids, unconfirmed = self._remove(list(ids.values()), waits)
        by_id = {contact_id: by_email[email] for email, contact_id in ids.items()}
        done.update(by_id[i] for i in removed_ids | gone_ids)
        removals["done"] = self.record.counts.removed = len(removed_ids) + len(gone_ids)
        if gone_ids:
            removals["gone"] = len(gone_ids)
        if unconfirmed:
            removals["unconfirmed"] = len(unconfirmed)
            self.notes.append(
                f"{len(unconfirmed)} removal(s) were not confirmed by SendGrid in time; the next run tries again"
            )
        missed = [e for e in by_email if e not in ids and e not in unfindable and e not in unsearched]
        pending = self._still_pending(by_email, missed, unsearched, done)
        if self.notes:
            removals["reason"] = "; ".join(self.notes) + "."
        log.info("removals: %d done, %d pending, %d unfindable", removals["done"], len(pending), len(unfindable))
        return done, pending

    def _checked_emails(self, departed: list[int]) -> dict[str, int]:
        """The departed contacts' emails, each with its key, if the key is the email's own."""
        state, removals = self.state, self.removals
        by_email: dict[str, int] = {}
        unknown = mismatched = 0
        for index in departed:
            email = state.email_at(index)
            if not email:
                unknown += 1
            elif email_key(email) != state.keys[index]:
                mismatched += 1  # never act on an email that is not the one its key was made from
            else:
                by_email[email] = int(state.keys[index])
        if unknown:
            removals["unknown"] = unknown
            self.notes.append(
                f"{unknown} contact(s) were added before this destination was in mirror mode; "
                "their emails were not kept, so they stay on the list(s)"
            )
        if mismatched:
            removals["mismatched"] = mismatched
            self.notes.append(
                f"{mismatched} stored email(s) do not match their keys (the sync state is corrupt): they were "
                "not removed; delete the sync state or run with full to rebuild it"
            )
        return by_email

    def _still_pending(
        self, by_email: dict[str, int], missed: list[str], unsearched: set[str], done: set[int]
    ) -> dict[int, int]:
        """The new pending map; a contact missed for too long is let go (added to ``done``)."""
        state, removals = self.state, self.removals
        # Not found: not searchable yet (search lags the import), or deleted from SendGrid.
        pending: dict[int, int] = {}
        not_found = 0
        for email in missed:
            key = by_email[email]
            first_miss = state.pending.get(key, int(self.now))
            if self.now - first_miss >= PENDING_GIVE_UP_SECONDS:
                done.add(key)
                not_found += 1
            else:
                pending[key] = first_miss
        for email in unsearched:  # the isolation budget ran out: looked for again next run
            key = by_email[email]
            if key in state.pending:
                pending[key] = state.pending[key]
        if pending:
            removals["pending"] = len(pending)
            self.notes.append(
                f"{len(pending)} departed contact(s) are not searchable in SendGrid yet (search lags the "
                "import by minutes); the next run looks for them again"
            )
        if not_found:
            removals["not_found"] = not_found
        return pending

    # -- finding contacts ---------------------------------------------------------------------

    def _find(self, emails: list[str]) -> tuple[dict[str, str], set[str], set[str]]:
        """Contact ids by email; the emails SendGrid calls invalid; those not searched (budget)."""
        if self.by_export and len(emails) > SEARCH_BATCH:  # more than one search: one export is cheaper
            found = ids_by_export(self.client, self.list_ids, emails, self.removals)
            if found is not None:
                return found, set(), set()
        ids: dict[str, str] = {}
        invalid: set[str] = set()
        unsearched: set[str] = set()
        short = [e for e in emails if len(e) <= SEARCH_EMAIL_MAX_LENGTH]
        for chunk in _chunks(short, SEARCH_BATCH):
            self._search(chunk, ids, invalid, unsearched)
        for email in (e for e in emails if len(e) > SEARCH_EMAIL_MAX_LENGTH):
            if self.budget <= 0:  # one request each: within the run's budget, the rest next run
                unsearched.add(email)
                continue
            self.budget -= 1
            try:
                contact_id = self.client.search_email_by_query(email)
            except InvalidRequest:
                invalid.add(email)
                continue
            except (SendGridAuthError, RateLimited, MalformedAnswer):
                raise
            except SendGridRefusal as exc:
                if not isinstance(exc, RequestTimeout):
                    raise
                unsearched.add(email)  # SGQL gives up on slow queries (408): try again next run
                continue
            except SendGridError:
                unsearched.add(email)  # unreachable or failing (5xx): try again next run
                continue
            if contact_id:
                ids[email] = contact_id
        return ids, invalid, unsearched

    def _search(self, emails: Sequence[str], ids: dict[str, str], invalid: set[str], unsearched: set[str]) -> None:
        try:
            found = self.client.search_emails(list(emails))
        except InvalidRequest:
            if len(emails) == 1:
                invalid.add(emails[0])
                return
            if self.budget < 2:
                unsearched.update(emails)
                return
            self.budget -= 2  # halve until the address at fault stands alone
            half = len(emails) // 2
            self._search(emails[:half], ids, invalid, unsearched)
            self._search(emails[half:], ids, invalid, unsearched)
            return
        for email in emails:
            if email.lower() in found:
                ids[email] = found[email.lower()]

    # -- removing from lists --------------------------------------------------------------------

    def _remove(self, contact_ids: list[str], waits: JobWaits) -> tuple[set[str], set[str], set[str]]:
        """Ids removed from every list (jobs completed), ids that no longer exist, ids not confirmed."""
        jobs: dict[str, list[str]] = {}
        gone: set[str] = set()
        refused: set[str] = set()
        for list_id in self.list_ids:
            for chunk in _chunks(contact_ids, SEARCH_BATCH):
                self._remove_chunk(list_id, chunk, jobs, gone, refused)
        answered = jobs.pop("", [])  # removals SendGrid answered without a job: done already
        unconfirmed = set(refused)
        if jobs:
            deadline = time.time() + waits.seconds
            if self.client.deadline is not None:
                deadline = min(deadline, self.client.deadline)
            results = self.client.wait_for_jobs(
                list(jobs), deadline=deadline, interval=waits.interval, max_interval=waits.max_interval
            )
            unfollowed = 0
            for job_id, ids in jobs.items():
                result = results[job_id]
                if result.status == "completed":
                    continue
                if result.status == "unknown" and result.error_status == 404:
                    unfollowed += 1  # SendGrid offers no status for this job: its 202 is all we have
                    continue
                unconfirmed.update(ids)
            if unfollowed:
                self.notes.append(f"{unfollowed} removal job(s) have no status at SendGrid; taken as done")
        removed = ({i for ids in jobs.values() for i in ids} | set(answered)) - unconfirmed - gone
        return removed, gone, unconfirmed - gone

    def _remove_chunk(
        self, list_id: str, ids: Sequence[str], jobs: dict[str, list[str]], gone: set[str], refused: set[str]
    ) -> None:
        ids = [i for i in ids if i not in gone]
        if not ids:
            return
        try:
            job_id = self.client.remove_from_list(list_id, list(ids))
        except NotFound:
            # "The specified list ID does not exist or one or more contact IDs do not exist."
            if len(ids) == 1:
                gone.add(ids[0])
                return
            if self.budget < 2:
                refused.update(ids)
                return
            self.budget -= 2
            half = len(ids) // 2
            self._remove_chunk(list_id, ids[:half], jobs, gone, refused)
            self._remove_chunk(list_id, ids[half:], jobs, gone, refused)
            return
        jobs.setdefault(job_id or "", []).extend(ids)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
