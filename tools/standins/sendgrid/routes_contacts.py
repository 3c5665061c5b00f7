"""The contact endpoints: upsert, import status, count, searches, field definitions, scopes.

- Request bodies over 4 MiB are refused (413), although the contacts document says 6 MB:
  production callers hit 4 MiB (see :mod:`.rules`). ``max_body_bytes`` and ``too_large_status``
  (413, or 400 with a "too large" message) are settings.
- A 400 names no contact by position (``contacts[3].email``) unless ``indexed_errors`` is set.
- Import jobs take ``job_delay`` seconds plus ``job_seconds_per_contact`` a contact: about 30 s
  even for one contact in production (NangoHQ/integration-templates,
  ``integrations/sendgrid/tests/upsert-contacts.test.json``: ``pending`` for 33 s).
- search/emails takes at most 100 addresses of at most 100 characters (the document's
  ``maxLength``), and answers 400 if any address is invalid (its description).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from tools.standins.sendgrid import rules
from tools.standins.sendgrid.api import Answer, ApiCall, ApiError, json_object, refuse_if
from tools.standins.sendgrid.faults import fault_emails, take_job_fault
from tools.standins.sendgrid.jobs import Job, now_iso, status_answer
from tools.standins.sendgrid.state import SimState, public_contact


def scopes(call: ApiCall) -> Answer:
    return 200, {"scopes": call.scopes}


def upsert(call: ApiCall) -> Answer:
    """``PUT /v3/marketing/contacts``: checked whole, then a job that applies it later."""
    state = call.state
    if len(call.body) > state.max_body_bytes:
        raise ApiError(state.too_large_status, "request body too large")
    doc = json_object(call.body)
    refuse_if(rules.upsert_shape_problems(doc))
    contacts, list_ids = doc["contacts"], doc.get("list_ids", [])
    refuse_if(rules.list_ids_shape_problems(list_ids))
    with state.lock:
        missing_lists = rules.missing_list_problems(list_ids, state.lists)
        custom_defs = dict(state.custom_fields)
        rejected = fault_emails(state.faults, "reject_email", live_only=True)
    problems = rules.contacts_problems(contacts, custom_defs, rejected, missing_lists)
    refuse_if(problems if state.indexed_errors else rules.without_positions(problems))
    return 202, {"job_id": _start_upsert(state, contacts, list_ids)}


def _start_upsert(state: SimState, contacts: list[Any], list_ids: list[str]) -> str:
    with state.lock:
        job = Job(
            id=str(uuid.uuid4()),
            ready_at=time.time() + state.job_delay + state.job_seconds_per_contact * len(contacts),
            contacts=contacts,
            list_ids=list_ids,
            started_at=now_iso(),
        )
        fault = take_job_fault(state.faults, (None, "PUT"))
        if fault is not None:
            job.meet(fault)
        state.upserted_contacts += len(contacts)
        state.submit(job)
    return job.id


def import_status(call: ApiCall) -> Answer:
    state = call.state
    with state.lock:
        state.process_jobs()
        job = state.jobs.get(call.ids[0])
        if job is None or (job.job_type == "list_removal" and not state.removal_jobs_pollable):
            raise ApiError(404, "job not found")
        return 200, {
            **status_answer(job, state.status_shape),
            "started_at": job.started_at,
            **({"finished_at": job.finished_at} if job.finished_at else {}),
        }


def contact_count(call: ApiCall) -> Answer:
    state = call.state
    with state.lock:
        state.process_jobs()
        count = len(state.contacts)
    # The contacts document: contact_count, and billable_count (what the plan's cap counts).
    return 200, {"contact_count": count, "billable_count": count}


def search_emails(call: ApiCall) -> Answer:
    """``POST /v3/marketing/contacts/search/emails``: each address found, or why not."""
    state = call.state
    emails: Any = json_object(call.body).get("emails")  # a list of strings once the rule holds
    refuse_if(rules.search_request_problems(emails))
    with state.lock:
        invalid = fault_emails(state.faults, "search_invalid")
        stale = fault_emails(state.faults, "search_stale")
    if any(rules.search_email_invalid(email) or email.lower() in invalid for email in emails):
        raise ApiError(400, [{"field": "emails", "message": "one or more email addresses are invalid"}])
    with state.lock:
        state.process_jobs()
        result = {email.lower(): _search_one(state, email.lower(), stale) for email in emails if email}
    if not any("contact" in found for found in result.values()):
        raise ApiError(404, "no contacts found")
    return 200, {"result": result}


def _search_one(state: SimState, email: str, stale: set[str]) -> dict[str, Any]:
    contact = state.contacts.get(email) or state.by_alternate_email(email)
    if email in stale and contact is not None:
        return {"contact": {**public_contact(contact), "id": str(uuid.uuid4())}}
    if contact is None or not state.searchable(email):
        return {"error": "contact not found"}
    return {"contact": public_contact(contact)}


def search_sgql(call: ApiCall) -> Answer:
    """``POST /v3/marketing/contacts/search``: only ``email = '...'`` of SGQL is simulated."""
    state = call.state
    query = json_object(call.body).get("query")
    match = rules.SGQL_EMAIL_EQUALS.match(query) if isinstance(query, str) else None
    if match is None:
        raise ApiError(400, [{"field": "query", "message": "only email = '...' queries are simulated"}])
    email = match.group(1).replace("''", "'")
    with state.lock:
        state.process_jobs()
        contact = state.contacts.get(email)  # stored lower-case; SGQL compares as given
        found = [public_contact(contact)] if contact is not None and state.searchable(email) else []
    return 200, {"result": found, "contact_count": len(found), "_metadata": {}}


def field_definitions(call: ApiCall) -> Answer:
    with call.state.lock:
        return 200, {
            "custom_fields": list(call.state.custom_fields.values()),
            "reserved_fields": rules.RESERVED_FIELDS,
            "_metadata": {"self": f"{call.base}/v3/marketing/field_definitions"},
        }
