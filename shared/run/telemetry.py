"""The run event and the run metrics, through OpenTelemetry: Application Insights in Azure.

Every run ends with one event, ``SendGridExportRun``, whose attributes are its dimensions (the
destination, status, trigger, counts, duration, the last error, where the record is), and three
metrics: contacts sent, contacts rejected, run duration. The alerts and the workbook query the
event (``customEvents``). It never goes to the human log: the log line at the end of a run is a
sentence, written by the run itself.

How the event becomes a ``customEvents`` row: the Azure Monitor exporter sends a log record that
carries the attribute ``microsoft.custom_event.name`` as an event of that name, with its other
attributes as ``customDimensions`` (azure-monitor-opentelemetry-exporter,
``export/logs/_exporter.py``: ``_log_data_is_event``; the distro's README, "custom events"). It is
emitted with the OpenTelemetry logs API straight to the logger provider, not through ``logging``,
so no handler of the process (stderr, the worker's) ever sees it. Log records are not sampled by
the distro unless ``enable_trace_based_sampling_for_logs`` is on, which :func:`configure_azure_monitor`
turns off explicitly: sampling never drops the event.

Nothing is exported unless :func:`configure_azure_monitor` ran, which ``function_app.py`` does only
when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set (in Azure). Without a configured SDK (tests,
the CLI, the demo) the OpenTelemetry API is a no-op: nothing leaves the process.

The event holds no email, name, principal or key: ``requested_by`` is left out on purpose (it can
be a person's sign-in address), and the error text goes through :func:`shared.privacy.redact`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry._logs import LoggerProvider, SeverityNumber, get_logger_provider
from opentelemetry.metrics import MeterProvider, get_meter_provider

from shared.privacy import redact
from shared.run.records import RunRecord, RunStatus, record_blob_name

RUN_EVENT = "SendGridExportRun"
# The attribute the Azure Monitor exporter reads to send a log record as a custom event.
CUSTOM_EVENT_NAME_ATTRIBUTE = "microsoft.custom_event.name"
SCOPE = "sendgrid_export"
CONTACTS_SENT = "sendgrid_export.contacts_sent"
CONTACTS_REJECTED = "sendgrid_export.contacts_rejected"
RUN_DURATION = "sendgrid_export.run_duration"
# The dimensions the metrics carry: few values each, so the series stay few.
METRIC_DIMENSIONS = ("destination", "status", "trigger", "dry_run")
MAX_ERROR_CHARS = 500

log = logging.getLogger(__name__)

Dimension = str | int | float


def _flag(value: bool) -> str:
    # The exporter writes str(value): "True" would be Python's spelling, not KQL's tobool().
    return "true" if value else "false"


def run_event(record: RunRecord, *, schedule_enabled: bool | None = None) -> dict[str, Dimension]:
    """The event's dimensions. ``schedule_enabled`` is given by a caller that knows the
    destination's configuration; a ``schedule`` trigger implies it."""
    counts = record.counts
    rejected = counts.rejected
    event: dict[str, Dimension] = {
        "run_id": record.run_id,
        "destination": record.destination,
        "trigger": record.trigger,
        "status": str(record.status),
        "dry_run": _flag(record.options.dry_run),
        "full": _flag(record.options.full),
        "duration_seconds": round(record.timings.get("total", 0.0), 3),
        "rejected": rejected,
        "reject_rate": round(rejected / counts.read, 6) if counts.read else 0.0,
        "batches": len(record.batches),
        "removals_refused": _flag(bool(record.removals.get("refused"))),
        "error_count": len(record.errors),
        "error": redact(record.errors[-1])[:MAX_ERROR_CHARS] if record.errors else "",
        "record_blob": record_blob_name(record.destination, record.run_id),
        "rejects_blob": record.rejects_blob or "",
    }
    event.update({f"count_{name}": value for name, value in counts.as_dict().items()})
    if schedule_enabled is None and record.trigger == "schedule":
        schedule_enabled = True  # the timer queues only schedule_enabled destinations
    if schedule_enabled is not None:
        event["schedule_enabled"] = _flag(schedule_enabled)
    return event


