"""A SendGrid Marketing Campaigns stand-in: a real HTTP server on loopback, for tests and demos.

Stateful (contacts, lists, custom fields, import and list-removal jobs that finish after a delay),
strict about the limits and request shapes of SendGrid's published OpenAPI documents (30,000
contacts a request, field lengths, identifiers, list and custom field ids), sending
``X-RateLimit-*`` headers and 429s, and able to inject faults on request: 5xx, 429 storms, slow
answers, dropped connections, contacts SendGrid refuses, import jobs that end ``errored`` or
``failed``.

Where SendGrid's documents and what production users report differ, the stricter one is the
default, and each such rule names its source here:

- Request bodies over 4 MiB are refused (413), although the contacts document says 6 MB:
  production callers hit 4 MiB (the public project Stand-With-Crypto/swc-web cuts its upsert
  batches at 3.9 MB for this reason). ``max_body_bytes`` and ``too_large_status`` (413, or 400
  with a "too large" message) are settings.
- A 400 names no contact by position (``contacts[3].email``): that form is documented nowhere, so
  a client must not depend on it. ``indexed_errors`` turns it on.
- Contacts can fail inside an accepted import job (``errored``, ``errored_count``,
  ``errors_url``); the errors file is a pre-signed download that refuses an ``Authorization``
  header, as a pre-signed object-store URL does. Its format is not documented: ``errors_format``
  picks CSV, JSON, or an unreadable file.
- "In order to update a contact, all of its existing identifiers must be present" (contacts
  document, PUT /v3/marketing/contacts): a contact stored with an ``external_id``,
  ``phone_number_id`` or ``anonymous_id`` that an upsert leaves out fails inside the job.
- search/emails takes at most 100 addresses of at most 100 characters (the document's
  ``maxLength``), and answers 400 if any address is invalid (its description).
- New contacts become searchable ``search_lag`` seconds after their job ends (users report
  minutes; 0 unless set, so tests that do not study it need not wait).
- Removing contacts from a list is a job (202 with ``job_id``), followed on the import status
  endpoint; a DELETE naming a contact id that does not exist answers 404 (lists document).
- Pace: every answer carries ``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (the epoch
  second the window ends), per endpoint (method and route, ids folded), in fixed windows; a
  request past the limit is a 429 with the same headers (SendGrid's "Rate limits" page: limits
  are per endpoint and announced only in these headers; no number is published for the
  Marketing endpoints). ``pace`` sets a limit and window per endpoint; the production pace seen
  by a public sync (Stand-With-Crypto/swc-web, ``sendgridContactsCronJob/config.ts``) is about 6
  ``PUT /v3/marketing/contacts`` a minute, which ``PRODUCTION_PACE`` models.
- Import jobs take ``job_delay`` seconds plus ``job_seconds_per_contact`` a contact: about 30 s
  even for one contact in production (NangoHQ/integration-templates,
  ``integrations/sendgrid/tests/upsert-contacts.test.json``: ``pending`` for 33 s).
- ``status_shape="production"`` answers the import status as production does: ``job_type``
  ``upsert_contacts`` (the document's example says ``upsert``), the counts present while the job
  is ``pending`` (a partial tally, not its outcome); ``"camel"`` also spells the results in
  camelCase (``requestedCount``), as some of SendGrid's answers do.
- ``contact_cap``: a job that would store more contacts than the plan holds ends ``failed`` with
  "you have hit your contact limit" (sendgrid/sendgrid-go issue 413: the job fails, the PUT was
  accepted); ``GET /v3/marketing/contacts/count`` gives the account's contact count.
- Scopes carry SendGrid's published names (``marketing.read``, ``marketing.automation.read``,
  the legacy ``marketing_campaigns.*``); a key without write access is refused writes (403).

Control endpoints live under ``/__sim/``. Started from the command line they need the simulator's
own control key in an ``X-Simulator-Key`` header (``--control-key-file``, or a random one printed at
start): another local user cannot read the contacts or change the simulator. In-process (tests)
they are open unless ``SimState(control_key=...)`` sets one. The errors-file downloads
(``/__sim/files/``) are pre-signed links, as SendGrid's are, and take no key. Run it alone with
``python -m tools.sendgrid_simulator --port 0 --api-key-file FILE``; it prints ``PORT=<n>``. Keys
are read from files (or the environment), never from the command line, where ``ps`` shows them.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import json
import math
import os
import re
import secrets
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

MAX_CONTACTS = 30_000
CONTROL_KEY_HEADER = "X-Simulator-Key"
# The environment's form of the key files, for a container or a supervisor that has no files.
API_KEY_ENV, CONTROL_KEY_ENV = "SENDGRID_SIMULATOR_API_KEY", "SENDGRID_SIMULATOR_CONTROL_KEY"
# SendGrid's pace as production callers see it: endpoint -> (limit, window s). The PUT's is what a
# production sync settled at (see the module doc); no number is published for the others, which
# are assumed (a poll, search or removal a second).
PRODUCTION_PACE = {
    "PUT /v3/marketing/contacts": (6, 60.0),
    "GET /v3/marketing/contacts/imports/{id}": (60, 60.0),
    "POST /v3/marketing/contacts/search/emails": (60, 60.0),
    "DELETE /v3/marketing/lists/{id}/contacts": (60, 60.0),
}
CONTACT_LIMIT_MESSAGE = "you have hit your contact limit"
# The contacts document says 6 MB; production accounts refuse bodies over 4 MiB (see above).
DOCUMENTED_MAX_BODY_BYTES = 6_000_000
MAX_BODY_BYTES = 4 * 1024 * 1024
SEARCH_EMAIL_MAX_LENGTH = 100  # search/emails: items maxLength
SEARCH_EMAILS_MAX = 100
DELETE_CONTACT_IDS_MAX = 100
# ContactRequest maxLength values from tsg_mc_contacts_v3.json (checked by a contract test).
CONTACT_STRING_LIMITS = {
    "address_line_1": 100,
    "address_line_2": 100,
    "city": 60,
    "country": 50,
    "email": 254,
    "external_id": 254,
    "anonymous_id": 254,
    "first_name": 50,
    "last_name": 50,
    "state_province_region": 50,
    "postal_code": None,
    "phone_number_id": None,
}
CONTACT_KEYS = frozenset([*CONTACT_STRING_LIMITS, "alternate_emails", "custom_fields"])
IDENTIFIERS = frozenset(["email", "phone_number_id", "external_id", "anonymous_id"])
_STRING_LIMITS = {key: limit or sys.maxsize for key, limit in CONTACT_STRING_LIMITS.items()}
RESERVED_FIELDS = [
    {"name": n, "field_type": "Text"}
    for n in (
        "first_name",
        "last_name",
        "email",
        "alternate_emails",
        "address_line_1",
        "address_line_2",
        "city",
        "state_province_region",
        "postal_code",
        "country",
        "phone_number_id",
        "external_id",
        "anonymous_id",
    )
] + [
    {"name": "created_at", "field_type": "Date", "read_only": True},
    {"name": "updated_at", "field_type": "Date", "read_only": True},
]
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
DATE_RE = re.compile(r"^(0[1-9]|1[0-2])/(0[1-9]|[12][0-9]|3[01])/[0-9]{4}$")
# Published scope names (SendGrid's API key permissions list): the new Marketing API has
# read-type names only; the legacy Marketing Campaigns names carry create/update/delete.
READ_ONLY_SCOPES = ["marketing.read", "marketing.automation.read"]
ALL_SCOPES = [
    *READ_ONLY_SCOPES,
    "marketing_campaigns.create",
    "marketing_campaigns.read",
    "marketing_campaigns.update",
    "marketing_campaigns.delete",
]
WRITE_SCOPES = frozenset({"marketing_campaigns.create", "marketing_campaigns.update"})
OTHER_IDENTIFIERS = ("external_id", "phone_number_id", "anonymous_id")
SGQL_EMAIL_EQUALS = re.compile(r"^\s*email\s*=\s*'((?:[^']|'')*)'\s*$")


REQUEST_FAULTS = frozenset({"status", "rate_limit", "drop", "delay"})


@dataclass
class Fault:
    # status | rate_limit | drop | delay | reject_email | job_status | search_invalid (search/emails
    # calls these addresses invalid: 400) | search_stale (search finds these under an id that no
    # longer exists, as when a contact is deleted between a search and a removal)
    kind: str
    method: str | None = None
    path: str | None = None  # prefix of the request path
    times: int = 1
    after: int = 0  # let this many matching requests pass first
    status: int = 500
    message: str = "simulated failure"
    seconds: float = 0.0
    reset_in: float = 1.0
    emails: list[str] = field(default_factory=list)
    job_status: str = "failed"
    seen: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or path.startswith(self.path))


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
        self.rate_limit: int | None = None  # requests per window, per route; None: no limit
        self.rate_window = 1.0
        # Per endpoint ("PUT /v3/marketing/contacts"): (limit, window seconds); others use the above.
        self.pace: dict[str, tuple[int, float]] = {}
        self._windows: dict[str, tuple[float, int]] = {}
        self.rate_limited = 0  # 429s answered for the pace, over the life of the state
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

    def new_contact_id(self) -> str:
        # A version-4-shaped UUID from a counter: unique, ordered, and cheap to make.
        return f"00000000-0000-4000-8000-{next(self._ids):012x}"

    def membership(self, list_ids: frozenset[str]) -> frozenset[str]:
        """One shared set per combination of lists, not one per contact."""
        return self._memberships.setdefault(list_ids, list_ids)

    def set_lists(self, contact: dict[str, Any], list_ids: frozenset[str]) -> None:
        """Put a contact (new, or stored) on exactly these lists."""
        if "list_ids" in contact:
            self._member_counts[contact["list_ids"]] -= 1
        contact["list_ids"] = self.membership(list_ids)
        self._member_counts[contact["list_ids"]] += 1

    def forget(self, email: str) -> None:
        self._member_counts[self.contacts.pop(email)["list_ids"]] -= 1

    def contact_count(self, list_id: str) -> int:
        return sum(count for lists, count in self._member_counts.items() if list_id in lists)

    # -- control ------------------------------------------------------------------------------

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
            self.rate_limited = 0
            self._unsearchable_until.clear()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            self.process_jobs()
            members: dict[str, list[str]] = {lid: [] for lid in self.lists}
            for email, contact in self.contacts.items():
                for lid in contact["list_ids"]:
                    members.setdefault(lid, []).append(email)
            return {
                "contacts": {e: _public_contact(c) for e, c in self.contacts.items()},
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
                "rate_limited": self.rate_limited,
            }

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

    # -- jobs -----------------------------------------------------------------------------------

    def process_jobs(self) -> None:
        now = time.time()
        for job in self.jobs.values():
            if job.status == "pending" and job.ready_at <= now:
                self._finish(job)

    def by_alternate_email(self, email: str) -> dict[str, Any] | None:
        """search/emails also matches alternate emails ("whether it is their email or one of their
        alternate_emails"); a walk, since only tests of removals search."""
        return next((c for c in self.contacts.values() if email in (c.get("alternate_emails") or ())), None)

    def searchable(self, email: str) -> bool:
        until = self._unsearchable_until.get(email)
        if until is None:
            return True
        if until <= time.time():
            del self._unsearchable_until[email]
            return True
        return False

    def _finish(self, job: Job) -> None:
        created = updated = errored = deleted = 0
        if job.job_type == "upsert" and job.forced_status is None and self._over_cap(job):
            job.forced_status = "failed"
            job.errors["*"] = CONTACT_LIMIT_MESSAGE
        if job.forced_status == "failed":
            errored = len(job.contacts)
        elif job.job_type == "list_removal":
            self._remove_members(job)
        else:
            # A million contacts pass through here in a benchmark: the incoming dict (owned by
            # the job) becomes the stored contact, and list memberships are shared frozensets.
            stamp = _now_iso()
            lists = frozenset(job.list_ids)
            contacts = self.contacts
            error_emails = job.error_emails
            lag_until = time.time() + self.search_lag if self.search_lag > 0 else 0.0
            for incoming in job.contacts:
                email = incoming.get("email", "").lower()
                if error_emails and email in error_emails:
                    job.errors[email] = "simulated contact error"
                    errored += 1
                    continue
                existing = contacts.get(email)
                if existing is None:
                    incoming["email"] = email
                    incoming["id"] = self.new_contact_id()
                    self.set_lists(incoming, lists)
                    incoming["created_at"] = incoming["updated_at"] = stamp
                    contacts[email] = incoming
                    if lag_until:
                        self._unsearchable_until[email] = lag_until
                    created += 1
                    continue
                missing = [k for k in OTHER_IDENTIFIERS if existing.get(k) and incoming.get(k) != existing[k]]
                if missing:
                    # "In order to update a contact, all of its existing identifiers must be present."
                    job.errors[email] = (
                        "to update a contact, all of its existing identifiers must be present: " + ", ".join(missing)
                    )
                    errored += 1
                    continue
                updated += 1
                custom = incoming.pop("custom_fields", None)
                if custom:
                    existing["custom_fields"] = {**existing.get("custom_fields", {}), **custom}
                incoming.pop("email", None)
                existing.update(incoming)
                if not lists <= existing["list_ids"]:
                    self.set_lists(existing, existing["list_ids"] | lists)
                existing["updated_at"] = stamp
        job.status = job.forced_status or ("errored" if errored else "completed")
        if job.job_type == "list_removal":
            job.results = {"requested_count": len(job.contacts), "removed_count": len(job.contacts)}
        else:
            job.results = {
                "requested_count": len(job.contacts),
                "created_count": created,
                "updated_count": updated,
                "deleted_count": deleted,
                "errored_count": errored,
            }
        if errored and job.job_type == "upsert" and job.forced_status is None:
            # A pre-signed download link: absolute, with its own signature, no API key needed.
            job.results["errors_url"] = f"{self.base_url}/__sim/files/{job.id}/errors?X-Signature={uuid.uuid4().hex}"
        job.finished_at = _now_iso()
        # Stored contacts live as long as the simulator: keep the cycle collector from walking a
        # million of them again and again (it would cost the benchmark's one shared CPU seconds).
        gc.freeze()

    def _over_cap(self, job: Job) -> bool:
        if self.contact_cap is None:
            return False
        new = {str(c.get("email", "")).lower() for c in job.contacts if isinstance(c, dict)} - self.contacts.keys()
        return len(self.contacts) + len(new) > self.contact_cap

    def status_of(self, job: Job) -> dict[str, Any]:
        """The import status answer, in the configured shape (see the module doc)."""
        results = dict(job.results)
        job_type = job.job_type
        if self.status_shape != "documented":
            if job_type == "upsert":
                job_type = "upsert_contacts"
            if job.status == "pending" and job.job_type == "upsert":
                # Production's partial tally while pending: counts present, not the outcome.
                done = len(job.contacts) // 2
                results = {
                    "requested_count": len(job.contacts),
                    "created_count": done,
                    "updated_count": 0,
                    "deleted_count": 0,
                    "errored_count": 0,
                }
            if self.status_shape == "camel":
                results = {_camel(k): v for k, v in results.items()}
        answer: dict[str, Any] = {"id": job.id, "status": job.status, "job_type": job_type, "results": results}
        if job.status == "failed" and "*" in job.errors:
            answer["errors"] = [{"message": job.errors["*"]}]
        return answer

    def _remove_members(self, job: Job) -> None:
        list_id = job.list_ids[0]
        wanted = set(job.contacts)
        for contact in self.contacts.values():
            if contact["id"] in wanted and list_id in contact["list_ids"]:
                self.set_lists(contact, contact["list_ids"] - {list_id})

    def errors_file(self, job_id: str) -> tuple[str, bytes]:
        """The errors file of a job, in the configured format (content type, body)."""
        job = self.jobs.get(job_id)
        errors = sorted(job.errors.items()) if job else []
        if self.errors_format == "json":
            return "application/json", json.dumps([{"email": e, "error_message": m} for e, m in errors]).encode()
        if self.errors_format == "garbage":
            return "application/octet-stream", b"\x00\x01PK\x03\x04 not a report"
        lines = ["Email Address,Error Message,first_name"]
        for email, message in errors:
            lines.append(f'{email},"{message.replace(chr(34), chr(34) * 2)}",')
        return "text/csv", ("\r\n".join(lines) + "\r\n").encode()

    # -- rate limiting --------------------------------------------------------------------------

    def take_rate_token(self, route: str) -> tuple[bool, dict[str, str]]:
        """One request's place in its endpoint's window. Windows are fixed (aligned on multiples of
        their length), so ``X-RateLimit-Reset`` names the second the window really ends."""
        now = time.time()
        limit, window = self.pace.get(route) or (self.rate_limit, self.rate_window)
        if limit is None:
            reset = math.ceil(now + 1)
            return True, {"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "999", "X-RateLimit-Reset": str(reset)}
        start = math.floor(now / window) * window
        known_start, used = self._windows.get(route, (start, 0))
        if known_start != start:
            used = 0
        reset = math.ceil(start + window)
        allowed = used < limit
        if allowed:
            used += 1
        else:
            self.rate_limited += 1
        self._windows[route] = (start, used)
        return allowed, {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(0, limit - used)),
            "X-RateLimit-Reset": str(reset),
        }

    def take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.kind in REQUEST_FAULTS and fault.matches(method, path):
                fault.seen += 1
                if fault.seen <= fault.after:
                    continue
                fault.times -= 1
                return fault
        return None


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _public_contact(contact: dict[str, Any]) -> dict[str, Any]:
    out = {"custom_fields": {}, **contact}
    out["list_ids"] = sorted(contact["list_ids"])
    return out


class ApiError(Exception):
    def __init__(self, status: int, errors: list[dict[str, Any]] | str):
        self.status = status
        self.errors = [{"field": None, "message": errors}] if isinstance(errors, str) else errors


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SimServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the simulator never prints request lines (they can hold addresses)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    # -- plumbing -------------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        state = self.server.state
        parsed = urlparse(self.path)
        path, query = parsed.path, parse_qs(parsed.query)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if path.startswith("/__sim/"):
            self._control(method, path, body)
            return
        with state.lock:
            entry: dict[str, Any] = {"method": method, "path": path, "query": parsed.query, "bytes": length}
            entry["at"] = round(time.time(), 3)
            if state.record_bodies:
                entry["body"] = body.decode("utf-8", "replace")
            state.requests.append(entry)
            fault = state.take_fault(method, path)
            route = _route_key(method, path)
            allowed, headers = state.take_rate_token(route)
            if not allowed:
                entry["status"] = 429  # the request log tells which requests the pace refused
        if fault is not None:
            if fault.kind == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault.kind == "delay":
                time.sleep(fault.seconds)
            elif fault.kind == "rate_limit":
                reset = str(math.ceil(time.time() + fault.reset_in))
                self._send(
                    429,
                    {"errors": [{"field": None, "message": "too many requests"}]},
                    {"X-RateLimit-Limit": "1", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset},
                )
                return
            elif fault.kind == "status":
                self._send(fault.status, {"errors": [{"field": None, "message": fault.message}]}, headers)
                return
        if not allowed:
            self._send(429, {"errors": [{"field": None, "message": "too many requests"}]}, headers)
            return
        auth = self.headers.get("Authorization", "")
        key = auth[len("Bearer ") :] if auth.startswith("Bearer ") else None
        if key is None or key not in state.api_keys:
            self._send(401, {"errors": [{"field": None, "message": "authorization required"}]}, headers)
            return
        scopes = state.api_keys[key]
        reads = method == "GET" or path.startswith("/v3/marketing/contacts/search")
        if not reads and not set(scopes) >= WRITE_SCOPES:
            self._send(403, {"errors": [{"field": None, "message": "access forbidden"}]}, headers)
            return
        try:
            status, payload = self._api(method, path, query, body, state, scopes)
        except ApiError as exc:
            status, payload = exc.status, {"errors": exc.errors}
        with state.lock:  # the log says what each request came to (a test tells accepted batches)
            entry["status"] = status
            if isinstance(payload, dict) and isinstance(payload.get("job_id"), str):
                entry["job_id"] = payload["job_id"]
        self._send(status, payload, headers)

    def _errors_file(self, path: str) -> None:
        """The pre-signed download of a job's errors file: like an object store, it refuses a
        request that also carries an Authorization header (and so never sees the API key)."""
        state = self.server.state
        if self.headers.get("Authorization"):
            self._send(400, {"errors": [{"message": "only one auth mechanism allowed"}]})
            return
        parts = urlparse(self.path).path.split("/")
        with state.lock:
            job = state.jobs.get(parts[3]) if len(parts) > 3 else None
            if job is None:
                self._send(404, {"errors": [{"message": "no such file"}]})
                return
            content_type, data = state.errors_file(job.id)
            how = state.errors_format
        if how == "redirect":  # a link that sends the client elsewhere must not be followed
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if how == "drop":  # the connection dies half-way through the body
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data) + 1000))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    # -- SendGrid's API -------------------------------------------------------------------------

    def _api(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: bytes,
        state: SimState,
        scopes: list[str],
    ) -> tuple[int, Any]:
        for route_method, pattern, handle in API_ROUTES:
            match = pattern.fullmatch(path)
            if match is not None and method == route_method:
                return handle(self, ApiCall(query, body, state, scopes, match.groups()))
        if path.strip("/").split("/")[:2] != ["v3", "marketing"]:
            raise ApiError(404, "not found")
        raise ApiError(404, f"{method} {path} is not simulated")

    def _scopes(self, call: ApiCall) -> tuple[int, Any]:
        return 200, {"scopes": call.scopes}

    def _import_status(self, call: ApiCall) -> tuple[int, Any]:
        state = call.state
        with state.lock:
            state.process_jobs()
            job = state.jobs.get(call.ids[0])
            if job is None or (job.job_type == "list_removal" and not state.removal_jobs_pollable):
                raise ApiError(404, "job not found")
            return 200, {
                **state.status_of(job),
                "started_at": job.started_at,
                **({"finished_at": job.finished_at} if job.finished_at else {}),
            }

    def _contact_count(self, call: ApiCall) -> tuple[int, Any]:
        state = call.state
        with state.lock:
            state.process_jobs()
            count = len(state.contacts)
        # The contacts document: contact_count, and billable_count (what the plan's cap counts).
        return 200, {"contact_count": count, "billable_count": count}

    def _create_list(self, call: ApiCall) -> tuple[int, Any]:
        state = call.state
        doc = _json_object(call.body)
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
            "_metadata": {"self": f"{self._base()}/v3/marketing/lists/{created['id']}"},
        }

    def _get_list(self, call: ApiCall) -> tuple[int, Any]:
        state, list_id = call.state, call.ids[0]
        with state.lock:
            state.process_jobs()
            meta = state.lists.get(list_id)
            if meta is None:
                raise ApiError(404, "list not found")
            count = state.contact_count(list_id)
        return 200, {**meta, "contact_count": count}

    def _field_definitions(self, call: ApiCall) -> tuple[int, Any]:
        with call.state.lock:
            return 200, {
                "custom_fields": list(call.state.custom_fields.values()),
                "reserved_fields": RESERVED_FIELDS,
                "_metadata": {"self": f"{self._base()}/v3/marketing/field_definitions"},
            }

    def _base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _upsert(self, call: ApiCall) -> tuple[int, Any]:
        body, state = call.body, call.state
        if len(body) > state.max_body_bytes:
            raise ApiError(state.too_large_status, "request body too large")
        doc = _json_object(body)
        unknown = set(doc) - {"list_ids", "contacts"}
        if unknown:
            raise ApiError(400, [{"field": k, "message": "unknown field"} for k in sorted(unknown)])
        contacts = doc.get("contacts")
        if not isinstance(contacts, list) or not contacts:
            raise ApiError(400, [{"field": "contacts", "message": "contacts must be a non-empty array"}])
        if len(contacts) > MAX_CONTACTS:
            raise ApiError(400, [{"field": "contacts", "message": f"at most {MAX_CONTACTS} contacts per request"}])
        list_ids = doc.get("list_ids", [])
        errors: list[dict[str, Any]] = []
        with state.lock:
            if not isinstance(list_ids, list) or not all(isinstance(i, str) for i in list_ids):
                raise ApiError(400, [{"field": "list_ids", "message": "list_ids must be an array of strings"}])
            for i, lid in enumerate(list_ids):
                if lid not in state.lists:
                    errors.append({"field": f"list_ids[{i}]", "message": "list does not exist"})
            custom_defs = dict(state.custom_fields)
            rejected = {e.lower() for f in state.faults if f.kind == "reject_email" and f.times > 0 for e in f.emails}
        for i, contact in enumerate(contacts):
            errors.extend(_contact_errors(i, contact, custom_defs, rejected))
            if len(errors) >= 100:
                break
        if errors:
            per_contact = [e for e in errors if str(e["field"]).startswith("contacts[")]
            if per_contact and not state.indexed_errors:
                # Positions are documented nowhere: by default say what is wrong, not where.
                others = [e for e in errors if e not in per_contact]
                errors = [*others, {"field": None, "message": per_contact[0]["message"]}]
            raise ApiError(400, errors)
        with state.lock:
            job = Job(
                id=str(uuid.uuid4()),
                ready_at=time.time() + state.job_delay + state.job_seconds_per_contact * len(contacts),
                contacts=contacts,
                list_ids=list_ids,
                started_at=_now_iso(),
            )
            for fault in state.faults:
                if fault.kind == "job_status" and fault.times > 0 and fault.method in (None, "PUT"):
                    fault.times -= 1
                    if fault.emails:
                        job.error_emails = {e.lower() for e in fault.emails}
                    else:
                        job.forced_status = fault.job_status
                    break
            state.jobs[job.id] = job
            state.upserted_contacts += len(contacts)
            state._due.notify()
        return 202, {"job_id": job.id}

    def _search_emails(self, call: ApiCall) -> tuple[int, Any]:
        state = call.state
        doc = _json_object(call.body)
        emails = doc.get("emails")
        if not isinstance(emails, list) or not emails or not all(isinstance(e, str) for e in emails):
            raise ApiError(400, [{"field": "emails", "message": "emails must be a non-empty array of strings"}])
        if len(emails) > SEARCH_EMAILS_MAX:
            raise ApiError(400, [{"field": "emails", "message": f"at most {SEARCH_EMAILS_MAX} emails"}])
        with state.lock:
            invalid = {e.lower() for f in state.faults if f.kind == "search_invalid" for e in f.emails}
            stale = {e.lower() for f in state.faults if f.kind == "search_stale" for e in f.emails}
        for email in emails:
            if (
                len(email) > SEARCH_EMAIL_MAX_LENGTH
                or (email and not EMAIL_RE.match(email))
                or email.lower() in invalid
            ):
                raise ApiError(400, [{"field": "emails", "message": "one or more email addresses are invalid"}])
        result: dict[str, Any] = {}
        with state.lock:
            state.process_jobs()
            for email in emails:
                if not email:
                    continue
                contact = state.contacts.get(email.lower()) or state.by_alternate_email(email.lower())
                if email.lower() in stale and contact is not None:
                    result[email.lower()] = {"contact": {**_public_contact(contact), "id": str(uuid.uuid4())}}
                    continue
                if contact is None or not state.searchable(email.lower()):
                    result[email.lower()] = {"error": "contact not found"}
                else:
                    result[email.lower()] = {"contact": _public_contact(contact)}
        if not any("contact" in v for v in result.values()):
            raise ApiError(404, "no contacts found")
        return 200, {"result": result}

    def _search_sgql(self, call: ApiCall) -> tuple[int, Any]:
        """``POST /v3/marketing/contacts/search``: only ``email = '...'`` of SGQL is simulated."""
        state = call.state
        query = _json_object(call.body).get("query")
        match = SGQL_EMAIL_EQUALS.match(query) if isinstance(query, str) else None
        if match is None:
            raise ApiError(400, [{"field": "query", "message": "only email = '...' queries are simulated"}])
        email = match.group(1).replace("''", "'")
        with state.lock:
            state.process_jobs()
            contact = state.contacts.get(email)  # stored lower-case; SGQL compares as given
            found = [_public_contact(contact)] if contact is not None and state.searchable(email) else []
        return 200, {"result": found, "contact_count": len(found), "_metadata": {}}

    def _get_lists(self, call: ApiCall) -> tuple[int, Any]:
        query, state = call.query, call.state
        try:
            size = int(query.get("page_size", ["100"])[0])
        except ValueError:
            raise ApiError(400, [{"field": "page_size", "message": "page_size must be a number"}]) from None
        if not 1 <= size <= 1000:
            raise ApiError(400, [{"field": "page_size", "message": "page_size must be 1 to 1000"}])
        token = query.get("page_token", ["0"])[0] or "0"
        start = int(token) if token.isdigit() else 0
        with state.lock:
            state.process_jobs()
            items = list(state.lists.values())
            page = [{**m, "contact_count": state.contact_count(m["id"])} for m in items[start : start + size]]
        metadata: dict[str, Any] = {
            "self": f"{self._base()}/v3/marketing/lists?page_size={size}&page_token={start}",
            "count": len(items),
        }
        if start + size < len(items):
            metadata["next"] = f"{self._base()}/v3/marketing/lists?page_size={size}&page_token={start + size}"
        return 200, {"result": page, "_metadata": metadata}

    def _remove_from_list(self, call: ApiCall) -> tuple[int, Any]:
        query, state, list_id = call.query, call.state, call.ids[0]
        raw = query.get("contact_ids", [""])[0]
        ids = [i for i in raw.split(",") if i]
        if not ids:
            raise ApiError(400, [{"field": "contact_ids", "message": "contact_ids is required"}])
        if len(ids) > DELETE_CONTACT_IDS_MAX:
            raise ApiError(400, [{"field": "contact_ids", "message": f"at most {DELETE_CONTACT_IDS_MAX} ids"}])
        with state.lock:
            state.process_jobs()
            if list_id not in state.lists:
                raise ApiError(404, "list not found")
            known = {c["id"] for c in state.contacts.values()}
            if any(i not in known for i in ids):
                # The lists document: 404 when "one or more contact IDs do not exist".
                raise ApiError(404, "one or more contact IDs do not exist")
            job = Job(
                id=str(uuid.uuid4()),
                ready_at=time.time() + state.job_delay,
                contacts=list(dict.fromkeys(ids)),
                list_ids=[list_id],
                job_type="list_removal",
                started_at=_now_iso(),
            )
            for fault in state.faults:
                if fault.kind == "job_status" and fault.times > 0 and fault.method == "DELETE":
                    fault.times -= 1
                    job.forced_status = fault.job_status
                    break
            state.jobs[job.id] = job
            state._due.notify()
        return 202, {"job_id": job.id}

    # -- control endpoints ----------------------------------------------------------------------

    def _control(self, method: str, path: str, body: bytes) -> None:
        if path.startswith("/__sim/files/") and method == "GET":  # a download, not a JSON command
            self._errors_file(path)
            return
        expected = self.server.state.control_key
        given = self.headers.get(CONTROL_KEY_HEADER, "")
        if expected is not None and not secrets.compare_digest(given.encode(), expected.encode()):
            self._send(401, {"errors": [{"message": f"the control endpoints need the {CONTROL_KEY_HEADER} header"}]})
            return
        doc = json.loads(body) if body else {}
        handle = CONTROL_ROUTES.get((method, path))
        if handle is None:
            self._send(404, {"errors": [{"message": f"no control endpoint {method} {path}"}]})
        else:
            handle(self, doc)

    def _sim_state(self, doc: Any) -> None:
        self._send(200, self.server.state.snapshot())

    def _sim_reset(self, doc: Any) -> None:
        self.server.state.reset()
        self._send(200, {"ok": True})

    def _sim_add_faults(self, doc: Any) -> None:
        state = self.server.state
        faults = doc if isinstance(doc, list) else [doc]
        with state.lock:
            state.faults.extend(Fault(**f) for f in faults)
        self._send(200, {"ok": True, "faults": len(state.faults)})

    def _sim_clear_faults(self, doc: Any) -> None:
        state = self.server.state
        with state.lock:
            state.faults.clear()
        self._send(200, {"ok": True})

    def _sim_config(self, doc: Any) -> None:
        state = self.server.state
        with state.lock:
            if "rate_limit" in doc:
                state.rate_limit = doc["rate_limit"]
                state._windows.clear()
            state.rate_window = float(doc.get("rate_window", state.rate_window))
            state.job_delay = float(doc.get("job_delay", state.job_delay))
            if "pace" in doc:  # {"PUT /v3/marketing/contacts": {"limit": 1, "window": 1}}, or "production"
                pace = doc["pace"]
                state.pace = (
                    dict(PRODUCTION_PACE)
                    if pace == "production"
                    else {route: (int(spec["limit"]), float(spec.get("window", 1.0))) for route, spec in pace.items()}
                )
                state._windows.clear()
            state.job_seconds_per_contact = float(doc.get("job_seconds_per_contact", state.job_seconds_per_contact))
            state.status_shape = str(doc.get("status_shape", state.status_shape))
            if "contact_cap" in doc:
                state.contact_cap = None if doc["contact_cap"] is None else int(doc["contact_cap"])
            state.record_bodies = bool(doc.get("record_bodies", state.record_bodies))
            state.max_body_bytes = int(doc.get("max_body_bytes", state.max_body_bytes))
            state.too_large_status = int(doc.get("too_large_status", state.too_large_status))
            state.indexed_errors = bool(doc.get("indexed_errors", state.indexed_errors))
            state.errors_format = str(doc.get("errors_format", state.errors_format))
            state.search_lag = float(doc.get("search_lag", state.search_lag))
            state.removal_jobs_pollable = bool(doc.get("removal_jobs_pollable", state.removal_jobs_pollable))
            for key in doc.get("api_keys", []):
                state.api_keys[key] = list(ALL_SCOPES)
            for key, scopes in doc.get("scopes", {}).items():
                state.api_keys[key] = list(scopes)
        self._send(200, {"ok": True})

    def _sim_add_list(self, doc: Any) -> None:
        self._send(201, self.server.state.add_list(doc["name"], doc.get("id")))

    def _sim_add_custom_field(self, doc: Any) -> None:
        self._send(201, self.server.state.add_custom_field(doc["name"], doc["field_type"]))

    def _sim_requests(self, doc: Any) -> None:
        state = self.server.state
        with state.lock:
            self._send(200, {"requests": list(state.requests)})

    def _sim_add_contact(self, doc: Any) -> None:
        # A contact some other tool made (e.g. with an external_id), straight into the store.
        state = self.server.state
        with state.lock:
            contact = {**doc, "email": doc["email"].lower(), "id": state.new_contact_id()}
            state.set_lists(contact, frozenset(doc.get("list_ids", [])))
            state.contacts[contact["email"]] = contact
        self._send(201, _public_contact(contact))


