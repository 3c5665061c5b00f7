"""Reading a JSON document that came from outside, with a bound on how deeply it nests.

Every JSON document the app reads (``destinations.json``, ``model.json``, SendGrid's answers, an
errors file, an HTTP request body, a queue message, our own state blobs) goes through
:func:`load_json`. Its nesting depth is measured BEFORE it is parsed, by a scan in C-speed steps
(strings removed, then the brackets counted), so that no parser, and no code that walks what it
returns (an encoder, a flattening), ever recurses past :data:`MAX_JSON_DEPTH`: a document nested
100,000 deep is one clear error naming it, never a ``RecursionError``.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

from shared.privacy import neutralise

# No document the app reads needs more than a handful of levels (a CDM model.json with traits
# nests about ten); 64 is far more, and far below any recursion limit.
MAX_JSON_DEPTH = 64
# A JSON object as parsed or about to be written (a stored record, SendGrid's answer, a config
# entry): its values may be anything JSON holds, so each is checked where it is read.
JsonObject = dict[str, Any]
# A string, or what is left of one that never closes: the closing quote is optional so that the
# match never fails. (Were it required, each quote of an unclosed string of escaped quotes would
# start a scan to the end: 80 KB took 22 s, quadratic.) What follows an unclosed string is no JSON.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKET = bytes(set(range(256)) - set(b"[]{}"))
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class JsonDocumentError(ValueError):
    """The document is not JSON, or nests too deeply; the message names it and says which."""


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text`` (JSON), strings not counted."""
    if text.count("[") + text.count("{") == 0:
        return 0
    # bytes.translate deletes in one C loop, building nothing per character (a re.sub would).
    brackets = _STRING.sub("", text).encode("utf-8", "surrogatepass").translate(None, _NOT_BRACKET)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def load_json(
    data: str | bytes | bytearray,
    what: str,
    max_depth: int = MAX_JSON_DEPTH,
    max_items: int | None = None,
    *,
    unique_keys: bool = False,
) -> Any:
    """``data`` parsed, or :class:`JsonDocumentError` that names ``what`` (no contents quoted).
    ``max_items`` bounds the arrays, objects and separators (so the values) it may hold, counted
    before any is built: what parsing it costs in memory is then bounded too. ``NaN``,
    ``Infinity`` and numbers past a float's range are refused (no JSON, and no encoder writes them
    back as JSON); with ``unique_keys``, so is an object naming a key twice (which one was meant?)."""
    try:
        text = data if isinstance(data, str) else bytes(data).decode(json.detect_encoding(data), "surrogatepass")
    except (UnicodeDecodeError, LookupError):
        raise JsonDocumentError(f"{what} is not JSON: it is not UTF-8 (or UTF-16/32) text.") from None
    # Separators counted in strings too: a bound that errs on the safe side, and builds nothing.
    if max_items is not None and sum(map(text.count, ",[{")) > max_items:
        raise JsonDocumentError(f"{what} holds over {max_items:,} values: not read.")
    # Cheap first: a document with fewer brackets than the bound cannot nest past it.
    if text.count("[") + text.count("{") > max_depth and json_depth(text) > max_depth:
        raise JsonDocumentError(
            f"{what} nests arrays or objects more than {max_depth} levels deep: not read "
            "(a valid one needs a few levels)."
        )
    try:
        return json.loads(
            text,
            parse_constant=_no_constant,
            parse_float=_finite_float,
            object_pairs_hook=_unique_keys if unique_keys else None,
        )
    except json.JSONDecodeError as exc:
        raise JsonDocumentError(
            f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer past Python's digit limit
        raise JsonDocumentError(f"{what} is not valid JSON: {str(exc)[:120]}.") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"a number is past a float's range ({text[:20]}...)")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise ValueError(f"an object names the key {neutralise(key[:60])!r} twice")
        document[key] = value
    return document
