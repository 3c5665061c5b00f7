"""SendGrid's refusals get their type at the edge, from the status and SendGrid's own words."""

from __future__ import annotations

import pytest

from shared.adapters.sendgrid_errors import (
    BatchRefused,
    InvalidRequest,
    NamesContacts,
    NotFound,
    RateLimited,
    RequestTimeout,
    SendGridRefusal,
    TooLarge,
    refusal,
)
from shared.adapters.sendgrid_jobs import job_result
from shared.errors import SendGridAuthError


@pytest.mark.parametrize(
    ("status", "errors", "kind"),
    [
        (413, [], TooLarge),
        (400, [{"message": "request body too large"}], TooLarge),
        (400, [{"field": "contacts[2].email", "message": "email is invalid"}], NamesContacts),
        (400, [{"field": "list_ids[0]", "message": "list does not exist"}], BatchRefused),
        (400, [{"message": "something else"}], InvalidRequest),
        (404, [], NotFound),
        (408, [], RequestTimeout),
        (409, [], SendGridRefusal),
        (429, [], RateLimited),
        (401, [], SendGridAuthError),
    ],
)
def test_each_refusal_gets_the_type_the_run_branches_on(status, errors, kind):
    error = refusal("PUT /v3/marketing/contacts: SendGrid answered", status=status, errors=errors)
    assert type(error) is kind and error.status == status


def test_a_400_naming_contacts_carries_their_positions_and_one_too_large_names_none():
    named = refusal("x", status=400, errors=[{"field": "contacts[7].email", "message": "payload too large"}])
    assert isinstance(named, NamesContacts) and named.named == {7: "contacts[7].email: payload too large"}
    assert not isinstance(refusal("x", status=429), SendGridRefusal)  # a rate limit is waited for, not refused


@pytest.mark.parametrize(
    ("answer", "failed_for"),
    [
        # sendgrid/sendgrid-go issue 413: the words SendGrid fails a job with at the plan's cap
        ({"status": "failed", "errors": [{"message": "you have hit your contact limit"}]}, "contact_cap"),
        ({"status": "failed", "errors": {"message": "Contact Limit reached"}}, "contact_cap"),
        ({"status": "failed", "errors": [{"message": "internal error"}]}, "other"),
        ({"status": "failed"}, "other"),
        ({"status": "errored", "errors": [{"message": "you have hit your contact limit"}]}, None),
        ({"status": "completed"}, None),
    ],
)
def test_a_failed_jobs_reason_is_typed_at_the_edge_from_sendgrids_words(answer, failed_for):
    assert job_result("job-1", answer).failed_for == failed_for
