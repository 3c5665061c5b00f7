"""Faults injected on request (``POST /__sim/faults``): what SendGrid does on a bad day.

A request fault answers in place of the API (a status, a 429 storm, a dropped connection, a slow
answer); the others change what the API does (refused addresses, jobs that end ``failed`` or
``errored``, searches that call addresses invalid or find stale ids).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


def take_request_fault(faults: list[Fault], method: str, path: str) -> Fault | None:
    """The request fault this request meets, counted as used; None if it passes."""
    for fault in faults:
        if fault.times > 0 and fault.kind in REQUEST_FAULTS and fault.matches(method, path):
            fault.seen += 1
            if fault.seen <= fault.after:
                continue
            fault.times -= 1
            return fault
    return None


def take_job_fault(faults: list[Fault], methods: tuple[str | None, ...]) -> Fault | None:
    """The first live ``job_status`` fault for a job started by one of ``methods``, counted as used."""
    for fault in faults:
        if fault.kind == "job_status" and fault.times > 0 and fault.method in methods:
            fault.times -= 1
            return fault
    return None


def fault_emails(faults: list[Fault], kind: str, *, live_only: bool = False) -> set[str]:
    """The addresses (lower-cased) the faults of ``kind`` name; ``live_only``: not used up."""
    return {e.lower() for f in faults if f.kind == kind and (f.times > 0 or not live_only) for e in f.emails}