@dataclass(frozen=True)
class ApiCall:
    """One request to the simulated API, as its route's handler sees it."""

    query: dict[str, list[str]]
    body: bytes
    state: SimState
    scopes: list[str]
    ids: tuple[str, ...]  # the variable parts of the path, in order


def _marketing(pattern: str) -> re.Pattern[str]:
    # Matched as the path with its outer slashes stripped was (before the table) compared.
    return re.compile(r"/*v3/marketing/" + pattern + r"/*")


# SendGrid's API: method and path pattern -> handler. A path that matches none is a 404.
API_ROUTES: list[tuple[str, re.Pattern[str], Callable[[Handler, ApiCall], tuple[int, Any]]]] = [
    ("GET", re.compile(r"/v3/scopes"), Handler._scopes),
    ("PUT", _marketing("contacts"), Handler._upsert),
    ("GET", _marketing(r"contacts/imports/([^/]+)"), Handler._import_status),
    ("GET", _marketing("contacts/count"), Handler._contact_count),
    ("POST", _marketing("contacts/search/emails"), Handler._search_emails),
    ("POST", _marketing("contacts/search"), Handler._search_sgql),
    ("GET", _marketing("lists"), Handler._get_lists),
    ("POST", _marketing("lists"), Handler._create_list),
    ("GET", _marketing(r"lists/([^/]+)"), Handler._get_list),
    ("DELETE", _marketing(r"lists/([^/]*)/contacts"), Handler._remove_from_list),
    ("GET", _marketing("field_definitions"), Handler._field_definitions),
]

