"""The simulator's own endpoints under ``/__sim/``: state, reset, faults, settings, fixtures, and the
pre-signed downloads.

Started from the command line they need the simulator's own control key in an
``X-Simulator-Key`` header (``--control-key-file``, or a random one printed at start): another
local user cannot read the contacts or change the simulator. In-process (tests) they are open
unless ``SimState(control_key=...)`` sets one. The errors-file downloads (``/__sim/files/``) are
pre-signed links, as SendGrid's are, and take no key; so are the bulk upload and export links.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from tools.standins.sendgrid import routes_bulk
from tools.standins.sendgrid.api import Answer
from tools.standins.sendgrid.faults import Fault
from tools.standins.sendgrid.jobs import errors_file
from tools.standins.sendgrid.pace import PRODUCTION_PACE
from tools.standins.sendgrid.rules import ALL_SCOPES
from tools.standins.sendgrid.state import SimState, public_contact

if TYPE_CHECKING:
    from tools.standins.sendgrid.handler import Handler

CONTROL_KEY_HEADER = "X-Simulator-Key"
OK = {"ok": True}


def handle(handler: Handler, method: str, path: str, body: bytes) -> None:
    if path.startswith("/__sim/files/") and method == "GET":  # a download, not a JSON command
        _errors_file(handler)
        return
    if routes_bulk.handle_file(handler, method, path, body):  # pre-signed: an upload, an export's file
        return
    expected = handler.server.state.control_key
    given = handler.headers.get(CONTROL_KEY_HEADER, "")
    if expected is not None and not secrets.compare_digest(given.encode(), expected.encode()):
        handler.send_json(401, {"errors": [{"message": f"the control endpoints need the {CONTROL_KEY_HEADER} header"}]})
        return
    doc = json.loads(body) if body else {}
    command = CONTROL_ROUTES.get((method, path))
    if command is None:
        handler.send_json(404, {"errors": [{"message": f"no control endpoint {method} {path}"}]})
        return
    handler.send_json(*command(handler.server.state, doc))


def _errors_file(handler: Handler) -> None:
    """The pre-signed download of a job's errors file: like an object store, it refuses a
    request that also carries an Authorization header (and so never sees the API key)."""
    state = handler.server.state
    if handler.headers.get("Authorization"):
        handler.send_json(400, {"errors": [{"message": "only one auth mechanism allowed"}]})
        return
    parts = urlparse(handler.path).path.split("/")
    with state.lock:
        job = state.jobs.get(parts[3]) if len(parts) > 3 else None
        if job is None:
            handler.send_json(404, {"errors": [{"message": "no such file"}]})
            return
        content_type, data = errors_file(job, state.errors_format)
        how = state.errors_format
    if how == "redirect":  # a link that sends the client elsewhere must not be followed
        handler.send_data(302, {"Location": "http://127.0.0.1:9/elsewhere", "Content-Length": "0"}, b"")
    elif how == "drop":  # the connection dies half-way through the body
        handler.send_data(
            200, {"Content-Type": content_type, "Content-Length": str(len(data) + 1000)}, data[: len(data) // 2]
        )
        handler.wfile.flush()
        handler.hang_up()
    else:
        handler.send_data(200, {"Content-Type": content_type, "Content-Length": str(len(data))}, data)


# -- the commands: the state and the JSON body -> the answer ---------------------------------------


def _state(state: SimState, doc: Any) -> Answer:
    return 200, state.snapshot()


def _reset(state: SimState, doc: Any) -> Answer:
    state.reset()
    return 200, OK


def _add_faults(state: SimState, doc: Any) -> Answer:
    faults = doc if isinstance(doc, list) else [doc]
    with state.lock:
        state.faults.extend(Fault(**f) for f in faults)
        return 200, {"ok": True, "faults": len(state.faults)}


def _clear_faults(state: SimState, doc: Any) -> Answer:
    with state.lock:
        state.faults.clear()
    return 200, OK


def _config(state: SimState, doc: Any) -> Answer:
    with state.lock:
        _configure_pace(state, doc)
        _configure_jobs(state, doc)
        _configure_strictness(state, doc)
        state.bulk.configure(doc)
        for key in doc.get("api_keys", []):
            state.api_keys[key] = list(ALL_SCOPES)
        for key, scopes in doc.get("scopes", {}).items():
            state.api_keys[key] = list(scopes)
    return 200, OK


def _configure_pace(state: SimState, doc: dict[str, Any]) -> None:
    pace = state.pace
    if "rate_limit" in doc:
        pace.limit = doc["rate_limit"]
        pace.restart_windows()
    pace.window = float(doc.get("rate_window", pace.window))
    if "pace" in doc:  # {"PUT /v3/marketing/contacts": {"limit": 1, "window": 1}}, or "production"
        spec = doc["pace"]
        pace.endpoints = (
            dict(PRODUCTION_PACE)
            if spec == "production"
            else {route: (int(each["limit"]), float(each.get("window", 1.0))) for route, each in spec.items()}
        )
        pace.restart_windows()


def _configure_jobs(state: SimState, doc: dict[str, Any]) -> None:
    state.job_delay = float(doc.get("job_delay", state.job_delay))
    state.job_seconds_per_contact = float(doc.get("job_seconds_per_contact", state.job_seconds_per_contact))
    state.status_shape = str(doc.get("status_shape", state.status_shape))
    if "contact_cap" in doc:
        state.contact_cap = None if doc["contact_cap"] is None else int(doc["contact_cap"])
    state.search_lag = float(doc.get("search_lag", state.search_lag))
    state.removal_jobs_pollable = bool(doc.get("removal_jobs_pollable", state.removal_jobs_pollable))


def _configure_strictness(state: SimState, doc: dict[str, Any]) -> None:
    state.record_bodies = bool(doc.get("record_bodies", state.record_bodies))
    state.max_body_bytes = int(doc.get("max_body_bytes", state.max_body_bytes))
    state.too_large_status = int(doc.get("too_large_status", state.too_large_status))
    state.indexed_errors = bool(doc.get("indexed_errors", state.indexed_errors))
    state.errors_format = str(doc.get("errors_format", state.errors_format))


def _add_list(state: SimState, doc: Any) -> Answer:
    return 201, state.add_list(doc["name"], doc.get("id"))


def _add_custom_field(state: SimState, doc: Any) -> Answer:
    return 201, state.add_custom_field(doc["name"], doc["field_type"])


def _requests(state: SimState, doc: Any) -> Answer:
    with state.lock:  # copied whole under the lock: a request's entry gains its status later
        return 200, {"requests": [dict(entry) for entry in state.requests]}


def _add_contact(state: SimState, doc: Any) -> Answer:
    # A contact some other tool made (e.g. with an external_id), straight into the store.
    with state.lock:
        fields = {key: value for key, value in doc.items() if key != "list_ids"}  # kept as a shared set
        contact = {**fields, "email": doc["email"].lower(), "id": state.new_contact_id()}
        state.set_lists(contact, frozenset(doc.get("list_ids", [])))
        state.contacts[contact["email"]] = contact
        return 201, public_contact(contact)


# Method and exact path -> the command (behind the control key, where set).
CONTROL_ROUTES: dict[tuple[str, str], Callable[[SimState, Any], Answer]] = {
    ("GET", "/__sim/state"): _state,
    ("POST", "/__sim/reset"): _reset,
    ("POST", "/__sim/faults"): _add_faults,
    ("DELETE", "/__sim/faults"): _clear_faults,
    ("POST", "/__sim/config"): _config,
    ("POST", "/__sim/lists"): _add_list,
    ("POST", "/__sim/field_definitions"): _add_custom_field,
    ("GET", "/__sim/requests"): _requests,
    ("POST", "/__sim/contacts"): _add_contact,
}
