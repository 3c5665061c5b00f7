"""The simulator's state: contacts, lists, custom fields, jobs, faults, pace and settings.

One lock guards it all. Jobs are applied as they come due on a thread of their own, as SendGrid
applies them off the request path; a reader that must see them applied calls ``process_jobs``.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import Counter
from typing import Any

from tools.standins.sendgrid import jobs
from tools.standins.sendgrid.bulk import BulkStore
from tools.standins.sendgrid.faults import Fault
from tools.standins.sendgrid.jobs import Job
from tools.standins.sendgrid.pace import Pace
from tools.standins.sendgrid.rules import ALL_SCOPES, MAX_BODY_BYTES


class SimState:
    def __init__(self, api_keys: list[str] | None = None, job_delay: float = 0.2, control_key: str | None = None):
        self.lock = threading.RLock()
        self.control_key = control_key  # None: the control endpoints are open (in-process tests)
        self.api_keys: dict[str, list[str]] = {k: list(ALL_SCOPES) for k in (api_keys or [])}
        self.job_delay = job_delay
        self.contacts: dict[str, dict[str, Any]] = {}
        self.lists: dict[str, dict[str, Any]] = {}
        self.custom_fields: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, Job] = {}
        self.faults: list[Fault] = []
        self.pace = Pace()
        self.bulk = BulkStore()
        self.job_seconds_per_contact = 0.0
        self.status_shape = "documented"  # documented | production | camel
        self.contact_cap: int | None = None
        self.record_bodies = False
        self.max_body_bytes = MAX_BODY_BYTES
        self.too_large_status = 413
        self.indexed_errors = False
        self.errors_format = "csv"  # csv | json | garbage | drop (cut mid-body) | redirect
        self.search_lag = 0.0
        self.removal_jobs_pollable = True
        self.base_url = ""  # set when a server starts: errors_url is absolute, as SendGrid's is
        self._unsearchable_until: dict[str, float] = {}
        self.requests: list[dict[str, Any]] = []
        self.upserted_contacts = 0  # contacts in accepted PUT bodies, over the life of the state
        self._ids = itertools.count(1)
        self._memberships: dict[frozenset[str], frozenset[str]] = {}
        # Contacts per combination of lists, kept as they change: a list's contact_count is
        # then a sum over a few combinations, not a walk over every contact.
        self._member_counts: Counter[frozenset[str]] = Counter()
        self._closed = False
        self._id_index: dict[str, dict[str, Any]] = {}  # contact id -> contact (see by_id)
        # Jobs are applied as they come due, off the request threads, as SendGrid does.
        self._due = threading.Condition(self.lock)
        threading.Thread(target=self._apply_jobs, name="sim-jobs", daemon=True).start()

    def close(self) -> None:
        with self._due:
            self._closed = True
            self._due.notify()

    def _apply_jobs(self) -> None:
        with self._due:
            while not self._closed:
                pending = [j for j in self.jobs.values() if j.status == "pending"]
                if not pending:
                    self._due.wait()
                    continue
                wait = min(j.ready_at for j in pending) - time.time()
                if wait > 0:
                    self._due.wait(wait)
                    continue
                self.process_jobs()

    # -- contacts and lists -----------------------------------------------------------------------

    def new_contact_id(self) -> str:
        # A version-4-shaped UUID from a counter: unique (the counter is its last part) and cheap to
        # make. Its first part is the counter scrambled (Knuth's multiplicative hash, a bijection on
        # 32 bits), so that ids differ where a masked id shows them, as SendGrid's random ones do.
        n = next(self._ids)
        return f"{(n * 0x9E3779B1) & 0xFFFFFFFF:08x}-0000-4000-8000-{n:012x}"

    def membership(self, list_ids: frozenset[str]) -> frozenset[str]:
        """One shared set per combination of lists, not one per contact."""
        return self._memberships.setdefault(list_ids, list_ids)

    def set_lists(self, contact: dict[str, Any], list_ids: frozenset[str]) -> None:
        """Put a contact (new, or stored) on exactly these lists."""
        if "list_ids" in contact:
            self._member_counts[contact["list_ids"]] -= 1
        contact["list_ids"] = self.membership(list_ids)
        self._member_counts[contact["list_ids"]] += 1

    def by_id(self, contact_id: str) -> dict[str, Any] | None:
        """The stored contact of this id: an index rebuilt when it misses (contacts are added by
        jobs and by tests), so that a benchmark's thousand removals do not each walk every contact."""
        contact = self._id_index.get(contact_id)
        if contact is None or self.contacts.get(contact["email"]) is not contact:
            self._id_index = {c["id"]: c for c in self.contacts.values()}
            contact = self._id_index.get(contact_id)
        return contact

    def forget(self, email: str) -> None:
        self._member_counts[self.contacts.pop(email)["list_ids"]] -= 1

    def contact_count(self, list_id: str) -> int:
        return sum(count for lists, count in self._member_counts.items() if list_id in lists)

    def by_alternate_email(self, email: str) -> dict[str, Any] | None:
        """search/emails also matches alternate emails ("whether it is their email or one of their
        alternate_emails"); a walk, since only tests of removals search."""
        return next((c for c in self.contacts.values() if email in (c.get("alternate_emails") or ())), None)

    def hide_from_search(self, email: str, until: float) -> None:
        """New contacts become searchable a while after their job ends (users report minutes)."""
        self._unsearchable_until[email] = until

    def searchable(self, email: str) -> bool:
        until = self._unsearchable_until.get(email)
        if until is None:
            return True
        if until <= time.time():
            del self._unsearchable_until[email]
            return True
        return False

    def add_list(self, name: str, list_id: str | None = None) -> dict[str, Any]:
        with self.lock:
            lid = list_id or str(uuid.uuid4())
            self.lists[lid] = {"id": lid, "name": name}
            return self.lists[lid]

    def add_custom_field(self, name: str, field_type: str) -> dict[str, Any]:
        with self.lock:
            fid = f"e{len(self.custom_fields) + 1}_{field_type[0]}"
            self.custom_fields[fid] = {"id": fid, "name": name, "field_type": field_type}
            return self.custom_fields[fid]

    # -- jobs -------------------------------------------------------------------------------------

    def submit(self, job: Job) -> None:
        """A new job, applied when it comes due."""
        self.jobs[job.id] = job
        self.wake()

    def wake(self) -> None:
        """A job was added or its due time moved: the job thread looks again."""
        self._due.notify()

    def process_jobs(self) -> None:
        now = time.time()
        for job in self.jobs.values():
            if job.status == "pending" and job.ready_at <= now:
                jobs.finish(self, job)

    # -- control ----------------------------------------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            self.contacts.clear()
            self._member_counts.clear()
            self.lists.clear()
            self.custom_fields.clear()
            self.jobs.clear()
            self.faults.clear()
            self.requests.clear()
            self.upserted_contacts = 0
            self.pace.refused = 0
            self._unsearchable_until.clear()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            self.process_jobs()
            members: dict[str, list[str]] = {lid: [] for lid in self.lists}
            for email, contact in self.contacts.items():
                for lid in contact["list_ids"]:
                    members.setdefault(lid, []).append(email)
            return {
                "contacts": {e: public_contact(c) for e, c in self.contacts.items()},
                "lists": [
                    {
                        "id": lid,
                        "name": meta["name"],
                        "contact_count": len(members.get(lid, [])),
                        "members": sorted(members.get(lid, [])),
                    }
                    for lid, meta in self.lists.items()
                ],
                "custom_fields": list(self.custom_fields.values()),
                "jobs": {j.id: {"status": j.status, "results": j.results} for j in self.jobs.values()},
                "upserted_contacts": self.upserted_contacts,
                "request_count": len(self.requests),
                "rate_limited": self.pace.refused,
            }


def public_contact(contact: dict[str, Any]) -> dict[str, Any]:
    """A stored contact as SendGrid answers it: custom_fields always there, list_ids a sorted list."""
    out = {"custom_fields": {}, **contact}
    out["list_ids"] = sorted(contact["list_ids"])
    return out