# The simulator's own control endpoints (behind its control key, where set): method and exact path
# -> handler of the JSON body.
CONTROL_ROUTES: dict[tuple[str, str], Callable[[Handler, Any], None]] = {
    ("GET", "/__sim/state"): Handler._sim_state,
    ("POST", "/__sim/reset"): Handler._sim_reset,
    ("POST", "/__sim/faults"): Handler._sim_add_faults,
    ("DELETE", "/__sim/faults"): Handler._sim_clear_faults,
    ("POST", "/__sim/config"): Handler._sim_config,
    ("POST", "/__sim/lists"): Handler._sim_add_list,
    ("POST", "/__sim/field_definitions"): Handler._sim_add_custom_field,
    ("GET", "/__sim/requests"): Handler._sim_requests,
    ("POST", "/__sim/contacts"): Handler._sim_add_contact,
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _route_key(method: str, path: str) -> str:
    # One rate-limit bucket per endpoint, ids folded: SendGrid limits per endpoint.
    parts = ["{id}" if len(p) >= 20 or p.isdigit() else p for p in path.strip("/").split("/")]
    return method + " /" + "/".join(parts)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, [{"field": None, "message": "invalid JSON"}]) from None
    if not isinstance(doc, dict):
        raise ApiError(400, [{"field": None, "message": "the body must be a JSON object"}])
    return doc


