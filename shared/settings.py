"""App settings, read once from the environment (app settings, local.settings.json Values).

A missing or malformed setting fails fast with a :class:`SettingsError` that names it.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

from shared.errors import SettingsError

DEFAULT_SEGMENTS_CONTAINER = "segments"
DEFAULT_EXPORTS_CONTAINER = "sendgrid-exports"
DEFAULT_DESTINATIONS_BLOB = "destinations.json"
DEFAULT_EXPORT_SCHEDULE = "0 0 3 * * *"
DEFAULT_EXPORT_QUEUE = "sendgrid-export-jobs"
# Production SendGrid refuses request bodies over 4 MiB (see README, "SendGrid"): stay below with
# headroom. The documented 6 MB is the most a setting may raise it to.
DEFAULT_MAX_BATCH_BYTES = 3_800_000
# Contacts in one PUT /v3/marketing/contacts: SendGrid's limit (the run and its tuning both read it).
MAX_CONTACTS_PER_BATCH = 30_000
MAX_BATCH_BYTES_RANGE = (100_000, 6_000_000)
# One deadline for all of a run's SendGrid jobs, and one for the run's whole SendGrid work: both
# well inside host.json's functionTimeout (2 hours).
DEFAULT_JOB_WAIT_SECONDS = 3600
# A run sends by CSV import from this many contacts to send (SENDGRID_BULK_IMPORT=auto). At
# SendGrid's pace (about 6 PUT /marketing/contacts a minute), an upsert batch holds at most
# 30,000 contacts and the batch byte cap makes it fewer (the paced bench's batches hold
# 8,000-21,000): 60,000 contacts cost 3-8 upserts, 30-80 s of that budget, where an import costs
# one request on another endpoint and one upload, which no PUT budget counts. Below it, a run's
# few upserts go while it reads; above it, an import's one job takes the place of many.
DEFAULT_BULK_IMPORT_THRESHOLD = 60_000
BULK_IMPORT_MODES = ("never", "auto", "always")
DEFAULT_RUN_DEADLINE_SECONDS = 6600
# A run queued by new data waits this long on the queue first, so that a burst of files is one run.
DEFAULT_EXPORT_SETTLE_SECONDS = 120
# The longest record a segment file may hold. A few MiB is far more than any real contact, and
# no more than this is ever held in memory for one line, however long the line.
DEFAULT_MAX_RECORD_BYTES = 4 * 1024 * 1024
MAX_RECORD_BYTES_LIMIT = 64 * 1024 * 1024
_MAX_RECORD_BYTES_RANGE = (1024, MAX_RECORD_BYTES_LIMIT)

# Identity-based storage settings: NAME__blobServiceUri etc., as the Functions host reads them.
STORAGE_SUFFIXES = ("__blobServiceUri", "__queueServiceUri", "__accountName", "__clientId")

# \Z, not $, here and below: $ also matches before a final newline.
_CONTAINER_NAME = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]\Z")
# Queue names follow the same rules as container names.
_QUEUE_NAME = _CONTAINER_NAME
# A host, or a host pattern: letters, digits, hyphens and '*' in each label; '*.' first: any subdomain.
_HOST_PATTERN = re.compile(r"^(\*\.)?[a-z0-9*-]+(\.[a-z0-9*-]+)*\Z")
# NCRONTAB as Azure Functions takes it: six fields, seconds first.
_NCRONTAB_FIELD = re.compile(r"^[0-9A-Za-z*/,\-]+\Z")


@dataclass(frozen=True)
class StorageSettings:
    """How to reach one storage account: a connection string or identity-based service URIs."""

    setting_name: str
    connection_string: str | None = None
    blob_service_uri: str | None = None
    queue_service_uri: str | None = None
    client_id: str | None = None

    @property
    def uses_identity(self) -> bool:
        return self.connection_string is None

    def __repr__(self) -> str:
        # Settings end up in tracebacks and debug logs: an account key or a SAS must not.
        return (
            f"StorageSettings(setting_name={self.setting_name!r}, "
            f"connection_string={_without_secrets(self.connection_string)!r}, "
            f"blob_service_uri={_without_query(self.blob_service_uri)!r}, "
            f"queue_service_uri={_without_query(self.queue_service_uri)!r}, client_id={self.client_id!r})"
        )


# Connection string keys whose values are secrets (AccountKey, SharedAccessSignature, ...).
_SECRET_PART = re.compile(r"(?i)\b((?:AccountKey|SharedAccessSignature|SharedAccessKey|AccessKey)=)[^;]*")


def _without_secrets(connection_string: str | None) -> str | None:
    return _SECRET_PART.sub(r"\1***", connection_string) if connection_string else connection_string


def _without_query(uri: str | None) -> str | None:
    return uri.split("?", 1)[0] + "?***" if uri and "?" in uri else uri


@dataclass(frozen=True)
class Settings:
    export_storage: StorageSettings
    host_storage: StorageSettings  # AzureWebJobsStorage: the Functions host's, and the job queue's
    segments_container: str
    exports_container: str
    destinations_blob: str
    export_schedule: str
    export_queue: str
    secrets_source: str
    key_vault_url: str | None
    sendgrid_api_base_url: str | None
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES
    job_wait_seconds: int = DEFAULT_JOB_WAIT_SECONDS
    run_deadline_seconds: int = DEFAULT_RUN_DEADLINE_SECONDS
    export_settle_seconds: int = DEFAULT_EXPORT_SETTLE_SECONDS
    # App Service authentication is on: only then has the platform stripped a caller's own
    # X-MS-CLIENT-PRINCIPAL* headers and set its own, so only then are they worth believing.
    app_service_auth: bool = False
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    # Hosts an import job's errors file may also come from, beyond SendGrid's own.
    errors_file_hosts: tuple[str, ...] = ()
    # Sending by CSV import (never / auto / always), and from how many contacts to send when auto.
    bulk_import: str = "auto"
    bulk_import_threshold: int = DEFAULT_BULK_IMPORT_THRESHOLD

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, require_key_vault: bool = True) -> Settings:
        """``require_key_vault=False``: for work that reads no secret (the CLI's listings), which
        must not stop for want of a vault it never calls; ``key_vault_url`` may then be None."""
        env = os.environ if environ is None else environ
        storage = _storage_settings(env, ("EXPORT_STORAGE", "AzureWebJobsStorage"))
        host_storage = _storage_settings(env, ("AzureWebJobsStorage", "EXPORT_STORAGE"))
        secrets_source = _get(env, "SECRETS_SOURCE", "keyvault").lower()
        if secrets_source not in ("keyvault", "environment"):
            raise SettingsError(f"SECRETS_SOURCE must be 'keyvault' or 'environment', not '{secrets_source}'.")
        key_vault_url = _get(env, "KEY_VAULT_URL", "") or None
        if secrets_source == "keyvault" and (require_key_vault or key_vault_url is not None):
            if key_vault_url is None:
                raise SettingsError(
                    "KEY_VAULT_URL is required when SECRETS_SOURCE is 'keyvault' "
                    "(set it to https://<vault-name>.vault.azure.net/, or set "
                    "SECRETS_SOURCE=environment for local work)."
                )
            _require_url("KEY_VAULT_URL", key_vault_url, schemes=("https",))
        base_url = _get(env, "SENDGRID_API_BASE_URL", "") or None
        if base_url is not None:
            _require_url("SENDGRID_API_BASE_URL", base_url, schemes=("https", "http"))
            base_url = base_url.rstrip("/")
        return cls(
            export_storage=storage,
            host_storage=host_storage,
            segments_container=_container(env, "SEGMENTS_CONTAINER", DEFAULT_SEGMENTS_CONTAINER),
            exports_container=_container(env, "EXPORTS_CONTAINER", DEFAULT_EXPORTS_CONTAINER),
            destinations_blob=_blob_name(env, "DESTINATIONS_BLOB", DEFAULT_DESTINATIONS_BLOB),
            export_schedule=_schedule(env),
            export_queue=_queue(env),
            secrets_source=secrets_source,
            key_vault_url=key_vault_url,
            sendgrid_api_base_url=base_url,
            max_batch_bytes=_integer(env, "SENDGRID_MAX_BATCH_BYTES", DEFAULT_MAX_BATCH_BYTES, MAX_BATCH_BYTES_RANGE),
            job_wait_seconds=_integer(env, "SENDGRID_JOB_WAIT_SECONDS", DEFAULT_JOB_WAIT_SECONDS, (1, 86_400)),
            run_deadline_seconds=_integer(env, "RUN_DEADLINE_SECONDS", DEFAULT_RUN_DEADLINE_SECONDS, (60, 86_400)),
            # The queue holds a message invisible for at most 7 days.
            export_settle_seconds=_integer(env, "EXPORT_SETTLE_SECONDS", DEFAULT_EXPORT_SETTLE_SECONDS, (0, 604_800)),
            app_service_auth=_flag(env, "WEBSITE_AUTH_ENABLED"),
            max_record_bytes=_integer(env, "MAX_RECORD_BYTES", DEFAULT_MAX_RECORD_BYTES, _MAX_RECORD_BYTES_RANGE),
            errors_file_hosts=_hosts(env, "SENDGRID_ERRORS_FILE_HOSTS"),
            bulk_import=_bulk_import(env),
            bulk_import_threshold=_integer(
                env, "SENDGRID_BULK_IMPORT_THRESHOLD", DEFAULT_BULK_IMPORT_THRESHOLD, (1, 1_000_000_000)
            ),
        )


def _bulk_import(env: Mapping[str, str]) -> str:
    value = _get(env, "SENDGRID_BULK_IMPORT", "auto").lower()
    if value not in BULK_IMPORT_MODES:
        raise SettingsError(f"SENDGRID_BULK_IMPORT must be 'never', 'auto' or 'always', not '{value[:40]}'.")
    return value


def _integer(env: Mapping[str, str], name: str, default: int, bounds: tuple[int, int]) -> int:
    raw = _get(env, name, str(default))
    low, high = bounds
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise SettingsError(f"{name} must be a whole number from {low} to {high}, not '{raw[:40]}'.")
    return int(raw)


def _hosts(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated host names (``*`` for any one label, ``*.`` first for any subdomain) or IP
    addresses; no scheme, port or path."""
    hosts = tuple(h.strip().lower() for h in _get(env, name, "").split(",") if h.strip())
    for host in hosts:
        if not (_HOST_PATTERN.match(host) or _is_ip_address(host)):
            raise SettingsError(
                f"{name}: '{host[:100]}' is not a host name or IP address (e.g. files.example.com, "
                "*.example.com, 127.0.0.1; no scheme, port or path)."
            )
    return hosts


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _get(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name)
    return default if value is None or value.strip() == "" else value.strip()


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = _get(env, name, "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise SettingsError(f"{name} must be true or false, not '{value}'.")
    return value in ("true", "1")


def _storage_settings(env: Mapping[str, str], names: tuple[str, ...]) -> StorageSettings:
    """The first of ``names`` that is set: a connection string, or ``__blobServiceUri`` etc."""
    for name in names:
        conn = (env.get(name) or "").strip()
        blob_uri, queue_uri, account, client_id_raw = ((env.get(name + s) or "").strip() for s in STORAGE_SUFFIXES)
        client_id = client_id_raw or None
        if conn:
            if "=" not in conn:
                raise SettingsError(
                    f"{name} must be a storage connection string "
                    "(AccountName=...;AccountKey=...; or UseDevelopmentStorage=true)."
                )
            return StorageSettings(name, connection_string=conn, client_id=client_id)
        if account and not blob_uri:
            blob_uri = f"https://{account}.blob.core.windows.net"
            queue_uri = queue_uri or f"https://{account}.queue.core.windows.net"
        if blob_uri:
            _require_url(f"{name}__blobServiceUri", blob_uri, schemes=("https", "http"))
            if queue_uri:
                _require_url(f"{name}__queueServiceUri", queue_uri, schemes=("https", "http"))
            return StorageSettings(
                name,
                blob_service_uri=blob_uri.rstrip("/"),
                queue_service_uri=queue_uri.rstrip("/") or None,
                client_id=client_id,
            )
    raise SettingsError(
        "EXPORT_STORAGE is not set and neither is AzureWebJobsStorage: set a storage connection "
        "string, or EXPORT_STORAGE__blobServiceUri for identity-based access."
    )


def _require_url(name: str, value: str, *, schemes: tuple[str, ...]) -> None:
    parsed = urlparse(value)
    if parsed.scheme not in schemes or not parsed.netloc:
        raise SettingsError(f"{name} must be an {' or '.join(schemes)} URL, not '{value}'.")


def _container(env: Mapping[str, str], name: str, default: str) -> str:
    value = _get(env, name, default)
    if not _CONTAINER_NAME.match(value):
        raise SettingsError(
            f"{name} '{value}' is not a valid container name (3-63 lower-case letters, digits "
            "and single hyphens, starting and ending with a letter or digit)."
        )
    return value


def _queue(env: Mapping[str, str]) -> str:
    value = _get(env, "EXPORT_QUEUE", DEFAULT_EXPORT_QUEUE)
    if not _QUEUE_NAME.match(value):
        raise SettingsError(f"EXPORT_QUEUE '{value}' is not a valid queue name.")
    return value


def _blob_name(env: Mapping[str, str], name: str, default: str) -> str:
    value = _get(env, name, default)
    if value.startswith("/") or ".." in value.split("/") or len(value) > 1024:
        raise SettingsError(f"{name} '{value}' is not a valid blob name.")
    return value


def _schedule(env: Mapping[str, str]) -> str:
    value = _get(env, "EXPORT_SCHEDULE", DEFAULT_EXPORT_SCHEDULE)
    fields = value.split()
    if len(fields) != 6 or not all(_NCRONTAB_FIELD.match(f) for f in fields):
        raise SettingsError(
            f"EXPORT_SCHEDULE '{value}' is not an NCRONTAB expression of six fields "
            "({second} {minute} {hour} {day} {month} {day-of-week}), e.g. '0 0 3 * * *'."
        )
    return value
