"""JSON Lines segment files: one object a line, nested objects flattened to dotted column names,
and a line that is no object, or nested past :data:`MAX_JSON_DEPTH`, refused with its reason."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable

from shared.inputs.blob_stream import check_encoding, open_binary
from shared.inputs.record_split import RecordSyntax, split_records
from shared.inputs.tabular import CONTROL, Parsed, TabularFile, Tally, may_hold_controls, refusing_oversized
from shared.json_input import JsonObject
from shared.settings import DEFAULT_MAX_RECORD_BYTES

# Objects nested deeper than this are no contact: such a line is refused, not recursed into.
MAX_JSON_DEPTH = 32
_JSONL_SNIFF_ROWS = 1000
_JSON_CONTROL = re.compile(r"\\u(?:00[01][0-9a-fA-F]|007[fF]|00[89][0-9a-fA-F]|[fF][eE][fF][fF])")


def read_jsonl(
    chunks: Iterable[bytes], name: str, wanted: list[str], max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
) -> TabularFile:
    """JSON Lines: one object a line. Nested objects are flattened to dotted names
    (``{"address": {"city": "Oslo"}}`` gives column ``address.city``); arrays of plain values are
    joined with commas (so an array of emails maps to ``alternate_emails``)."""
    binary, head = open_binary(chunks, name)
    check_encoding(head, "utf-8", name)
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline=None)
    names = _sniff_columns(head, wanted)
    tally = Tally()
    parse = refusing_oversized(_jsonl_parser(names, tally), max_record_bytes)
    records = split_records(text, name, _LINES, max_record_bytes)
    return TabularFile(name=name, columns=names, chunks=records, parse=parse, tally=tally)


def _sniff_columns(head: bytes, wanted: list[str]) -> list[str]:
    """The columns mapped, then every other key of the first lines, each as first spelled."""
    columns: dict[str, str] = {}  # lower-case -> as first seen
    for column in wanted:
        columns.setdefault(column.lower(), column)
    for line in head.decode("utf-8", "replace").splitlines()[:_JSONL_SNIFF_ROWS]:
        try:
            value = json.loads(line)
            flat = _flatten(value) if isinstance(value, dict) else {}
        except (ValueError, RecursionError):  # the line is refused when its turn comes
            continue
        for key in flat:
            columns.setdefault(key.lower(), key)
    return list(columns.values())


def _jsonl_parser(names: list[str], tally: Tally) -> Callable[[list[str]], Parsed]:
    index = {column.lower(): i for i, column in enumerate(names)}
    width = len(names)

    def parse(batch: list[str]) -> Parsed:
        rows: list[list[str] | None] = []
        problems: dict[int, str] = {}
        joined = "".join(batch)
        # A JSON string may also spell a control character as an escape (\u0000).
        dirty = may_hold_controls(joined) or ("\\u" in joined and _JSON_CONTROL.search(joined) is not None)
        for position, line in enumerate(batch):
            try:
                value = json.loads(line)
                flat = _flatten(value) if isinstance(value, dict) else None
            except json.JSONDecodeError as exc:
                problems[position] = f"not valid JSON ({exc.msg} at column {exc.colno})"
                rows.append(None)
                continue
            except (RecursionError, _TooDeep):
                problems[position] = f"JSON nested deeper than {MAX_JSON_DEPTH} levels: not a contact"
                rows.append(None)
                continue
            except ValueError as exc:  # e.g. an integer past Python's 4,300-digit conversion limit
                problems[position] = f"a JSON value cannot be read ({str(exc)[:120]})"
                rows.append(None)
                continue
            if flat is None:
                problems[position] = "not a JSON object"
                rows.append(None)
                continue
            fields = [""] * width
            for key, item in flat.items():
                at = index.get(key.lower())
                if at is not None:
                    fields[at] = item
            if dirty and (CONTROL.search(line) or _JSON_CONTROL.search(line)):
                cleaned = [CONTROL.sub("", value) for value in fields]
                if cleaned != fields:
                    fields = cleaned
                    tally.control_chars_stripped += 1
            rows.append(fields)
        return rows, problems

    return parse


def _is_blank_line(piece: str) -> bool:
    return not piece.strip()


def _has_blank_line(pieces: list[str]) -> bool:
    return any(not piece.strip() for piece in pieces)


# One object a line: no field is quoted across lines, and a line of white space is no record.
_LINES = RecordSyntax("\n", None, _is_blank_line, _has_blank_line)


class _TooDeep(ValueError):
    pass


def _flatten(value: JsonObject, prefix: str = "", depth: int = 1) -> dict[str, str]:
    if depth > MAX_JSON_DEPTH:
        raise _TooDeep
    flat: dict[str, str] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict):
            flat.update(_flatten(item, name + ".", depth + 1))
        elif isinstance(item, list):
            flat[name] = ",".join("" if v is None else str(v) for v in item if not isinstance(v, (dict, list)))
        elif item is None:
            flat[name] = ""
        elif isinstance(item, bool):
            flat[name] = "true" if item else "false"
        else:
            flat[name] = str(item)
    return flat
