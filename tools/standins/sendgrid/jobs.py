"""Import and list-removal jobs: how one ends, what its status answer and errors file say.

- Contacts can fail inside an accepted import job (``errored``, ``errored_count``,
  ``errors_url``); the errors file is a pre-signed download. Its format is not documented:
  ``errors_format`` picks CSV, JSON, or an unreadable file.
- "In order to update a contact, all of its existing identifiers must be present" (contacts
  document, PUT /v3/marketing/contacts): a contact stored with an ``external_id``,
  ``phone_number_id`` or ``anonymous_id`` that an upsert leaves out fails inside the job.
- New contacts become searchable ``search_lag`` seconds after their job ends.
- ``contact_cap``: a job that would store more contacts than the plan holds ends ``failed`` with
  "you have hit your contact limit" (sendgrid/sendgrid-go issue 413: the job fails, the PUT was
  accepted).
- ``status_shape="production"`` answers the import status as production does: ``job_type``
  ``upsert_contacts`` (the document's example says ``upsert``), the counts present while the job
  is ``pending`` (a partial tally, not its outcome); ``"camel"`` also spells the results in
  camelCase (``requestedCount``), as some of SendGrid's answers do.
"""

from __future__ import annotations

import gc
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tools.standins.sendgrid.faults import Fault
from tools.standins.sendgrid.rules import CONTACT_LIMIT_MESSAGE, OTHER_IDENTIFIERS

if TYPE_CHECKING:
    from tools.standins.sendgrid.state import SimState


@dataclass
class Job:
    id: str
    ready_at: float
    contacts: list[Any]  # contacts of an upsert; contact ids of a list removal
    list_ids: list[str]
    job_type: str = "upsert"
    forced_status: str | None = None
    error_emails: set[str] = field(default_factory=set)
    errors: dict[str, str] = field(default_factory=dict)  # email -> why, once the job has ended
    status: str = "pending"
    results: dict[str, Any] = field(default_factory=dict)
    started_at: str = ""
    finished_at: str | None = None

    def meet(self, fault: Fault) -> None:
        """A ``job_status`` fault on an import: these contacts fail inside it, or it ends so."""
        if fault.emails:
            self.error_emails = {e.lower() for e in fault.emails}
        else:
            self.forced_status = fault.job_status


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class _Tally:
    created: int = 0
    updated: int = 0
    errored: int = 0


def finish(state: SimState, job: Job) -> None:
    """End a due job: apply it to the store, set its status and results."""
    if job.job_type == "upsert" and job.forced_status is None and _over_cap(state, job):
        job.forced_status = "failed"
        job.errors["*"] = CONTACT_LIMIT_MESSAGE
    tally = _Tally()
    if job.forced_status == "failed":
        tally.errored = len(job.contacts)
    elif job.job_type == "list_removal":
        _remove_members(state, job)
    else:
        tally = _Upserting(state, job).apply()
    job.status = job.forced_status or ("errored" if tally.errored else "completed")
    job.results = _results(job, tally)
    if tally.errored and job.job_type == "upsert" and job.forced_status is None:
        # A pre-signed download link: absolute, with its own signature, no API key needed.
        job.results["errors_url"] = f"{state.base_url}/__sim/files/{job.id}/errors?X-Signature={uuid.uuid4().hex}"
    job.finished_at = now_iso()
    # Stored contacts live as long as the simulator: keep the cycle collector from walking a
    # million of them again and again (it would cost the benchmark's one shared CPU seconds).
    gc.freeze()


def _results(job: Job, tally: _Tally) -> dict[str, Any]:
    if job.job_type == "list_removal":
        return {"requested_count": len(job.contacts), "removed_count": len(job.contacts)}
    return {
        "requested_count": len(job.contacts),
        "created_count": tally.created,
        "updated_count": tally.updated,
        "deleted_count": 0,
        "errored_count": tally.errored,
    }


def _over_cap(state: SimState, job: Job) -> bool:
    if state.contact_cap is None:
        return False
    new = {str(c.get("email", "")).lower() for c in job.contacts if isinstance(c, dict)} - state.contacts.keys()
    return len(state.contacts) + len(new) > state.contact_cap