def _contact_errors(
    i: int, contact: Any, custom_defs: dict[str, dict[str, Any]], rejected: set[str]
) -> list[dict[str, Any]]:
    # Called for every contact of every batch: only the fields a contact has are looked at.
    if type(contact) is not dict:
        return [{"field": f"contacts[{i}]", "message": "contact must be an object"}]
    errors: list[dict[str, Any]] = []
    has_identifier = False
    for key, value in contact.items():
        limit = _STRING_LIMITS.get(key)
        if limit is not None:
            if type(value) is not str:
                errors.append({"field": f"contacts[{i}].{key}", "message": "must be a string"})
                continue
            if len(value) > limit:
                errors.append({"field": f"contacts[{i}].{key}", "message": f"must be at most {limit} characters"})
            if value and key in IDENTIFIERS:
                has_identifier = True
        elif key == "alternate_emails":
            if (
                not isinstance(value, list)
                or len(value) > 5
                or not all(isinstance(a, str) and len(a) <= 254 and EMAIL_RE.match(a) for a in value)
            ):
                errors.append({"field": f"contacts[{i}].alternate_emails", "message": "at most 5 valid emails"})
        elif key == "custom_fields":
            errors.extend(_custom_field_errors(i, value, custom_defs))
        else:
            errors.append({"field": f"contacts[{i}].{key}", "message": "unknown field"})
    if not has_identifier:
        errors.append(
            {
                "field": f"contacts[{i}]",
                "message": "a contact needs an email, phone_number_id, external_id or anonymous_id",
            }
        )
    email = contact.get("email")
    if type(email) is str and email:
        if not EMAIL_RE.match(email):
            errors.append({"field": f"contacts[{i}].email", "message": "email is invalid"})
        elif rejected and email.lower() in rejected:
            errors.append({"field": f"contacts[{i}].email", "message": "email address is not deliverable"})
    return errors


