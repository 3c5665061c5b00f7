"""SendGrid's limits on contacts, lists and searches, and one validator per rule.

Each limit says where it comes from: SendGrid's OpenAPI documents (``tsg_mc_contacts_v3.json``,
``tsg_mc_lists_v3.json``, checked against these values by tests/contract) or, where they are
stricter, what production callers report. A validator answers a list of problems
(``{"field": ..., "message": ...}``), empty when the rule holds; the routes turn them into 400s.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

Problem = dict[str, Any]

MAX_CONTACTS = 30_000
CONTACT_LIMIT_MESSAGE = "you have hit your contact limit"
# The contacts document says 6 MB; production accounts refuse bodies over 4 MiB (the public project
# Stand-With-Crypto/swc-web cuts its upsert batches at 3.9 MB for this reason).
DOCUMENTED_MAX_BODY_BYTES = 6_000_000
MAX_BODY_BYTES = 4 * 1024 * 1024
SEARCH_EMAIL_MAX_LENGTH = 100  # search/emails: items maxLength
SEARCH_EMAILS_MAX = 100
DELETE_CONTACT_IDS_MAX = 100
# An upsert's 400 lists at most this many problems: a client learns what is wrong, not everything.
MAX_PROBLEMS = 100
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
IDENTIFIERS = frozenset(["email", "phone_number_id", "external_id", "anonymous_id"])
_STRING_LIMITS = {key: limit or sys.maxsize for key, limit in CONTACT_STRING_LIMITS.items()}
MAX_ALTERNATE_EMAILS = 5
MAX_TEXT_FIELD = 1000  # a Text custom field's value
# Ids as SendGrid numbers them ("_rf2_T" is email: sendgrid/sendgrid-java issue 692).
RESERVED_FIELDS: list[dict[str, Any]] = [
    {"id": f"_rf{i}_T", "name": n, "field_type": "Text"}
    for i, n in enumerate(
        (
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
    )
] + [
    {"id": "_rf13_D", "name": "created_at", "field_type": "Date", "read_only": True},
    {"id": "_rf14_D", "name": "updated_at", "field_type": "Date", "read_only": True},
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


def _problem(field: str | None, message: str) -> Problem:
    return {"field": field, "message": message}


# -- the upsert (PUT /v3/marketing/contacts) ---------------------------------------------------


def upsert_shape_problems(doc: dict[str, Any]) -> list[Problem]:
    """The body's own shape: known keys, 1 to 30,000 contacts (ContactRequest's maxItems)."""
    unknown = set(doc) - {"list_ids", "contacts"}
    if unknown:
        return [_problem(key, "unknown field") for key in sorted(unknown)]
    contacts = doc.get("contacts")
    if not isinstance(contacts, list) or not contacts:
        return [_problem("contacts", "contacts must be a non-empty array")]
    if len(contacts) > MAX_CONTACTS:
        return [_problem("contacts", f"at most {MAX_CONTACTS} contacts per request")]
    return []


def list_ids_shape_problems(list_ids: Any) -> list[Problem]:
    if not isinstance(list_ids, list) or not all(isinstance(i, str) for i in list_ids):
        return [_problem("list_ids", "list_ids must be an array of strings")]
    return []


def missing_list_problems(list_ids: list[str], lists: dict[str, Any]) -> list[Problem]:
    return [_problem(f"list_ids[{i}]", "list does not exist") for i, lid in enumerate(list_ids) if lid not in lists]


def contacts_problems(
    contacts: list[Any], custom_defs: dict[str, dict[str, Any]], rejected: set[str], so_far: list[Problem]
) -> list[Problem]:
    """``so_far`` and then each contact's problems, until there are ``MAX_PROBLEMS``."""
    problems = list(so_far)
    for i, contact in enumerate(contacts):
        problems.extend(contact_problems(i, contact, custom_defs, rejected))
        if len(problems) >= MAX_PROBLEMS:
            break
    return problems


def without_positions(problems: list[Problem]) -> list[Problem]:
    """Positions (``contacts[3].email``) are documented nowhere: by default a 400 says what is
    wrong, not where, so that a client cannot come to depend on it."""
    per_contact = [p for p in problems if str(p["field"]).startswith("contacts[")]
    if not per_contact:
        return problems
    others = [p for p in problems if p not in per_contact]
    return [*others, _problem(None, per_contact[0]["message"])]