def emit_run_event(
    record: RunRecord,
    *,
    schedule_enabled: bool | None = None,
    logger_provider: LoggerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> None:
    """Send the run event and record the run's metrics (the global providers unless given)."""
    event = run_event(record, schedule_enabled=schedule_enabled)
    failed = record.status == RunStatus.FAILED
    try:
        otel_logger = (logger_provider or get_logger_provider()).get_logger(SCOPE)
        otel_logger.emit(
            severity_number=SeverityNumber.ERROR if failed else SeverityNumber.INFO,
            severity_text="ERROR" if failed else "INFO",
            body=RUN_EVENT,
            event_name=RUN_EVENT,
            attributes={CUSTOM_EVENT_NAME_ATTRIBUTE: RUN_EVENT, **event},
        )
        _record_metrics(record, event, meter_provider or get_meter_provider())
    except Exception as exc:  # telemetry must never fail a run whose record is saved already
        log.warning("the run event of %s was not sent (%s)", record.run_id, type(exc).__name__)


def _record_metrics(record: RunRecord, event: Mapping[str, Dimension], provider: MeterProvider) -> None:
    meter = provider.get_meter(SCOPE)
    dimensions = {name: event[name] for name in METRIC_DIMENSIONS}
    meter.create_histogram(RUN_DURATION, unit="s", description="Duration of an export run").record(
        float(event["duration_seconds"]), dimensions
    )
    if record.options.dry_run:
        return  # a dry run sends nothing: it must not count as contacts sent or rejected
    meter.create_counter(CONTACTS_SENT, unit="{contact}", description="Contacts sent to SendGrid").add(
        record.counts.sent, dimensions
    )
    meter.create_counter(
        CONTACTS_REJECTED, unit="{contact}", description="Rows rejected by the row rules or by SendGrid"
    ).add(int(event["rejected"]), dimensions)


# -- Azure: configuring the Azure Monitor distro --------------------------------------------------

CONNECTION_STRING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
AUTHENTICATION_STRING = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"
# HTTP client instrumentations would record every URL called, among them SendGrid's pre-signed
# errors-file links; Azure SDK calls (storage, Key Vault) stay traced through "azure_sdk".
QUIET_INSTRUMENTATIONS = ("requests", "urllib", "urllib3", "httpx")


def configure_azure_monitor(
    environ: Mapping[str, str] | None = None, *, configure: Callable[..., None] | None = None
) -> bool:
    """Send logs, the run event and metrics to Application Insights; True if configured.

    Only where ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set (in Azure): elsewhere nothing is
    configured and nothing is sent. Also not when the Functions worker configured the distro
    already (``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true``): two pipelines would send every
    record twice.
    """
    environ = os.environ if environ is None else environ
    connection_string = environ.get(CONNECTION_STRING, "")
    if not connection_string or _sdk_configured():
        return False
    options: dict[str, Any] = {  # Any: configure_azure_monitor's keyword arguments, each of its own type
        "connection_string": connection_string,
        "enable_trace_based_sampling_for_logs": False,  # the run event is a log record: never sampled
        "instrumentation_options": {name: {"enabled": False} for name in QUIET_INSTRUMENTATIONS},
    }
    credential = _credential(environ.get(AUTHENTICATION_STRING, ""))
    if credential is not None:
        options["credential"] = credential
    try:
        if configure is None:
            from azure.monitor.opentelemetry import configure_azure_monitor as distro_configure

            configure = distro_configure
        configure(**options)
    except Exception as exc:  # exports must still run: the host's own telemetry shows this line
        # The type only: a message could quote the connection string.
        log.error("Application Insights telemetry is not configured (%s): no run events or metrics", type(exc).__name__)
        return False
    return True


def _credential(authentication: str) -> Any:
    """The Entra ID credential ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING`` names, or None.

    The Bicep sets ``ClientId=<user-assigned identity>;Authorization=AAD``: Application Insights
    has local (key) authentication off, so telemetry is accepted only with a token of an identity
    holding Monitoring Metrics Publisher. The distro takes it as ``credential=`` ("Microsoft Entra
    authentication for Application Insights": ``ManagedIdentityCredential(client_id=...)``); the
    exporter would parse this same string itself, but only when no credential argument is passed.
    """
    fields = {}
    for part in authentication.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            fields[key.strip().lower()] = value.strip()
    if fields.get("authorization", "").upper() != "AAD":
        return None
    from azure.identity import ManagedIdentityCredential

    client_id = fields.get("clientid")
    return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()


def _sdk_configured() -> bool:
    from opentelemetry.sdk._logs import LoggerProvider as SdkLoggerProvider

    return isinstance(get_logger_provider(), SdkLoggerProvider)
