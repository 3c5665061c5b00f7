"""Mirror mode's removals with a fake SendGrid: pending contacts, give-up, and a corrupt state."""

from __future__ import annotations

from array import array
from types import SimpleNamespace
from typing import Any

from shared.adapters.sendgrid_jobs import JobResult
from shared.run.delta.identity import email_key
from shared.run.delta.sync_state import SyncState
from shared.run.ports import SendGridApi
from shared.run.records import RunRecord
from shared.run.runtime import JobWaits
from shared.run.send.removals import PENDING_GIVE_UP_SECONDS, RemovalRules, remove_departed
from tests.fakes import FakeSendGrid

NOW = 1_800_000_000
WAITS = JobWaits(seconds=10, interval=0.01, max_interval=0.01)


class SearchingSendGrid(FakeSendGrid):
    """The run core's fake SendGrid, holding contacts that search finds and removal removes."""

    def __init__(self, contacts: dict[str, str]):
        super().__init__()
        self.contacts = contacts  # email -> id of those search can find
        self.removed: list[str] = []

    def search_emails(self, emails: list[str]) -> dict[str, str]:
        return {e: self.contacts[e] for e in emails if e in self.contacts}

    def search_email_by_query(self, email: str) -> str | None:
        return self.contacts.get(email)

    def remove_from_list(self, list_id: str, contact_ids: list[str]) -> str | None:
        self.removed.extend(contact_ids)
        return f"job-{len(self.removed)}"

    def wait_for_jobs(self, job_ids: list[str], **_: Any) -> dict[str, JobResult]:
        return {job_id: JobResult(job_id, "completed") for job_id in job_ids}


def record():
    return RunRecord("r1", "newsletter", "cli")


def options():
    return SimpleNamespace(dry_run=False, force_removals=True)


def state_of(emails: list[str], pending=None) -> SyncState:
    keys = array("Q", [email_key(e) for e in emails])
    return SyncState(keys, array("Q", range(len(emails))), list(emails), pending or {})


def removal(
    client: SendGridApi, state: SyncState, present: set[int], rec: RunRecord
) -> tuple[set[int], dict[int, int] | None]:
    return remove_departed(
        client,
        ["list-1"],
        state,
        present,
        rec,
        RemovalRules(options(), failed=False, max_fraction=1.0, waits=WAITS, now=NOW),
    )


def test_a_contact_search_never_finds_is_pending_then_let_go_after_a_week():
    emails = ["kept@example.com", "new@example.com", "old@example.com", "found@example.com", "lag@example.com"]
    state = state_of(
        emails,
        pending={
            email_key("old@example.com"): NOW - PENDING_GIVE_UP_SECONDS - 1,
            email_key("lag@example.com"): NOW - 100,
        },
    )
    client = SearchingSendGrid({"found@example.com": "id-found"})
    rec = record()
    done, pending = removal(client, state, {email_key("kept@example.com")}, rec)
    assert client.removed == ["id-found"]
    assert done == {email_key("found@example.com"), email_key("old@example.com")}
    assert pending == {email_key("new@example.com"): NOW, email_key("lag@example.com"): NOW - 100}  # first miss kept
    assert rec.removals["pending"] == 2 and rec.removals["not_found"] == 1 and rec.counts.removed == 1


def test_stored_emails_that_do_not_match_their_keys_are_never_removed():
    emails = ["a@example.com", "b@example.com", "c@example.com"]
    state = state_of(emails)
    state.emails = ["b@example.com", "c@example.com", "a@example.com"]  # shifted by one: corrupt
    client = SearchingSendGrid({e: f"id-{e}" for e in emails})
    rec = record()
    done, pending = removal(client, state, {email_key("a@example.com")}, rec)
    assert client.removed == [] and done == set() and pending == {}
    assert rec.removals["mismatched"] == 2 and "corrupt" in rec.removals["reason"]
