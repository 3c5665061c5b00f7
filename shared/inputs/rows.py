"""The row rules: one source row in, one SendGrid contact (or a reason to reject it) out.

Kept free of I/O and tuned for the hot path: a million rows pass through :meth:`RowRules.apply`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.inputs.mapping import ColumnPlan
from shared.json_input import JsonObject
from shared.privacy import redact

# SendGrid's maximum lengths for reserved fields (ContactRequest in the Contacts OpenAPI document).
FIELD_LIMITS: dict[str, int] = {
    "first_name": 50,
    "last_name": 50,
    "address_line_1": 100,
    "address_line_2": 100,
    "city": 60,
    "state_province_region": 50,
    "country": 50,
}
# Identifiers are never cut: a cut identifier would name another contact.
IDENTIFIER_LIMITS: dict[str, int] = {"external_id": 254, "phone_number_id": 254}
EMAIL_MAX = 254
MAX_ALTERNATE_EMAILS = 5
TEXT_CUSTOM_FIELD_MAX = 1000
# A Number is checked in time linear in its length only while its digits and exponent are
# bounded: ``int(Decimal("1e1000000"))`` alone takes most of a minute. No real number needs more
# characters than this, and a double cannot hold a power of ten past 308.
NUMBER_MAX_CHARS = 100
_DOUBLE_MAX_EXPONENT = 308

# A pragmatic address check: an ASCII local part of at most 64 characters (RFC 5321; SendGrid
# refuses longer ones inside a whole batch), then a dotted domain with a 2+ letter TLD.
EMAIL_PATTERN = re.compile(
    r"^(?=[^@]{1,64}@)[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
)
_ALTERNATE_SPLIT = re.compile(r"[,;\s]+")
# Lone surrogates are what undecodable bytes become when a segment file is read.
_UNDECODABLE = re.compile("[\udc80-\udcff]")


@dataclass(frozen=True)
class CustomFieldDef:
    """A SendGrid custom field resolved from its name: its id and type (Text, Number, Date)."""

    name: str
    id: str
    field_type: str


class RowRules:
    """Apply PRODUCT.md's row rules for one file's column plan."""

    def __init__(
        self, plan: ColumnPlan, custom_fields: dict[str, CustomFieldDef] | None = None, encoding: str = "UTF-8"
    ):
        self._encoding = encoding
        self._email = plan.email
        self._width = plan.width
        self._plain: list[tuple[str, int, int]] = []
        self._identifiers: list[tuple[str, int, int]] = []
        self._alternate: int | None = None
        for name, idx in plan.fields:
            if name == "alternate_emails":
                self._alternate = idx
            elif name in IDENTIFIER_LIMITS:
                self._identifiers.append((name, idx, IDENTIFIER_LIMITS[name]))
            else:
                self._plain.append((name, idx, FIELD_LIMITS.get(name, 0)))
        defs = custom_fields or {}
        self._custom = [(defs[name], idx) for name, idx in plan.custom_fields if name in defs]

    @property
    def email_at(self) -> int:
        """The email's column: a rejected row is named by it."""
        return self._email

    def apply(
        self, fields: list[str], may_be_undecodable: bool = True
    ) -> tuple[JsonObject | None, str, bool, list[tuple[str, str]]]:
        """``(contact, reason, truncated, field_rejects)``; contact is None when the row is invalid.

        ``may_be_undecodable=False`` skips looking for undecodable bytes, for a reader that knows
        its record has none.
        """
        if len(fields) != self._width:
            return None, f"ragged row: {len(fields)} fields where the header has {self._width}", False, []
        if may_be_undecodable and (reason := self.undecodable(fields)):
            return None, reason, False, []
        email = fields[self._email].strip().lower()
        if not email:
            return None, "missing email", False, []
        if len(email) > EMAIL_MAX or not EMAIL_PATTERN.match(email):
            return None, "invalid email address", False, []
        contact: JsonObject = {"email": email}
        truncated = False
        rejects: list[tuple[str, str]] = []
        for name, idx, limit in self._plain:
            value = fields[idx].strip()
            if not value:
                continue
            if limit and len(value) > limit:
                value = value[:limit].rstrip()
                truncated = True
            contact[name] = value
        for name, idx, limit in self._identifiers:
            value = fields[idx].strip()
            if not value:
                continue
            if len(value) > limit:
                rejects.append((name, f"longer than {limit} characters; not sent"))
                continue
            contact[name] = value
        if self._alternate is not None:
            alternates, alt_truncated, alt_rejects = _alternate_emails(fields[self._alternate], email)
            if alternates:
                contact["alternate_emails"] = alternates
            truncated = truncated or alt_truncated
            rejects.extend(alt_rejects)
        if self._custom:
            truncated = self._add_custom_fields(contact, fields, rejects) or truncated
        return contact, "", truncated, rejects

    def _add_custom_fields(self, contact: JsonObject, fields: list[str], rejects: list[tuple[str, str]]) -> bool:
        """Put the row's custom fields, each coerced to its SendGrid type, in ``contact``; one
        that cannot be goes to ``rejects``. Returns whether a value was cut to its length."""
        custom: JsonObject = {}
        truncated = False
        for definition, idx in self._custom:
            value = fields[idx].strip()
            if not value:
                continue
            coerced, problem, cut = coerce_custom_value(definition, value)
            if problem:
                rejects.append((f"custom_fields.{definition.name}", problem))
                continue
            truncated = truncated or cut
            custom[definition.id] = coerced
        if custom:
            contact["custom_fields"] = custom
        return truncated

    def undecodable(self, fields: list[str]) -> str:
        """Why the row is refused if a field holds undecodable bytes, else ``""``."""
        for index, value in enumerate(fields):
            if not value.isascii() and _UNDECODABLE.search(value):
                return f"undecodable bytes (not {self._encoding}) in column {index + 1}"
        return ""


