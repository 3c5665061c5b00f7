"""``destinations.json``: parsed, validated, and kept per destination.

One bad destination does not stop the others: :func:`parse_destinations` keeps the error of each
invalid entry and raises it only when that destination is asked for.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable
from typing import Any, TypeVar

from shared.errors import ConfigError
from shared.inputs.destination import (
    CSV_DELIMITERS,
    REGION_BASE_URLS,
    CsvOptions,
    Destination,
    DestinationsConfig,
    FieldMapping,
    ListRef,
    SegmentRef,
)
from shared.json_input import JsonDocumentError, JsonObject, load_json
from shared.names import NAME_PATTERN

# The destination types are re-exported: callers that parse the file also name what it holds.
__all__ = [
    "CSV_DELIMITERS",
    "CSV_ENCODINGS",
    "DEFAULT_MAX_PROFILES",
    "DEFAULT_MAX_REMOVAL_FRACTION",
    "MODES",
    "REGION_BASE_URLS",
    "RESERVED_FIELDS",
    "CsvOptions",
    "Destination",
    "DestinationsConfig",
    "FieldMapping",
    "InvalidDestination",
    "ListRef",
    "SegmentRef",
    "parse_destinations",
]

# \Z, not $: $ also matches before a final newline, and "newsletter\n" would be a second
# destination, with its own lock, on the same list.
_SECRET_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}\Z")
_LIST_ID = re.compile(r"^[0-9A-Za-z-]{1,64}\Z")

# SendGrid's writable reserved fields (PUT /v3/marketing/contacts, ContactRequest).
RESERVED_FIELDS = (
    "email",
    "first_name",
    "last_name",
    "address_line_1",
    "address_line_2",
    "city",
    "state_province_region",
    "postal_code",
    "country",
    "external_id",
    "phone_number_id",
    "alternate_emails",
)
CSV_ENCODINGS = ("utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16")
MODES = ("upsert", "mirror")
DEFAULT_MAX_PROFILES = 100_000
DEFAULT_MAX_REMOVAL_FRACTION = 0.2


# The keys an entry may hold: one per field of Destination, and "list", the one-list spelling of
# "lists".
_DESTINATION_KEYS = {f.name for f in dataclasses.fields(Destination)} | {"list"}


def parse_destinations(text: str | bytes, source: str = "destinations.json") -> DestinationsConfig:
    """Parse the whole file; a document-level fault raises, a destination-level one is kept."""
    try:
        doc = load_json(text, source, unique_keys=True)  # a key written twice: which one was meant?
    except JsonDocumentError as exc:
        raise ConfigError(f"{exc} Fix the file and upload it again.") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("destinations"), list):
        raise ConfigError(f'{source} must be an object with a "destinations" array.')
    unknown = set(doc) - {"destinations", "$schema"}
    if unknown:
        raise ConfigError(f"{source} has unknown top-level keys: {', '.join(sorted(unknown))}.")
    valid: dict[str, Destination] = {}
    invalid: dict[str, ConfigError] = {}
    for index, entry in enumerate(doc["destinations"]):
        label = entry.get("name") if isinstance(entry, dict) else None
        label = label if isinstance(label, str) and label else f"#{index}"
        if label in valid or label in invalid:
            invalid[label] = ConfigError("name is used by more than one destination.", destination=label, field="name")
            valid.pop(label, None)
            continue
        try:
            valid[label] = _parse_destination(entry, label)
        except ConfigError as exc:
            invalid[label] = exc
    return DestinationsConfig(valid, invalid)


T = TypeVar("T")


class InvalidDestination(ConfigError):
    """Every problem of one entry, so that one upload can fix them all. ``field`` is the first;
    ``problems`` holds each (field, message) in the order found."""

    def __init__(self, label: str, problems: list[tuple[str, str]]):
        self.problems = problems
        first_field, _ = problems[0]
        text = "; ".join(
            (m.rstrip(".") if i == 0 else f"field '{f}': {m.rstrip('.')}") for i, (f, m) in enumerate(problems)
        )
        super().__init__(text + ".", destination=label, field=first_field)


class _FieldError(Exception):
    def __init__(self, field_name: str, message: str):
        self.field_name = field_name
        self.message = message


class _Problems:
    """Collects the problems of one entry: each part is checked even when another failed."""

    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []

    @staticmethod
    def fail(field_name: str, message: str) -> _FieldError:
        return _FieldError(field_name, message)

    def check(self, parse: Callable[[], T], default: T) -> T:
        try:
            return parse()
        except _FieldError as exc:
            self.found.append((exc.field_name, exc.message))
            return default


# Each scalar key of an entry: whether a value is valid, and what to say when it is not.
_IS_BOOLEAN: tuple[Callable[[Any], bool], str] = (lambda value: isinstance(value, bool), "must be true or false.")
_SCALAR_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "name": (
        lambda value: isinstance(value, str) and bool(NAME_PATTERN.match(value)),
        "must match ^[a-z0-9][a-z0-9-]{0,62}$.",
    ),
    "display_name": (
        lambda value: isinstance(value, str) and bool(value.strip()) and len(value) <= 200,
        "must be a non-empty string of at most 200 characters.",
    ),
    "api_key_secret": (
        lambda value: isinstance(value, str) and bool(_SECRET_NAME.match(value)),
        "must be a Key Vault secret name (letters, digits, hyphens).",
    ),
    "region": (lambda value: isinstance(value, str) and value in REGION_BASE_URLS, "must be 'global' or 'eu'."),
    "mode": (lambda value: isinstance(value, str) and value in MODES, "must be 'upsert' or 'mirror'."),
    "max_profiles": (
        lambda value: _is_number(value, int) and value >= 1,
        "must be a whole number of at least 1.",
    ),
    "max_removal_fraction": (
        lambda value: _is_number(value, (int, float)) and 0 <= value <= 1,
        "must be a number from 0 to 1.",
    ),
    "enabled": _IS_BOOLEAN,
    "data_privacy_consent": _IS_BOOLEAN,
    "schedule_enabled": _IS_BOOLEAN,
    "on_new_data": _IS_BOOLEAN,
}


def _is_number(value: Any, kind: type | tuple[type, ...]) -> bool:
    return not isinstance(value, bool) and isinstance(value, kind)  # JSON's true is no number


def _parse_destination(entry: Any, label: str) -> Destination:
    if not isinstance(entry, dict):
        raise InvalidDestination(label, [("", "each destination must be a JSON object.")])
    problems = _Problems()
    allowed = ", ".join(sorted(_DESTINATION_KEYS))
    for key in sorted(set(entry) - _DESTINATION_KEYS, key=str):
        problems.found.append((key, f"unknown key (allowed: {allowed})."))

    def scalar(key: str, default: Any, fallback: Any) -> Any:
        """The key's value, or its default when absent; ``fallback`` (a problem kept) when invalid."""
        valid, message = _SCALAR_CHECKS[key]

        def parse() -> Any:
            value = entry.get(key, default)
            if not valid(value):
                raise _FieldError(key, message)
            return value

        return problems.check(parse, fallback)

    name: str = scalar("name", None, label)
    destination = Destination(
        name=name,
        display_name=scalar("display_name", name, name).strip(),
        enabled=scalar("enabled", True, True),
        data_privacy_consent=scalar("data_privacy_consent", False, False),
        api_key_secret=scalar("api_key_secret", "sendgrid-api-key", ""),
        region=scalar("region", "global", "global"),
        lists=problems.check(lambda: _parse_lists(entry, problems.fail), ()),
        segments=_parse_segments(entry.get("segments"), problems),
        mapping=_parse_mapping(entry.get("mapping"), problems),
        mode=scalar("mode", "upsert", "upsert"),
        max_profiles=scalar("max_profiles", DEFAULT_MAX_PROFILES, DEFAULT_MAX_PROFILES),
        max_removal_fraction=float(
            scalar("max_removal_fraction", DEFAULT_MAX_REMOVAL_FRACTION, DEFAULT_MAX_REMOVAL_FRACTION)
        ),
        schedule_enabled=scalar("schedule_enabled", True, True),
        on_new_data=scalar("on_new_data", False, False),
    )
    if problems.found:
        raise InvalidDestination(label, problems.found)
    return destination


