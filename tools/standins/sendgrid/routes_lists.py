"""The list endpoints: create, read, page through, and remove contacts from a list.

Removing contacts from a list is a job (202 with ``job_id``), followed on the import status
endpoint; a DELETE naming a contact id that does not exist answers 404 (lists document).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from tools.standins.sendgrid import rules
from tools.standins.sendgrid.api import Answer, ApiCall, ApiError, json_object, refuse_if
from tools.standins.sendgrid.faults import take_job_fault
from tools.standins.sendgrid.jobs import Job, now_iso

MAX_PAGE_SIZE = 1000  # GET /v3/marketing/lists: page_size maximum (lists document)


def create_list(call: ApiCall) -> Answer:
    state = call.state
    doc = json_object(call.body)
    name = doc.get("name")
    if set(doc) - {"name"} or not isinstance(name, str) or not 1 <= len(name) <= 100:
        raise ApiError(400, [{"field": "name", "message": "name must be 1 to 100 characters"}])
    with state.lock:
        if any(meta["name"] == name for meta in state.lists.values()):
            raise ApiError(400, [{"field": "name", "message": "list name already exists"}])
        created = state.add_list(name)
    return 201, {
        **created,
        "contact_count": 0,
        "_metadata": {"self": f"{call.base}/v3/marketing/lists/{created['id']}"},
    }


def get_list(call: ApiCall) -> Answer:
    state, list_id = call.state, call.ids[0]
    with state.lock:
        state.process_jobs()
        meta = state.lists.get(list_id)
        if meta is None:
            raise ApiError(404, "list not found")
        count = state.contact_count(list_id)
    return 200, {**meta, "contact_count": count}


def get_lists(call: ApiCall) -> Answer:
    query, state = call.query, call.state
    try:
        size = int(query.get("page_size", ["100"])[0])
    except ValueError:
        raise ApiError(400, [{"field": "page_size", "message": "page_size must be a number"}]) from None
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise ApiError(400, [{"field": "page_size", "message": "page_size must be 1 to 1000"}])
    token = query.get("page_token", ["0"])[0] or "0"
    start = int(token) if token.isdigit() else 0
    with state.lock:
        state.process_jobs()
        items = list(state.lists.values())
        page = [{**m, "contact_count": state.contact_count(m["id"])} for m in items[start : start + size]]
    metadata: dict[str, Any] = {
        "self": f"{call.base}/v3/marketing/lists?page_size={size}&page_token={start}",
        "count": len(items),
    }
    if start + size < len(items):
        metadata["next"] = f"{call.base}/v3/marketing/lists?page_size={size}&page_token={start + size}"
    return 200, {"result": page, "_metadata": metadata}


def remove_from_list(call: ApiCall) -> Answer:
    query, state, list_id = call.query, call.state, call.ids[0]
    ids = [i for i in query.get("contact_ids", [""])[0].split(",") if i]
    refuse_if(rules.contact_ids_problems(ids))
    with state.lock:
        state.process_jobs()
        if list_id not in state.lists:
            raise ApiError(404, "list not found")
        if any(state.by_id(i) is None for i in ids):
            # The lists document: 404 when "one or more contact IDs do not exist".
            raise ApiError(404, "one or more contact IDs do not exist")
        job = Job(
            id=str(uuid.uuid4()),
            ready_at=time.time() + state.job_delay,
            contacts=list(dict.fromkeys(ids)),
            list_ids=[list_id],
            job_type="list_removal",
            started_at=now_iso(),
        )
        fault = take_job_fault(state.faults, ("DELETE",))
        if fault is not None:
            job.forced_status = fault.job_status  # a removal fails or errors whole: it names no address
        state.submit(job)
    return 202, {"job_id": job.id}
