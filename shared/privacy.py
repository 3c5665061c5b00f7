"""Keeping personal data and secrets out of logs, errors and records.

Run-level text (log lines, run record ``errors``, HTTP answers) passes through :func:`mask_emails`;
every log handler the app installs carries :class:`SecretRedactingFilter`, which replaces any
secret registered with :func:`register_secret` should one ever reach a message.
"""

from __future__ import annotations

import logging
import re
import threading

_EMAIL_LIKE = re.compile(r"[^\s@\"'<>(),;:]+@[^\s@\"'<>(),;:]+\.[A-Za-z]{2,}")
_lock = threading.Lock()
_secrets: set[str] = set()


def mask_emails(text: str) -> str:
    return _EMAIL_LIKE.sub("<email>", text)


def register_secret(secret: str) -> None:
    if len(secret) >= 8:
        with _lock:
            _secrets.add(secret)


def redact(text: str) -> str:
    with _lock:
        secrets = list(_secrets)
    for secret in secrets:
        text = text.replace(secret, "***")
    return mask_emails(text)


class SecretRedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