def _custom_field_errors(i: int, custom: Any, custom_defs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    where = f"contacts[{i}].custom_fields"
    if not isinstance(custom, dict):
        return [{"field": where, "message": "must be an object"}]
    errors = []
    unknown = [k for k in custom if k not in custom_defs]
    if unknown:
        errors.append({"field": where, "message": "invalid custom field ids supplied - " + ",".join(unknown)})
    for key, value in custom.items():
        definition = custom_defs.get(key)
        if definition is None:
            continue
        kind = definition["field_type"]
        ok = (
            (kind == "Text" and isinstance(value, str) and len(value) <= 1000)
            or (kind == "Number" and isinstance(value, (int, float)) and not isinstance(value, bool))
            or (kind == "Date" and isinstance(value, str) and DATE_RE.match(value) is not None)
        )
        if not ok:
            errors.append({"field": f"{where}.{key}", "message": f"value is not a valid {kind}"})
    return errors


class SimServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: SimState):
        super().__init__(address, Handler)
        self.state = state

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.state.close()

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


def start(state: SimState, host: str = "127.0.0.1", port: int = 0) -> SimServer:
    """Start a simulator on a background thread; ``server.stop()`` stops it."""
    server = SimServer((host, port), state)
    state.base_url = server.base_url
    threading.Thread(target=server.serve_forever, name="sendgrid-simulator", daemon=True).start()
    return server


