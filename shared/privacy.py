"""Keeping personal data and secrets out of logs, errors and records, and outside text harmless.

One path for text that came from outside (an errors file, SendGrid's answers, a segment value, a
blob): :func:`neutralise` redacts every secret registered with :func:`register_secret`, anything
shaped like a SendGrid key or a ``Bearer`` token, and removes terminal escape sequences, control
characters and bidirectional overrides, wherever the text goes. On top of it, :func:`redact` (for
run-level text: log lines, run record ``errors``, HTTP answers, the terminal) masks addresses, and
:func:`csv_cell` (for the rejects CSV) makes a formula-like cell text. Every log handler the app
installs carries :class:`SecretRedactingFilter`, which passes each message through :func:`redact`.
"""

from __future__ import annotations

import codecs
import logging
import re
import threading
from collections.abc import Iterable, Iterator

_EMAIL_LIKE = re.compile(r"[^\s@\"'<>(),;:]+@[^\s@\"'<>(),;:]+\.[A-Za-z]{2,}")
# The same, tried only where a run of local-part characters starts. Tried at every position, a
# run of them not followed by an address fails once per position, each time scanning the rest of
# the run: quadratic (40 KB of one letter took 3 s, and a SendGrid error text may be megabytes).
_EMAIL_AT_RUN_START = re.compile(r"(?<![^\s@\"'<>(),;:])" + _EMAIL_LIKE.pattern)
_LOCAL_RUN = re.compile(r"[^\s@\"'<>(),;:]*")
# SendGrid keys are "SG." + 22 characters + "." + 43; the lengths are left loose on purpose.
_SENDGRID_KEY = re.compile(r"SG\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
# RFC 6750 token68 characters; the scheme name is case-insensitive.
_BEARER = re.compile(r"\b(Bearer)(\s+)[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)
REDACTED = "***"
# What a terminal acts on (ECMA-48), removed whole so that no half of one is left: CSI sequences
# (ESC [ or its C1 form: cursor moves, screen clears), command strings up to their terminator
# (OSC: the window title, hyperlinks; DCS, SOS, PM, APC), and two-character escapes (ESC c resets).
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)
# Control characters (C0 but tab and line breaks, DEL, C1), the byte-order mark, and the
# bidirectional overrides and isolates, which reorder what a screen shows ("Trojan Source").
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile("[\t\n\r\u2028\u2029]+")
# A lone surrogate (a JSON "\\ud800" escape, an undecodable byte carried by surrogateescape) cannot
# be written as UTF-8: a record, a CSV or a log line holding one fails to save.
_SURROGATE = re.compile("[\ud800-\udfff]")
_LONE_CARRIAGE_RETURN = re.compile("\r(?!\n)|[\u2028\u2029]")
# A cell starting with one of these runs as a formula when the file is opened in a spreadsheet
# (after any blank: a spreadsheet may trim it); the full-width forms, which some convert on input.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_lock = threading.Lock()
_secrets: set[str] = set()


def mask_emails(text: str) -> str:
    """``text`` with each address-like run masked, as ``_EMAIL_LIKE.sub`` would, in linear time."""
    if "@" not in text:
        return text
    parts: list[str] = []
    done = at = 0
    while True:
        found = _EMAIL_AT_RUN_START.search(text, at)
        if found is None:
            return "".join([*parts, text[done:]])
        parts += [text[done : found.start()], "<email>"]
        done = at = found.end()
        # A match may end inside a run (``a@b.co1x@c.org``), where the next one may start at once;
        # if none does there, none starts later in that run either (each would reach the same @).
        while (follows := _EMAIL_LIKE.match(text, at)) is not None:
            parts.append("<email>")
            done = at = follows.end()
        rest_of_run = _LOCAL_RUN.match(text, at)
        at = rest_of_run.end() if rest_of_run else at


def neutralise(text: str, *, keep_line_breaks: bool = False) -> str:
    """Outside text made harmless wherever it goes (a record, a CSV, a log, a terminal): secrets
    redacted; escape sequences, control characters and bidirectional overrides removed; tabs and
    line breaks made spaces (kept, with ``keep_line_breaks``: a CSV's rows, a log's own lines,
    but never a carriage return that does not end a line, which would let a line overwrite itself)."""
    if not text.isprintable():  # the usual text is, and pays for one C scan only
        text = _SURROGATE.sub("\ufffd", _CONTROL.sub("", _ESCAPE_SEQUENCE.sub("", text)))
        text = _LONE_CARRIAGE_RETURN.sub(" ", text) if keep_line_breaks else _LINE_BREAKS.sub(" ", text)
    return redact_secrets(text, *registered_secrets())


def csv_cell(value: str) -> str:
    """A cell of a CSV the app writes from outside text (the rejects file)."""
    value = neutralise(value)  # undecodable bytes (lone surrogates) become U+FFFD there
    # OWASP's advice against CSV injection: a leading quote makes the cell text.
    return "'" + value if value.lstrip().startswith(_FORMULA_STARTS) else value


def neutralise_lines(chunks: Iterable[bytes], max_line: int = 1 << 20) -> Iterator[bytes]:
    """A stream of UTF-8 text (a stored rejects file) neutralised line by line on its way to a
    screen or a client; lines and tabs kept. A line longer than ``max_line`` is cut in pieces, each
    keeping a tail back, so that no secret or sequence is split unseen."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")  # a character may straddle chunks
    carry = ""
    for chunk in chunks:
        carry += decoder.decode(chunk)
        cut = carry.rfind("\n") + 1
        if cut == 0 and len(carry) > max_line:
            cut = len(carry) - 256
        if cut:
            yield neutralise(carry[:cut], keep_line_breaks=True).encode("utf-8")
            carry = carry[cut:]
    carry += decoder.decode(b"", final=True)
    if carry:
        yield neutralise(carry, keep_line_breaks=True).encode("utf-8")


def register_secret(secret: str) -> None:
    if len(secret) >= 8:
        with _lock:
            _secrets.add(secret)


def redact_secrets(text: str, *known: str) -> str:
    """``text`` without the ``known`` secrets, SendGrid-shaped keys, or ``Bearer`` tokens."""
    # Longest first, so a secret that contains another is replaced whole.
    for secret in sorted((k for k in known if len(k) >= 8), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _SENDGRID_KEY.sub(REDACTED, text)
    return _BEARER.sub(rf"\1\2{REDACTED}", text)


def registered_secrets() -> tuple[str, ...]:
    with _lock:
        return tuple(_secrets)


def redact(text: str, *, keep_line_breaks: bool = False) -> str:
    """Run-level text (a log line, a record's errors, an HTTP answer): neutralised, addresses masked."""
    return mask_emails(neutralise(text, keep_line_breaks=keep_line_breaks))


class SecretRedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, keep_line_breaks=True)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install_redacting_filter(logger: logging.Logger) -> None:
    """Put :class:`SecretRedactingFilter` on each of ``logger``'s handlers (once each).

    On the handlers, not the logger: a logger's filters never see records its children propagate.
    """
    for handler in logger.handlers:
        if not any(isinstance(f, SecretRedactingFilter) for f in handler.filters):
            handler.addFilter(SecretRedactingFilter())
