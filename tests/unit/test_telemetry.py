"""The run event and metrics, read back through OpenTelemetry's in-memory exporters."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shared.run import telemetry
from shared.run.export import queue_run, run_export
from shared.run.records import RunRecord, RunStatus
from shared.run.telemetry import (
    CONTACTS_REJECTED,
    CONTACTS_SENT,
    CUSTOM_EVENT_NAME_ATTRIBUTE,
    RUN_DURATION,
    RUN_EVENT,
    emit_run_event,
)
from tests.conftest import EMAIL_IN_TEXT
from tests.unit.test_export_core import run, setup

KEY = "k" * 20  # the API key test_export_core's edges hold


@dataclass
class Captured:
    logs: InMemoryLogRecordExporter
    metrics: InMemoryMetricReader

    def events(self) -> list[Any]:
        return [
            item.log_record
            for item in self.logs.get_finished_logs()
            if (item.log_record.attributes or {}).get(CUSTOM_EVENT_NAME_ATTRIBUTE) == RUN_EVENT
        ]

    def points(self, name: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        found: list[Any] = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Captured:
    """The SDK with in-memory exporters, in place of the global providers (which stay no-ops)."""
    logs = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    monkeypatch.setattr(telemetry, "get_logger_provider", lambda: logger_provider)
    monkeypatch.setattr(telemetry, "get_meter_provider", lambda: meter_provider)
    return Captured(logs, reader)


def assert_nothing_personal(attributes: dict[str, Any]) -> None:
    for name, value in attributes.items():
        text = f"{name}={value}"
        assert not EMAIL_IN_TEXT.search(text), text
        assert KEY not in text and "Ann" not in text and "requested_by" not in text, text


def test_each_run_sends_one_event_with_its_dimensions_and_nothing_personal(captured):
    runtime, _ = setup()
    record = run(runtime)
    (event,) = captured.events()
    attributes = dict(event.attributes)
    assert event.body == RUN_EVENT and event.event_name == RUN_EVENT
    assert attributes[CUSTOM_EVENT_NAME_ATTRIBUTE] == RUN_EVENT  # what makes it a customEvents row
    assert event.severity_text == "INFO"
    expected = {
        "run_id": record.run_id,
        "destination": "newsletter",
        "trigger": "cli",
        "status": "completed_with_errors",
        "dry_run": "false",  # KQL's tobool() reads "true"/"false", not Python's "True"
        "full": "false",
        "rejected": 1,
        "batches": 1,
        "error": "",
        "error_count": 0,
        "record_blob": f"runs/newsletter/{record.run_id}.json",
        "rejects_blob": f"runs/newsletter/{record.run_id}.rejects.csv",
        "count_read": 4,
        "count_sent": 2,
        "count_invalid": 1,
        "count_duplicate": 1,
    }
    assert {k: attributes[k] for k in expected} == expected
    assert attributes["reject_rate"] == 0.25
    assert attributes["duration_seconds"] == round(record.timings["total"], 3) >= 0
    assert attributes["schedule_enabled"] == "true"  # the run knows its destination's setting
    assert_nothing_personal(attributes)


def test_the_human_log_keeps_a_sentence_and_no_event_text(captured, caplog):
    caplog.set_level(logging.DEBUG)
    runtime, _ = setup()
    record = run(runtime)
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if RUN_EVENT in m or "{" in m]
    assert f"run {record.run_id} of newsletter: completed_with_errors; read=4, invalid=1" in "\n".join(messages)


def test_a_failed_run_is_an_error_event_with_its_error_and_without_who_asked(captured):
    runtime, _ = setup({"data_privacy_consent": False})
    record = run_export(runtime, queue_run(runtime, "newsletter", trigger="on_demand", requested_by="ops@example.com"))
    (event,) = captured.events()
    attributes = dict(event.attributes)
    assert event.severity_text == "ERROR" and attributes["status"] == "failed"
    assert attributes["error_count"] == 1 and "consent" in str(attributes["error"])
    assert_nothing_personal(attributes)
    assert record.requested_by == "ops@example.com"  # kept in the record, which is storage, not telemetry


def test_error_text_is_redacted_and_bounded(captured):
    record = RunRecord("r1", "newsletter", "on_demand", status=RunStatus.FAILED)
    record.errors.append(f"SendGrid said no to zed@example.org with SG.{'a' * 22}.{'b' * 43}; " + "x" * 2000)
    emit_run_event(record)
    (event,) = captured.events()
    error = str(event.attributes["error"])
    assert "zed@example.org" not in error and "<email>" in error and "SG.aaa" not in error
    assert len(error) == telemetry.MAX_ERROR_CHARS


def test_metrics_count_contacts_sent_and_rejected_and_time_the_run(captured):
    runtime, _ = setup()
    run(runtime)
    run(runtime, full=True)
    dims = {"destination": "newsletter", "status": "completed_with_errors", "trigger": "cli", "dry_run": "false"}
    (sent,) = captured.points(CONTACTS_SENT)
    (rejected,) = captured.points(CONTACTS_REJECTED)
    (duration,) = captured.points(RUN_DURATION)
    assert dict(sent.attributes) == dims and sent.value == 2 + 2
    assert dict(rejected.attributes) == dims and rejected.value == 1 + 1
    assert dict(duration.attributes) == dims and duration.count == 2 and duration.sum >= 0


def test_a_dry_run_is_timed_but_sends_and_rejects_no_contacts(captured):
    runtime, _ = setup()
    run(runtime, dry_run=True)
    (event,) = captured.events()
    assert event.attributes["dry_run"] == "true"
    (duration,) = captured.points(RUN_DURATION)
    assert duration.attributes["dry_run"] == "true"
    assert captured.points(CONTACTS_SENT) == [] and captured.points(CONTACTS_REJECTED) == []


def test_a_scheduled_run_says_its_destination_is_scheduled(captured):
    record = RunRecord("r1", "newsletter", "schedule", status=RunStatus.SUCCEEDED)
    emit_run_event(record)
    emit_run_event(RunRecord("r2", "newsletter", "on_demand", status=RunStatus.SUCCEEDED), schedule_enabled=False)
    first, second = captured.events()
    assert first.attributes["schedule_enabled"] == "true" and second.attributes["schedule_enabled"] == "false"


def test_without_a_configured_sdk_nothing_is_sent_and_nothing_fails():
    # The global providers are OpenTelemetry's no-op proxies: the CLI, the demo and the tests.
    assert not telemetry._sdk_configured()
    emit_run_event(RunRecord("r1", "newsletter", "cli", status=RunStatus.SUCCEEDED))


def test_a_telemetry_fault_never_fails_the_run(monkeypatch, caplog):
    class Broken:
        def get_logger(self, *args, **kwargs):
            raise RuntimeError("exporter down")

    monkeypatch.setattr(telemetry, "get_logger_provider", Broken)
    runtime, _ = setup()
    record = run(runtime)
    assert record.status == "completed_with_errors"
    assert f"the run event of {record.run_id} was not sent (RuntimeError)" in caplog.text


# -- configuring the distro ---------------------------------------------------------------------


class Configure:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **options: Any) -> None:
        self.calls.append(options)


CONNECTION = "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://127.0.0.1/"


def test_nothing_is_configured_outside_azure():
    configure = Configure()
    assert telemetry.configure_azure_monitor({}, configure=configure) is False
    assert configure.calls == []


def test_in_azure_the_distro_gets_the_managed_identity_and_never_samples_the_event(monkeypatch):
    import azure.identity

    class ManagedIdentityCredential:
        def __init__(self, client_id: str | None = None) -> None:
            self.client_id = client_id

    monkeypatch.setattr(azure.identity, "ManagedIdentityCredential", ManagedIdentityCredential)
    monkeypatch.setattr(telemetry, "_sdk_configured", lambda: False)
    configure = Configure()
    environ = {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION,
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "ClientId=11111111-2222-3333-4444-555555555555;Authorization=AAD",
    }
    assert telemetry.configure_azure_monitor(environ, configure=configure) is True
    (options,) = configure.calls
    assert options["connection_string"] == CONNECTION
    assert options["enable_trace_based_sampling_for_logs"] is False
    assert all(options["instrumentation_options"][name] == {"enabled": False} for name in ("requests", "urllib3"))
    credential = options["credential"]
    assert isinstance(credential, ManagedIdentityCredential)
    assert credential.client_id == "11111111-2222-3333-4444-555555555555"  # the app's user-assigned identity


def test_without_aad_no_credential_is_passed(monkeypatch):
    monkeypatch.setattr(telemetry, "_sdk_configured", lambda: False)
    configure = Configure()
    telemetry.configure_azure_monitor({"APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION}, configure=configure)
    assert "credential" not in configure.calls[0]


def test_a_worker_that_configured_the_distro_already_is_left_alone(monkeypatch):
    monkeypatch.setattr(telemetry, "_sdk_configured", lambda: True)
    configure = Configure()
    environ = {"APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION}
    assert telemetry.configure_azure_monitor(environ, configure=configure) is False
    assert configure.calls == []


def test_a_distro_that_fails_to_configure_leaves_the_app_running(monkeypatch, caplog):
    monkeypatch.setattr(telemetry, "_sdk_configured", lambda: False)

    def broken(**options: Any) -> None:
        raise ValueError("bad connection string")

    environ = {"APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION}
    assert telemetry.configure_azure_monitor(environ, configure=broken) is False
    assert "telemetry is not configured (ValueError)" in caplog.text and "bad connection" not in caplog.text