def _key_from(path: str | None, variable: str) -> str:
    if path:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    return os.environ.get(variable, "").strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key-file", help=f"a file holding the API key the simulator accepts (or ${API_KEY_ENV})")
    parser.add_argument(
        "--control-key-file",
        help=f"a file holding the key of the /__sim/ endpoints (or ${CONTROL_KEY_ENV}; else a random one, printed)",
    )
    parser.add_argument("--job-delay", type=float, default=0.2, help="seconds before an import job ends")
    args = parser.parse_args(argv)
    if not args.host.startswith("127.") and args.host not in ("localhost", "::1"):
        parser.error("the simulator only listens on loopback")
    api_key = _key_from(args.api_key_file, API_KEY_ENV)
    if not api_key:
        parser.error(f"give the API key in a file (--api-key-file) or in ${API_KEY_ENV}")
    control_key = _key_from(args.control_key_file, CONTROL_KEY_ENV)
    state = SimState([api_key], args.job_delay, control_key=control_key or secrets.token_urlsafe(24))
    server = SimServer((args.host, args.port), state)
    state.base_url = server.base_url
    print(f"PORT={server.server_address[1]}", flush=True)
    if not control_key:  # the one who started it reads its own output; nobody else sees it
        print(f"{CONTROL_KEY_HEADER}: {state.control_key}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
