"""Keeping personal data and secrets out of logs, errors and records.

Run-level text (log lines, run record ``errors``, HTTP answers) passes through :func:`mask_emails`;
every log handler the app installs carries :class:`SecretRedactingFilter`, which replaces any
secret registered with :func:`register_secret`, and anything shaped like a SendGrid key or a
``Bearer`` token, should one ever reach a message.
"""

from __future__ import annotations

import logging
import re
import threading

_EMAIL_LIKE = re.compile(r"[^\s@\"'<>(),;:]+@[^\s@\"'<>(),;:]+\.[A-Za-z]{2,}")
# SendGrid keys are "SG." + 22 characters + "." + 43; the lengths are left loose on purpose.
_SENDGRID_KEY = re.compile(r"SG\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
# RFC 6750 token68 characters; the scheme name is case-insensitive.
_BEARER = re.compile(r"\b(Bearer)(\s+)[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)
REDACTED = "***"
_lock = threading.Lock()
_secrets: set[str] = set()


def mask_emails(text: str) -> str:
    return _EMAIL_LIKE.sub("<email>", text)


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


def redact(text: str) -> str:
    return mask_emails(redact_secrets(text, *registered_secrets()))


class SecretRedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
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
