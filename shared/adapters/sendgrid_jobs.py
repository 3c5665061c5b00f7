"""SendGrid's import jobs as the client reports them: a job's status (a ``Literal``), its counts,
SendGrid's words on a failure and what they mean (a ``Literal`` too, so the run branches on the
reason, never on the words), read from ``GET /v3/marketing/contacts/imports/{id}``; and following
many jobs until they end (:class:`JobWatch`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from shared.errors import SendGridError
from shared.json_input import JsonObject

# An import job's status: SendGrid's (pending, completed, errored, failed); ours: timeout (not
# ended by the deadline) and unknown (the status could not be learned).
JobStatus = Literal["pending", "completed", "errored", "failed", "timeout", "unknown"]
JOB_END_STATES: frozenset[JobStatus] = frozenset({"completed", "errored", "failed"})
_SENDGRID_JOB_STATES: frozenset[str] = frozenset({"pending", "completed", "errored", "failed"})
# Why a job failed, as far as SendGrid's words tell: the plan's contact cap, or anything else.
JobFailure = Literal["contact_cap", "other"]
# SendGrid's words when a job fails for the plan's contact storage (sendgrid/sendgrid-go issue 413).
_CONTACT_CAP_WORDS = re.compile(r"contact limit", re.IGNORECASE)


# Import status results, as documented (snake_case) and as some answers spell them (camelCase).
_RESULT_NAMES = {
    "requested": ("requested_count", "requestedCount"),
    "created": ("created_count", "createdCount"),
    "updated": ("updated_count", "updatedCount"),
    "errored": ("errored_count", "erroredCount"),
    "errors_url": ("errors_url", "errorsUrl"),
}


def _result(results: Mapping[str, Any], name: str) -> Any:
    for spelling in _RESULT_NAMES[name]:
        if results.get(spelling) is not None:
            return results[spelling]
    return None


@dataclass
class JobResult:
    job_id: str
    status: JobStatus
    requested: int = 0
    created: int = 0
    updated: int = 0
    errored: int = 0
    errors_url: str | None = None
    raw: JsonObject = field(default_factory=dict)
    error: str | None = None  # why the status could not be learned (status ``unknown``)
    error_status: int | None = None  # and SendGrid's answer then, if it gave one
    job_type: str | None = None  # "upsert" as documented, "upsert_contacts" in production
    failure: str | None = None  # SendGrid's own words on a failed job (its "errors" messages)
    failed_for: JobFailure | None = None  # what those words mean; None unless the job failed


def _job_status(value: object) -> JobStatus:
    """SendGrid's word for a job's state; one it has not documented is taken as not ended yet."""
    status = str(value or "").lower()
    return cast(JobStatus, status) if status in _SENDGRID_JOB_STATES else "pending"


def _job_failure(answer: Mapping[str, Any]) -> str | None:
    """SendGrid's words on why a job failed, if it says (``errors``: messages, or one object)."""
    errors = answer.get("errors")
    if isinstance(errors, dict):
        errors = [errors]
    if not isinstance(errors, list):
        return None
    words = [str(e.get("message")) for e in errors if isinstance(e, dict) and e.get("message")]
    return "; ".join(words)[:500] or None


def _failed_for(status: JobStatus, failure: str | None) -> JobFailure | None:
    if status != "failed":
        return None
    return "contact_cap" if failure and _CONTACT_CAP_WORDS.search(failure) else "other"


def job_result(job_id: str, answer: JsonObject) -> JobResult:
    """The job's status answer as a :class:`JobResult`; its counts are an outcome only once it has ended."""
    results = answer.get("results") or {}
    try:
        url = _result(results, "errors_url")
        job_type = answer.get("job_type", answer.get("jobType"))
        status, failure = _job_status(answer.get("status")), _job_failure(answer)
        return JobResult(
            job_id=job_id,
            status=status,
            requested=int(_result(results, "requested") or 0),
            created=int(_result(results, "created") or 0),
            updated=int(_result(results, "updated") or 0),
            errored=int(_result(results, "errored") or 0),
            errors_url=url if isinstance(url, str) else None,
            raw=answer,
            job_type=str(job_type) if job_type is not None else None,
            failure=failure,
            failed_for=_failed_for(status, failure),
        )
    except (AttributeError, TypeError, ValueError):
        raise SendGridError(f"the status of job {job_id[:64]} is not in the documented shape.") from None


class JobWatch:
    """Following import jobs until they end (:class:`shared.adapters.sendgrid.SendGridClient` does):
    each polled with its own backoff, all against one deadline."""

    _clock: Callable[[], float]
    _sleep: Callable[[float], None]

    def import_status(self, job_id: str) -> JobResult:
        raise NotImplementedError  # the client's own

    def wait_for_jobs(
        self,
        job_ids: list[str],
        *,
        deadline: float,
        interval: float = 0.25,
        max_interval: float = 30.0,
        on_end: Callable[[JobResult], None] | None = None,
        tick: Callable[[], None] | None = None,
    ) -> dict[str, JobResult]:
        """Follow many jobs at once, against one deadline (epoch seconds): each job is polled
        with its own backoff until it ends. A job still running at the deadline is ``timeout``;
        one whose status cannot be read is ``unknown`` (``error`` says why). ``on_end`` is told
        each job's result as it comes (so a caller can act on it at once); ``tick`` is called
        between polls."""
        results: dict[str, JobResult] = {}

        def ended(result: JobResult) -> None:
            results[result.job_id] = result
            if on_end is not None:
                on_end(result)

        due = dict.fromkeys(job_ids, self._clock())
        gaps = dict.fromkeys(job_ids, interval)
        while due:
            now = self._clock()
            for job_id in [j for j, at in due.items() if at <= now]:
                if self._clock() >= deadline:
                    break  # the deadline passed while polling: what is left is "timeout" below
                try:
                    result = self.import_status(job_id)
                except SendGridError as exc:
                    result = JobResult(job_id=job_id, status="unknown", error=str(exc), error_status=exc.status)
                if result.status in JOB_END_STATES or result.status == "unknown":
                    del due[job_id]
                    ended(result)
                    continue
                due[job_id] = self._clock() + gaps[job_id]
                gaps[job_id] = min(max_interval, gaps[job_id] * 1.5)
            if not due:
                break
            now = self._clock()
            if now >= deadline:
                for job_id in due:
                    ended(JobResult(job_id=job_id, status="timeout"))
                break
            if tick is not None:
                tick()
            self._sleep(max(0.0, min(min(due.values()), deadline) - now))
        return results