def _parse_lists(entry: JsonObject, fail: Any) -> tuple[ListRef, ...]:
    raw, key = _list_items(entry, fail)
    refs = [_parse_list(item, key if key == "list" else f"lists[{i}]", fail) for i, item in enumerate(raw)]
    if len({(r.id, r.name) for r in refs}) != len(refs):
        raise fail(key, "names the same list twice.")
    return tuple(refs)


def _list_items(entry: JsonObject, fail: Any) -> tuple[list[Any], str]:
    """The list objects a destination gives, and the key it gives them under."""
    if "list" in entry and "lists" in entry:
        raise fail("lists", 'give either "list" or "lists", not both.')
    if "list" in entry:
        return [entry["list"]], "list"
    if "lists" in entry:
        raw = entry["lists"]
        if not isinstance(raw, list) or not raw:
            raise fail("lists", "must be a non-empty array of list objects.")
        return raw, "lists"
    raise fail("list", 'is required: {"id": "..."} or {"name": "...", "create_if_missing": true}.')


def _parse_list(item: Any, where: str, fail: Any) -> ListRef:
    if not isinstance(item, dict) or set(item) - {"id", "name", "create_if_missing"}:
        raise fail(where, 'must be {"id": "..."} or {"name": "...", "create_if_missing": bool}.')
    list_id, list_name = item.get("id"), item.get("name")
    create = item.get("create_if_missing", False)
    if not isinstance(create, bool):
        raise fail(f"{where}.create_if_missing", "must be true or false.")
    if (list_id is None) == (list_name is None):
        raise fail(where, 'give exactly one of "id" and "name".')
    if list_id is not None:
        if not isinstance(list_id, str) or not _LIST_ID.match(list_id):
            raise fail(f"{where}.id", "must be a SendGrid list id.")
        if create:
            raise fail(f"{where}.create_if_missing", 'goes with "name", not "id".')
        return ListRef(id=list_id)
    if not isinstance(list_name, str) or not 1 <= len(list_name.strip()) <= 100:
        raise fail(f"{where}.name", "must be a list name of 1 to 100 characters.")
    return ListRef(name=list_name.strip(), create_if_missing=create)