def _remove_members(state: SimState, job: Job) -> None:
    list_id = job.list_ids[0]
    for contact_id in set(job.contacts):
        contact = state.by_id(contact_id)
        if contact is not None and list_id in contact["list_ids"]:
            state.set_lists(contact, contact["list_ids"] - {list_id})


class _Upserting:
    """One upsert job's contacts applied to the store.

    A million contacts pass through here in a benchmark: the incoming dict (owned by the job)
    becomes the stored contact, and list memberships are shared frozensets.
    """

    def __init__(self, state: SimState, job: Job) -> None:
        self.state, self.job = state, job
        self.stamp = now_iso()
        self.lists = frozenset(job.list_ids)
        self.lag_until = time.time() + state.search_lag if state.search_lag > 0 else 0.0
        self.tally = _Tally()

    def apply(self) -> _Tally:
        contacts, error_emails = self.state.contacts, self.job.error_emails
        for incoming in self.job.contacts:
            email = incoming.get("email", "").lower()
            if error_emails and email in error_emails:
                self._error(email, "simulated contact error")
                continue
            existing = contacts.get(email)
            if existing is None:
                self._create(incoming, email)
                continue
            missing = [k for k in OTHER_IDENTIFIERS if existing.get(k) and incoming.get(k) != existing[k]]
            if missing:
                # "In order to update a contact, all of its existing identifiers must be present."
                self._error(
                    email, "to update a contact, all of its existing identifiers must be present: " + ", ".join(missing)
                )
                continue
            self._update(existing, incoming)
        return self.tally

    def _error(self, email: str, why: str) -> None:
        self.job.errors[email] = why
        self.tally.errored += 1

    def _create(self, incoming: dict[str, Any], email: str) -> None:
        state = self.state
        incoming["email"] = email
        incoming["id"] = state.new_contact_id()
        state.set_lists(incoming, self.lists)
        incoming["created_at"] = incoming["updated_at"] = self.stamp
        state.contacts[email] = incoming
        if self.lag_until:
            state.hide_from_search(email, self.lag_until)
        self.tally.created += 1

    def _update(self, existing: dict[str, Any], incoming: dict[str, Any]) -> None:
        self.tally.updated += 1
        custom = incoming.pop("custom_fields", None)
        if custom:
            existing["custom_fields"] = {**existing.get("custom_fields", {}), **custom}
        incoming.pop("email", None)
        existing.update(incoming)
        if not self.lists <= existing["list_ids"]:
            self.state.set_lists(existing, existing["list_ids"] | self.lists)
        existing["updated_at"] = self.stamp


def status_answer(job: Job, shape: str) -> dict[str, Any]:
    """The import status answer, in the configured shape (see the module doc)."""
    results = dict(job.results)
    job_type = job.job_type
    if shape != "documented":
        if job_type == "upsert":
            job_type = "upsert_contacts"
        if job.status == "pending" and job.job_type == "upsert":
            results = _partial_tally(job)
        if shape == "camel":
            results = {_camel(k): v for k, v in results.items()}
    answer: dict[str, Any] = {"id": job.id, "status": job.status, "job_type": job_type, "results": results}
    if job.status == "failed" and "*" in job.errors:
        answer["errors"] = [{"message": job.errors["*"]}]
    return answer


def _partial_tally(job: Job) -> dict[str, Any]:
    # Production's partial tally while pending: counts present, not the outcome.
    return {
        "requested_count": len(job.contacts),
        "created_count": len(job.contacts) // 2,
        "updated_count": 0,
        "deleted_count": 0,
        "errored_count": 0,
    }


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def errors_file(job: Job | None, errors_format: str) -> tuple[str, bytes]:
    """The errors file of a job, in the configured format (content type, body)."""
    errors = sorted(job.errors.items()) if job else []
    if errors_format == "json":
        return "application/json", json.dumps([{"email": e, "error_message": m} for e, m in errors]).encode()
    if errors_format == "garbage":
        return "application/octet-stream", b"\x00\x01PK\x03\x04 not a report"
    lines = ["Email Address,Error Message,first_name"]
    for email, message in errors:
        lines.append(f'{email},"{message.replace(chr(34), chr(34) * 2)}",')
    return "text/csv", ("\r\n".join(lines) + "\r\n").encode()
