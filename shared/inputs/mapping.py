"""Which source column feeds which SendGrid field, for one file's columns.

Column names match case-insensitively. Without an explicit mapping, the first present column from
a list of common names is used (Customer Insights names first).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.errors import SegmentError
from shared.inputs.destination import FieldMapping

DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "email": ("PrimaryEmail", "EMail", "Email", "EmailAddress", "EMailAddress1", "email_address"),
    "first_name": ("FirstName", "first_name", "GivenName"),
    "last_name": ("LastName", "last_name", "Surname", "FamilyName"),
    "city": ("City", "Address1_City", "address1City"),
    "state_province_region": ("StateOrProvince", "State", "Address1_StateOrProvince", "address1StateOrProvince"),
    "country": ("Country", "CountryOrRegion", "Address1_Country", "address1Country"),
    "postal_code": ("PostalCode", "PostCode", "ZipCode", "Address1_PostalCode", "address1PostalCode"),
}


@dataclass(frozen=True)
class ColumnPlan:
    """Column indexes for one file: email's, each optional reserved field's, each custom field's."""

    email: int
    fields: tuple[tuple[str, int], ...]
    custom_fields: tuple[tuple[str, int], ...]
    width: int

    def describe(self, columns: list[str]) -> dict[str, str]:
        described = {"email": columns[self.email]}
        described.update({f: columns[i] for f, i in self.fields})
        described.update({f"custom_fields.{f}": columns[i] for f, i in self.custom_fields})
        return described


def plan_columns(mapping: FieldMapping | None, columns: list[str], file_name: str) -> ColumnPlan:
    index = _case_insensitive_index(columns)
    if mapping is None:
        chosen = {
            target: found
            for target, candidates in DEFAULT_COLUMNS.items()
            if (found := _first_present(candidates, index)) is not None
        }
        if "email" not in chosen:
            raise SegmentError(
                f"segment file '{file_name}': no email column found among its {_count(columns)}; expected "
                f"one of {', '.join(DEFAULT_COLUMNS['email'])}, or set mapping.email in destinations.json."
                + _header_hint(columns)
            )
        return ColumnPlan(
            email=chosen.pop("email"),
            fields=tuple(chosen.items()),
            custom_fields=(),
            width=len(columns),
        )

    def column_of(target: str, column: str) -> int:
        found = index.get(column.lower())
        if found is None:
            raise SegmentError(
                f"segment file '{file_name}' has no column '{column}' (mapped to {target}) among its "
                f"{_count(columns)}." + _header_hint(columns)
            )
        return found

    fields = {target: column_of(target, column) for target, column in mapping.fields.items()}
    custom = tuple((name, column_of(f"custom_fields.{name}", column)) for name, column in mapping.custom_fields.items())
    return ColumnPlan(email=fields.pop("email"), fields=tuple(fields.items()), custom_fields=custom, width=len(columns))


# Column names are never repeated in a message: in a file without a header row they are the first
# row's values (names, addresses, phone numbers). Messages give their count, and say when the
# first row looks like data.
_DATA_LIKE = re.compile(r"@|(?:\d[\s().+/-]*){5}")


def _count(columns: list[str]) -> str:
    return f"{len(columns)} column" + ("" if len(columns) == 1 else "s")


def _header_hint(columns: list[str]) -> str:
    positions = [str(i + 1) for i, name in enumerate(columns) if _DATA_LIKE.search(name)]
    if not positions:
        return ""
    return (
        f" Its first row looks like data, not column names (an address or a number in column "
        f"{', '.join(positions[:5])}{', ...' if len(positions) > 5 else ''}): if the file has no header row, "
        'set "header": false and "columns" for the segment in destinations.json.'
    )


def _case_insensitive_index(columns: list[str]) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, name in enumerate(columns):
        index.setdefault(name.strip().lower(), i)  # the first of two same-named columns wins
    return index


def _first_present(candidates: tuple[str, ...], index: dict[str, int]) -> int | None:
    for name in candidates:
        if name.lower() in index:
            return index[name.lower()]
    return None
