"""The SendGrid Marketing Campaigns client: the few calls an export needs, on ``requests``.

Retries live here and nowhere else: 429 waits for the reset SendGrid names; 5xx, timeouts and
dropped connections back off with jitter, a bounded number of times; any other 4xx fails at once
with SendGrid's own message. No wait outlasts the client's ``deadline`` (the run's). The API key
is sent in a header and never appears in an exception, a log line or a returned value; the
pre-signed errors file of an import job is fetched without it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests

from shared.adapters.downloads import Limits, host_policy
from shared.adapters.retry import RETRYABLE_STATUSES, RetryPolicy
from shared.adapters.sendgrid_answers import answer_error_text, answer_errors, answer_json, next_page_token, path_id
from shared.adapters.sendgrid_bulk import BulkCalls
from shared.adapters.sendgrid_errors import RateLimited, refusal
from shared.adapters.sendgrid_jobs import JobResult, JobWatch, job_result
from shared.adapters.wallclock import WallClockAdapter
from shared.errors import SendGridError
from shared.json_input import JsonObject
from shared.privacy import register_secret

log = logging.getLogger(__name__)

USER_AGENT = "sendgrid-segment-export/1.0"
# An import job's errors file: a pre-signed link, read with these bounds (it lists at most one
# row per contact of a batch, a few MB).
ERRORS_FILE_MAX_BYTES = 32 * 1024 * 1024
ERRORS_FILE_READ_TIMEOUT = 30.0  # connecting, and each read
ERRORS_FILE_SECONDS = 60.0  # the whole download, wall-clock, however the server sends
ANSWER_MAX_BYTES = 64 * 1024 * 1024  # SendGrid's largest answers (a page of 1,000 lists) are far smaller
SEARCH_EMAIL_MAX_LENGTH = 100  # search/emails: each address at most 100 characters (maxLength)


class RequestPace(Protocol):
    """Paces requests per endpoint (``METHOD /route/{id}``): :meth:`before` waits for a place
    (and raises past ``deadline``), :meth:`after` is told every answer's status and headers
    (``status`` None: none came). See :mod:`shared.run.send.pace`."""

    def before(self, endpoint: str, deadline: float | None) -> None: ...

    def after(self, endpoint: str, status: int | None, headers: Mapping[str, str]) -> None: ...


class NoPace:
    """No budget: a request goes at once (``check``, and runs that set none)."""

    def before(self, endpoint: str, deadline: float | None) -> None:
        pass

    def after(self, endpoint: str, status: int | None, headers: Mapping[str, str]) -> None:
        pass


def endpoint_of(method: str, path: str) -> str:
    """The endpoint a request counts against: its method and route, ids folded (SendGrid limits
    per endpoint): ``GET /v3/marketing/contacts/imports/{id}``."""
    parts = ["{id}" if len(p) >= 20 or p.isdigit() else p for p in path.strip("/").split("/")]
    return method + " /" + "/".join(parts)


@dataclass
class CallStats:
    """What one logical call cost: attempts (first try included) and 429 waits."""

    attempts: int = 0
    rate_limited: int = 0


@dataclass(frozen=True)
class ClientTuning:
    """How a client retries, how long one call may take, and where an errors file may come from."""

    policy: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: tuple[float, float] = (10.0, 120.0)  # (connect, read) of each call
    # Hosts an import's errors file may be fetched from, beyond SendGrid's own and the API's origin.
    errors_file_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Call:
    """One request to SendGrid, as :meth:`SendGridClient._send` makes it: ``expect``, the statuses
    that answer it; ``data``, a JSON body already encoded."""

    method: str
    path: str
    expect: tuple[int, ...]
    params: JsonObject | None = None
    data: bytes | None = None


class SendGridClient(BulkCalls, JobWatch):
    user_agent = USER_AGENT

    def __init__(
        self,
        base_url: str,
        api_key: str,
        tuning: ClientTuning | None = None,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ):
        tuning = tuning or ClientTuning()
        self._base = base_url.rstrip("/")
        # Where an errors file may be fetched from: SendGrid's hosts, these, and the API's own origin.
        self._file_hosts = host_policy(tuning.errors_file_hosts, self._base)
        # Epoch second past which no call waits or retries (set by the run); None: no bound.
        self.deadline: float | None = None
        register_secret(api_key)  # so that SendGrid quoting it back never carries it on (answer_errors)
        self._session = session or requests.Session()
        # Each call ends by its connect + read timeout, however slowly an answer comes, and no
        # answer is held past ANSWER_MAX_BYTES (see shared.adapters.wallclock).
        self._session.mount(self._base + "/", WallClockAdapter(ANSWER_MAX_BYTES))
        self._session.headers.update(
            {
                "Authorization": f"Bearer {api_key}",
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
            }
        )
        self._policy = tuning.policy
        self._timeout = tuning.timeout
        self._sleep = sleep
        self._clock = clock
        # Shared by every thread of the run (set by the run; see shared.run.send.pace).
        self.pace: RequestPace = NoPace()

    def close(self) -> None:
        self._session.close()

    # -- the calls ---------------------------------------------------------------------------

    def upsert_contacts(self, body: bytes) -> tuple[str, CallStats]:
        """``PUT /v3/marketing/contacts`` with a prepared body; returns the import job id."""
        stats = CallStats()
        answer = self._send(Call("PUT", "/v3/marketing/contacts", (202,), data=body), stats)
        job_id = answer.get("job_id")
        if not isinstance(job_id, str) or not job_id:
            raise SendGridError("SendGrid accepted the batch but returned no job_id.", status=202)
        return job_id, stats

    def import_status(self, job_id: str) -> JobResult:
        """A job's status. Its counts are an outcome only once it has ended: production answers
        them while ``pending`` too, as a partial tally, which a caller must not count."""
        answer = self._call("GET", f"/v3/marketing/contacts/imports/{path_id(job_id)}", expect=(200,))
        return job_result(job_id, answer)

    def contact_count(self) -> int:
        """The account's contacts (``GET /v3/marketing/contacts/count``): what the plan's cap counts."""
        answer = self._call("GET", "/v3/marketing/contacts/count", expect=(200,))
        count = answer.get("contact_count")
        if type(count) is not int or count < 0:
            raise SendGridError("the contact count is not in the documented shape.")
        return count

    def download_errors_file(self, url: str) -> bytes:
        """An import job's ``errors_url``: a pre-signed link, fetched WITHOUT the API key, only
        from a host SendGrid serves files from (or the API's own origin, for a local stand-in),
        bounded in size and in wall-clock time (see :mod:`shared.adapters.downloads`)."""
        limits = Limits(ERRORS_FILE_MAX_BYTES, ERRORS_FILE_SECONDS, ERRORS_FILE_READ_TIMEOUT)
        return self._fetch_signed(url, limits, what="the errors file")

    def iter_lists(self) -> Iterator[JsonObject]:
        params: JsonObject = {"page_size": 1000}
        while True:
            answer = self._call("GET", "/v3/marketing/lists", params=params, expect=(200,))
            yield from answer.get("result") or []
            token = next_page_token(answer)
            if not token:
                return
            params = {"page_size": 1000, "page_token": token}

    def get_list(self, list_id: str) -> JsonObject | None:
        try:
            return self._call("GET", f"/v3/marketing/lists/{path_id(list_id)}", expect=(200,))
        except SendGridError as exc:
            if exc.status == 404:
                return None
            raise

    def create_list(self, name: str) -> JsonObject:
        return self._call("POST", "/v3/marketing/lists", json_body={"name": name}, expect=(200, 201))

    def search_emails(self, emails: list[str]) -> dict[str, str]:
        """Contact ids by email, for up to 100 emails (``POST /v3/marketing/contacts/search/emails``).
        A 404 means none of them is a contact; a 400 (an address SendGrid finds invalid) raises."""
        try:
            answer = self._call(
                "POST", "/v3/marketing/contacts/search/emails", json_body={"emails": emails}, expect=(200,)
            )
        except SendGridError as exc:
            if exc.status == 404:  # none of them is a contact
                return {}
            raise
        found: dict[str, str] = {}
        result = answer.get("result")
        for email, item in (result if isinstance(result, dict) else {}).items():
            contact = item.get("contact") if isinstance(item, dict) else None
            # Search also matches alternate emails: only a contact whose own email this is counts,
            # or a departed address that is now someone's alternate would take that person off.
            if (
                isinstance(contact, dict)
                and contact.get("id")
                and str(contact.get("email", "")).lower() == email.lower()
            ):
                found[email.lower()] = str(contact["id"])
        return found

    def search_email_by_query(self, email: str) -> str | None:
        """The contact id of one email through SGQL (``POST /v3/marketing/contacts/search``): for
        addresses search/emails cannot take (over 100 characters). Emails are stored lower-case."""
        literal = email.lower().replace("'", "''")
        answer = self._call(
            "POST", "/v3/marketing/contacts/search", json_body={"query": f"email = '{literal}'"}, expect=(200,)
        )
        for contact in answer.get("result") or []:
            if isinstance(contact, dict) and str(contact.get("email", "")).lower() == email.lower():
                return str(contact.get("id")) if contact.get("id") else None
        return None

    def remove_from_list(self, list_id: str, contact_ids: list[str]) -> str | None:
        """``DELETE /v3/marketing/lists/{id}/contacts``: the contacts stay, only the membership
        goes. Returns the removal job's id (follow it with :meth:`wait_for_jobs`)."""
        answer = self._call(
            "DELETE",
            f"/v3/marketing/lists/{path_id(list_id)}/contacts",
            params={"contact_ids": ",".join(contact_ids)},
            expect=(200, 202, 204),
        )
        job_id = answer.get("job_id")
        return str(job_id) if job_id else None

    def scopes(self) -> list[str]:
        return [str(s) for s in self._call("GET", "/v3/scopes", expect=(200,)).get("scopes") or []]

    def field_definitions(self) -> JsonObject:
        return self._call("GET", "/v3/marketing/field_definitions", expect=(200,))

    # -- the transport -----------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: JsonObject | None = None,
        json_body: Any = None,
        expect: tuple[int, ...],
    ) -> JsonObject:
        data = None if json_body is None else json.dumps(json_body, separators=(",", ":")).encode()
        return self._send(Call(method, path, expect, params, data), CallStats())

    def _send(self, call: Call, stats: CallStats) -> JsonObject:
        """``call``, retried as the module says; ``stats`` counts its attempts and 429 waits."""
        method, path = call.method, call.path
        timeout = self._timeout_within_deadline(method, path)
        headers = {"Content-Type": "application/json"} if call.data is not None else None
        failures = 0
        endpoint = endpoint_of(method, path)
        while True:
            stats.attempts += 1
            self.pace.before(endpoint, self.deadline)
            try:
                response = self._session.request(
                    method, self._base + path, params=call.params, data=call.data, headers=headers, timeout=timeout
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                self.pace.after(endpoint, None, {})
                failures += 1
                self._back_off_unreached(method, path, failures, type(exc).__name__)
                continue
            except BaseException:
                self.pace.after(endpoint, None, {})
                raise
            status = response.status_code
            self.pace.after(endpoint, status, response.headers)
            if status in call.expect:
                return answer_json(response)
            if status == 429:
                self._wait_for_rate_limit(method, path, response, stats)
            elif status in RETRYABLE_STATUSES:
                failures += 1
                self._back_off_failed(method, path, failures, response)
            else:
                raise _refusal(method, path, response)

    def _timeout_within_deadline(self, method: str, path: str) -> tuple[float, float]:
        """The client's timeouts, cut so that no single call outlasts the run's deadline either."""
        if self.deadline is None:
            return self._timeout
        left = self.deadline - self._clock()
        if left <= 0:
            raise SendGridError(f"{method} {path}: not sent; the run's deadline has passed.")
        return (min(self._timeout[0], left), min(self._timeout[1], left))

    def _back_off_unreached(self, method: str, path: str, failures: int, why: str) -> None:
        if failures >= self._policy.max_attempts:
            # Raised while the transport error is handled: from None keeps it (its URL) out of tracebacks.
            raise SendGridError(
                f"{method} {path}: SendGrid could not be reached after {failures} attempts ({why})."
            ) from None
        delay = self._policy.backoff(failures)
        self._within_deadline(method, path, delay, why)
        log.warning("%s %s: %s; retrying in %.1fs", method, path, why, delay)
        self._sleep(delay)

    def _back_off_failed(self, method: str, path: str, failures: int, response: requests.Response) -> None:
        status = response.status_code
        if failures >= self._policy.max_attempts:
            raise SendGridError(
                f"{method} {path}: SendGrid answered {status} {failures} times: {answer_error_text(response)}",
                status=status,
                errors=answer_errors(response),
            )
        delay = self._policy.backoff(failures)
        self._within_deadline(method, path, delay, f"SendGrid answered {status}", status)
        log.warning("%s %s: SendGrid answered %d; retrying in %.1fs", method, path, status, delay)
        self._sleep(delay)

    def _wait_for_rate_limit(self, method: str, path: str, response: requests.Response, stats: CallStats) -> None:
        stats.rate_limited += 1
        if stats.rate_limited > self._policy.max_rate_limited:
            raise RateLimited(
                f"{method} {path}: still rate limited (429) after {stats.rate_limited} waits.",
                status=429,
            )
        wait = self._policy.rate_limit_wait(response.headers, self._clock())
        self._within_deadline(method, path, wait, "rate limited (429)")
        log.info("%s %s: rate limited; waiting %.1fs for the reset", method, path, wait)
        self._sleep(wait)

    def _within_deadline(self, method: str, path: str, wait: float, why: str, status: int | None = None) -> None:
        if self.deadline is not None and self._clock() + wait > self.deadline:
            message = f"{method} {path}: {why}; waiting {wait:.0f}s more would pass the run's deadline."
            raise RateLimited(message, status=429) if status == 429 else SendGridError(message, status=status)


def _refusal(method: str, path: str, response: requests.Response) -> SendGridError:
    """The error for an answer no retry can change: any 4xx but 429, with SendGrid's own words."""
    status = response.status_code
    message = f"{method} {path}: SendGrid answered {status}: {answer_error_text(response)}"
    if status in (401, 403):
        message += (
            " Check that the API key in the secret store is current and was made "
            "with Marketing: Full Access (Settings > API Keys > Restricted Access)."
        )
    return refusal(message, status=status, errors=answer_errors(response))
