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
import re
from itertools import accumulate
from typing import Any

# No document the app reads needs more than a handful of levels (a CDM model.json with traits
# nests about ten); 64 is far more, and far below any recursion limit.
MAX_JSON_DEPTH = 64
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class JsonDocumentError(ValueError):
    """The document is not JSON, or nests too deeply; the message names it and says which."""


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text`` (JSON), strings not counted."""
    if text.count("[") + text.count("{") == 0:
        return 0
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def load_json(data: str | bytes | bytearray, what: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``data`` parsed, or :class:`JsonDocumentError` that names ``what`` (no contents quoted)."""
    try:
        text = data if isinstance(data, str) else bytes(data).decode(json.detect_encoding(data), "surrogatepass")
    except (UnicodeDecodeError, LookupError):
        raise JsonDocumentError(f"{what} is not JSON: it is not UTF-8 (or UTF-16/32) text.") from None
    # Cheap first: a document with fewer brackets than the bound cannot nest past it.
    if text.count("[") + text.count("{") > max_depth and json_depth(text) > max_depth:
        raise JsonDocumentError(
            f"{what} nests arrays or objects more than {max_depth} levels deep: not read "
            "(a valid one needs a few levels)."
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise JsonDocumentError(
            f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer past Python's digit limit
        raise JsonDocumentError(f"{what} is not valid JSON: {str(exc)[:120]}.") from None