def _parse_segments(raw: Any, problems: _Problems) -> tuple[SegmentRef, ...]:
    if not isinstance(raw, list) or not raw:
        problems.found.append(("segments", 'must be a non-empty array of {"path": "..."} objects.'))
        return ()
    parsed: list[SegmentRef | None] = [
        problems.check(functools.partial(_parse_segment, i, item, problems.fail), None) for i, item in enumerate(raw)
    ]
    return tuple(s for s in parsed if s is not None)


def _parse_segment(i: int, item: Any, fail: Any) -> SegmentRef:
    where = f"segments[{i}]"
    if not isinstance(item, dict) or set(item) - {"path", "table", "csv"}:
        raise fail(where, 'must be {"path": "...", "table": "...", "csv": {...}}.')
    path = item.get("path")
    if not isinstance(path, str) or not path.strip():
        raise fail(f"{where}.path", "must be a blob name or a prefix ending in '/'.")
    if path.startswith("/") or "\\" in path or "://" in path or ".." in path.split("/"):
        raise fail(
            f"{where}.path",
            "must be a blob name or prefix inside the segments container (no leading '/', no '..', no URL).",
        )
    table = item.get("table")
    if table is not None and (not isinstance(table, str) or not table.strip()):
        raise fail(f"{where}.table", "must be a non-empty entity name.")
    return SegmentRef(path=path, table=table, csv=_parse_csv(item.get("csv"), f"{where}.csv", fail))


def _parse_csv(raw: Any, where: str, fail: Any) -> CsvOptions:
    if raw is None:
        return CsvOptions()
    if not isinstance(raw, dict) or set(raw) - {"delimiter", "header", "columns", "encoding"}:
        raise fail(where, "allowed keys: delimiter, header, columns, encoding.")
    delimiter = raw.get("delimiter")
    if delimiter is not None and (not isinstance(delimiter, str) or delimiter not in CSV_DELIMITERS):
        raise fail(f"{where}.delimiter", "must be one of ',', ';', tab, '|'.")
    header = raw.get("header", True)
    if not isinstance(header, bool):
        raise fail(f"{where}.header", "must be true or false.")
    columns = raw.get("columns")
    if columns is not None:
        if not isinstance(columns, list) or not columns or not all(isinstance(c, str) and c for c in columns):
            raise fail(f"{where}.columns", "must be a non-empty array of column names.")
        columns = tuple(columns)
    elif not header:
        raise fail(f"{where}.columns", 'is required when "header" is false.')
    encoding = raw.get("encoding", "utf-8")
    if not isinstance(encoding, str) or encoding not in CSV_ENCODINGS:
        raise fail(f"{where}.encoding", "must be one of utf-8, utf-8-sig, latin-1, cp1252, utf-16.")
    return CsvOptions(delimiter=delimiter, header=header, columns=columns, encoding=encoding)


def _parse_mapping(raw: Any, problems: _Problems) -> FieldMapping | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.found.append(("mapping", "must be an object of SendGrid field -> source column."))
        return None
    fields: dict[str, str] = {}
    custom: dict[str, str] = {}
    for key, value in raw.items():
        problems.check(functools.partial(_map_one, key, value, fields, custom, problems.fail), None)
    if "email" not in fields and not any(f.startswith("mapping.email") for f, _ in problems.found):
        problems.found.append(("mapping.email", "is required: the column that holds the email address."))
    return FieldMapping(fields=fields, custom_fields=custom)


def _map_one(key: str, value: Any, fields: dict[str, str], custom: dict[str, str], fail: Any) -> None:
    if key == "custom_fields":
        if not isinstance(value, dict):
            raise fail("mapping.custom_fields", "must be an object of custom field name -> column.")
        for cf_name, column in value.items():
            if not isinstance(column, str) or not column.strip():
                raise fail(f"mapping.custom_fields.{cf_name}", "must name a source column.")
            custom[cf_name] = column.strip()
        return
    if key not in RESERVED_FIELDS:
        raise fail(
            f"mapping.{key}",
            "is not a writable SendGrid reserved field (allowed: "
            + ", ".join(RESERVED_FIELDS)
            + "; put other fields under custom_fields).",
        )
    if not isinstance(value, str) or not value.strip():
        raise fail(f"mapping.{key}", "must name a source column.")
    fields[key] = value.strip()
