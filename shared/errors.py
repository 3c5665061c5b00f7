"""Exception types of the core.

Every message names the thing at fault and, where there is one, what to do next. None of them
ever carries an API key, an email address or a person's name.
"""

from __future__ import annotations

from typing import Any


class ExportError(Exception):
    """Base class of every error the core raises on purpose."""


class SettingsError(ExportError):
    """An app setting is missing or malformed. The message names the setting."""


class ConfigError(ExportError):
    """``destinations.json`` is missing or invalid. The message names the destination and field."""

    def __init__(self, message: str, *, destination: str | None = None, field: str | None = None):
        self.destination = destination
        self.field = field
        where = ""
        if destination is not None:
            where = f"destination '{destination}'"
            if field:
                where += f", field '{field}'"
            where += ": "
        elif field:
            where = f"field '{field}': "
        super().__init__(f"{where}{message}")


class UnknownDestinationError(ConfigError):
    """The requested destination is not in ``destinations.json``."""


class ConsentError(ExportError):
    """The destination has not given ``data_privacy_consent``; nothing may be sent."""


class SegmentError(ExportError):
    """A segment cannot be read: missing, empty, outside the container, or malformed."""


class SegmentChanged(SegmentError):
    """A segment blob was replaced after the run first listed it: the run reads each blob at the
    version it listed, or not at all, so it never mixes two versions."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(f"segment '{name}' changed during the run; the next run will read the new one.")


class SecretError(ExportError):
    """The SendGrid API key could not be read from its secret store."""


class SendGridError(ExportError):
    """SendGrid refused a request, or could not be reached within the retry budget."""

    # Any: SendGrid's error objects as it sent them (the foundations import no JSON alias).
    def __init__(self, message: str, *, status: int | None = None, errors: list[dict[str, Any]] | None = None):
        self.status = status
        self.errors = errors or []
        super().__init__(message)


class SendGridAuthError(SendGridError):
    """SendGrid answered 401 or 403: the key is wrong, revoked, or lacks a scope."""


class ProfileLimitError(ExportError):
    """The segments hold more valid profiles than the destination's ``max_profiles``."""