def _alternate_emails(raw: str, primary: str) -> tuple[list[str], bool, list[tuple[str, str]]]:
    found: list[str] = []
    rejects: list[tuple[str, str]] = []
    for candidate in _ALTERNATE_SPLIT.split(raw.strip().lower()):
        if not candidate or candidate == primary or candidate in found:
            continue
        if len(candidate) > EMAIL_MAX or not EMAIL_PATTERN.match(candidate):
            rejects.append(("alternate_emails", "an alternate email is not a valid address; left out"))
            continue
        found.append(candidate)
    truncated = len(found) > MAX_ALTERNATE_EMAILS
    return found[:MAX_ALTERNATE_EMAILS], truncated, rejects


_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%Y/%m/%d")
# How a Date custom field is sent. The JSON API does not document its date format for certain:
# SendGrid's contact import (CSV) documentation says MM/DD/YYYY, which its UI also shows back;
# some clients send ISO 8601. One constant, so that a change is one line (tools/standins/sendgrid/rules.py
# checks the same shape).
SENDGRID_DATE_FORMAT = "%m/%d/%Y"


def coerce_custom_value(definition: CustomFieldDef, value: str) -> tuple[Any, str, bool]:
    """``(value, problem, truncated)`` for a custom field of SendGrid type Text, Number or Date.

    Dates are sent in :data:`SENDGRID_DATE_FORMAT` (see there for its source).
    """
    kind = definition.field_type
    if kind == "Number":
        return _coerce_number(value)
    if kind == "Date":
        parsed = _parse_date(value)
        if parsed is None:
            return None, f"'{_preview(value)}' is not a date (use YYYY-MM-DD)", False
        return parsed.strftime(SENDGRID_DATE_FORMAT), "", False
    if len(value) > TEXT_CUSTOM_FIELD_MAX:
        return value[:TEXT_CUSTOM_FIELD_MAX], "", True
    return value, "", False


def _coerce_number(value: str) -> tuple[Any, str, bool]:
    if len(value) > NUMBER_MAX_CHARS:
        return None, f"a number of over {NUMBER_MAX_CHARS} characters is not one SendGrid can keep", False
    try:
        number = Decimal(value.replace(",", "") if value.count(",") and "." in value else value)
    except InvalidOperation:
        return None, f"'{_preview(value)}' is not a number", False
    if not number.is_finite():
        return None, f"'{_preview(value)}' is not a finite number", False
    if not number:
        return 0, "", False
    # The exponent is looked at before any conversion whose cost grows with it.
    magnitude = number.adjusted()
    if magnitude > _DOUBLE_MAX_EXPONENT:
        return None, f"'{_preview(value)}' is too large a number", False
    if 0 <= magnitude < 19:
        as_int = int(number)
        if number == as_int and -(2**63) <= as_int < 2**63:
            return as_int, "", False
    # SendGrid keeps numbers as doubles: one past 64 bits is sent as the double it becomes.
    as_float = float(number)
    if math.isinf(as_float):
        return None, f"'{_preview(value)}' is too large a number", False
    return as_float, "", False


def _parse_date(value: str) -> date | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
    except ValueError:
        pass
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    return None


def _preview(value: str) -> str:
    value = redact(value)
    return value if len(value) <= 20 else value[:17] + "..."