def contact_problems(i: int, contact: Any, custom_defs: dict[str, dict[str, Any]], rejected: set[str]) -> list[Problem]:
    # Called for every contact of every batch: only the fields a contact has are looked at, and a
    # field's name ("contacts[3].email") is made only for a problem.
    if type(contact) is not dict:
        return [_problem(f"contacts[{i}]", "contact must be an object")]
    problems: list[Problem] = []
    identified = False  # the contacts document: one of the identifiers, given as a string
    for key, value in contact.items():
        limit = _STRING_LIMITS.get(key)
        if limit is None:
            problems.extend(_other_field_problems(f"contacts[{i}].{key}", key, value, custom_defs))
        elif type(value) is not str:
            problems.append(_problem(f"contacts[{i}].{key}", "must be a string"))
        else:
            if len(value) > limit:
                problems.append(_problem(f"contacts[{i}].{key}", f"must be at most {limit} characters"))
            if value and key in IDENTIFIERS:
                identified = True
    if not identified:
        problems.append(
            _problem(f"contacts[{i}]", "a contact needs an email, phone_number_id, external_id or anonymous_id")
        )
    email = contact.get("email")
    if type(email) is str and email:
        problems.extend(_email_problems(i, email, rejected))
    return problems


def _email_problems(i: int, email: str, rejected: set[str]) -> list[Problem]:
    if not EMAIL_RE.match(email):
        return [_problem(f"contacts[{i}].email", "email is invalid")]
    if rejected and email.lower() in rejected:  # a reject_email fault: SendGrid refuses the address
        return [_problem(f"contacts[{i}].email", "email address is not deliverable")]
    return []


def _other_field_problems(field: str, key: str, value: Any, custom_defs: dict[str, dict[str, Any]]) -> list[Problem]:
    if key == "alternate_emails":
        return _alternate_email_problems(field, value)
    if key == "custom_fields":
        return custom_field_problems(field, value, custom_defs)
    return [_problem(field, "unknown field")]


def _alternate_email_problems(field: str, value: Any) -> list[Problem]:
    if (
        not isinstance(value, list)
        or len(value) > MAX_ALTERNATE_EMAILS
        or not all(isinstance(a, str) and len(a) <= 254 and EMAIL_RE.match(a) for a in value)
    ):
        return [_problem(field, "at most 5 valid emails")]
    return []


# A custom field's value, by its field_type (field_definitions document: Text, Number, Date).
_CUSTOM_VALUE_RULES: dict[str, Callable[[Any], bool]] = {
    "Text": lambda value: isinstance(value, str) and len(value) <= MAX_TEXT_FIELD,
    "Number": lambda value: isinstance(value, int | float) and not isinstance(value, bool),
    "Date": lambda value: isinstance(value, str) and DATE_RE.match(value) is not None,
}


def custom_field_problems(where: str, custom: Any, custom_defs: dict[str, dict[str, Any]]) -> list[Problem]:
    if not isinstance(custom, dict):
        return [_problem(where, "must be an object")]
    problems = []
    unknown = [k for k in custom if k not in custom_defs]
    if unknown:
        problems.append(_problem(where, "invalid custom field ids supplied - " + ",".join(unknown)))
    for key, value in custom.items():
        definition = custom_defs.get(key)
        if definition is None:
            continue
        kind = definition["field_type"]
        rule = _CUSTOM_VALUE_RULES.get(kind)
        if rule is None or not rule(value):
            problems.append(_problem(f"{where}.{key}", f"value is not a valid {kind}"))
    return problems


# -- search/emails (POST /v3/marketing/contacts/search/emails) ---------------------------------


def search_request_problems(emails: Any) -> list[Problem]:
    """At most 100 addresses (the document's description), each a string."""
    if not isinstance(emails, list) or not emails or not all(isinstance(e, str) for e in emails):
        return [_problem("emails", "emails must be a non-empty array of strings")]
    if len(emails) > SEARCH_EMAILS_MAX:
        return [_problem("emails", f"at most {SEARCH_EMAILS_MAX} emails")]
    return []


def search_email_invalid(email: str) -> bool:
    """An address over the items' ``maxLength``, or not an address: the whole search is a 400
    ("if any address is invalid", the document's description). An empty one is skipped."""
    return len(email) > SEARCH_EMAIL_MAX_LENGTH or bool(email and not EMAIL_RE.match(email))


# -- list removals (DELETE /v3/marketing/lists/{id}/contacts) ---------------------------------


def contact_ids_problems(ids: list[str]) -> list[Problem]:
    if not ids:
        return [_problem("contact_ids", "contact_ids is required")]
    if len(ids) > DELETE_CONTACT_IDS_MAX:
        return [_problem("contact_ids", f"at most {DELETE_CONTACT_IDS_MAX} ids")]
    return []
